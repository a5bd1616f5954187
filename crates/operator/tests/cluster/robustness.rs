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
    Cluster, TIMEOUT, ensure, event_messages, events_for, set_image, status_of, trace_until, wait_for_message,
    wait_for_phase,
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
    let messages = event_messages(&cluster, &namespace, name).await?;
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
    // The two failed checks said the same thing: one Event, its series counting both.
    let repeated: Vec<_> = events_for(&cluster, &namespace, name)
        .await?
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("MetricFailed"))
        .filter(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("missing-template not found"))
        })
        .map(|e| e.series.and_then(|s| s.count).or(e.count).unwrap_or(1))
        .collect();
    ensure(
        repeated == [2],
        format!("the repeated MetricFailed is one Event with a series of 2: {repeated:?}"),
    )?;
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

/// A second Canary for a target another Canary manages is refused and touches nothing: the
/// primary keeps its image and owner, and deleting the second Canary garbage-collects nothing.
pub async fn a_second_canary_for_a_managed_target_is_refused(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("second").await?;
    let name = "shared";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis = json!({ "interval": "2s", "threshold": 1, "iterations": 1 });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis.clone()).await?;
    let mut intruder = crate::support::canary_manifest("intruder", "Deployment", analysis);
    intruder["spec"]["targetRef"]["name"] = json!(name);
    intruder["spec"]["revertOnDeletion"] = json!(true);
    crate::support::create_canary(&cluster, &namespace, intruder).await?;
    let refused = wait_for_message(
        &cluster,
        &namespace,
        "intruder",
        "shared-primary belongs to Canary shared; a target can have only one Canary",
    )
    .await?;
    ensure(
        refused.status.and_then(|s| s.phase) == Some(Phase::Initializing),
        "the second Canary is not initialized",
    )?;
    crate::support::wait_for_event(&cluster, &namespace, "intruder", "TargetTaken").await?;
    let deployments = Api::<Deployment>::namespaced(cluster.client(), &namespace);
    let owners = |d: Deployment| -> Vec<String> {
        d.metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.name)
            .collect()
    };
    let primary = deployments.get("shared-primary").await.map_err(|e| e.to_string())?;
    ensure(
        owners(primary) == vec!["shared".to_string()],
        "the primary still belongs to the first Canary only",
    )?;
    Api::<Canary>::namespaced(cluster.client(), &namespace)
        .delete("intruder", &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    crate::support::wait_for_gone::<Canary>(&cluster, &namespace, "intruder").await?;
    // Give the garbage collector the time to act, were the primary the intruder's.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    ensure(
        replicas_of_target_is_zero(&deployments, name).await?,
        "revertOnDeletion of the refused Canary did not scale the target up",
    )?;
    ensure(
        deployments
            .get_opt("shared-primary")
            .await
            .map_err(|e| e.to_string())?
            .is_some(),
        "the primary survives the second Canary's deletion",
    )?;
    // The first Canary still rolls out.
    set_image(&cluster, &namespace, name, "shared:2").await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    Ok(())
}

async fn replicas_of_target_is_zero(deployments: &Api<Deployment>, name: &str) -> Result<bool, Failed> {
    let target = deployments.get(name).await.map_err(|e| e.to_string())?;
    Ok(target.spec.and_then(|s| s.replicas) == Some(0))
}

/// Mistakes Flagger's API accepts, and fields the provider ignores, are named in Warning Events
/// as soon as the Canary is seen, once each, and listed in the SpecWarnings condition.
pub async fn spec_warnings_are_published_once(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("warnings").await?;
    let name = "careless";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis = json!({
        "interval": "2s", "threshold": 1, "stepWeight": 10,
        "match": [{ "headers": { "x-canary": { "exact": "1" } } }],
        "metrics": [{ "name": "errors", "templateRef": { "name": "no-such-template" }, "thresholdRange": { "max": 1 } }]
    });
    let mut manifest = crate::support::canary_manifest(name, "Deployment", analysis);
    manifest["spec"]["service"]["timeout"] = json!("5s");
    crate::support::create_deployment(
        &cluster,
        &namespace,
        &serin_testenv::fixtures::deployment(name, &[("app", name)], 1),
    )
    .await?;
    crate::support::create_canary(&cluster, &namespace, manifest).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let expected = [
        "analysis.match is ignored: the kubernetes provider cannot route a segment of users",
        "running blue/green with analysis.iterations 10",
        "metric errors: templateRef names MetricTemplate",
        "service.timeout is ignored by the kubernetes provider",
    ];
    let warnings: Vec<String> = events_for(&cluster, &namespace, name)
        .await?
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SpecWarning"))
        .filter_map(|e| e.message)
        .collect();
    for text in expected {
        ensure(
            warnings.iter().filter(|w| w.contains(text)).count() == 1,
            format!("one SpecWarning Event containing {text:?}: {warnings:?}"),
        )?;
    }
    let status = status_of(&cluster, &namespace, name).await?;
    let condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "SpecWarnings")
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    ensure(
        condition.lines().count() == expected.len(),
        format!("the condition lists the warnings: {condition:?}"),
    )?;
    Ok(())
}
