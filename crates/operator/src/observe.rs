//! What a reconcile reads of the cluster before serin-core decides: the target, its primary, the
//! configs the target uses, and what follows from them (revision, selector label).

use std::time::Duration;

use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serin_api::Canary;
use serin_api::canary::TargetKind;
use serin_core::lifecycle;
use serin_core::naming::{SelectorLabel, controlled_by_other_canary, primary_name, selector_label};
use serin_core::primary::same_template;
use serin_core::revision::revision;

use crate::Error;
use crate::context::Context;
use crate::workload::Workload;
use crate::workload::configs::{self, Tracked};

pub struct Observed {
    pub namespace: String,
    /// `None` when the target does not exist (or its kind is not one serin runs).
    pub target: Option<Workload>,
    pub primary: Option<Workload>,
    /// The target's selector label; `None` when it has none of the `-selector-labels`.
    pub label: Option<SelectorLabel>,
    /// The ConfigMaps and Secrets the target's pod template uses.
    pub tracked: Tracked,
    /// The target's revision (`status.lastAppliedSpec` form); empty without a target.
    pub revision: String,
}

pub async fn observe(context: &Context, canary: &Canary) -> Result<Observed, Error> {
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let target_ref = &canary.spec.target_ref;
    if target_ref.kind == TargetKind::Service {
        return Ok(Observed {
            namespace,
            target: None,
            primary: None,
            label: None,
            tracked: Tracked::default(),
            revision: String::new(),
        });
    }
    let target = Workload::get(&context.client, &namespace, target_ref.kind, &target_ref.name).await?;
    let primary = Workload::get(
        &context.client,
        &namespace,
        target_ref.kind,
        &primary_name(&target_ref.name),
    )
    .await?;
    let (tracked, revision, label) = match &target {
        Some(target) => {
            let template = target.template();
            let tracked = configs::observe(context, &namespace, &template).await?;
            let revision = revision(&template);
            let label = selector_label(&target.match_labels(), &context.config.selector_labels);
            (tracked, revision, label)
        }
        None => (Tracked::default(), String::new(), None),
    };
    Ok(Observed {
        namespace,
        target,
        primary,
        label,
        tracked,
        revision,
    })
}

/// The workloads, then the Canary read afresh ([`reread`]); `Err(requeue)` to look again.
pub async fn observe_then_reread(
    context: &Context,
    cached: &Canary,
) -> Result<Result<(Observed, Canary), Requeue>, Error> {
    let observed = observe(context, cached).await?;
    Ok(reread(context, cached).await?.map(|canary| (observed, canary)))
}

/// The Canary as it is now, read after the workloads were observed, so that a user who changes
/// the Canary and then its target (`suspend: true`, then a new image) has the Canary's change
/// seen whenever the target's is; the watch cache can lag behind both. `Err(requeue)` when the
/// Canary is gone, or its stage or target changed since `cached` (the caller looks again).
async fn reread(context: &Context, cached: &Canary) -> Result<Result<Canary, Requeue>, Error> {
    let namespace = cached.namespace().ok_or(Error::MissingNamespace)?;
    let Some(fresh) = Api::<Canary>::namespaced(context.client.clone(), &namespace)
        .get_opt(&cached.name_any())
        .await?
    else {
        return Ok(Err(Requeue::await_change()));
    };
    let stage = |canary: &Canary| {
        lifecycle::stage(
            canary.metadata.deletion_timestamp.is_some(),
            crate::finalize::has_finalizer(canary),
            &canary.status.clone().unwrap_or_default(),
        )
    };
    if stage(&fresh) != stage(cached) || fresh.spec.target_ref != cached.spec.target_ref {
        return Ok(Err(Requeue::requeue(Duration::ZERO)));
    }
    Ok(Ok(fresh))
}

impl Observed {
    /// Whether the primary runs the target's template (see `same_template`).
    pub fn primary_runs_target(&self) -> bool {
        match (&self.target, &self.primary, &self.label) {
            (Some(target), Some(primary), Some(label)) => same_template(
                &primary.template(),
                &target.template(),
                label,
                &self.tracked.references(),
            ),
            _ => false,
        }
    }

    /// The Canary other than `canary` that controls the primary, if any.
    pub fn primary_taken_by(&self, canary: &Canary) -> Option<String> {
        let primary = self.primary.as_ref()?;
        controlled_by_other_canary(&primary.owner_references(), &canary.uid().unwrap_or_default())
    }
}
