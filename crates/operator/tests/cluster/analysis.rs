//! Whole rollouts on the real control plane: new revisions analysed with real webhooks on
//! loopback and real Prometheus queries over the traffic source, then promoted or rolled back.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::{Value, json};
use serin_api::Phase;
use serin_testenv::fixtures::deployment;
use serin_testenv::traffic::Behaviour;

use crate::support::{
    Cluster, create_canary, create_deployment, ensure, events_for, image_of, replicas_of, set_image, trace_until,
    wait_for_phase,
};

const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

fn hook(cluster: &Cluster, namespace: &str, kind: &str) -> Value {
    json!({ "name": format!("{kind}-hook"), "type": kind, "url": format!("{}/{namespace}/{kind}", cluster.hooks.url()), "timeout": "5s" })
}

fn builtin_metrics() -> Value {
    json!([
        { "name": "request-success-rate", "interval": "30s", "thresholdRange": { "min": 99 } },
        { "name": "request-duration", "interval": "30s", "thresholdRange": { "max": 500 } }
    ])
}

/// Deployment `name` (selector `app: name`) and its Canary on `provider`, initialized.
async fn release(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    replicas: i32,
    provider: &str,
    analysis: Value,
) -> Result<(), Failed> {
    create_deployment(cluster, namespace, &deployment(name, &[("app", name)], replicas)).await?;
    let canary = json!({
        "metadata": { "name": name },
        "spec": {
            "provider": provider,
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "service": { "port": 9898 },
            "analysis": analysis,
        }
    });
    create_canary(cluster, namespace, canary).await?;
    wait_for_phase(cluster, namespace, name, Phase::Initialized).await?;
    Ok(())
}

/// The path's last segment of each call to this namespace's hooks, without the rollback polls,
/// consecutive repeats folded.
fn hook_sequence(cluster: &Cluster, namespace: &str) -> Vec<String> {
    let mut kinds: Vec<String> = cluster
        .hooks
        .calls_to(&format!("/{namespace}/"))
        .iter()
        .map(|c| c.path.rsplit('/').next().unwrap_or_default().to_string())
        .filter(|kind| kind != "rollback")
        .collect();
    kinds.dedup();
    kinds
}

pub async fn blue_green_on_kubernetes_calls_every_webhook_in_order(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("bluegreen").await?;
    let name = "bg";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    cluster
        .hooks
        .answer(&format!("/{namespace}/rollback"), 403, "keep going");
    let mut rollout_hook = hook(&cluster, &namespace, "rollout");
    rollout_hook["metadata"] = json!({ "type": "cmd", "cmd": "hey -z 1m -q 10 -c 2 http://bg-canary/" });
    let analysis = json!({
        "interval": "2s", "threshold": 2, "iterations": 2,
        "metrics": builtin_metrics(),
        "webhooks": [
            hook(&cluster, &namespace, "confirm-rollout"),
            hook(&cluster, &namespace, "pre-rollout"),
            rollout_hook,
            hook(&cluster, &namespace, "confirm-promotion"),
            hook(&cluster, &namespace, "post-rollout"),
            hook(&cluster, &namespace, "rollback"),
        ]
    });
    release(&cluster, &namespace, name, 2, "kubernetes", analysis).await?;

    set_image(&cluster, &namespace, name, "bg:2").await?;
    let trace = trace_until(&cluster, &namespace, name, Phase::Succeeded, ROLLOUT_TIMEOUT).await?;
    let progressing: Vec<i32> = trace
        .iter()
        .filter(|s| s.phase == Phase::Progressing)
        .map(|s| s.iterations)
        .collect();
    ensure(
        progressing == vec![0, 1, 2],
        format!("iterations while progressing {progressing:?}; trace {trace:?}"),
    )?;
    ensure(
        trace.iter().all(|s| s.weight == 0 && s.failed_checks == 0),
        format!("trace {trace:?}"),
    )?;

    let sequence = hook_sequence(&cluster, &namespace);
    let expected = [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-promotion",
        "post-rollout",
    ];
    ensure(
        sequence == expected,
        format!("webhooks called in order {sequence:?}, expected {expected:?}"),
    )?;
    let calls = cluster.hooks.calls_to(&format!("/{namespace}/"));
    let rollout_calls = calls.iter().filter(|c| c.path.ends_with("/rollout")).count();
    ensure(
        rollout_calls == 2,
        format!("{rollout_calls} rollout calls, one per iteration expected"),
    )?;
    let canary = wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    let checksum = canary.status.and_then(|s| s.last_applied_spec).unwrap_or_default();
    for call in &calls {
        let kind = call.path.rsplit('/').next().unwrap_or_default();
        let phase = match kind {
            "confirm-rollout" => "Initialized",
            "post-rollout" => "Succeeded",
            _ => "Progressing",
        };
        let body = &call.body;
        ensure(
            body["name"] == json!(name)
                && body["namespace"] == json!(namespace)
                && body["phase"] == json!(phase)
                && body["checksum"] == json!(checksum),
            format!("{kind} payload {body}"),
        )?;
        if kind == "rollout" {
            ensure(
                body["metadata"]["cmd"] == json!("hey -z 1m -q 10 -c 2 http://bg-canary/"),
                format!("rollout metadata {body}"),
            )?;
        }
    }
    ensure_settled(
        &cluster,
        &namespace,
        name,
        "bg:2",
        "MetricPassed",
        "request-success-rate 100.00 is at least 99",
    )
    .await?;
    Ok(())
}

