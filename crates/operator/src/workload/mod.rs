//! The workloads a Canary manages: its target and the primary copy, Deployments or DaemonSets.

pub mod autoscaler;
pub mod configs;
pub mod deployment;
pub mod primary;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use serin_api::canary::TargetKind;
use serin_core::primary::{SCALE_TO_ZERO, without_scale_to_zero};
use serin_core::readiness::{self, Readiness};

use crate::Error;
use crate::apply::FIELD_MANAGER;

#[derive(Clone)]
pub enum Workload {
    Deployment(Deployment),
    DaemonSet(DaemonSet),
}

impl Workload {
    /// The workload `name` of `kind`; `None` when it does not exist.
    pub async fn get(
        client: &Client,
        namespace: &str,
        kind: TargetKind,
        name: &str,
    ) -> Result<Option<Workload>, Error> {
        Ok(match kind {
            TargetKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await?
                .map(Workload::DaemonSet),
            _ => Api::<Deployment>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await?
                .map(Workload::Deployment),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Deployment(_) => "Deployment",
            Workload::DaemonSet(_) => "DaemonSet",
        }
    }

    /// The pod template as the user wrote it (without serin's scale-to-zero node selector).
    pub fn template(&self) -> PodTemplateSpec {
        let template = match self {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| s.template.clone()),
            Workload::DaemonSet(d) => d.spec.as_ref().map(|s| s.template.clone()),
        };
        without_scale_to_zero(&template.unwrap_or_default())
    }

    pub fn owner_references(&self) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
        match self {
            Workload::Deployment(d) => d.owner_references().to_vec(),
            Workload::DaemonSet(d) => d.owner_references().to_vec(),
        }
    }

    pub fn match_labels(&self) -> BTreeMap<String, String> {
        let selector = match self {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| &s.selector),
            Workload::DaemonSet(d) => d.spec.as_ref().map(|s| &s.selector),
        };
        selector.and_then(|s| s.match_labels.clone()).unwrap_or_default()
    }

    /// Whether it runs pods: a Deployment with replicas, a DaemonSet not parked by serin.
    pub fn scaled_up(&self) -> bool {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) > 0,
            Workload::DaemonSet(d) => !parked(d),
        }
    }

    /// Replicas of a Deployment; `None` for a DaemonSet (one pod per node).
    pub fn replicas(&self) -> Option<i32> {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.replicas),
            Workload::DaemonSet(_) => None,
        }
    }

    pub fn readiness(&self, threshold_percent: i32, deadline_seconds: i32, now: Timestamp) -> Readiness {
        match self {
            Workload::Deployment(d) => readiness::deployment(d, threshold_percent, deadline_seconds, now),
            Workload::DaemonSet(d) => readiness::daemon_set(d, threshold_percent),
        }
    }

    /// Scales to zero: a Deployment to 0 replicas, a DaemonSet onto no node.
    pub async fn scale_down(&self, client: &Client, namespace: &str) -> Result<(), Error> {
        match self {
            Workload::Deployment(d) => deployment::scale(&Api::namespaced(client.clone(), namespace), d, 0).await,
            Workload::DaemonSet(d) if parked(d) => Ok(()),
            Workload::DaemonSet(d) => patch_node_selector(client, namespace, d, json!(SCALE_TO_ZERO.1)).await,
        }
    }

    /// Scales up from zero: a Deployment to `replicas`, a DaemonSet back onto its nodes.
    pub async fn scale_up(&self, client: &Client, namespace: &str, replicas: i32) -> Result<(), Error> {
        match self {
            Workload::Deployment(d) if d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0 => {
                deployment::scale(&Api::namespaced(client.clone(), namespace), d, replicas).await
            }
            Workload::Deployment(_) => Ok(()),
            Workload::DaemonSet(d) if parked(d) => {
                patch_node_selector(client, namespace, d, serde_json::Value::Null).await
            }
            Workload::DaemonSet(_) => Ok(()),
        }
    }
}

/// Whether a DaemonSet carries the scale-to-zero node selector.
fn parked(daemon_set: &DaemonSet) -> bool {
    let selector = daemon_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.node_selector.as_ref());
    selector.is_some_and(|s| s.contains_key(SCALE_TO_ZERO.0))
}

/// Sets (or, with null, removes) the scale-to-zero node selector with a merge patch.
async fn patch_node_selector(
    client: &Client,
    namespace: &str,
    daemon_set: &DaemonSet,
    value: serde_json::Value,
) -> Result<(), Error> {
    let api = Api::<DaemonSet>::namespaced(client.clone(), namespace);
    let patch = json!({ "spec": { "template": { "spec": { "nodeSelector": { SCALE_TO_ZERO.0: value } } } } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    api.patch(&daemon_set.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    Ok(())
}
