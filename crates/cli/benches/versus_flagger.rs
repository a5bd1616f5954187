//! Flagger v1.44.0 and serin on the same work, one after the other, each on a fresh control plane
//! (kwok nodes, Flagger's CRDs) and each as its own process with the same flags: N Canaries
//! (kubernetes provider, blue/green, 2 iterations of 10 s, one replica each) are created, left
//! idle, then released (all of them, or `SERIN_BENCH_RELEASED` of them) in 10 groups, one group
//! every 10 s at random offsets within it.
//! API requests are counted by the API server itself: both operators use a client certificate of
//! their own and the audit log records each of their requests once. RSS and CPU come from /proc.
//!
//! `cargo bench -p serin --bench versus_flagger` (`SERIN_BENCH_CANARIES`, default 100;
//! `SERIN_BENCH_PROVIDER`, default `kubernetes`, or `gatewayapi:v1`; `SERIN_BENCH_RELEASED`, how
//! many Canaries get a new revision, default all; `SERIN_BENCH_ROLLOUTS=false` to stop after the
//! idle minute)

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::{Options, TestEnv};

const IDLE: Duration = Duration::from_secs(60);
const INTERVAL: Duration = Duration::from_secs(10);
const GROUPS: usize = 10;
/// How long the Canaries may take to be initialized before the run stops with what it has.
const INITIALIZATION_LIMIT: Duration = Duration::from_secs(1200);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    Flagger,
    Serin,
}

#[derive(Debug, Default)]
struct Figures {
    /// Canaries initialized, and when the last one was (or when the limit was reached).
    initialized: usize,
    initialized_after: f64,
    idle_rss: f64,
    idle_cpu: f64,
    idle_requests_per_minute: f64,
    rollout_peak_rss: f64,
    rollout_cpu: f64,
    requests_per_step: f64,
    detection: Vec<f64>,
    step_lag: Vec<f64>,
    end_to_end: Vec<f64>,
}

/// What the watch saw of one Canary's rollout.
#[derive(Debug, Default, Clone)]
struct Seen {
    released: Option<Instant>,
    progressing: Option<Instant>,
    /// When each iteration count was first seen while Progressing.
    iterations: BTreeMap<i32, Instant>,
    succeeded: Option<Instant>,
    steps: usize,
    last: Option<(Phase, i32, i32)>,
}

#[tokio::main]
async fn main() {
    let size: usize = std::env::var("SERIN_BENCH_CANARIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let released = match std::env::var("SERIN_BENCH_ROLLOUTS").as_deref() {
        Ok("false") => 0,
        _ => std::env::var("SERIN_BENCH_RELEASED")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(size)
            .min(size),
    };
    let provider = std::env::var("SERIN_BENCH_PROVIDER").unwrap_or_else(|_| "kubernetes".into());
    println!(
        "Flagger v1.44.0 and serin side by side, {size} Canaries on {provider} ({})",
        common::machine()
    );
    let flagger = measure(Operator::Flagger, size, &provider, released).await;
    let serin = measure(Operator::Serin, size, &provider, released).await;
    print_table(size, &flagger, &serin, released);
}

/// A few random bits without a dependency: the clock's nanoseconds through xorshift.
struct Random(u64);

impl Random {
    fn new() -> Random {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Random(nanos | 1)
    }

