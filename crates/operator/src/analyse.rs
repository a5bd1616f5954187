//! The analysis of a Canary past initialization: observe the target and the primary, let
//! `serin_core::analysis::decide` decide (answering the gates it asks for with webhooks and
//! metric checks), then carry its plan out.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::EventType;
use serin_api::canary::Provider;
use serin_api::{Canary, CanaryStatus};
use serin_core::analysis::{Decision, Gate, GateResult, Gates, Observation, Subject as Decided, decide};
use serin_core::lifecycle;
use serin_core::status::adopt_flagger_status;

use crate::Error;
use crate::context::Context;
use crate::hooks;
use crate::interpret::{self, Subject};
use crate::observe::{Observed, observe_then_reread};
use crate::report::{Note, publish};
use serin_metrics::{self as metrics, MetricContext};

pub async fn run(cached: &Canary, context: &Context) -> Result<Requeue, Error> {
    let (observed, canary) = match observe_then_reread(context, cached).await? {
        Ok(seen) => seen,
        Err(requeue) => return Ok(requeue),
    };
    let canary = &canary;
    let status = canary.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let target_ref = &canary.spec.target_ref;
    let kind = format!("{:?}", target_ref.kind);
    let (Some(target), Some(primary)) = (&observed.target, &observed.primary) else {
        let outcome = match observed.target {
            None => lifecycle::target_not_found(&status, &kind, &observed.namespace, &target_ref.name, now),
            Some(_) => lifecycle::primary_missing(&status, &kind, &observed.namespace, &target_ref.name, now),
        };
        return interpret::record(context, canary, &outcome).await;
    };
    if let Some(owner) = observed.primary_taken_by(canary) {
        return Err(Error::TargetTaken(lifecycle::target_taken(
            primary.kind(),
            &target_ref.name,
            &owner,
        )));
    }
    let provider = context.config.provider_of(&canary.spec);
    // An unsupported provider is a user error: the controller reports it in the status.
    let router = context.router_of(provider)?;
    // Only an analysis in progress compares the routes in the cluster with its status.
    let routes = match serin_core::analysis::compares_routes(&status) {
        true => router.get_routes(canary).await?,
        false => None,
    };
    let status = adopt_flagger_status(&status, routes.as_ref());
    let analysis = canary.spec.analysis().cloned().unwrap_or_default();
    let deadline = canary.spec.progress_deadline_seconds();
    let tracked_configs = observed.tracked.status();
    let observation = Observation {
        now,
        revision: &observed.revision,
        tracked_configs: &tracked_configs,
        canary: target.readiness(analysis.canary_ready_threshold(), deadline, now),
        primary: primary.readiness(analysis.primary_ready_threshold(), deadline, now),
        shifts_weights: router.shifts_weights(),
        routes,
        target_has_selector_label: observed.label.is_some(),
    };
    let name = canary.name_any();
    let decided = Decided {
        name: &name,
        namespace: &observed.namespace,
        spec: &canary.spec,
        status: &status,
    };
    let mut gates = Gates::default();
    let outcome = loop {
        match decide(&decided, &observation, &gates) {
            Decision::Run(gate) => {
                let result = run_gate(context, canary, &observed, &status, provider, gate).await;
                gates.insert(gate, result);
            }
            Decision::Act(outcome) => break *outcome,
        }
    };
    let subject = Subject {
        context,
        canary,
        observed: &observed,
        router: Some(router.as_ref()),
    };
    interpret::carry_out(&subject, &outcome).await
}

async fn run_gate(
    context: &Context,
    canary: &Canary,
    observed: &Observed,
    status: &CanaryStatus,
    provider: Provider,
    gate: Gate,
) -> GateResult {
    let phase = gate.payload_phase(status.phase.unwrap_or_default());
    let answers = hooks::call_all(
        &context.http,
        &context.telemetry,
        canary,
        &observed.namespace,
        &hooks::checksum(Some(status)),
        gate.hook_type(),
        phase.as_str(),
    )
    .await;
    match gate {
        Gate::RollbackRequested => GateResult {
            open: answers.passed > 0,
            message: if answers.passed > 0 {
                "a rollback webhook answered with success".into()
            } else {
                answers.failures.join("; ")
            },
            muted: false,
        },
        Gate::Checks if answers.failures.is_empty() => metric_checks(context, canary, observed, provider).await,
        _ if answers.failures.is_empty() => GateResult {
            open: true,
            message: "all webhooks passed".into(),
            muted: false,
        },
        _ => GateResult {
            open: false,
            message: answers.failures.join("; "),
            muted: answers.first_failure_muted,
        },
    }
}

/// Runs every metric check (all of them, so each value is reported) and publishes each verdict.
async fn metric_checks(context: &Context, canary: &Canary, observed: &Observed, provider: Provider) -> GateResult {
    let metric_context = metric_context(context, canary, &observed.namespace, provider);
    let mut failures = Vec::new();
    let metrics = canary.spec.analysis().and_then(|a| a.metrics.as_ref());
    for metric in metrics.into_iter().flatten() {
        let (passed, message) = match metrics::check(&metric_context, metric).await {
            Ok(verdict) => {
                context.telemetry.metric_measured(canary, &metric.name, verdict.value);
                (verdict.passed, verdict.message)
            }
            Err(error) => (false, error.to_string()),
        };
        let (type_, reason) = if passed {
            (EventType::Normal, "MetricPassed")
        } else {
            (EventType::Warning, "MetricFailed")
        };
        publish(
            context,
            canary,
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
            muted: false,
        }
    } else {
        GateResult {
            open: false,
            message: failures.join("; "),
            muted: false,
        }
    }
}

/// Where the Canary's metrics are queried: `spec.metricsServer` or `-metrics-server` for the
/// builtin metrics of its traffic `provider`.
pub fn metric_context<'a>(
    context: &'a Context,
    canary: &'a Canary,
    namespace: &'a str,
    provider: Provider,
) -> MetricContext<'a> {
    MetricContext {
        client: &context.client,
        canary,
        namespace,
        provider,
        metrics_server: canary
            .spec
            .metrics_server
            .as_deref()
            .unwrap_or(&context.config.metrics_server),
        http: &context.http,
        environment: &context.metric_environment,
        observer: Some(context.telemetry.as_ref()),
    }
}
