//! The operator's Prometheus metrics, with Flagger's names, labels and meanings
//! (pkg/metrics/recorder.go) so that queries and alerts written against them carry over, plus serin's own;
//! and the HTTP server for `/metrics`, `/healthz` and `/readyz` (`-port`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serin_api::{Canary, CanaryStatus};

/// Prometheus client's default buckets, as Flagger's `prometheus.DefBuckets`.
const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    mesh_provider: String,
}

/// `name` is the target's name, as Flagger labels it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    workload: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    name: String,
    namespace: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    name: String,
    namespace: String,
    deployment_strategy: String,
    analysis_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    /// The webhook's type (`pre-rollout`, `confirm-promotion`, ...).
    hook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    provider: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookTypeLabels {
    hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: String,
    reason: String,
}

pub struct Telemetry {
    registry: Registry,
    status: Family<CanaryLabels, Gauge>,
    weight: Family<WorkloadLabels, Gauge>,
    duration: Family<CanaryLabels, Histogram>,
    analysis: Family<MetricLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    successes: Family<OutcomeLabels, Counter>,
    failures: Family<OutcomeLabels, Counter>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Histogram,
    webhooks: Family<WebhookLabels, Counter>,
    webhook_seconds: Family<HookTypeLabels, Histogram>,
    queries: Family<QueryLabels, Counter>,
    query_seconds: Family<ProviderLabels, Histogram>,
    alerts: Family<QueryLabels, Counter>,
    alert_seconds: Family<ProviderLabels, Histogram>,
    watch_restarts: Family<ResourceLabels, Counter>,
    leader: Gauge,
    /// Under leader election: whether this replica holds the Lease (`None` without election).
    role: std::sync::Mutex<Option<bool>>,
    ready: AtomicBool,
    /// Why `/readyz` is not (yet) what it should be: the last failure of a watch, and why a
    /// standby cannot take the Lease.
    watch_problem: std::sync::Mutex<Option<String>>,
    lease_problem: std::sync::Mutex<Option<String>>,
}

