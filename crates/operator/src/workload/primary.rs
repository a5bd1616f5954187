use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::{Api, Resource};
use serin_api::Canary;
use serin_core::naming::{SelectorLabel, primary_name};
use serin_core::primary::{PrimaryInputs, primary_daemon_set, primary_deployment};

use super::Workload;
use crate::Error;
use crate::apply::apply;
use crate::context::Context;
use crate::workload::autoscaler::sync_primary_autoscaler;
use crate::workload::configs::{Tracked, copy_to_primary};

/// Creates or updates the primary from the target's current template and copies of its
/// tracked configs (initialization and promotion), and the primary's autoscaler.
pub async fn apply_primary(
    context: &Context,
    canary: &Canary,
    target: &Workload,
    label: &SelectorLabel,
    tracked: &Tracked,
) -> Result<Workload, Error> {
    let namespace = canary.metadata.namespace.as_deref().ok_or(Error::MissingNamespace)?;
    copy_to_primary(context, canary, namespace, tracked).await?;
    let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
    let primary_name = primary_name(&canary.spec.target_ref.name);
    let primary = match target {
        Workload::Deployment(target) => {
            let api = Api::<Deployment>::namespaced(context.client.clone(), namespace);
            let existing = api.get_opt(&primary_name).await?;
            let primary = primary_deployment(&PrimaryInputs {
                target,
                label,
                include_label_prefixes: &context.config.include_label_prefixes,
                owner,
                current_primary_replicas: existing.and_then(|p| p.spec.and_then(|s| s.replicas)),
                autoscaled: canary.spec.autoscaler_ref.is_some(),
                tracked: &tracked.references(),
            });
            Workload::Deployment(apply(&api, &primary).await?)
        }
        Workload::DaemonSet(target) => {
            let api = Api::<DaemonSet>::namespaced(context.client.clone(), namespace);
            let primary = primary_daemon_set(
                target,
                label,
                &context.config.include_label_prefixes,
                owner,
                &tracked.references(),
            );
            Workload::DaemonSet(apply(&api, &primary).await?)
        }
    };
    sync_primary_autoscaler(context, canary, namespace).await?;
    Ok(primary)
}
