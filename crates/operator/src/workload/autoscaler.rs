use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::{Api, Resource};
use serin_api::Canary;
use serin_api::canary::AutoscalerKind;
use serin_core::autoscaler::primary_hpa;

use crate::Error;
use crate::apply::apply;
use crate::controller::Context;

/// Creates or updates the primary's copy of the target's HorizontalPodAutoscaler, if the Canary
/// names one (at initialization and at every promotion).
pub async fn sync_primary_autoscaler(context: &Context, canary: &Canary, namespace: &str) -> Result<(), Error> {
    let Some(reference) = &canary.spec.autoscaler_ref else {
        return Ok(());
    };
    if reference.kind != AutoscalerKind::HorizontalPodAutoscaler {
        return Err(Error::UnsupportedAutoscaler(format!("{:?}", reference.kind)));
    }
    let api = Api::<HorizontalPodAutoscaler>::namespaced(context.client.clone(), namespace);
    let hpa = api
        .get_opt(&reference.name)
        .await?
        .ok_or_else(|| Error::AutoscalerNotFound {
            namespace: namespace.to_string(),
            name: reference.name.clone(),
        })?;
    let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
    let primary = primary_hpa(
        &hpa,
        &canary.spec.target_ref.name,
        reference.primary_scaler_replicas.as_ref(),
        owner,
    );
    apply(&api, &primary).await?;
    Ok(())
}
