//! Bad input is reported, never crashes the operator, and leaves other Canaries alone.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::traffic::Behaviour;

use crate::analysis::release;
use crate::support::{
    Cluster, TIMEOUT, ensure, events_for, set_image, status_of, trace_until, wait_for_message, wait_for_phase,
};

pub async fn broken_checks_are_reported_with_their_reason(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("broken").await?;
    let name = "fragile";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis = json!({
        "interval": "2s", "threshold": 2, "iterations": 3,
        "metrics": [{ "name": "error-budget", "templateRef": { "name": "missing-template" }, "thresholdRange": { "max": 1 } }],
        "webhooks": [{ "name": "smoke", "type": "rollout", "url": "http://no-such-host.invalid/smoke", "timeout": "2s" }]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "fragile:2").await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Failed).await?;
    let messages: Vec<String> = events_for(&cluster, &namespace, name)
        .await?
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    ensure(
        messages
            .iter()
            .any(|m| m.contains("webhook smoke could not reach http://no-such-host.invalid/smoke")),
        format!("the unresolvable webhook is named in an Event: {messages:?}"),
    )?;

    // Without the webhook, the missing MetricTemplate is what fails the checks.
    let canaries = Api::<Canary>::namespaced(cluster.client(), &namespace);
    let patch = json!({ "spec": { "analysis": { "webhooks": null } } });
    canaries
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| e.to_string())?;
    set_image(&cluster, &namespace, name, "fragile:3").await?;
    let expected = format!(
        "metric error-budget: MetricTemplate {namespace}/missing-template not found; create it or fix templateRef"
    );
    wait_for_message(&cluster, &namespace, name, &expected).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Failed).await?;
    Ok(())
}

pub async fn a_target_deleted_mid_rollout_is_reported(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("vanishing").await?;
    let name = "vanishing";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    release(
        &cluster,
        &namespace,
        name,
        1,
        "kubernetes",
        json!({ "interval": "30s", "threshold": 1, "iterations": 5 }),
    )
    .await?;
    set_image(&cluster, &namespace, name, "vanishing:2").await?;
    trace_until(&cluster, &namespace, name, Phase::Progressing, TIMEOUT).await?;
    Api::<Deployment>::namespaced(cluster.client(), &namespace)
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let expected = format!("target Deployment {namespace}/{name} not found: recreate it or fix spec.targetRef.name");
    wait_for_message(&cluster, &namespace, name, &expected).await?;
    let status = status_of(&cluster, &namespace, name).await?;
    ensure(
        status.phase == Some(Phase::Progressing),
        format!("the phase is kept for when the target returns: {:?}", status.phase),
    )
}

/// A status written by Flagger carries its own hash format; when the target already equals the
/// primary, switching to serin must not start a rollout.
pub async fn a_status_written_by_flagger_starts_no_rollout(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("migrated").await?;
    let name = "migrated";
    release(
        &cluster,
        &namespace,
        name,
        1,
        "kubernetes",
        json!({ "interval": "2s", "threshold": 1, "iterations": 1 }),
    )
    .await?;
    let canaries = Api::<Canary>::namespaced(cluster.client(), &namespace);
    let flagger_status =
        json!({ "status": { "lastAppliedSpec": "5d8f7b9c8", "lastPromotedSpec": "5d8f7b9c8", "phase": "Succeeded" } });
    canaries
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&flagger_status))
        .await
        .map_err(|e| e.to_string())?;
    // Any change of the Canary makes serin look at it again.
    let touch = json!({ "metadata": { "annotations": { "touched": "yes" } } });
    canaries
        .patch(name, &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let status = status_of(&cluster, &namespace, name).await?;
    ensure(
        status.phase == Some(Phase::Succeeded),
        format!("no rollout started: {:?}", status.phase),
    )?;
    let replicas = Api::<Deployment>::namespaced(cluster.client(), &namespace)
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    ensure(
        replicas.spec.and_then(|s| s.replicas) == Some(0),
        "the target was not scaled up",
    )
}
