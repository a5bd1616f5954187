//! Initialization of a new Canary: the primary copy of the target, the three Services, the
//! routes, and the target scaled to zero once the primary serves. Every step is idempotent and
//! re-derived from the cluster, so an interrupted initialization simply continues.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serin_api::canary::TargetKind;
use serin_api::canary::defaults::READY_THRESHOLD_PERCENT;
use serin_api::{Canary, Phase};
use serin_core::analysis::Routes;
use serin_core::naming::{controlled_by_other_canary, primary_name, selector_label};
use serin_core::readiness::Readiness;
use serin_core::revision::revision;
use serin_core::services::{ServiceInputs, services};
use serin_core::status;

use crate::Error;
use crate::analyse::refuse_if_managed_by_another_canary;
use crate::apply::apply;
use crate::controller::Context;
use crate::report::{Note, problem, report};
use crate::router;
use crate::workload::Workload;
use crate::workload::autoscaler::pause_target_scaler;
use crate::workload::configs;
use crate::workload::primary::apply_primary;

/// Re-checks a primary that is still rolling out even if no watch event arrives.
const READINESS_RECHECK: Duration = Duration::from_secs(10);

pub async fn run(canary: &Canary, context: &Context) -> Result<Action, Error> {
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let name = canary.name_any();
    let current = canary.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let target_ref = &canary.spec.target_ref;

    if target_ref.kind == TargetKind::Service {
        let message =
            "targetRef.kind Service is not supported by this serin version; target a Deployment or a DaemonSet";
        problem(
            context,
            canary,
            Phase::Initializing,
            "UnsupportedTarget",
            message.to_string(),
        )
        .await?;
        return Ok(Action::await_change());
    }

    // An unsupported provider is a user error: the controller reports it in the status.
    let router = router::for_provider(context.config.provider_of(&canary.spec), &context.client)?;

    let kind = format!("{:?}", target_ref.kind);
    let Some(target) = Workload::get(&context.client, &namespace, target_ref.kind, &target_ref.name).await? else {
        let message = format!(
            "target {kind} {namespace}/{} not found: create it or fix spec.targetRef.name",
            target_ref.name
        );
        problem(context, canary, Phase::Initializing, "TargetNotFound", message).await?;
        return Ok(Action::await_change());
    };

    let Some(label) = selector_label(&target.match_labels(), &context.config.selector_labels) else {
        let message = format!(
            "{kind} {namespace}/{} has none of the labels {} in spec.selector.matchLabels: add one, or list yours with -selector-labels",
            target_ref.name,
            context.config.selector_labels.join(", ")
        );
        problem(context, canary, Phase::Initializing, "SelectorLabelMissing", message).await?;
        return Ok(Action::await_change());
    };

    if let Some(existing) = Workload::get(
        &context.client,
        &namespace,
        target_ref.kind,
        &primary_name(&target_ref.name),
    )
    .await?
    {
        refuse_if_managed_by_another_canary(canary, &existing)?;
    }
    let service_api = Api::<Service>::namespaced(context.client.clone(), &namespace);
    let service_name = canary.spec.service_name();
    if let Some(apex) = service_api.get_opt(service_name).await?
        && let Some(owner) = controlled_by_other_canary(apex.owner_references(), &canary.uid().unwrap_or_default())
    {
        return Err(Error::ServiceTaken {
            service: service_name.to_string(),
            owner,
        });
    }

    let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
    let template = target.template();
    let tracked = configs::observe(context, &namespace, &template).await?;
    let primary = apply_primary(context, canary, &target, &label, &tracked).await?;

    let inputs = ServiceInputs {
        spec: &canary.spec,
        namespace: &namespace,
        label: &label,
        owner,
        template: &template,
    };
    for service in services(&inputs) {
        apply(&service_api, &service).await?;
    }
    router.set_routes(canary, Routes::all_to_primary()).await?;

    let threshold = canary
        .spec
        .analysis()
        .map_or(READY_THRESHOLD_PERCENT, |a| a.primary_ready_threshold());
    match primary.readiness(threshold, canary.spec.progress_deadline_seconds(), now) {
        Readiness::Ready => {}
        Readiness::Waiting(message) => {
            let next = status::transition(&current, Phase::Initializing, &message, now);
            let note = (current.phase != Some(Phase::Initializing)).then(|| Note {
                type_: EventType::Normal,
                reason: "Initializing",
                message: format!("initializing {namespace}/{name}: {message}"),
            });
            report(context, canary, next, note).await?;
            return Ok(Action::requeue(READINESS_RECHECK));
        }
        Readiness::Failed(message) => {
            let message = format!("primary is not ready: {message}; fix the target's pod template or resources");
            problem(context, canary, Phase::Initializing, "PrimaryNotReady", message).await?;
            return Ok(Action::requeue(READINESS_RECHECK));
        }
    }

    target.scale_down(&context.client, &namespace).await?;
    pause_target_scaler(context, canary, &namespace, true).await?;
    let revision = revision(&template, &tracked.hashes());
    let message = format!("{kind} initialization completed.");
    let next = status::initialized(&current, &revision, &tracked.status(), &message, now);
    let note = Note {
        type_: EventType::Normal,
        reason: "Initialized",
        message: format!("Initialization done! {name}.{namespace}"),
    };
    report(context, canary, next, Some(note)).await?;
    Ok(Action::await_change())
}
