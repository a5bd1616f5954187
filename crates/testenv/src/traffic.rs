//! A metrics source for Prometheus to scrape: it exposes `http_request_duration_seconds` (count
//! and buckets) for the pods of the workloads a test names, with the labels serin's builtin
//! queries select on (`kubernetes_namespace`, `kubernetes_pod_name`, `status`), and the same
//! requests as an Istio sidecar reports them (`istio_requests_total`,
//! `istio_request_duration_milliseconds_bucket`, `reporter="destination"`), as App Mesh's
//! Envoy sidecar does per pod (`envoy_cluster_upstream_rq`,
//! `envoy_cluster_upstream_rq_time_bucket`), as Linkerd's proxy does (`response_total`,
//! `response_latency_ms_bucket`, `direction="inbound"`), as OSM's Envoy does
//! (`osm_request_total`, `osm_request_duration_ms_bucket`) and, for a workload that is not a
//! primary, as Gloo's Envoy reports its canary Upstream (`envoy_cluster_upstream_rq`,
//! `envoy_cluster_upstream_rq_time_bucket`, for Service port 9898) and as ingress-nginx reports
//! the requests its canary routing sent there
//! (`nginx_ingress_controller_requests` and `..._response_duration_seconds_{sum,count}`, with
//! `ingress` the workload's name, so tests name the Ingress after the target). Counters grow at
//! the request rate, error ratio and latency the test sets, as a real app's would.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::task::JoinHandle;

use crate::Error;
use crate::prometheus::ScrapeTarget;

const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How a workload's pods answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    pub requests_per_second: f64,
    /// Share of requests answered 500, 0.0 to 1.0.
    pub error_ratio: f64,
    pub latency_seconds: f64,
}

impl Behaviour {
    pub fn healthy() -> Behaviour {
        Behaviour {
            requests_per_second: 20.0,
            error_ratio: 0.0,
            latency_seconds: 0.02,
        }
    }

    /// Half of the requests answered 500.
    pub fn failing() -> Behaviour {
        Behaviour {
            error_ratio: 0.5,
            ..Behaviour::healthy()
        }
    }
}

/// Accumulated counters of one workload's pod.
#[derive(Debug, Clone)]
struct Series {
    behaviour: Behaviour,
    since: Instant,
    ok: f64,
    errors: f64,
    buckets: [f64; BUCKETS.len()],
    /// Total seconds spent answering.
    latency_sum: f64,
}

impl Series {
    /// Adds the requests served since the last update at the current behaviour.
    fn advance(&mut self) {
        let now = Instant::now();
        let requests = self.behaviour.requests_per_second * now.duration_since(self.since).as_secs_f64();
        self.since = now;
        self.errors += requests * self.behaviour.error_ratio;
        self.ok += requests * (1.0 - self.behaviour.error_ratio);
        self.latency_sum += requests * self.behaviour.latency_seconds;
        for (count, le) in self.buckets.iter_mut().zip(BUCKETS) {
            if self.behaviour.latency_seconds <= le {
                *count += requests;
            }
        }
    }
}

impl Series {
    /// `metric` with `labels`, its buckets' bounds in seconds times `scale`.
    fn histogram(&self, out: &mut String, metric: &str, labels: &str, scale: f64) {
        for (le, count) in BUCKETS.iter().zip(self.buckets) {
            let _ = writeln!(out, "{metric}{{{labels},le=\"{}\"}} {count}", le * scale);
        }
        let _ = writeln!(out, "{metric}{{{labels},le=\"+Inf\"}} {}", self.ok + self.errors);
    }

    /// `metric` with `labels`, the successful requests' count under `label` = `values[0]` and
    /// the failed ones' under `values[1]`.
    fn counters(&self, out: &mut String, metric: &str, labels: &str, label: &str, values: [&str; 2]) {
        for (value, count) in values.iter().zip([self.ok, self.errors]) {
            let _ = writeln!(out, "{metric}{{{labels},{label}=\"{value}\"}} {count}");
        }
    }
}

type Workloads = Arc<Mutex<BTreeMap<(String, String), Series>>>;

pub struct TrafficSource {
    address: String,
    workloads: Workloads,
    server: JoinHandle<()>,
}