    fn below(&mut self, bound: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        bound.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

fn start(env: &mut TestEnv, operator: Operator) -> u32 {
    let plane = env.control_plane_mut().expect("own control plane");
    let kubeconfig = format!("-kubeconfig={}", plane.operator_kubeconfig().display());
    let (name, program, mut args) = match operator {
        Operator::Flagger => {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            (
                "flagger",
                serin_testenv::upstream_flagger().expect("Flagger").join("flagger"),
                vec![format!("-port={port}")],
            )
        }
        Operator::Serin => (
            "serin",
            env!("CARGO_BIN_EXE_serin").into(),
            vec!["operator".to_string()],
        ),
    };
    args.extend([
        kubeconfig,
        "-log-level=error".to_string(),
        "-mesh-provider=kubernetes".to_string(),
        "-metrics-server=http://127.0.0.1:9".to_string(),
    ]);
    plane.start_process(name, &program, &args).expect("operator starts");
    plane.pid_of(name).expect("operator pid")
}

fn requests(env: &TestEnv) -> usize {
    env.control_plane()
        .and_then(|p| p.operator_requests().ok())
        .map_or(0, |r| r.len())
}

async fn measure(operator: Operator, size: usize, provider: &str, released: usize) -> Figures {
    let mut env = TestEnv::start(Options { nodes: 4 }).await.expect("control plane");
    env.install_flagger_crds().await.expect("Flagger's CRDs");
    env.install_upstream_crds("gateway-api")
        .await
        .expect("Gateway API CRDs");
    let namespace = env.namespace("versus").await.expect("namespace");
    let pid = start(&mut env, operator);
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    let canaries = Api::<Canary>::namespaced(env.client(), &namespace);
    let mut figures = Figures::default();

    let started = Instant::now();
    common::create_workloads(
        &deployments,
        &canaries,
        size,
        provider,
        json!({ "interval": "10s", "threshold": 2, "iterations": 2 }),
    )
    .await;
    loop {
        let list = canaries.list(&ListParams::default()).await.expect("list");
        figures.initialized = list
            .items
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.phase) == Some(Phase::Initialized))
            .count();
        if figures.initialized == size || started.elapsed() > INITIALIZATION_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    figures.initialized_after = started.elapsed().as_secs_f64();
    if figures.initialized < size {
        println!(
            "{operator:?}: {} of {size} Canaries initialized after {:.0} s; stopping there",
            figures.initialized, figures.initialized_after
        );
        env.teardown().await;
        return figures;
    }
    // Settle (Flagger's last scale-downs), then idle.
    tokio::time::sleep(INTERVAL).await;
    let (_, cpu_before) = common::process_figures(pid);
    let requests_before = requests(&env);
    tokio::time::sleep(IDLE).await;
    let (idle_rss, cpu_after) = common::process_figures(pid);
    figures.idle_rss = idle_rss;
    figures.idle_cpu = (cpu_after - cpu_before) / IDLE.as_secs_f64() * 100.0;
    figures.idle_requests_per_minute =
        requests(&env).saturating_sub(requests_before) as f64 / (IDLE.as_secs_f64() / 60.0);
    if released == 0 {
        env.teardown().await;
        return figures;
    }

    let seen: Arc<Mutex<BTreeMap<String, Seen>>> = Arc::default();
    let watch = tokio::spawn(record(canaries.clone(), seen.clone()));
    let (_, cpu_before) = common::process_figures(pid);
    let requests_before = requests(&env);
    let rollouts_started = Instant::now();
    let mut random = Random::new();
    let per_group = released.div_ceil(GROUPS);
    let releases: Vec<_> = (0..released)
        .map(|i| {
            let group = i / per_group;
            (i, INTERVAL * group as u32 + random.below(INTERVAL))
        })
        .collect();
    let release_all = futures::future::join_all(releases.into_iter().map(|(i, at)| {
        let (deployments, seen) = (deployments.clone(), seen.clone());
        async move {
            tokio::time::sleep(at).await;
            let name = format!("app-{i}");
            if let Ok(mut seen) = seen.lock() {
                seen.entry(name.clone()).or_default().released = Some(Instant::now());
            }
            let patch =
                json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } } } });
            deployments
                .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .expect("new revision");
        }
    }));
    let sample_resources = async {
        let mut peak: f64 = 0.0;
        loop {
            peak = peak.max(common::process_figures(pid).0);
            let done = seen
                .lock()
                .map(|s| s.values().filter(|c| c.succeeded.is_some()).count())
                .unwrap_or(0);
            if done == released {
                return peak;
            }
            assert!(
                rollouts_started.elapsed() < Duration::from_secs(1200),
                "{operator:?}: {done}/{released} rollouts done"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let (_, peak) = tokio::join!(release_all, sample_resources);
    let rollout_seconds = rollouts_started.elapsed().as_secs_f64();
    let (_, cpu_after) = common::process_figures(pid);
    figures.rollout_peak_rss = peak;
    figures.rollout_cpu = (cpu_after - cpu_before) / rollout_seconds * 100.0;
    watch.abort();
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let steps: usize = seen.values().map(|s| s.steps).sum();
    figures.requests_per_step = requests(&env).saturating_sub(requests_before) as f64 / steps.max(1) as f64;
    for canary in seen.values() {
        let Some(released) = canary.released else { continue };
        if let Some(progressing) = canary.progressing {
            figures
                .detection
                .push(progressing.duration_since(released).as_secs_f64() * 1000.0);
        }
        if let Some(succeeded) = canary.succeeded {
            figures
                .end_to_end
                .push(succeeded.duration_since(released).as_secs_f64());
        }
        let times: Vec<Instant> = canary.iterations.values().copied().collect();
        for pair in times.windows(2) {
            let lag = pair[1].duration_since(pair[0]).as_secs_f64() - INTERVAL.as_secs_f64();
            figures.step_lag.push(lag * 1000.0);
        }
    }
    env.teardown().await;
    figures
}

/// Records, for each Canary, when the watch first saw it Progressing, each iteration, and
/// Succeeded after its release, and how many status steps it went through.
async fn record(canaries: Api<Canary>, seen: Arc<Mutex<BTreeMap<String, Seen>>>) {
    let mut stream = watcher(canaries, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(Ok(canary)) = stream.next().await {
        let now = Instant::now();
        let Some(name) = canary.metadata.name.clone() else {
            continue;
        };
        let status = canary.status.unwrap_or_default();
        let Some(phase) = status.phase else { continue };
        let Ok(mut seen) = seen.lock() else { return };
        let entry = seen.entry(name).or_default();
        if entry.released.is_none() {
            continue;
        }
        let state = (phase, status.canary_weight.unwrap_or(0), status.iterations.unwrap_or(0));
        if entry.last == Some(state) {
            continue;
        }
        entry.last = Some(state);
        entry.steps += 1;
        match phase {
            Phase::Progressing => {
                entry.progressing.get_or_insert(now);
                entry.iterations.entry(state.2).or_insert(now);
            }
            Phase::Succeeded if entry.progressing.is_some() => {
                entry.succeeded.get_or_insert(now);
            }
            _ => {}
        }
    }
}

fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        common::percentile(&sorted, 50.0),
        common::percentile(&sorted, 90.0),
        common::percentile(&sorted, 99.0),
    )
}

fn print_table(size: usize, flagger: &Figures, serin: &Figures, released: usize) {
    let row = |what: &str, f: f64, s: f64, unit: &str| {
        let ratio = if s > 0.0 && f >= 0.0 {
            format!("{:.1}×", f / s)
        } else {
            "—".to_string()
        };
        println!("| {what} | {f:.2} {unit} | {s:.2} {unit} | {ratio} |");
    };
    println!();
    println!("| {size} Canaries | Flagger v1.44.0 | serin | Flagger ÷ serin |");
    println!("|---|---|---|---|");
    if flagger.initialized < size || serin.initialized < size {
        println!(
            "| initialized | {} of {size} after {:.0} s | {} of {size} after {:.0} s | |",
            flagger.initialized, flagger.initialized_after, serin.initialized, serin.initialized_after
        );
        return;
    }
    row(
        "all initialized after",
        flagger.initialized_after,
        serin.initialized_after,
        "s",
    );
    row("idle RSS", flagger.idle_rss, serin.idle_rss, "MiB");
    row("idle CPU", flagger.idle_cpu, serin.idle_cpu, "% of a core");
    row(
        "API requests per idle minute",
        flagger.idle_requests_per_minute,
        serin.idle_requests_per_minute,
        "",
    );
    if released == 0 {
        return;
    }
    row(
        &format!("RSS peak during the {released} rollouts"),
        flagger.rollout_peak_rss,
        serin.rollout_peak_rss,
        "MiB",
    );
    row(
        &format!("CPU during the {released} rollouts"),
        flagger.rollout_cpu,
        serin.rollout_cpu,
        "% of a core",
    );
    row(
        "API requests per analysis step",
        flagger.requests_per_step,
        serin.requests_per_step,
        "",
    );
    for (what, f, s, unit) in [
        ("detection latency", &flagger.detection, &serin.detection, "ms"),
        ("step lag", &flagger.step_lag, &serin.step_lag, "ms"),
        ("release to Succeeded", &flagger.end_to_end, &serin.end_to_end, "s"),
    ] {
        let (f50, f90, f99) = summary(f);
        let (s50, s90, s99) = summary(s);
        row(
            &format!("{what} p50 ({} / {} samples)", f.len(), s.len()),
            f50,
            s50,
            unit,
        );
        row(&format!("{what} p90"), f90, s90, unit);
        row(&format!("{what} p99"), f99, s99, unit);
    }
}
