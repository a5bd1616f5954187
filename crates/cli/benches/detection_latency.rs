//! Detection latency: from a change of the target's pod template to the Canary's status saying
//! Progressing on the new revision. serin reacts to the Deployment watch event; Flagger waits for
//! its next per-canary tick (up to one interval, at least 10 s).
//!
//! `cargo bench -p serin --bench detection_latency`

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::{Options, TestEnv};

const RUNS: usize = 30;

#[tokio::main]
async fn main() {
    let env = TestEnv::start(Options { nodes: 2 }).await.expect("control plane");
    env.install_crds().await.expect("CRDs");
    tokio::spawn(serin_operator::run(env.client(), serin_operator::Config::default()));
    let namespace = env.namespace("latency").await.expect("namespace");
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    let canaries = Api::<Canary>::namespaced(env.client(), &namespace);
    deployments
        .create(&PostParams::default(), &deployment("app", &[("app", "app")], 1))
        .await
        .expect("target");
    // Many iterations an hour apart: the Canary stays Progressing, and each new revision restarts it.
    let analysis = json!({ "interval": "1h", "threshold": 1, "iterations": 100 });
    canaries
        .create(&PostParams::default(), &common::canary("app", "kubernetes", analysis))
        .await
        .expect("canary");

    let mut statuses = watcher(canaries.clone(), watcher::Config::default().fields("metadata.name=app"))
        .applied_objects()
        .boxed();
    let mut wait_for = async |predicate: &dyn Fn(&serin_api::CanaryStatus) -> bool| loop {
        let canary = statuses.next().await.expect("watch stream").expect("watch event");
        if predicate(&canary.status.unwrap_or_default()) {
            return;
        }
    };
    wait_for(&|s| s.phase == Some(Phase::Initialized)).await;

    let mut samples = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let before = canaries
            .get("app")
            .await
            .expect("canary")
            .status
            .unwrap_or_default()
            .last_applied_spec;
        let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": format!("app:{}", run + 2) }] } } } });
        let started = Instant::now();
        deployments
            .patch("app", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("new revision");
        wait_for(&|s| s.phase == Some(Phase::Progressing) && s.last_applied_spec != before).await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "detection latency: target change -> status Progressing on the new revision ({RUNS} runs, {})",
        common::machine()
    );
    println!(
        "  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        common::percentile(&samples, 50.0),
        common::percentile(&samples, 90.0),
        common::percentile(&samples, 99.0),
        common::percentile(&samples, 100.0)
    );
    env.teardown().await;
}