impl TrafficSource {
    pub async fn start() -> Result<TrafficSource, Error> {
        let workloads: Workloads = Arc::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?.to_string();
        let app = Router::new()
            .route("/metrics", get(exposition))
            .with_state(workloads.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "traffic source stopped");
            }
        });
        Ok(TrafficSource {
            address,
            workloads,
            server,
        })
    }

    /// The Prometheus scrape job for this source.
    pub fn scrape_target(&self) -> ScrapeTarget {
        ScrapeTarget {
            job: "traffic".into(),
            address: self.address.clone(),
            scheme: "http",
            metrics_path: "/metrics".into(),
            tls: None,
        }
    }

    /// From now on, the pods of Deployment `workload` in `namespace` serve with `behaviour`.
    pub fn set(&self, namespace: &str, workload: &str, behaviour: Behaviour) {
        let Ok(mut workloads) = self.workloads.lock() else {
            return;
        };
        let series = workloads
            .entry((namespace.to_string(), workload.to_string()))
            .or_insert_with(|| Series {
                behaviour,
                since: Instant::now(),
                ok: 0.0,
                errors: 0.0,
                buckets: [0.0; BUCKETS.len()],
                latency_sum: 0.0,
            });
        series.advance();
        series.behaviour = behaviour;
    }
}

impl Drop for TrafficSource {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn exposition(State(workloads): State<Workloads>) -> String {
    let Ok(mut workloads) = workloads.lock() else {
        return String::new();
    };
    let mut out = String::new();
    for ((namespace, workload), series) in workloads.iter_mut() {
        series.advance();
        // A pod name of the form the builtin queries expect: <deployment>-<replicaset hash>-<suffix>.
        let pod = format!("{workload}-6d5f8c7b9-x2k4p");
        let http = format!("kubernetes_namespace=\"{namespace}\",kubernetes_pod_name=\"{pod}\"");
        series.histogram(&mut out, "http_request_duration_seconds_bucket", &http, 1.0);
        series.counters(
            &mut out,
            "http_request_duration_seconds_count",
            &http,
            "status",
            ["200", "500"],
        );
        // App Mesh's Envoy sidecar, scraped per pod.
        series.counters(
            &mut out,
            "envoy_cluster_upstream_rq",
            &http,
            "envoy_response_code",
            ["200", "500"],
        );
        series.histogram(&mut out, "envoy_cluster_upstream_rq_time_bucket", &http, 1000.0);
        let istio = format!(
            "reporter=\"destination\",destination_workload_namespace=\"{namespace}\",destination_workload=\"{workload}\""
        );
        series.counters(
            &mut out,
            "istio_requests_total",
            &istio,
            "response_code",
            ["200", "500"],
        );
        series.histogram(&mut out, "istio_request_duration_milliseconds_bucket", &istio, 1000.0);
        let linkerd = format!("namespace=\"{namespace}\",deployment=\"{workload}\",direction=\"inbound\"");
        series.counters(
            &mut out,
            "response_total",
            &linkerd,
            "classification",
            ["success", "failure"],
        );
        series.histogram(&mut out, "response_latency_ms_bucket", &linkerd, 1000.0);
        let osm = format!(
            "destination_namespace=\"{namespace}\",destination_kind=\"Deployment\",destination_name=\"{workload}\""
        );
        series.counters(&mut out, "osm_request_total", &osm, "response_code", ["200", "500"]);
        series.histogram(&mut out, "osm_request_duration_ms_bucket", &osm, 1000.0);
        if !workload.ends_with("-primary") {
            // Gloo's Envoy names the canary's Upstream cluster so (Service port 9898).
            let gloo = format!("envoy_cluster_name=\"{namespace}-{workload}-canaryupstream-9898_{namespace}\"");
            series.counters(
                &mut out,
                "envoy_cluster_upstream_rq",
                &gloo,
                "envoy_response_code",
                ["200", "500"],
            );
            series.histogram(&mut out, "envoy_cluster_upstream_rq_time_bucket", &gloo, 1000.0);
            let nginx =
                format!("namespace=\"{namespace}\",ingress=\"{workload}\",canary=\"{namespace}-{workload}-canary-80\"");
            series.counters(
                &mut out,
                "nginx_ingress_controller_requests",
                &nginx,
                "status",
                ["200", "500"],
            );
            let _ = writeln!(
                out,
                "nginx_ingress_controller_response_duration_seconds_sum{{{nginx}}} {}",
                series.latency_sum
            );
            let _ = writeln!(
                out,
                "nginx_ingress_controller_response_duration_seconds_count{{{nginx}}} {}",
                series.ok + series.errors
            );
        }
    }
    out
}
