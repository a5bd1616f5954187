//! Operator memory and CPU with many Canaries: 100 and 1,000 Canaries (kwok, one replica each)
//! at steady state, then during 100 simultaneous rollouts. `serin operator` runs as its own
//! process, as in a cluster; its RSS and CPU time come from /proc.
//!
//! `cargo bench -p serin --bench scale` (`SERIN_BENCH_CANARIES=100` for one size only)

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::{Options, TestEnv};

const STEADY: Duration = Duration::from_secs(30);
const ROLLOUTS: usize = 100;

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = match std::env::var("SERIN_BENCH_CANARIES") {
        Ok(n) => vec![n.parse().expect("SERIN_BENCH_CANARIES is a number")],
        Err(_) => vec![100, 1000],
    };
    println!("operator resources with many Canaries ({}):", common::machine());
    for size in sizes {
        measure(size).await;
    }
}

async fn count_in_phase(canaries: &Api<Canary>, phases: &[Phase]) -> usize {
    let list = canaries.list(&ListParams::default()).await.expect("list canaries");
    list.items
        .iter()
        .filter(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| phases.contains(&p))
        })
        .count()
}

async fn measure(size: usize) {
    let env = TestEnv::start(Options { nodes: 4 }).await.expect("control plane");
    env.install_crds().await.expect("CRDs");
    let namespace = env.namespace("scale").await.expect("namespace");
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    let canaries = Api::<Canary>::namespaced(env.client(), &namespace);
    let mut child = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args([
            "operator",
            "-kubeconfig",
            &env.kubeconfig().display().to_string(),
            "-log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serin operator");
    let pid = child.id();

    let started = Instant::now();
    common::create_workloads(
        &deployments,
        &canaries,
        size,
        "kubernetes",
        json!({ "interval": "5s", "threshold": 1, "iterations": 1 }),
    )
    .await;
    while count_in_phase(&canaries, &[Phase::Initialized]).await < size {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let initialized_after = started.elapsed().as_secs_f64();

    let (_, cpu_before) = common::process_figures(pid);
    tokio::time::sleep(STEADY).await;
    let (steady_rss, cpu_after) = common::process_figures(pid);
    let steady_cpu = (cpu_after - cpu_before) / STEADY.as_secs_f64() * 100.0;

    let rollout_start = Instant::now();
    let (_, cpu_before) = common::process_figures(pid);
    for i in 0..ROLLOUTS.min(size) {
        let patch =
            json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } } } });
        deployments
            .patch(&format!("app-{i}"), &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("new revision");
    }
    let mut peak_rss: f64 = 0.0;
    while count_in_phase(&canaries, &[Phase::Succeeded]).await < ROLLOUTS.min(size) {
        peak_rss = peak_rss.max(common::process_figures(pid).0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            rollout_start.elapsed() < Duration::from_secs(600),
            "rollouts did not finish"
        );
    }
    let rollout_seconds = rollout_start.elapsed().as_secs_f64();
    let (_, cpu_after) = common::process_figures(pid);
    let rollout_cpu = (cpu_after - cpu_before) / rollout_seconds * 100.0;
    println!(
        "  {size:>5} canaries: all initialized after {initialized_after:.0}s; steady state RSS {steady_rss:.1} MiB, CPU {steady_cpu:.2}% of a core over {}s",
        STEADY.as_secs()
    );
    println!(
        "  {size:>5} canaries: {} simultaneous rollouts done in {rollout_seconds:.0}s; peak RSS {peak_rss:.1} MiB, CPU {rollout_cpu:.1}% of a core",
        ROLLOUTS.min(size)
    );
    let _ = child.kill();
    let _ = child.wait();
    env.teardown().await;
}
