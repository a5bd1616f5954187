use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Resource};
use serin_api::Canary;
use serin_core::naming::{SelectorLabel, primary_name};
use serin_core::primary::{PrimaryInputs, primary_deployment};

use crate::Error;
use crate::apply::apply;
use crate::controller::Context;
use crate::workload::autoscaler::sync_primary_autoscaler;
use crate::workload::configs::{Tracked, copy_to_primary};

/// Creates or updates the primary from the target's current template and copies of its
/// tracked configs (initialization and promotion).
pub async fn apply_primary(
    context: &Context,
    canary: &Canary,
    deployments: &Api<Deployment>,
    target: &Deployment,
    label: &SelectorLabel,
    tracked: &Tracked,
) -> Result<Deployment, Error> {
    let namespace = canary.metadata.namespace.as_deref().ok_or(Error::MissingNamespace)?;
    copy_to_primary(context, canary, namespace, tracked).await?;
    let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
    let existing = deployments.get_opt(&primary_name(&canary.spec.target_ref.name)).await?;
    let primary = primary_deployment(&PrimaryInputs {
        target,
        label,
        include_label_prefixes: &context.config.include_label_prefixes,
        owner,
        current_primary_replicas: existing.and_then(|p| p.spec.and_then(|s| s.replicas)),
        autoscaled: canary.spec.autoscaler_ref.is_some(),
        tracked: &tracked.references(),
    });
    let primary = apply(deployments, &primary).await?;
    sync_primary_autoscaler(context, canary, namespace).await?;
    Ok(primary)
}
