//! The analysis of a Canary past initialization: observe the target and the primary, let
//! serin-core decide (answering the gates it asks for with webhooks and metric checks), then
//! carry out its actions and write the status and Events.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::EventType;
use serin_api::canary::{CanaryAnalysis, HookType};
use serin_api::{Canary, CanaryStatus, Phase};
use serin_core::analysis::{Action, Decision, Gate, GateResult, Gates, Observation, Outcome, Subject, decide};
use serin_core::naming::{SelectorLabel, primary_name, selector_label};
use serin_core::primary::same_template;
use serin_core::revision::revision;
use serin_core::status::adopt_flagger_status;

use crate::Error;
use crate::controller::Context;
use crate::hooks::{self, Payload};
use crate::metrics::{self, MetricContext};
use crate::report::{Note, problem, publish, write_status};
use crate::router::{self, Router};
use crate::workload::Workload;
use crate::workload::autoscaler::pause_target_scaler;
use crate::workload::configs::{self, Tracked};
use crate::workload::primary::apply_primary;

/// What one reconcile works with.
struct Scope<'a> {
    context: &'a Context,
    canary: &'a Canary,
    namespace: String,
    status: CanaryStatus,
    analysis: CanaryAnalysis,
    revision: String,
    target: Workload,
    /// The target's selector label; `None` when it lost it (core then refuses to promote).
    label: Option<SelectorLabel>,
    primary: Workload,
    tracked: Tracked,
}

pub async fn run(canary: &Canary, context: &Context) -> Result<Requeue, Error> {
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let status = canary.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_default();
    let target_ref = &canary.spec.target_ref;
    let kind = format!("{:?}", target_ref.kind);

    let Some(target) = Workload::get(&context.client, &namespace, target_ref.kind, &target_ref.name).await? else {
        let message = format!(
            "target {kind} {namespace}/{} not found: recreate it or fix spec.targetRef.name",
            target_ref.name
        );
        problem(context, canary, phase, "TargetNotFound", message).await?;
        return Ok(Requeue::await_change());
    };
    let primary_name = primary_name(&target_ref.name);
    let Some(primary) = Workload::get(&context.client, &namespace, target_ref.kind, &primary_name).await? else {
        let message = format!("primary {kind} {namespace}/{primary_name} is missing; initializing again");
        problem(context, canary, Phase::Initializing, "PrimaryMissing", message).await?;
        return Ok(Requeue::await_change());
    };
    refuse_if_managed_by_another_canary(canary, &primary)?;
    let template = target.template();
    let tracked = configs::observe(context, &namespace, &template).await?;
    let revision = revision(&template, &tracked.hashes());

    let provider = context.config.provider_of(&canary.spec);
    // An unsupported provider is a user error: the controller reports it in the status.
    let router = router::for_provider(provider, &context.client)?;
    let label = selector_label(&target.match_labels(), &context.config.selector_labels);
    let target_matches_primary = label
        .as_ref()
        .is_some_and(|label| same_template(&primary.template(), &target.template(), label, &tracked.references()));
    let status = adopt_flagger_status(&status, &revision, target_matches_primary);
    let analysis = canary.spec.analysis().cloned().unwrap_or_default();
    let scope = Scope {
        context,
        canary,
        namespace,
        status,
        analysis,
        revision,
        target,
        label,
        primary,
        tracked,
    };

    let now = Timestamp::now();
    let deadline = canary.spec.progress_deadline_seconds();
    let tracked_configs = scope.tracked.status();
    let observation = Observation {
        now,
        revision: &scope.revision,
        tracked_configs: &tracked_configs,
        canary: scope
            .target
            .readiness(scope.analysis.canary_ready_threshold(), deadline, now),
        primary: scope
            .primary
            .readiness(scope.analysis.primary_ready_threshold(), deadline, now),
        provider,
        target_has_selector_label: scope.label.is_some(),
    };
    let name = canary.name_any();
    let subject = Subject {
        name: &name,
        namespace: &scope.namespace,
        spec: &canary.spec,
        status: &scope.status,
    };
    let mut gates = Gates::default();
    let outcome = loop {
        match decide(&subject, &observation, &gates) {
            Decision::Run(gate) => {
                let result = run_gate(&scope, provider, gate).await;
                gates.insert(gate, result);
            }
            Decision::Act(outcome) => break *outcome,
        }
    };
    carry_out(&scope, router.as_ref(), &outcome).await?;
    Ok(outcome.requeue.map_or_else(Requeue::await_change, Requeue::requeue))
}

/// A target has one Canary: the primary another Canary controls is never touched.
pub fn refuse_if_managed_by_another_canary(canary: &Canary, primary: &Workload) -> Result<(), Error> {
    let uid = canary.uid().unwrap_or_default();
    match serin_core::naming::controlled_by_other_canary(&primary.owner_references(), &uid) {
        Some(owner) => Err(Error::TargetTaken {
            kind: primary.kind(),
            target: canary.spec.target_ref.name.clone(),
            owner,
        }),
        None => Ok(()),
    }
}

