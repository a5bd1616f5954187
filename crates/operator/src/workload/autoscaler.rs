//! The primary's autoscaler: a copy of the target's HorizontalPodAutoscaler or KEDA
//! ScaledObject. A target's ScaledObject is paused while the target is scaled to zero, so KEDA
//! does not scale it back up between rollouts.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use serin_api::Canary;
use serin_api::canary::AutoscalerKind;
use serin_core::autoscaler::{KEDA_PAUSED_REPLICAS, primary_hpa, primary_scaled_object};

use crate::Error;
use crate::apply::{FIELD_MANAGER, apply};
use crate::context::Context;

fn scaled_objects(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "scaledobjects"),
    )
}

/// Creates or updates the primary's copy of the target's autoscaler, if the Canary names one
/// (at initialization and at every promotion).
pub async fn sync_primary_autoscaler(context: &Context, canary: &Canary, namespace: &str) -> Result<(), Error> {
    let Some(reference) = &canary.spec.autoscaler_ref else {
        return Ok(());
    };
    let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
    let not_found = || Error::AutoscalerNotFound {
        kind: format!("{:?}", reference.kind),
        namespace: namespace.to_string(),
        name: reference.name.clone(),
    };
    match reference.kind {
        AutoscalerKind::HorizontalPodAutoscaler => {
            let api = Api::<HorizontalPodAutoscaler>::namespaced(context.client.clone(), namespace);
            let hpa = api.get_opt(&reference.name).await?.ok_or_else(not_found)?;
            let primary = primary_hpa(
                &hpa,
                &canary.spec.target_ref.name,
                reference.primary_scaler_replicas.as_ref(),
                owner,
            );
            apply(&api, &primary).await?;
        }
        AutoscalerKind::ScaledObject => {
            let api = scaled_objects(&context.client, namespace);
            let scaled_object = api.get_opt(&reference.name).await?.ok_or_else(not_found)?;
            let scaled_object = serde_json::to_value(&scaled_object).map_err(Error::Serialize)?;
            let queries = reference.primary_scaler_queries.as_ref();
            let primary = primary_scaled_object(&scaled_object, &canary.spec.target_ref.name, queries, &owner);
            let primary: DynamicObject = serde_json::from_value(primary).map_err(Error::Serialize)?;
            apply(&api, &primary).await?;
        }
    }
    Ok(())
}

/// Pauses (at 0 replicas) or resumes the target's ScaledObject, when the Canary names one.
pub async fn pause_target_scaler(
    context: &Context,
    canary: &Canary,
    namespace: &str,
    paused: bool,
) -> Result<(), Error> {
    let Some(reference) = canary
        .spec
        .autoscaler_ref
        .as_ref()
        .filter(|r| r.kind == AutoscalerKind::ScaledObject)
    else {
        return Ok(());
    };
    let api = scaled_objects(&context.client, namespace);
    let Some(scaled_object) = api.get_opt(&reference.name).await? else {
        return Ok(());
    };
    let is_paused = scaled_object
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(KEDA_PAUSED_REPLICAS));
    if is_paused == paused {
        return Ok(());
    }
    let value = if paused { json!("0") } else { serde_json::Value::Null };
    let patch = json!({ "metadata": { "annotations": { KEDA_PAUSED_REPLICAS: value } } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    api.patch(&reference.name, &params, &Patch::Merge(&patch)).await?;
    Ok(())
}