impl Telemetry {
    /// The metrics of an operator with `mesh_provider` as its default provider; `canaries` (the
    /// controller's cache) is counted per namespace at each scrape.
    pub fn new(mesh_provider: &str, canaries: Vec<Store<Canary>>) -> Telemetry {
        let mut registry = Registry::default();
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels {
            version: env!("CARGO_PKG_VERSION").to_string(),
            mesh_provider: mesh_provider.to_string(),
        })
        .set(1);
        registry.register("flagger_info", "serin version and mesh provider information", info);
        registry.register_collector(Box::new(CanaryTotals { canaries }));
        let mut telemetry = Telemetry {
            status: Family::default(),
            weight: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DEFAULT_BUCKETS)),
            analysis: Family::default(),
            successes: Family::default(),
            failures: Family::default(),
            reconciles: Family::default(),
            reconcile_seconds: Histogram::new(DEFAULT_BUCKETS),
            webhooks: Family::default(),
            webhook_seconds: Family::new_with_constructor(|| Histogram::new(DEFAULT_BUCKETS)),
            queries: Family::default(),
            query_seconds: Family::new_with_constructor(|| Histogram::new(DEFAULT_BUCKETS)),
            alerts: Family::default(),
            alert_seconds: Family::new_with_constructor(|| Histogram::new(DEFAULT_BUCKETS)),
            watch_restarts: Family::default(),
            leader: Gauge::default(),
            role: std::sync::Mutex::new(None),
            ready: AtomicBool::new(false),
            watch_problem: std::sync::Mutex::new(None),
            lease_problem: std::sync::Mutex::new(None),
            registry,
        };
        let registry = &mut telemetry.registry;
        registry.register(
            "flagger_canary_status",
            "Last canary analysis result: 0 running, 1 successful, 2 failed",
            telemetry.status.clone(),
        );
        registry.register(
            "flagger_canary_weight",
            "The weight of each destination (the target and its primary)",
            telemetry.weight.clone(),
        );
        registry.register(
            "flagger_canary_duration_seconds",
            "Seconds spent performing canary analysis",
            telemetry.duration.clone(),
        );
        registry.register(
            "flagger_canary_metric_analysis",
            "Last canary analysis result per metric",
            telemetry.analysis.clone(),
        );
        registry.register(
            "flagger_canary_successes",
            "Total number of canary successes",
            telemetry.successes.clone(),
        );
        registry.register(
            "flagger_canary_failures",
            "Total number of canary failures",
            telemetry.failures.clone(),
        );
        registry.register(
            "serin_reconciles",
            "Reconciles of a Canary by result and, for an error, its reason",
            telemetry.reconciles.clone(),
        );
        registry.register(
            "serin_reconcile_duration_seconds",
            "Seconds one reconcile of a Canary took",
            telemetry.reconcile_seconds.clone(),
        );
        registry.register(
            "serin_webhook_calls",
            "Webhook calls by type and outcome (passed, refused, timeout, unreachable, invalid)",
            telemetry.webhooks.clone(),
        );
        registry.register(
            "serin_webhook_duration_seconds",
            "Seconds a webhook call took, retries included",
            telemetry.webhook_seconds.clone(),
        );
        registry.register(
            "serin_metric_queries",
            "Metric check queries by provider and outcome (ok, no_values, error)",
            telemetry.queries.clone(),
        );
        registry.register(
            "serin_metric_query_duration_seconds",
            "Seconds a metric check's query took",
            telemetry.query_seconds.clone(),
        );
        registry.register(
            "serin_alerts",
            "Alerts by provider type and outcome (sent, refused, failed, dropped)",
            telemetry.alerts.clone(),
        );
        registry.register(
            "serin_alert_delivery_seconds",
            "Seconds from queueing an alert to its outcome, retries and rate limit included",
            telemetry.alert_seconds.clone(),
        );
        registry.register(
            "serin_watch_restarts",
            "Watches that failed and restarted after a backoff, by the resource the controller watches",
            telemetry.watch_restarts.clone(),
        );
        registry.register(
            "serin_leader",
            "1 while this replica reconciles (it holds the Lease, or leader election is off), 0 on standby",
            telemetry.leader.clone(),
        );
        telemetry.leader.set(1);
        telemetry
    }

    /// Records what a status write says: the analysis result and the destinations' weights,
    /// and a success or failure when the phase becomes `Succeeded` or `Failed`.
    pub fn status_written(&self, canary: &Canary, previous: &CanaryStatus, status: &CanaryStatus) {
        let target = canary.spec.target_ref.name.clone();
        let namespace = canary.namespace().unwrap_or_default();
        let labels = CanaryLabels {
            name: target.clone(),
            namespace: namespace.clone(),
        };
        if let Some(phase) = status.phase {
            self.status
                .get_or_create(&labels)
                .set(serin_core::status::analysis_result(phase));
        }
        let weight = i64::from(status.canary_weight.unwrap_or(0));
        for (workload, value) in [(format!("{target}-primary"), 100 - weight), (target.clone(), weight)] {
            self.weight
                .get_or_create(&WorkloadLabels {
                    workload,
                    namespace: namespace.clone(),
                })
                .set(value);
        }
        let outcome = |family: &Family<OutcomeLabels, Counter>| {
            let strategy = canary
                .spec
                .analysis()
                .map_or("canary", |a| serin_core::strategy::strategy(a, true).name());
            family
                .get_or_create(&OutcomeLabels {
                    name: target.clone(),
                    namespace: namespace.clone(),
                    deployment_strategy: strategy.to_string(),
                    analysis_status: "completed".to_string(),
                })
                .inc();
        };
        match serin_core::status::rollout_ended(previous, status) {
            Some(true) => outcome(&self.successes),
            Some(false) => outcome(&self.failures),
            None => {}
        }
    }

    /// The value a metric check measured.
    pub fn metric_measured(&self, canary: &Canary, metric: &str, value: f64) {
        self.analysis
            .get_or_create(&MetricLabels {
                name: canary.spec.target_ref.name.clone(),
                namespace: canary.namespace().unwrap_or_default(),
                metric: metric.to_string(),
            })
            .set(value);
    }

    /// One analysis step took `elapsed`.
    pub fn analysed(&self, canary: &Canary, elapsed: Duration) {
        self.duration
            .get_or_create(&CanaryLabels {
                name: canary.spec.target_ref.name.clone(),
                namespace: canary.namespace().unwrap_or_default(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One reconcile ended with `reason` (`ok` when it succeeded) after `elapsed`.
    pub fn reconciled(&self, reason: Option<&str>, elapsed: Duration) {
        let (result, reason) = match reason {
            None => ("ok", ""),
            Some(reason) => ("error", reason),
        };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                result: result.to_string(),
                reason: reason.to_string(),
            })
            .inc();
        self.reconcile_seconds.observe(elapsed.as_secs_f64());
    }

    /// A webhook of type `hook` was called with `outcome` (`passed` or why it failed).
    pub fn webhook_called(&self, hook: &str, outcome: &str, elapsed: Duration) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                hook: hook.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.webhook_seconds
            .get_or_create(&HookTypeLabels { hook: hook.to_string() })
            .observe(elapsed.as_secs_f64());
    }

    /// A watch of `resource` (`canaries` for the controller's, `metrictemplates`) failed with
    /// `error`, which `/readyz` repeats until the caches are filled.
    pub fn watch_restarted(&self, resource: &str, error: &str) {
        self.watch_restarts
            .get_or_create(&ResourceLabels {
                resource: resource.to_string(),
            })
            .inc();
        if let Ok(mut problem) = self.watch_problem.lock() {
            *problem = Some(error.to_string());
        }
    }

    /// Under leader election, why this replica cannot take the Lease (`None` once it can).
    pub fn set_lease_problem(&self, problem: Option<String>) {
        if let Ok(mut lease_problem) = self.lease_problem.lock() {
            *lease_problem = problem;
        }
    }

    /// Under leader election, whether this replica now holds the Lease.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
        if let Ok(mut role) = self.role.lock() {
            *role = Some(leading);
        }
    }

    /// The caches are filled: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    fn exposition(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl serin_metrics::QueryObserver for Telemetry {
    fn query_ran(&self, provider: &'static str, outcome: &'static str, elapsed: Duration) {
        self.queries
            .get_or_create(&QueryLabels {
                provider: provider.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.query_seconds
            .get_or_create(&ProviderLabels {
                provider: provider.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

impl serin_notify::DeliveryObserver for Telemetry {
    fn delivered(&self, kind: &str, outcome: &str, elapsed: Duration) {
        self.alerts
            .get_or_create(&QueryLabels {
                provider: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.alert_seconds
            .get_or_create(&ProviderLabels {
                provider: kind.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// `flagger_canary_total{namespace}`: the Canaries in the cache, counted when scraped.
#[derive(Debug)]
struct CanaryTotals {
    /// One store per watched scope.
    canaries: Vec<Store<Canary>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

impl Collector for CanaryTotals {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for canary in self.canaries.iter().flat_map(Store::state) {
            *totals.entry(canary.namespace().unwrap_or_default()).or_default() += 1;
        }
        let gauge = ConstGauge::new(0_i64);
        let mut family = encoder.encode_descriptor(
            "flagger_canary_total",
            "Total number of canary objects",
            None,
            gauge.metric_type(),
        )?;
        for (namespace, total) in totals {
            let labels = NamespaceLabels { namespace };
            ConstGauge::new(total).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `address` until the process ends; a port
/// that cannot be bound is logged and the operator runs on without them.
pub async fn serve(address: SocketAddr, telemetry: Arc<Telemetry>) {
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%address, %error, "could not listen for /metrics, /healthz and /readyz");
            return;
        }
    };
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(telemetry);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the metrics server stopped");
    }
}

async fn metrics(State(telemetry): State<Arc<Telemetry>>) -> axum::response::Response {
    match telemetry.exposition() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "could not encode the metrics").into_response(),
    }
}

/// 200 once the caches are filled; under leader election the body says `leader` or `standby`
/// (a warm standby is ready: it takes over without a listing). Not ready, the body says why
/// when a watch failed (a permission missing, the API server unreachable); a standby that
/// cannot reach its Lease says why too.
async fn readyz(State(telemetry): State<Arc<Telemetry>>) -> (StatusCode, String) {
    let problem = |slot: &std::sync::Mutex<Option<String>>| slot.lock().ok().and_then(|p| p.clone());
    if !telemetry.ready.load(Ordering::Relaxed) {
        let body = match problem(&telemetry.watch_problem) {
            Some(error) => format!("the caches are not filled yet; the last watch failed: {error}"),
            None => "the caches are not filled yet".to_string(),
        };
        return (StatusCode::SERVICE_UNAVAILABLE, body);
    }
    let body = match telemetry.role.lock().map(|role| *role) {
        Ok(Some(true)) => "ok: leader".to_string(),
        Ok(Some(false)) => match problem(&telemetry.lease_problem) {
            Some(why) => format!("ok: standby ({why})"),
            None => "ok: standby".to_string(),
        },
        _ => "ok".to_string(),
    };
    (StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the exposition declares, with the suffixes their types add.
    fn exported(telemetry: &Telemetry) -> BTreeMap<String, String> {
        let text = telemetry.exposition().expect("an exposition");
        let mut names = BTreeMap::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let mut words = line.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for suffix in suffixes {
                names.insert(format!("{name}{suffix}"), kind.to_string());
            }
        }
        names
    }

    /// Telemetry that saw a rollout promoted and one rolled back (a family without samples is
    /// not in the exposition).
    fn after_two_rollouts() -> Telemetry {
        let (store, _writer) = kube::runtime::reflector::store::<Canary>();
        let telemetry = Telemetry::new("kubernetes", vec![store]);
        let canary: Canary = serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": { "name": "podinfo", "namespace": "test" },
            "spec": { "targetRef": { "kind": "Deployment", "name": "podinfo" }, "service": { "port": 80 },
                      "analysis": { "stepWeight": 10 } }
        }))
        .expect("a Canary");
        let status = |phase: &str, weight: i32| -> CanaryStatus {
            serde_json::from_value(serde_json::json!({ "phase": phase, "canaryWeight": weight })).expect("a status")
        };
        telemetry.status_written(&canary, &status("Initialized", 0), &status("Progressing", 10));
        telemetry.metric_measured(&canary, "request-success-rate", 99.5);
        telemetry.analysed(&canary, Duration::from_millis(40));
        telemetry.status_written(&canary, &status("Finalising", 0), &status("Succeeded", 0));
        telemetry.status_written(&canary, &status("Progressing", 10), &status("Failed", 0));
        telemetry.reconciled(None, Duration::from_millis(3));
        telemetry.reconciled(Some("KubernetesApiError"), Duration::from_millis(3));
        telemetry.webhook_called("confirm-promotion", "refused", Duration::from_millis(8));
        serin_metrics::QueryObserver::query_ran(&telemetry, "prometheus", "no_values", Duration::from_millis(5));
        serin_notify::DeliveryObserver::delivered(&telemetry, "slack", "sent", Duration::from_millis(30));
        telemetry.watch_restarted("canaries", "connection refused");
        telemetry
    }

    #[test]
    fn flaggers_metrics_are_exported_with_their_types() {
        let telemetry = after_two_rollouts();
        let names = exported(&telemetry);
        let text = telemetry.exposition().expect("an exposition");
        for series in [
            r#"flagger_canary_status{name="podinfo",namespace="test"} 2"#,
            r#"flagger_canary_weight{workload="podinfo-primary",namespace="test"} 100"#,
            r#"flagger_canary_successes_total{name="podinfo",namespace="test",deployment_strategy="canary",analysis_status="completed"} 1"#,
            r#"flagger_canary_failures_total{name="podinfo",namespace="test",deployment_strategy="canary",analysis_status="completed"} 1"#,
            r#"flagger_canary_metric_analysis{name="podinfo",namespace="test",metric="request-success-rate"} 99.5"#,
            r#"serin_reconciles_total{result="error",reason="KubernetesApiError"} 1"#,
            r#"serin_webhook_calls_total{hook="confirm-promotion",outcome="refused"} 1"#,
            r#"serin_metric_queries_total{provider="prometheus",outcome="no_values"} 1"#,
            r#"serin_alerts_total{provider="slack",outcome="sent"} 1"#,
            r#"serin_alert_delivery_seconds_count{provider="slack"} 1"#,
            r#"serin_watch_restarts_total{resource="canaries"} 1"#,
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
        for (name, kind) in [
            ("flagger_info", "gauge"),
            ("flagger_canary_total", "gauge"),
            ("flagger_canary_status", "gauge"),
            ("flagger_canary_weight", "gauge"),
            ("flagger_canary_duration_seconds_bucket", "histogram"),
            ("flagger_canary_metric_analysis", "gauge"),
            ("flagger_canary_successes_total", "counter"),
            ("flagger_canary_failures_total", "counter"),
        ] {
            assert_eq!(names.get(name).map(String::as_str), Some(kind), "{name} in {names:?}");
        }
    }

    /// Every series the Grafana dashboard in deploy/ queries is one serin exports.
    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/grafana/serin-canary.json");
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
        let names = exported(&after_two_rollouts());
        let mut queries: Vec<String> = dashboard["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|target| target["expr"].as_str().map(String::from))
            .collect();
        queries.extend(
            dashboard["templating"]["list"]
                .as_array()
                .expect("variables")
                .iter()
                .filter(|v| v["type"] == "query")
                .filter_map(|v| v["query"].as_str().map(String::from)),
        );
        let mut referenced = 0;
        for query in &queries {
            let series = query
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|word| word.starts_with("flagger_") || word.starts_with("serin_"));
            for name in series {
                referenced += 1;
                assert!(
                    names.contains_key(name),
                    "{name} (in {query}) is not exported: {names:?}"
                );
            }
        }
        assert!(referenced >= 10, "the dashboard queries serin's metrics: {queries:?}");
    }
}
