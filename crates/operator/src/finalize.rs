//! `revertOnDeletion`: while the Canary exists it carries the finalizer `finalizer.flagger.app`;
//! when it is deleted, `serin_core::lifecycle::revert` decides how the target is given back (its
//! replicas, the apex Service, the provider's routes) and when the Canary may go.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde_json::json;
use serin_api::Canary;
use serin_api::canary::defaults::READY_THRESHOLD_PERCENT;
use serin_core::lifecycle::{self, RevertObservation, RevertTarget};

use crate::Error;
use crate::context::Context;
use crate::interpret::{self, Subject};
use crate::observe::observe_then_reread;

pub const FINALIZER: &str = "finalizer.flagger.app";

pub fn has_finalizer(canary: &Canary) -> bool {
    canary.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds or removes the finalizer so that it is there exactly when `revertOnDeletion` is set.
/// Returns whether it changed anything (the change comes back as a watch event).
pub async fn sync_finalizer(canary: &Canary, context: &Context) -> Result<bool, Error> {
    let wanted = canary.spec.revert_on_deletion == Some(true);
    if wanted == has_finalizer(canary) {
        return Ok(false);
    }
    let mut finalizers = others(canary);
    if wanted {
        finalizers.push(FINALIZER.to_string());
    }
    patch_finalizers(context, canary, finalizers).await?;
    Ok(true)
}

/// Lets the Canary go: its finalizer removed, the others kept.
pub async fn release(context: &Context, canary: &Canary) -> Result<(), Error> {
    patch_finalizers(context, canary, others(canary)).await
}

fn others(canary: &Canary) -> Vec<String> {
    canary
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect()
}

/// Sets the finalizers list, only if nobody changed the Canary's finalizers meanwhile (the
/// list is replaced whole, so a concurrent change would otherwise be lost).
async fn patch_finalizers(context: &Context, canary: &Canary, finalizers: Vec<String>) -> Result<(), Error> {
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let api = Api::<Canary>::namespaced(context.client.clone(), &namespace);
    let current = api.get_metadata(&canary.name_any()).await?;
    let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": current.resource_version() } });
    api.patch(&canary.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Gives the target back for a Canary being deleted.
pub async fn revert(cached: &Canary, context: &Context) -> Result<Requeue, Error> {
    let (observed, canary) = match observe_then_reread(context, cached).await? {
        Ok(seen) => seen,
        Err(requeue) => return Ok(requeue),
    };
    let canary = &canary;
    let status = canary.status.clone().unwrap_or_default();
    let threshold = canary
        .spec
        .analysis()
        .map_or(READY_THRESHOLD_PERCENT, |a| a.canary_ready_threshold());
    let now = Timestamp::now();
    let target = observed.target.as_ref().map(|target| RevertTarget {
        scaled_up: target.scaled_up(),
        readiness: target.readiness(threshold, canary.spec.progress_deadline_seconds(), now),
        has_selector_label: observed.label.is_some(),
    });
    let name = canary.name_any();
    let outcome = lifecycle::revert(
        &status,
        &RevertObservation {
            now,
            name: &name,
            namespace: &observed.namespace,
            target_name: &canary.spec.target_ref.name,
            target,
            taken_by_other: observed.primary_taken_by(canary).is_some(),
        },
    );
    let router = context.router_for(&canary.spec).ok();
    let subject = Subject {
        context,
        canary,
        observed: &observed,
        router: router.as_deref(),
    };
    interpret::carry_out(&subject, &outcome).await
}
