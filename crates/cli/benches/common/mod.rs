//! What the benchmark programs share: a local control plane with serin's CRDs, canary manifests,
//! a kube client that counts its requests, percentiles and process figures from /proc.

#![allow(dead_code)] // each benchmark uses a part of this module

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

/// Requests a client sent, by kind.
#[derive(Default)]
pub struct RequestCounter {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub watches: AtomicU64,
}

impl RequestCounter {
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.reads.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
            self.watches.load(Ordering::SeqCst),
        )
    }
}

pub async fn config(kubeconfig: &Path) -> Config {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config")
}

/// A client whose every request is counted: GET/LIST as reads, watches apart, the rest as writes.
pub async fn counting_client(kubeconfig: &Path, counter: Arc<RequestCounter>) -> Client {
    let layer = tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
        let watch = request.uri().query().is_some_and(|q| q.contains("watch=true"));
        let slot = match (request.method().as_str(), watch) {
            (_, true) => &counter.watches,
            ("GET", false) => &counter.reads,
            _ => &counter.writes,
        };
        slot.fetch_add(1, Ordering::SeqCst);
        request
    });
    ClientBuilder::try_from(config(kubeconfig).await)
        .expect("client builder")
        .with_layer(&layer)
        .build()
}

/// A Canary for Deployment `name`; on the Gateway API, attached to Gateway `infra/gateway`.
pub fn canary(name: &str, provider: &str, analysis: Value) -> serin_api::Canary {
    let mut service = json!({ "port": 9898 });
    if provider.starts_with("gatewayapi") {
        service["gatewayRefs"] = json!([{ "name": "gateway", "namespace": "infra" }]);
    }
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "provider": provider,
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "service": service,
            "analysis": analysis,
        }
    }))
    .expect("canary")
}

/// The value below which `p` percent of `sorted` fall (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Resident memory (MiB) and CPU time (seconds) of a process.
pub fn process_figures(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at ") ".
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat, 12 and 13 after the name; 100 ticks per second.
    (rss_kib / 1024.0, (ticks(11) + ticks(12)) / 100.0)
}

pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cores} cores, {memory:.0} GiB RAM")
}

/// Deployments `app-0`…`app-<size-1>` (one replica) and a Canary for each on `provider` with
/// `analysis`, sixteen at a time.
pub async fn create_workloads(
    deployments: &kube::Api<k8s_openapi::api::apps::v1::Deployment>,
    canaries: &kube::Api<serin_api::Canary>,
    size: usize,
    provider: &str,
    analysis: Value,
) {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::PostParams;
    futures::stream::iter(0..size)
        .map(|i| {
            let (deployments, canaries, analysis) = (deployments.clone(), canaries.clone(), analysis.clone());
            async move {
                let name = format!("app-{i}");
                let target = serin_testenv::fixtures::deployment(&name, &[("app", &name)], 1);
                deployments.create(&PostParams::default(), &target).await?;
                canaries
                    .create(&PostParams::default(), &canary(&name, provider, analysis))
                    .await?;
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("create workloads");
}