pub async fn failed_checks_roll_back_after_the_threshold(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("rollback").await?;
    let name = "flaky";
    cluster.traffic.set(
        &namespace,
        name,
        Behaviour {
            error_ratio: 0.3,
            ..Behaviour::healthy()
        },
    );
    let analysis = json!({
        "interval": "2s", "threshold": 2, "iterations": 5, "metrics": builtin_metrics(),
        "webhooks": [hook(&cluster, &namespace, "post-rollout")]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "flaky:2").await?;
    let trace = trace_until(&cluster, &namespace, name, Phase::Failed, ROLLOUT_TIMEOUT).await?;
    let failed: Vec<i32> = trace.iter().map(|s| s.failed_checks).collect();
    ensure(
        failed.contains(&1) && failed.contains(&2),
        format!("failed checks counted up to the threshold: {trace:?}"),
    )?;
    ensure(
        trace.iter().all(|s| s.iterations == 0),
        format!("no iteration passed: {trace:?}"),
    )?;
    ensure_settled(
        &cluster,
        &namespace,
        name,
        "flaky:1",
        "MetricFailed",
        "request-success-rate 70.00 is below the minimum 99",
    )
    .await?;
    let post = cluster.hooks.calls_to(&format!("/{namespace}/post-rollout"));
    ensure(
        post.len() == 1 && post[0].body["phase"] == json!("Failed"),
        format!("post-rollout calls {post:?}"),
    )?;
    Ok(())
}

/// After a rollout: the primary runs `primary_image`, the target is back at 0 replicas, and an
/// Event `reason` says `message` (the measured value of a check).
async fn ensure_settled(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    primary_image: &str,
    reason: &str,
    message: &str,
) -> Result<(), Failed> {
    let image = image_of(cluster, namespace, &format!("{name}-primary")).await?;
    ensure(
        image.as_deref() == Some(primary_image),
        format!("the primary runs {image:?}, expected {primary_image}"),
    )?;
    ensure(
        replicas_of(cluster, namespace, name).await? == Some(0),
        "the target is scaled back to 0",
    )?;
    let events = events_for(cluster, namespace, name).await?;
    let found = events
        .iter()
        .any(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref().is_some_and(|m| m.starts_with(message)));
    let messages: Vec<String> = events.iter().filter_map(|e| e.message.clone()).collect();
    ensure(
        found,
        format!("no {reason} Event saying {message:?}; events: {messages:?}"),
    )
}
