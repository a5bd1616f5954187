//! Alerts delivered to real HTTP receivers during real rollouts: which AlertProvider gets which
//! message by severity, their payloads, a Secret change taken without a restart, the global
//! notifier for Canaries without `analysis.alerts`, and a provider that cannot be used.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use libtest_mimic::Failed;
use serde_json::{Value, json};
use serin_api::Phase;
use serin_api::alert_provider::AlertProvider;
use serin_testenv::traffic::Behaviour;
use serin_testenv::wait_for;

use crate::analysis::{builtin_metrics, release};
use crate::support::{Cluster, TIMEOUT, ensure, set_image, wait_for_event, wait_for_phase};

/// The cluster name the test operator is started with (`-cluster-name`).
pub const CLUSTER_NAME: &str = "test-cluster";

/// Where the shared operator's global notifier (`-slack-url`) posts.
pub const GLOBAL_SLACK_PATH: &str = "/global-slack";

async fn create_provider(cluster: &Cluster, namespace: &str, name: &str, spec: Value) -> Result<(), Failed> {
    let provider: AlertProvider = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "AlertProvider",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .map_err(|e| format!("AlertProvider JSON: {e}"))?;
    Api::<AlertProvider>::namespaced(cluster.client(), namespace)
        .create(&PostParams::default(), &provider)
        .await
        .map_err(|e| format!("create AlertProvider {name}: {e}"))?;
    Ok(())
}

fn secret(name: &str, address: &str) -> Result<Secret, Failed> {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "stringData": { "address": address },
    }))
    .map_err(|e| format!("Secret JSON: {e}").into())
}

/// The texts received on `path`, read from the payload shape of each provider type.
fn texts(cluster: &Cluster, path: &str) -> Vec<String> {
    cluster
        .hooks
        .calls_to(path)
        .iter()
        .map(|call| {
            let body = &call.body;
            let text = body["attachments"][0]["text"]
                .as_str()
                .or_else(|| body["attachments"][0]["content"]["body"][0]["text"].as_str())
                .unwrap_or_default();
            text.to_string()
        })
        .collect()
}

async fn wait_for_text(cluster: &Cluster, path: &str, text: &str) -> Result<(), Failed> {
    let what = format!("an alert {text:?} on {path}");
    let found = wait_for(TIMEOUT, &what, || async move {
        texts(cluster, path).iter().any(|t| t.starts_with(text)).then_some(())
    })
    .await;
    ensure(found.is_ok(), format!("{what}; received {:?}", texts(cluster, path)))
}

/// A progressive rollout that succeeds, then one that fails its checks, with three providers:
/// Slack at info (everything), MS Teams Workflows through a Secret at warn, Discord at error.
pub async fn alerts_reach_each_provider_by_severity(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("alerts").await?;
    let name = "alerting";
    let hooks = cluster.hooks.url();
    let (slack, teams, teams_moved, discord) = (
        format!("/{namespace}/slack"),
        format!("/{namespace}/teams/workflows/1/triggers/manual/paths/invoke"),
        format!("/{namespace}/teams-moved/workflows/1/triggers/manual/paths/invoke"),
        format!("/{namespace}/discord"),
    );
    let secrets = Api::<Secret>::namespaced(cluster.client(), &namespace);
    secrets
        .create(&PostParams::default(), &secret("teams", &format!("{hooks}{teams}"))?)
        .await
        .map_err(|e| format!("create Secret: {e}"))?;
    create_provider(
        &cluster,
        &namespace,
        "slack",
        json!({ "type": "slack", "channel": "deploys", "username": "release-bot", "address": format!("{hooks}{slack}") }),
    )
    .await?;
    create_provider(
        &cluster,
        &namespace,
        "teams",
        json!({ "type": "msteams", "secretRef": { "name": "teams" } }),
    )
    .await?;
    create_provider(
        &cluster,
        &namespace,
        "discord",
        json!({ "type": "discord", "address": format!("{hooks}{discord}") }),
    )
    .await?;
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis = json!({
        "interval": "2s", "threshold": 1, "stepWeight": 50, "maxWeight": 50,
        "metrics": builtin_metrics(),
        "alerts": [
            { "name": "everything", "severity": "info", "providerRef": { "name": "slack" } },
            { "name": "trouble", "severity": "warn", "providerRef": { "name": "teams", "namespace": namespace } },
            { "name": "outages", "severity": "error", "providerRef": { "name": "discord" } },
        ],
    });
    release(&cluster, &namespace, name, 1, "gatewayapi:v1", analysis).await?;
    wait_for_text(&cluster, &slack, "New Deployment detected, initialization completed.").await?;

    set_image(&cluster, &namespace, name, "alerting:2").await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    wait_for_text(
        &cluster,
        &slack,
        "Canary analysis completed successfully, promotion finished.",
    )
    .await?;

    // The Secret now names another address: the next alerts go there, without a restart.
    secrets
        .replace(
            "teams",
            &PostParams::default(),
            &secret("teams", &format!("{hooks}{teams_moved}"))?,
        )
        .await
        .map_err(|e| format!("replace Secret: {e}"))?;
    cluster.traffic.set(
        &namespace,
        name,
        Behaviour {
            error_ratio: 0.3,
            ..Behaviour::healthy()
        },
    );
    set_image(&cluster, &namespace, name, "alerting:3").await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Failed).await?;
    wait_for_text(&cluster, &discord, "Failed checks threshold reached 1").await?;
    wait_for_text(&cluster, &teams_moved, "Failed checks threshold reached 1").await?;

    let expected_slack = [
        "New Deployment detected, initialization completed.",
        "New revision detected, progressing canary analysis.",
        "Canary analysis completed successfully, promotion finished.",
        "New revision detected, progressing canary analysis.",
        "Canary check failed (1 of 1 allowed): request-success-rate",
        "Failed checks threshold reached 1",
    ];
    let received = texts(&cluster, &slack);
    ensure(
        received.len() == expected_slack.len()
            && received
                .iter()
                .zip(expected_slack)
                .all(|(got, want)| got.starts_with(want)),
        format!("Slack received every message once, in order: {received:#?}"),
    )?;
    ensure(
        received[4].contains("below the minimum 99"),
        format!("the failed check says its value and range: {}", received[4]),
    )?;
    let slack_calls = cluster.hooks.calls_to(&slack);
    let first = &slack_calls[0].body;
    ensure(
        first["channel"] == "deploys"
            && first["username"] == "release-bot"
            && first["attachments"][0]["author_name"] == format!("{name}.{namespace}")
            && first["attachments"][0]["fields"][0]
                == json!({ "title": "Cluster", "value": CLUSTER_NAME, "short": false })
            && first["attachments"][0]["fields"][1]
                == json!({ "title": "Target", "value": format!("Deployment/{name}.{namespace}"), "short": false })
            && slack_calls[5].body["attachments"][0]["color"] == "danger",
        format!("Slack payloads: {first:#}"),
    )?;
    // MS Teams (warn): nothing at info; before the Secret changed nothing was a warning.
    ensure(
        texts(&cluster, &teams).is_empty(),
        format!("no info alert reached MS Teams: {:?}", texts(&cluster, &teams)),
    )?;
    let moved = cluster.hooks.calls_to(&teams_moved);
    ensure(
        moved.len() == 2
            && moved
                .iter()
                .all(|c| c.body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"),
        format!(
            "MS Teams got the failed check and the rollback as Adaptive Cards: {:?}",
            texts(&cluster, &teams_moved)
        ),
    )?;
    // Discord (error): the rollback only, through its Slack-compatible hook.
    ensure(
        texts(&cluster, &format!("{discord}/slack")) == ["Failed checks threshold reached 1"]
            && cluster.hooks.calls_to(&discord).len() == 1,
        format!("Discord got only the error: {:?}", texts(&cluster, &discord)),
    )?;
    Ok(())
}

