//! A metrics source for Prometheus to scrape: it exposes `http_request_duration_seconds` (count
//! and buckets) for the pods of the workloads a test names, with the labels serin's builtin
//! queries select on (`kubernetes_namespace`, `kubernetes_pod_name`, `status`), and the same
//! requests as an Istio sidecar reports them (`istio_requests_total`,
//! `istio_request_duration_milliseconds_bucket`, `reporter="destination"`) and, for a workload
//! that is not a primary, as ingress-nginx reports the requests its canary routing sent there
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
        let labels = format!("kubernetes_namespace=\"{namespace}\",kubernetes_pod_name=\"{pod}\"");
        let total = series.ok + series.errors;
        for (le, count) in BUCKETS.iter().zip(series.buckets) {
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_count{{{labels},status=\"200\"}} {}",
            series.ok
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_count{{{labels},status=\"500\"}} {}",
            series.errors
        );
        let istio = format!(
            "reporter=\"destination\",destination_workload_namespace=\"{namespace}\",destination_workload=\"{workload}\""
        );
        for (code, count) in [("200", series.ok), ("500", series.errors)] {
            let _ = writeln!(out, "istio_requests_total{{{istio},response_code=\"{code}\"}} {count}");
        }
        for (le, count) in BUCKETS.iter().zip(series.buckets) {
            let _ = writeln!(
                out,
                "istio_request_duration_milliseconds_bucket{{{istio},le=\"{}\"}} {count}",
                le * 1000.0
            );
        }
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_bucket{{{istio},le=\"+Inf\"}} {total}"
        );
        if !workload.ends_with("-primary") {
            let nginx =
                format!("namespace=\"{namespace}\",ingress=\"{workload}\",canary=\"{namespace}-{workload}-canary-80\"");
            for (status, count) in [("200", series.ok), ("500", series.errors)] {
                let _ = writeln!(
                    out,
                    "nginx_ingress_controller_requests{{{nginx},status=\"{status}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "nginx_ingress_controller_response_duration_seconds_sum{{{nginx}}} {}",
                series.latency_sum
            );
            let _ = writeln!(
                out,
                "nginx_ingress_controller_response_duration_seconds_count{{{nginx}}} {total}"
            );
        }
    }
    out
}
