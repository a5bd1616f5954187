//! The end of a Canary's life: `revertOnDeletion` gives the target back its traffic and replicas.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::DeleteParams;
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::wait_for;

use crate::support::{
    Cluster, TIMEOUT, create_canary, create_deployment, ensure, replicas_of, wait_for_event, wait_for_phase,
};

pub async fn revert_on_deletion_gives_the_target_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("revert").await?;
    let name = "keep";
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 2)).await?;
    create_canary(
        &cluster,
        &namespace,
        json!({
            "metadata": { "name": name },
            "spec": {
                "provider": "kubernetes",
                "revertOnDeletion": true,
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "service": { "port": 9898 },
                "analysis": { "interval": "2s", "threshold": 1, "iterations": 1 }
            }
        }),
    )
    .await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let canaries = Api::<Canary>::namespaced(cluster.client(), &namespace);
    let with_finalizer = wait_for(TIMEOUT, "the finalizer", || {
        let canaries = canaries.clone();
        async move {
            let canary = canaries.get(name).await.ok()?;
            canary
                .metadata
                .finalizers?
                .contains(&"finalizer.flagger.app".to_string())
                .then_some(())
        }
    })
    .await;
    with_finalizer.map_err(|e| e.to_string())?;
    ensure(
        replicas_of(&cluster, &namespace, name).await? == Some(0),
        "the target is at 0 while the Canary lives",
    )?;

    canaries
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let gone = wait_for(TIMEOUT, "the Canary to be deleted", || {
        let canaries = canaries.clone();
        async move { canaries.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    gone.map_err(|e| e.to_string())?;
    wait_for_event(&cluster, &namespace, name, "Terminated").await?;
    ensure(
        replicas_of(&cluster, &namespace, name).await? == Some(2),
        "the target has its replicas back",
    )?;
    let apex = Api::<Service>::namespaced(cluster.client(), &namespace)
        .get(name)
        .await
        .map_err(|e| format!("apex Service: {e}"))?;
    let selector = apex.spec.and_then(|s| s.selector).unwrap_or_default();
    ensure(
        selector.get("app").map(String::as_str) == Some(name),
        format!("the apex selects the target's pods: {selector:?}"),
    )?;
    ensure(
        apex.metadata.owner_references.unwrap_or_default().is_empty(),
        "the apex Service no longer belongs to the Canary",
    )?;
    let deployments = Api::<Deployment>::namespaced(cluster.client(), &namespace);
    let collected = wait_for(TIMEOUT, "the garbage collector to delete the primary", || {
        let deployments = deployments.clone();
        async move { deployments.get_opt("keep-primary").await.ok()?.is_none().then_some(()) }
    })
    .await;
    collected.map_err(|e| e.to_string())?;
    Ok(())
}
