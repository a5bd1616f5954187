use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::apply::FIELD_MANAGER;

/// Scales the target to zero with a merge patch, so the user's own field manager keeps owning
/// `spec.replicas` and their next `kubectl apply` does not conflict with serin.
pub async fn scale_to_zero(api: &Api<Deployment>, deployment: &Deployment) -> Result<(), Error> {
    if deployment.spec.as_ref().and_then(|s| s.replicas) == Some(0) {
        return Ok(());
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    api.patch(
        &deployment.name_any(),
        &params,
        &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
    )
    .await?;
    Ok(())
}
