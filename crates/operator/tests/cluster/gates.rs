//! Gates and controls: confirm-rollout and confirm-promotion holding a rollout, a rollback
//! webhook, a new revision during the analysis, skipAnalysis and suspend.

use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::traffic::Behaviour;
use serin_testenv::wait_for;

use crate::analysis::{builtin_metrics, ensure_settled, hook, release, route_of};
use crate::support::{
    Cluster, TIMEOUT, ensure, image_of, merge_patch, replicas_of, set_image, status_of, trace_until, wait_for_message,
    wait_for_phase,
};

pub async fn confirm_gates_hold_then_release(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("gates").await?;
    let name = "gated";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    cluster.hooks.answer(
        &format!("/{namespace}/confirm-rollout"),
        403,
        "change freeze until Friday",
    );
    cluster.hooks.answer(
        &format!("/{namespace}/confirm-promotion"),
        403,
        "waiting for QA sign-off",
    );
    let analysis = json!({
        "interval": "2s", "threshold": 2, "iterations": 1,
        "metrics": builtin_metrics(),
        "webhooks": [
            hook(&cluster, &namespace, "confirm-rollout"),
            hook(&cluster, &namespace, "rollout"),
            hook(&cluster, &namespace, "confirm-promotion"),
        ]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "gated:2").await?;

    let waiting = wait_for_message(&cluster, &namespace, name, "change freeze until Friday").await?;
    ensure(
        waiting.status.as_ref().and_then(|s| s.phase) == Some(Phase::Waiting),
        "phase Waiting while confirm-rollout refuses",
    )?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure(
        replicas_of(&cluster, &namespace, name).await? == Some(0),
        "nothing is scaled up before the approval",
    )?;
    ensure(
        cluster.hooks.calls_to(&format!("/{namespace}/rollout")).is_empty(),
        "no analysis before the approval",
    )?;

    cluster
        .hooks
        .answer(&format!("/{namespace}/confirm-rollout"), 200, "go");
    wait_for_message(&cluster, &namespace, name, "waiting for QA sign-off").await?;
    let held = wait_for_phase(&cluster, &namespace, name, Phase::WaitingPromotion).await?;
    ensure(
        held.status.and_then(|s| s.failed_checks) == Some(0),
        "refusals are not failed checks",
    )?;
    let rollout_calls = cluster.hooks.calls_to(&format!("/{namespace}/rollout")).len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = cluster.hooks.calls_to(&format!("/{namespace}/rollout")).len();
    ensure(
        later > rollout_calls,
        format!("checks keep running while promotion waits ({rollout_calls} then {later} rollout calls)"),
    )?;
    ensure(
        image_of(&cluster, &namespace, "gated-primary").await?.as_deref() == Some("gated:1"),
        "no promotion before the approval",
    )?;

    cluster
        .hooks
        .answer(&format!("/{namespace}/confirm-promotion"), 200, "ship it");
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    ensure_settled(
        &cluster,
        &namespace,
        name,
        "gated:2",
        "MetricPassed",
        "request-success-rate",
    )
    .await
}

pub async fn a_rollback_webhook_rolls_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("manualrollback").await?;
    let name = "manual";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    cluster.hooks.answer(&format!("/{namespace}/rollback"), 403, "closed");
    let analysis = json!({
        "interval": "2s", "threshold": 5, "iterations": 20,
        "webhooks": [hook(&cluster, &namespace, "rollback")]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "manual:2").await?;
    trace_until(&cluster, &namespace, name, Phase::Progressing, TIMEOUT).await?;
    let progressed = wait_for(TIMEOUT, "a passed iteration", || {
        let api = Api::<Canary>::namespaced(cluster.client(), &namespace);
        async move { (api.get(name).await.ok()?.status?.iterations? >= 1).then_some(()) }
    })
    .await;
    progressed.map_err(|e| e.to_string())?;
    cluster
        .hooks
        .answer(&format!("/{namespace}/rollback"), 200, "roll it back");
    let failed = wait_for_phase(&cluster, &namespace, name, Phase::Failed).await?;
    let message =
        serin_core::status::promoted_condition(failed.status.as_ref().ok_or("status")?).and_then(|c| c.message.clone());
    ensure(
        message.as_deref().is_some_and(|m| m.contains("rollback webhook")),
        format!("message {message:?}"),
    )?;
    ensure(
        image_of(&cluster, &namespace, "manual-primary").await?.as_deref() == Some("manual:1"),
        "the primary is unchanged",
    )?;
    ensure(
        replicas_of(&cluster, &namespace, name).await? == Some(0),
        "the canary is scaled down",
    )
}

pub async fn a_new_revision_mid_analysis_restarts_it(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("restart").await?;
    let name = "moving";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis =
        json!({ "interval": "3s", "threshold": 2, "stepWeight": 20, "maxWeight": 40, "metrics": builtin_metrics() });
    release(&cluster, &namespace, name, 1, "gatewayapi:v1", analysis).await?;
    set_image(&cluster, &namespace, name, "moving:2").await?;
    let api = Api::<Canary>::namespaced(cluster.client(), &namespace);
    let first_revision = wait_for(TIMEOUT, "canary weight 20", || {
        let api = api.clone();
        async move {
            let status = api.get(name).await.ok()?.status?;
            (status.canary_weight? >= 20).then_some(status.last_applied_spec?)
        }
    })
    .await
    .map_err(|e| e.to_string())?;

    set_image(&cluster, &namespace, name, "moving:3").await?;
    let restarted = wait_for(TIMEOUT, "the analysis to restart on moving:3", || {
        let api = api.clone();
        let first_revision = first_revision.clone();
        async move {
            let status = api.get(name).await.ok()?.status?;
            (status.last_applied_spec.as_deref() != Some(first_revision.as_str())).then_some(status)
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    ensure(
        restarted.canary_weight == Some(0) && restarted.phase == Some(Phase::Progressing),
        format!("restarted at weight 0: {restarted:?}"),
    )?;
    let route = route_of(&cluster, &namespace, name).await;
    ensure(
        route == Some((100, 0, false)),
        format!("traffic back on the primary at the restart: {route:?}"),
    )?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    ensure(
        image_of(&cluster, &namespace, "moving-primary").await?.as_deref() == Some("moving:3"),
        "the newest revision is promoted",
    )
}

pub async fn skip_analysis_promotes_without_checks(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("skip").await?;
    let name = "hotfix";
    cluster.traffic.set(
        &namespace,
        name,
        Behaviour {
            error_ratio: 1.0,
            ..Behaviour::healthy()
        },
    );
    let analysis = json!({ "interval": "30s", "threshold": 1, "iterations": 10, "metrics": builtin_metrics() });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    let api = Api::<Canary>::namespaced(cluster.client(), &namespace);
    merge_patch(&api, name, json!({ "spec": { "skipAnalysis": true } })).await?;
    set_image(&cluster, &namespace, name, "hotfix:2").await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    ensure(
        image_of(&cluster, &namespace, "hotfix-primary").await?.as_deref() == Some("hotfix:2"),
        "promoted without analysis",
    )?;
    ensure(
        replicas_of(&cluster, &namespace, name).await? == Some(0),
        "the canary is scaled down",
    )
}

pub async fn a_suspended_canary_ignores_new_revisions_until_resumed(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("suspend").await?;
    let name = "paused";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis = json!({ "interval": "2s", "threshold": 1, "iterations": 1 });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    let api = Api::<Canary>::namespaced(cluster.client(), &namespace);
    let suspend = |on: bool| json!({ "spec": { "suspend": on } });
    merge_patch(&api, name, suspend(true)).await?;
    set_image(&cluster, &namespace, name, "paused:2").await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = status_of(&cluster, &namespace, name).await?;
    ensure(
        status.phase == Some(Phase::Initialized),
        format!("suspended: nothing starts ({:?})", status.phase),
    )?;
    ensure(
        replicas_of(&cluster, &namespace, name).await? == Some(0),
        "suspended: nothing is scaled",
    )?;
    merge_patch(&api, name, suspend(false)).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    ensure(
        image_of(&cluster, &namespace, "paused-primary").await?.as_deref() == Some("paused:2"),
        "resumed and promoted",
    )
}
