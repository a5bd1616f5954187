//! `revertOnDeletion`: while the Canary exists it carries the finalizer `finalizer.flagger.app`;
//! when it is deleted, serin gives the target back its replicas, points the apex Service (and
//! the provider's routes) at the target's pods, releases them from the Canary, and only then
//! lets the Canary go (phases Terminating, then Terminated).

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use serin_api::canary::defaults::READY_THRESHOLD_PERCENT;
use serin_api::{Canary, Phase};
use serin_core::naming::{primary_name, selector_label};
use serin_core::readiness::Readiness;
use serin_core::services::{ServiceInputs, reverted_apex};
use serin_core::status;

use crate::Error;
use crate::apply::apply;
use crate::controller::Context;
use crate::report::{Note, report};
use crate::router;
use crate::workload::Workload;
use crate::workload::autoscaler::pause_target_scaler;

pub const FINALIZER: &str = "finalizer.flagger.app";
const RECHECK: Duration = Duration::from_secs(2);

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
    let mut finalizers: Vec<String> = canary
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if wanted {
        finalizers.push(FINALIZER.to_string());
    }
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let api = Api::<Canary>::namespaced(context.client.clone(), &namespace);
    let patch = json!({ "metadata": { "finalizers": finalizers, "resourceVersion": canary.resource_version() } });
    api.patch(&canary.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(true)
}

/// Reverts the target for a Canary being deleted; removes the finalizer once the target serves.
pub async fn revert(canary: &Canary, context: &Context) -> Result<Action, Error> {
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let name = canary.name_any();
    let current = canary.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let target_ref = &canary.spec.target_ref;
    let target_name = &target_ref.name;

    let primary = Workload::get(&context.client, &namespace, target_ref.kind, &primary_name(target_name)).await?;
    // A Canary refused because another one manages the target gives nothing back: it took nothing.
    let taken = primary
        .as_ref()
        .is_some_and(|primary| crate::analyse::refuse_if_managed_by_another_canary(canary, primary).is_err());
    let target = match taken {
        true => None,
        false => Workload::get(&context.client, &namespace, target_ref.kind, target_name).await?,
    };
    if let Some(target) = target {
        let replicas = primary.and_then(|p| p.replicas()).unwrap_or(1).max(1);
        pause_target_scaler(context, canary, &namespace, false).await?;
        target.scale_up(&context.client, &namespace, replicas).await?;
        if let Some(label) = selector_label(&target.match_labels(), &context.config.selector_labels) {
            let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
            let template = target.template();
            let inputs = ServiceInputs {
                spec: &canary.spec,
                namespace: &namespace,
                label: &label,
                owner,
                template: &template,
            };
            apply(
                &Api::<Service>::namespaced(context.client.clone(), &namespace),
                &reverted_apex(&inputs),
            )
            .await?;
        }
        if let Ok(router) = router::for_provider(context.config.provider_of(&canary.spec), &context.client) {
            router.revert(canary).await?;
        }
        let fresh = Workload::get(&context.client, &namespace, target_ref.kind, target_name)
            .await?
            .unwrap_or(target);
        let threshold = canary
            .spec
            .analysis()
            .map_or(READY_THRESHOLD_PERCENT, |a| a.canary_ready_threshold());
        if let Readiness::Waiting(why) = fresh.readiness(threshold, canary.spec.progress_deadline_seconds(), now) {
            let next = status::transition(
                &current,
                Phase::Terminating,
                &format!("reverting to the target: {why}"),
                now,
            );
            let note = (current.phase != Some(Phase::Terminating)).then(|| Note {
                type_: EventType::Normal,
                reason: "Terminating",
                message: format!(
                    "{name}.{namespace}: deleted with revertOnDeletion; giving traffic back to {target_name}"
                ),
            });
            report(context, canary, next, note).await?;
            return Ok(Action::requeue(RECHECK));
        }
    }

    let next = status::transition(
        &current,
        Phase::Terminated,
        "the target serves again; the Canary is released",
        now,
    );
    let note = Note {
        type_: EventType::Normal,
        reason: "Terminated",
        message: format!("{name}.{namespace}: reverted; {target_name} serves through its Service again"),
    };
    report(context, canary, next, Some(note)).await?;
    let finalizers: Vec<String> = canary
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let api = Api::<Canary>::namespaced(context.client.clone(), &namespace);
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "metadata": { "finalizers": finalizers } })),
    )
    .await?;
    Ok(Action::await_change())
}