/// A Canary without `analysis.alerts` alerts through `-slack-url`; one naming an AlertProvider
/// that does not exist gets a Warning Event saying so, and its rollout goes on.
pub async fn the_global_notifier_and_a_missing_provider(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("alerts-global").await?;
    cluster.traffic.set(&namespace, "plain", Behaviour::healthy());
    release(
        &cluster,
        &namespace,
        "plain",
        1,
        "kubernetes",
        json!({ "interval": "2s", "threshold": 1, "iterations": 1 }),
    )
    .await?;
    let subject = format!("plain.{namespace}");
    let what = format!("the global notifier's message about {subject}");
    let global = wait_for(TIMEOUT, &what, || {
        let (cluster, subject) = (&cluster, &subject);
        async move {
            cluster
                .hooks
                .calls_to(GLOBAL_SLACK_PATH)
                .into_iter()
                .find(|c| c.body["attachments"][0]["author_name"] == subject.as_str())
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    ensure(
        global.body["attachments"][0]["text"] == "New Deployment detected, initialization completed."
            && global.body["username"] == "flagger",
        format!("global message: {:#}", global.body),
    )?;

    cluster.traffic.set(&namespace, "orphan", Behaviour::healthy());
    let analysis = json!({
        "interval": "2s", "threshold": 1, "iterations": 1,
        "alerts": [{ "name": "team", "providerRef": { "name": "nowhere" } }],
    });
    release(&cluster, &namespace, "orphan", 1, "kubernetes", analysis).await?;
    let event = wait_for_event(&cluster, &namespace, "orphan", "AlertNotSent").await?;
    let message = event.message.unwrap_or_default();
    ensure(
        message.contains(&format!("AlertProvider {namespace}/nowhere, which does not exist")),
        format!("the Event names the missing provider: {message}"),
    )?;
    set_image(&cluster, &namespace, "orphan", "orphan:2").await?;
    wait_for_phase(&cluster, &namespace, "orphan", Phase::Succeeded).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let unsent = crate::support::events_for(&cluster, &namespace, "orphan")
        .await?
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("AlertNotSent"))
        .count();
    ensure(
        unsent == 2,
        format!("said once per revision (initialization, the rollout), not per alert: {unsent}"),
    )?;
    ensure(
        !cluster
            .hooks
            .calls_to(GLOBAL_SLACK_PATH)
            .iter()
            .any(|c| c.body["attachments"][0]["author_name"] == format!("orphan.{namespace}")),
        "a Canary with analysis.alerts does not use the global notifier",
    )?;
    Ok(())
}
