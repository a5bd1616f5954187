//! The interpreter of serin-core's plans: each typed action becomes idempotent API calls, then
//! the status is written, the Events published, and the actions that must follow the status
//! write are carried out (see `serin_core::plan`). Nothing here chooses what happens next.

use k8s_openapi::api::core::v1::Service;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::EventType;
use kube::{Api, Resource};
use serin_api::Canary;
use serin_api::canary::HookType;
use serin_core::alerts::Alert;
use serin_core::plan::{Action, Outcome};
use serin_core::services::{ServiceInputs, reverted_apex, services};

use crate::Error;
use crate::alerts;
use crate::apply::apply;
use crate::context::Context;
use crate::finalize;
use crate::hooks;
use crate::observe::Observed;
use crate::report::{Note, publish, write_status};
use crate::workload::autoscaler::pause_target_scaler;
use crate::workload::primary::apply_primary;
use serin_router::Router;

/// What the actions act on.
pub struct Subject<'a> {
    pub context: &'a Context,
    pub canary: &'a Canary,
    pub observed: &'a Observed,
    /// The Canary's router; `None` when its provider has none (only a revert can get there).
    pub router: Option<&'a dyn Router>,
}

/// Carries the plan out; returns when to look again.
pub async fn carry_out(subject: &Subject<'_>, outcome: &Outcome) -> Result<Requeue, Error> {
    for action in &outcome.actions {
        perform(subject, action).await?;
    }
    if let Some(status) = &outcome.status {
        write_status(subject.context, subject.canary, status).await?;
    }
    // Right after the status write, before the Events, so that the window in which a crash
    // loses an at-most-once action is as short as it can be.
    for action in &outcome.after {
        perform(subject, action).await?;
    }
    publish_notes(subject.context, subject.canary, outcome).await;
    Ok(requeue_of(outcome))
}

/// The status and the Events of a plan (all of a plan that has no actions, like a problem's).
pub async fn record(context: &Context, canary: &Canary, outcome: &Outcome) -> Result<Requeue, Error> {
    if let Some(status) = &outcome.status
        && let Err(error) = write_status(context, canary, status).await
    {
        if error.is_forbidden() {
            // The status cannot say it: the Events are all the user will see.
            publish_notes(context, canary, outcome).await;
            let note = Note {
                type_: EventType::Warning,
                reason: error.reason(),
                message: format!("the status could not be written: {}", error.user_message()),
            };
            publish(context, canary, note).await;
        }
        return Err(error);
    }
    publish_notes(context, canary, outcome).await;
    Ok(requeue_of(outcome))
}

fn requeue_of(outcome: &Outcome) -> Requeue {
    outcome.requeue.map_or_else(Requeue::await_change, Requeue::requeue)
}

async fn publish_notes(context: &Context, canary: &Canary, outcome: &Outcome) {
    let revision = outcome
        .status
        .as_ref()
        .or(canary.status.as_ref())
        .and_then(|s| s.last_applied_spec.clone())
        .unwrap_or_default();
    for note in &outcome.notes {
        if let Some(alert) = &note.alert {
            alerts::send(context, canary, &revision, alert);
        }
        let type_ = if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(
            context,
            canary,
            Note {
                type_,
                reason: note.reason,
                message: note.message.clone(),
            },
        )
        .await;
    }
}

async fn perform(subject: &Subject<'_>, action: &Action) -> Result<(), Error> {
    let Subject {
        context,
        canary,
        observed,
        router,
    } = subject;
    let namespace = observed.namespace.as_str();
    let target = || observed.target.as_ref().ok_or(Error::TargetGone);
    let label = || observed.label.as_ref().ok_or(Error::SelectorLabelLost);
    match action {
        Action::ApplyPrimary => {
            apply_primary(context, canary, target()?, label()?, &observed.tracked).await?;
        }
        Action::ApplyServices | Action::RevertApexService => {
            let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
            let template = target()?.template();
            let inputs = ServiceInputs {
                spec: &canary.spec,
                namespace,
                label: label()?,
                owner,
                template: &template,
            };
            let api = Api::<Service>::namespaced(context.client.clone(), namespace);
            if *action == Action::ApplyServices {
                for service in services(&inputs) {
                    apply(&api, &service).await?;
                }
            } else {
                apply(&api, &reverted_apex(&inputs)).await?;
            }
        }
        Action::Route(routes) => {
            let router = router.ok_or(Error::NoRouter)?;
            router.set_routes(canary, routes).await?;
        }
        Action::RevertRoutes => {
            if let Some(router) = router {
                router.revert(canary).await?;
            }
        }
        Action::ScaleUpTarget => {
            let replicas = observed.primary.as_ref().and_then(|p| p.replicas()).unwrap_or(1).max(1);
            pause_target_scaler(context, canary, namespace, false).await?;
            target()?.scale_up(&context.client, namespace, replicas).await?;
        }
        Action::ScaleDownTarget => {
            target()?.scale_down(&context.client, namespace).await?;
            pause_target_scaler(context, canary, namespace, true).await?;
        }
        Action::ReleaseFinalizer => finalize::release(context, canary).await?,
        Action::CheckMetricProviders => {
            let provider = context.config.provider_of(&canary.spec);
            let metrics = canary
                .spec
                .analysis()
                .and_then(|a| a.metrics.clone())
                .unwrap_or_default();
            let metric_context = crate::analyse::metric_context(context, canary, namespace, provider);
            for message in serin_metrics::offline_providers(&metric_context, &metrics).await {
                let revision = canary.status.as_ref().and_then(|s| s.last_applied_spec.clone());
                alerts::send(
                    context,
                    canary,
                    &revision.unwrap_or_default(),
                    &Alert::warn(format!("metric provider offline: {message}"), message.clone()),
                );
                publish(
                    context,
                    canary,
                    Note {
                        type_: EventType::Warning,
                        reason: "MetricProviderOffline",
                        message,
                    },
                )
                .await;
            }
        }
        Action::PostRollout(phase) => {
            let answers = hooks::call_all(
                &context.http,
                &context.telemetry,
                canary,
                namespace,
                &hooks::checksum(canary.status.as_ref()),
                HookType::PostRollout,
                phase.as_str(),
            )
            .await;
            for failure in answers.failures {
                publish(
                    context,
                    canary,
                    Note {
                        type_: EventType::Warning,
                        reason: "PostRolloutFailed",
                        message: failure,
                    },
                )
                .await;
            }
        }
    }
    Ok(())
}