async fn carry_out(scope: &Scope<'_>, router: &dyn Router, outcome: &Outcome) -> Result<(), Error> {
    let canary = scope.canary;
    let client = &scope.context.client;
    for action in &outcome.actions {
        match action {
            Action::ScaleUpTarget => {
                let replicas = scope.primary.replicas().unwrap_or(1).max(1);
                pause_target_scaler(scope.context, canary, &scope.namespace, false).await?;
                scope.target.scale_up(client, &scope.namespace, replicas).await?;
            }
            Action::ScaleDownTarget => {
                scope.target.scale_down(client, &scope.namespace).await?;
                pause_target_scaler(scope.context, canary, &scope.namespace, true).await?;
            }
            Action::Route(routes) => router.set_routes(canary, *routes).await?,
            Action::PromotePrimary => {
                // serin-core only promotes a target that has its selector label.
                let label = scope.label.as_ref().ok_or(Error::SelectorLabelLost)?;
                apply_primary(scope.context, canary, &scope.target, label, &scope.tracked).await?;
            }
            Action::PostRollout(phase) => post_rollout(scope, *phase).await,
        }
    }
    if let Some(status) = &outcome.status {
        write_status(scope.context, canary, status).await?;
    }
    for note in &outcome.notes {
        let type_ = if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(
            scope.context,
            canary,
            Note {
                type_,
                reason: note.reason,
                message: note.message.clone(),
            },
        )
        .await;
    }
    Ok(())
}

fn payload<'a>(scope: &'a Scope<'a>, phase: &'a str, metadata: BTreeMap<String, String>) -> Payload<'a> {
    Payload {
        name: scope.canary.metadata.name.as_deref().unwrap_or_default(),
        namespace: &scope.namespace,
        phase,
        checksum: &scope.revision,
        metadata,
    }
}

/// Calls every webhook of `kind`; returns the failures' messages and how many passed.
async fn call_hooks(scope: &Scope<'_>, kind: HookType, phase: &str) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut passed = 0;
    for hook in scope.analysis.webhooks.iter().flatten().filter(|h| h.kind() == kind) {
        let payload = payload(scope, phase, hook.metadata.clone().unwrap_or_default());
        match hooks::call(&scope.context.http, hook, &payload).await {
            Ok(()) => passed += 1,
            Err(error) => failures.push(error.to_string()),
        }
    }
    (failures, passed)
}

async fn run_gate(scope: &Scope<'_>, provider: serin_api::canary::Provider, gate: Gate) -> GateResult {
    let current_phase = scope.status.phase.unwrap_or_default().as_str();
    let phase = match gate {
        Gate::ConfirmRollout | Gate::RollbackRequested => current_phase,
        _ => Phase::Progressing.as_str(),
    };
    let (failures, passed) = call_hooks(scope, gate.hook_type(), phase).await;
    match gate {
        Gate::RollbackRequested => GateResult {
            open: passed > 0,
            message: if passed > 0 {
                "a rollback webhook answered with success".into()
            } else {
                failures.join("; ")
            },
        },
        Gate::Checks if failures.is_empty() => metric_checks(scope, provider).await,
        _ if failures.is_empty() => GateResult {
            open: true,
            message: "all webhooks passed".into(),
        },
        _ => GateResult {
            open: false,
            message: failures.join("; "),
        },
    }
}

/// Runs every metric check (all of them, so each value is reported) and publishes each verdict.
async fn metric_checks(scope: &Scope<'_>, provider: serin_api::canary::Provider) -> GateResult {
    let metrics_server = scope
        .canary
        .spec
        .metrics_server
        .as_deref()
        .unwrap_or(&scope.context.config.metrics_server);
    let context = MetricContext {
        client: &scope.context.client,
        canary: scope.canary,
        namespace: &scope.namespace,
        provider,
        metrics_server,
        http: &scope.context.http,
    };
    let mut failures = Vec::new();
    for metric in scope.analysis.metrics.iter().flatten() {
        let (passed, message) = match metrics::check(&context, metric).await {
            Ok(verdict) => (verdict.passed, verdict.message),
            Err(error) => (false, error.to_string()),
        };
        let (type_, reason) = if passed {
            (EventType::Normal, "MetricPassed")
        } else {
            (EventType::Warning, "MetricFailed")
        };
        publish(
            scope.context,
            scope.canary,
            Note {
                type_,
                reason,
                message: message.clone(),
            },
        )
        .await;
        if !passed {
            failures.push(message);
        }
    }
    if failures.is_empty() {
        GateResult {
            open: true,
            message: "all checks passed".into(),
        }
    } else {
        GateResult {
            open: false,
            message: failures.join("; "),
        }
    }
}

async fn post_rollout(scope: &Scope<'_>, phase: Phase) {
    let (failures, _) = call_hooks(scope, HookType::PostRollout, phase.as_str()).await;
    for failure in failures {
        publish(
            scope.context,
            scope.canary,
            Note {
                type_: EventType::Warning,
                reason: "PostRolloutFailed",
                message: failure,
            },
        )
        .await;
    }
}
