//! Initialization of a Canary: observe the target, its primary and the apex Service, let
//! `serin_core::lifecycle::initialize` decide, carry the plan out. Every action is idempotent
//! and re-derived from the cluster, so an interrupted initialization simply continues.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serin_api::Canary;
use serin_api::canary::TargetKind;
use serin_api::canary::defaults::READY_THRESHOLD_PERCENT;
use serin_core::lifecycle::{self, InitObservation, InitPrimary, InitTarget};
use serin_core::naming::controlled_by_other_canary;

use crate::Error;
use crate::context::Context;
use crate::interpret::{self, Subject};
use crate::observe::observe_then_reread;

pub async fn run(cached: &Canary, context: &Context) -> Result<Requeue, Error> {
    let (observed, canary) = match observe_then_reread(context, cached).await? {
        Ok(seen) => seen,
        Err(requeue) => return Ok(requeue),
    };
    let canary = &canary;
    let status = canary.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let target_ref = &canary.spec.target_ref;
    let kind_supported = target_ref.kind != TargetKind::Service;
    // An unsupported provider is a user error: the controller reports it.
    let router = match kind_supported {
        true => Some(context.router_for(&canary.spec)?),
        false => None,
    };
    let threshold = canary
        .spec
        .analysis()
        .map_or(READY_THRESHOLD_PERCENT, |a| a.primary_ready_threshold());
    let primary = match (&observed.primary, observed.primary_taken_by(canary)) {
        (None, _) => InitPrimary::Missing,
        (Some(_), Some(owner)) => InitPrimary::TakenBy(owner),
        (Some(primary), None) => InitPrimary::Present {
            readiness: primary.readiness(threshold, canary.spec.progress_deadline_seconds(), now),
            runs_target: observed.primary_runs_target(),
        },
    };
    let service_name = canary.spec.service_name();
    let apex_taken_by = match &observed.target {
        Some(_) => Api::<Service>::namespaced(context.client.clone(), &observed.namespace)
            .get_opt(service_name)
            .await?
            .and_then(|apex| controlled_by_other_canary(apex.owner_references(), &canary.uid().unwrap_or_default())),
        None => None,
    };
    let tracked_configs = observed.tracked.status();
    let kind = format!("{:?}", target_ref.kind);
    let name = canary.name_any();
    let outcome = lifecycle::initialize(
        &status,
        &InitObservation {
            now,
            spec: &canary.spec,
            name: &name,
            namespace: &observed.namespace,
            target_name: &target_ref.name,
            target_kind: &kind,
            target_kind_supported: kind_supported,
            target: observed.target.as_ref().map(|_| InitTarget {
                has_selector_label: observed.label.is_some(),
                revision: &observed.revision,
                tracked_configs: &tracked_configs,
            }),
            primary,
            apex_taken_by,
            selector_labels: &context.config.selector_labels,
            service_name,
            routes_before_primary: router.as_ref().is_some_and(|r| r.registers_pods()),
        },
    );
    let subject = Subject {
        context,
        canary,
        observed: &observed,
        router: router.as_deref(),
    };
    interpret::carry_out(&subject, &outcome).await
}
