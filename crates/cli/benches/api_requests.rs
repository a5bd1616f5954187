//! Kubernetes API requests serin makes per analysis step, counted at its client: a progressive
//! canary of five weight steps on the Gateway API, then idle. Flagger re-reads the workloads of
//! every Canary on every tick; serin reads from watches and writes only what changes.
//!
//! `cargo bench -p serin --bench api_requests`

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::{Options, TestEnv, wait_for};

const IDLE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() {
    let env = TestEnv::start(Options { nodes: 2 }).await.expect("control plane");
    env.install_crds().await.expect("CRDs");
    env.install_upstream_crds("gateway-api")
        .await
        .expect("Gateway API CRDs");
    let counter = Arc::new(common::RequestCounter::default());
    let client = common::counting_client(env.kubeconfig(), counter.clone()).await;
    tokio::spawn(serin_operator::run(client, serin_operator::Config::default()));

    let namespace = env.namespace("requests").await.expect("namespace");
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    let canaries = Api::<Canary>::namespaced(env.client(), &namespace);
    deployments
        .create(&PostParams::default(), &deployment("app", &[("app", "app")], 2))
        .await
        .expect("target");
    let analysis = json!({ "interval": "2s", "threshold": 1, "stepWeights": [10, 20, 30, 40, 50] });
    canaries
        .create(
            &PostParams::default(),
            &common::canary("app", "gatewayapi:v1", analysis),
        )
        .await
        .expect("canary");
    let phase = |wanted: Phase| {
        let canaries = canaries.clone();
        async move {
            wait_for(Duration::from_secs(120), &format!("{wanted:?}"), || {
                let canaries = canaries.clone();
                async move { (canaries.get("app").await.ok()?.status?.phase? == wanted).then_some(()) }
            })
            .await
            .expect("phase")
        }
    };
    phase(Phase::Initialized).await;
    let after_initialization = counter.snapshot();

    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } } } });
    deployments
        .patch("app", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("new revision");
    phase(Phase::Succeeded).await;
    let after_rollout = counter.snapshot();
    tokio::time::sleep(IDLE).await;
    let after_idle = counter.snapshot();

    // Steps: detection, five weight increases, promotion, traffic back to the primary, finalising.
    let steps = 9.0;
    let (reads, writes, watches) = (
        after_rollout.0 - after_initialization.0,
        after_rollout.1 - after_initialization.1,
        after_rollout.2 - after_initialization.2,
    );
    println!(
        "API requests of one rollout (5 weight steps, {}), counted at serin's client:",
        common::machine()
    );
    println!(
        "  initialization: {} reads, {} writes, {} watch requests",
        after_initialization.0, after_initialization.1, after_initialization.2
    );
    println!(
        "  rollout: {reads} reads, {writes} writes, {watches} watch requests; per step ({steps}): {:.1} reads, {:.1} writes",
        reads as f64 / steps,
        writes as f64 / steps
    );
    println!(
        "  idle {}s afterwards: {} reads, {} writes",
        IDLE.as_secs(),
        after_idle.0 - after_rollout.0,
        after_idle.1 - after_rollout.1
    );
    env.teardown().await;
}
