//! Writing what happened: the Canary's status (only when it changed) and an Event beside it.

use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use serin_api::{Canary, CanaryStatus};

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
    let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
    let api = Api::<Canary>::namespaced(context.client.clone(), &namespace);
    api.patch_status(
        &canary.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    if let Some(note) = note {
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
        if let Err(error) = context.recorder.publish(&event, &canary.object_ref(&())).await {
            tracing::warn!(%error, "could not publish event");
        }
    }
    Ok(())
}
