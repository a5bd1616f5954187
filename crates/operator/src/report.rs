//! Writing what happened: the Canary's status (only when it changed) and Events beside it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use serin_api::canary::{CanaryWebhook, HookType};
use serin_api::{Canary, CanaryStatus, WebhookPayload};
use serin_core::warnings::{self, MissingTemplate};

use crate::Error;
use crate::apply::FIELD_MANAGER;
use crate::context::Context;
use crate::hooks;

pub struct Note<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub message: String,
}

/// Writes the whole status with server-side apply (so a field serin no longer sets goes away),
/// only if the Canary is still the one decided on (its resourceVersion): a decision taken on
/// an older view is never written; the controller decides again.
pub async fn write_status(context: &Context, canary: &Canary, status: &CanaryStatus) -> Result<(), Error> {
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let api = Api::<Canary>::namespaced(context.client.clone(), &namespace);
    let name = canary.name_any();
    let patch = json!({
        "apiVersion": Canary::api_version(&()),
        "kind": Canary::kind(&()),
        "metadata": { "name": name, "resourceVersion": canary.resource_version() },
        "status": status,
    });
    api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    let previous = canary.status.clone().unwrap_or_default();
    context.telemetry.status_written(canary, &previous, status);
    Ok(())
}

/// Publishes the Canary's new spec warnings (see `serin_core::warnings`) and records them in
/// its status. Returns whether it wrote anything.
pub async fn spec_warnings(context: &Context, canary: &Canary) -> Result<bool, Error> {
    let provider = context.config.provider_of(&canary.spec);
    // A provider without a router is reported by the stage itself (UnsupportedProvider).
    let (shifts_weights, ignored) = context
        .router_of(provider)
        .map(|router| (router.shifts_weights(), router.ignored_fields(&canary.spec)))
        .unwrap_or((true, Vec::new()));
    let missing = missing_templates(context, canary);
    let mut warnings = warnings::spec_warnings(&canary.spec, provider, shifts_weights, &ignored, &missing);
    warnings.extend(mesh_provider_warning(&context.config, &canary.spec));
    let current = canary.status.clone().unwrap_or_default();
    let Some((status, new)) = warnings::record(&current, &warnings, Timestamp::now()) else {
        return Ok(false);
    };
    write_status(context, canary, &status).await?;
    for warning in new {
        publish(
            context,
            canary,
            Note {
                type_: EventType::Warning,
                reason: "SpecWarning",
                message: warning,
            },
        )
        .await;
    }
    Ok(true)
}

/// Metrics whose templateRef names a MetricTemplate the watch has not seen. Templates in a
/// namespace this operator does not watch cannot be checked and are left out.
fn missing_templates(context: &Context, canary: &Canary) -> Vec<MissingTemplate> {
    let Some(templates) = &context.templates else {
        return Vec::new();
    };
    let namespace = canary.namespace().unwrap_or_default();
    canary
        .spec
        .analysis()
        .and_then(|a| a.metrics.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|metric| {
            let reference = metric.template_ref.as_ref()?;
            let template_namespace = reference.namespace.clone().unwrap_or_else(|| namespace.clone());
            let watched = context.config.watches(&template_namespace);
            let key = ObjectRef::new(&reference.name).within(&template_namespace);
            let exists = templates.iter().any(|store| store.get(&key).is_some());
            (watched && !exists).then(|| MissingTemplate {
                metric: metric.name.clone(),
                namespace: template_namespace,
                name: reference.name.clone(),
            })
        })
        .collect()
}

