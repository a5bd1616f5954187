//! The operator calling the real serin-loadtester as its webhooks, as Flagger's tutorials wire
//! Flagger to its load tester: a confirm-rollout gate held until opened through `/gate/open`, a
//! `cmd` rollout hook running a hey line, and a rollback asked for through `/rollback/open`.

use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{Phase, WebhookPayload};
use serin_loadtester::gates::GateStore;
use serin_loadtester::runner::{DEFAULT_ALLOWED, Runner};
use serin_loadtester::{Service, router};
use serin_testenv::traffic::Behaviour;
use serin_testenv::wait_for;

use crate::analysis::{builtin_metrics, release};
use crate::support::{Cluster, TIMEOUT, ensure, set_image, status_of, wait_for_message, wait_for_phase};

pub async fn the_load_tester_holds_the_gate_runs_load_and_rolls_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("loadtester").await?;
    let name = "tested";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    // The load tester with its default programs and gates in memory, on loopback.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let tester = format!("http://{}", listener.local_addr()?);
    let service = Service::new(
        Runner::new(DEFAULT_ALLOWED.map(String::from), Duration::from_secs(60)),
        GateStore::memory(),
        None,
        None,
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router(Arc::new(service))).await;
    });
    let analysis = json!({
        "interval": "2s", "threshold": 2, "iterations": 30,
        "metrics": builtin_metrics(),
        "webhooks": [
            { "name": "approval", "type": "confirm-rollout", "url": format!("{tester}/gate/check") },
            { "name": "load", "type": "rollout", "url": format!("{tester}/"),
              "metadata": { "cmd": format!("hey -z 2s -q 5 -c 1 {tester}/healthz") } },
            { "name": "abort", "type": "rollback", "url": format!("{tester}/rollback/check") },
        ]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "tested:2").await?;

    let waiting = wait_for_message(&cluster, &namespace, name, "webhook approval answered 403: closed").await?;
    ensure(
        waiting.status.as_ref().and_then(|s| s.phase) == Some(Phase::Waiting),
        "Waiting while the gate is closed",
    )?;
    let http = reqwest::Client::new();
    // What a release manager sends, in the payload type the operator sends its webhooks with.
    let canary = WebhookPayload {
        name: name.into(),
        namespace: namespace.clone(),
        phase: String::new(),
        checksum: String::new(),
        metadata: Default::default(),
    };
    let opened = http.post(format!("{tester}/gate/open")).json(&canary).send().await?;
    ensure(opened.status().as_u16() == 202, "the gate opened")?;
    wait_for_phase(&cluster, &namespace, name, Phase::Progressing).await?;

    // The rollout hook started hey (from Debian) through the load tester.
    wait_for(TIMEOUT, "the load tester to run the hey line", || {
        let (http, metrics) = (http.clone(), format!("{tester}/metrics"));
        async move {
            let text = http.get(metrics).send().await.ok()?.text().await.ok()?;
            text.contains("serin_loadtester_tasks_total{type=\"cmd\",result=\"started\"}")
                .then_some(())
        }
    })
    .await
    .map_err(|e| e.to_string())?;

    let rollback = http
        .post(format!("{tester}/rollback/open"))
        .json(&canary)
        .send()
        .await?;
    ensure(rollback.status().as_u16() == 202, "the rollback asked for")?;
    wait_for_phase(&cluster, &namespace, name, Phase::Failed).await?;
    let status = status_of(&cluster, &namespace, name).await?;
    ensure(
        status.canary_weight.unwrap_or(0) == 0,
        "no weight on the canary after the rollback",
    )?;
    server.abort();
    Ok(())
}
