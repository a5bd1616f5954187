use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::apply::FIELD_MANAGER;

/// Sets the replicas of a Deployment with a merge patch, so the user's own field manager keeps
/// owning `spec.replicas` and their next `kubectl apply` does not conflict with serin.
pub async fn scale(api: &Api<Deployment>, deployment: &Deployment, replicas: i32) -> Result<(), Error> {
    if deployment.spec.as_ref().and_then(|s| s.replicas) == Some(replicas) {
        return Ok(());
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    api.patch(
        &deployment.name_any(),
        &params,
        &Patch::Merge(json!({ "spec": { "replicas": replicas } })),
    )
    .await?;
    Ok(())
}