/// Logs `note` and publishes it as an Event on the Canary; a failure to publish is only logged.
pub async fn publish(context: &Context, canary: &Canary, note: Note<'_>) {
    match note.type_ {
        EventType::Warning => tracing::warn!(reason = note.reason, "{}", note.message),
        EventType::Normal => tracing::info!(reason = note.reason, "{}", note.message),
    }
    let event = Event {
        type_: note.type_,
        reason: note.reason.to_string(),
        note: Some(note.message.clone()),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    let recorder = context.repeats.recorder_for(context, canary, &event);
    if let Err(error) = recorder.publish(&event, &canary.object_ref(&())).await {
        tracing::warn!(%error, "could not publish event");
    }
    if let Some(message) = event.note {
        notify_event_hooks(context, canary, note.type_, message);
    }
}

/// How long a repeat of an Event joins its series: kube-runtime's Recorder keeps a series this
/// long (its `CACHE_TTL`).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Groups repeats into series. A Recorder folds every Event of the same reason about an object
/// into one series that keeps the first message, so one Recorder would hide each step and
/// measured value behind the first. Instead each (Canary, reason) keeps the Recorder of its
/// last Event: an Event with the same message within the window reuses it (kube adds to the
/// series: `count`, `lastObservedTime`), any other gets a new Recorder and a new Event.
#[derive(Default)]
pub struct Repeats {
    last: Mutex<HashMap<(String, String), LastEvent>>,
}

struct LastEvent {
    note: Option<String>,
    recorder: Recorder,
    at: Instant,
}

impl Repeats {
    fn recorder_for(&self, context: &Context, canary: &Canary, event: &Event) -> Recorder {
        let fresh = || Recorder::new(context.client.clone(), context.reporter.clone());
        let Ok(mut last) = self.last.lock() else {
            return fresh();
        };
        let now = Instant::now();
        // Forgotten once their series has closed, so the map holds recent Events only.
        if last.len() >= 1024 && last.len().is_power_of_two() {
            last.retain(|_, seen| now.duration_since(seen.at) < SERIES_WINDOW);
        }
        let key = (canary.uid().unwrap_or_default(), event.reason.clone());
        match last.get_mut(&key) {
            Some(seen) if seen.note == event.note && now.duration_since(seen.at) < SERIES_WINDOW => {
                seen.at = now;
                seen.recorder.clone()
            }
            _ => {
                let recorder = fresh();
                last.insert(
                    key,
                    LastEvent {
                        note: event.note.clone(),
                        recorder: recorder.clone(),
                        at: now,
                    },
                );
                recorder
            }
        }
    }
}

/// Sends the Event to the Canary's `event` webhooks and to `-event-webhook`, in the background
/// so that a slow receiver never holds up a rollout; failures are only logged.
fn notify_event_hooks(context: &Context, canary: &Canary, type_: EventType, message: String) {
    let mut hooks: Vec<CanaryWebhook> = canary
        .spec
        .analysis()
        .and_then(|a| a.webhooks.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|hook| hook.kind() == HookType::Event)
        .collect();
    if let Some(url) = &context.config.event_webhook {
        hooks.push(CanaryWebhook {
            name: "event-webhook".into(),
            url: url.clone(),
            ..Default::default()
        });
    }
    if hooks.is_empty() {
        return;
    }
    let http = context.http.clone();
    let telemetry = context.telemetry.clone();
    let name = canary.name_any();
    let namespace = canary.namespace().unwrap_or_default();
    let status = canary.status.clone().unwrap_or_default();
    let checksum = hooks::checksum(Some(&status));
    let event_type = match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    let timestamp = Timestamp::now().as_millisecond().to_string();
    tokio::spawn(async move {
        for hook in hooks {
            let mut metadata = hook.metadata.clone().unwrap_or_default();
            metadata.insert("eventMessage".into(), message.clone());
            metadata.insert("eventType".into(), event_type.into());
            metadata.insert("timestamp".into(), timestamp.clone());
            let payload = WebhookPayload {
                name: name.clone(),
                namespace: namespace.clone(),
                phase: status.phase.unwrap_or_default().as_str().to_string(),
                checksum: checksum.clone(),
                metadata,
            };
            if let Err(error) = hooks::call(&http, &telemetry, &hook, &payload).await {
                tracing::warn!(%error, "event webhook failed");
            }
        }
    });
}

/// The warning `-mesh-provider` carries (SuperGloo's deprecation), for a Canary that takes it.
fn mesh_provider_warning(config: &crate::Config, spec: &serin_api::CanarySpec) -> Option<String> {
    spec.provider
        .is_none()
        .then(|| config.mesh_provider_warning.clone())
        .flatten()
}

#[cfg(test)]
mod mesh_provider_tests {
    use super::*;

    #[test]
    fn only_canaries_without_a_provider_are_told_about_the_flag() {
        let config = crate::Config {
            mesh_provider_warning: Some("-mesh-provider=supergloo is deprecated".into()),
            ..Default::default()
        };
        let spec = |provider: &str| -> serin_api::CanarySpec {
            let mut spec =
                serde_json::json!({ "targetRef": { "kind": "Deployment", "name": "app" }, "service": { "port": 80 } });
            if !provider.is_empty() {
                spec["provider"] = serde_json::json!(provider);
            }
            serde_json::from_value(spec).expect("a spec")
        };
        assert_eq!(
            mesh_provider_warning(&config, &spec("")).as_deref(),
            Some("-mesh-provider=supergloo is deprecated")
        );
        assert_eq!(mesh_provider_warning(&config, &spec("gloo")), None);
        assert_eq!(mesh_provider_warning(&crate::Config::default(), &spec("")), None);
    }
}
