//! Writing what happened: the Canary's status (only when it changed) and Events beside it.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use serin_api::{Canary, CanaryStatus, Phase};
use serin_core::status;

use crate::Error;
use crate::controller::Context;

pub struct Note<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub message: String,
}

/// Writes `next` to the status subresource and publishes `note` as an Event, when `next` is a
/// change; `None` means the status already says this, so nothing is written or repeated.
pub async fn report(
    context: &Context,
    canary: &Canary,
    next: Option<CanaryStatus>,
    note: Option<Note<'_>>,
) -> Result<(), Error> {
    let Some(status) = next else { return Ok(()) };
    write_status(context, canary, &status).await?;
    if let Some(note) = note {
        publish(context, canary, note).await;
    }
    Ok(())
}

/// Reports what keeps the Canary from going on, in its status message (the phase stays) and,
/// the first time, as a Warning Event.
pub async fn problem(
    context: &Context,
    canary: &Canary,
    phase: Phase,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let current = canary.status.clone().unwrap_or_default();
    let next = status::transition(&current, phase, &message, Timestamp::now());
    report(
        context,
        canary,
        next,
        Some(Note {
            type_: EventType::Warning,
            reason,
            message,
        }),
    )
    .await
}

pub async fn write_status(context: &Context, canary: &Canary, status: &CanaryStatus) -> Result<(), Error> {
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let api = Api::<Canary>::namespaced(context.client.clone(), &namespace);
    api.patch_status(
        &canary.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
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
        note: Some(note.message),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    // A Recorder folds events of the same reason into one series that keeps the first message;
    // every step and measured value must stay visible, so each Event is published on its own.
    let recorder = Recorder::new(context.client.clone(), context.reporter.clone());
    if let Err(error) = recorder.publish(&event, &canary.object_ref(&())).await {
        tracing::warn!(%error, "could not publish event");
    }
}
