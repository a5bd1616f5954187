//! Metric checks: a Canary's `analysis.metrics`, each a builtin query of the traffic provider or
//! a MetricTemplate's query, run against its metric provider and judged by serin-core. Each
//! provider is one file implementing [`MetricProvider`]; adding one is adding a file and a line
//! in [`provider_for`].

mod aws;
mod builtin;
mod cloudwatch;
mod datadog;
mod dynatrace;
mod externalmetrics;
mod google;
mod graphite;
pub mod http;
mod influxdb;
mod keptn;
mod newrelic;
mod prometheus;
mod rest;
mod splunk;
mod stackdriver;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serin_api::canary::{CanaryMetric, Provider};
use serin_api::metric_template::MetricProviderType;
use serin_api::{Canary, MetricTemplate};
use serin_core::checks::{self, Verdict};
use serin_core::query_template::{self, TemplateError, TemplateValues};

pub use http::HttpClients;

/// A metric provider: runs a query for one value, and says whether it can be reached.
pub trait MetricProvider: Send + Sync {
    /// How messages name it, e.g. `prometheus at http://prometheus:9090`.
    fn describe(&self) -> String;

    /// Its `MetricTemplate` type, e.g. `prometheus`.
    fn kind(&self) -> &'static str;

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>>;

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>>;
}

/// A query's value, how many series it returned, and which of them gave the value (`first` or
/// `last`, as Flagger's provider of that type picks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub series: usize,
    pub picked: &'static str,
}

/// What metric providers take from the operator's process, shared by every check: its
/// environment variables (the AWS credential chain reads them) and what was obtained with them.
#[derive(Clone)]
pub struct ProviderEnvironment {
    shared: Arc<SharedEnvironment>,
}

struct SharedEnvironment {
    /// `None`: the process' own.
    variables: Option<BTreeMap<String, String>>,
    aws_credentials: aws::CredentialCache,
    google_tokens: google::TokenProviders,
}

impl ProviderEnvironment {
    pub fn from_process() -> ProviderEnvironment {
        ProviderEnvironment::new(None)
    }

    /// Fixed variables instead of the process' (tests, tools).
    pub fn from_variables(variables: BTreeMap<String, String>) -> ProviderEnvironment {
        ProviderEnvironment::new(Some(variables))
    }

    fn new(variables: Option<BTreeMap<String, String>>) -> ProviderEnvironment {
        ProviderEnvironment {
            shared: Arc::new(SharedEnvironment {
                variables,
                aws_credentials: aws::CredentialCache::default(),
                google_tokens: google::TokenProviders::default(),
            }),
        }
    }

    pub fn variable(&self, name: &str) -> Option<String> {
        match &self.shared.variables {
            Some(variables) => variables.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }

    fn aws_credentials(&self) -> &aws::CredentialCache {
        &self.shared.aws_credentials
    }

    fn google_tokens(&self) -> &google::TokenProviders {
        &self.shared.google_tokens
    }
}

impl Sample {
    /// `value`, picked from `series` series; NaN is not a sample (Prometheus answers NaN for a
    /// ratio without traffic).
    pub fn of(value: f64, series: usize, picked: &'static str) -> Result<Sample, ProviderError> {
        if value.is_nan() {
            return Err(ProviderError::NotANumber);
        }
        Ok(Sample { value, series, picked })
    }
}

/// A value a provider wrote as text.
fn parse_value(text: &str) -> Result<f64, ProviderError> {
    text.trim().parse().map_err(|_| ProviderError::Malformed {
        reason: format!("{text} is not a number"),
    })
}

/// A provider's JSON answer.
fn parse_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ProviderError> {
    serde_json::from_str(body).map_err(|e| ProviderError::Malformed { reason: e.to_string() })
}

/// What a provider is made from.
pub struct ProviderSettings<'a> {
    /// The MetricTemplate's `address`, if it has one.
    pub address: Option<&'a str>,
    /// `spec.metricsServer` or `-metrics-server`: Prometheus' address when a template has none.
    pub metrics_server: &'a str,
    /// The name of the template's `secretRef`, if it has one.
    pub secret: Option<&'a str>,
    /// The data of that Secret.
    pub credentials: &'a BTreeMap<String, String>,
    /// The template's `headers`.
    pub headers: Option<&'a BTreeMap<String, Vec<String>>>,
    /// The shared client, verifying TLS certificates unless `insecure_skip_verify`.
    pub client: &'a reqwest::Client,
    pub insecure_skip_verify: bool,
    /// The metric's `interval`, over which some providers query.
    pub metric_interval: std::time::Duration,
    /// The template's `region` (CloudWatch).
    pub region: Option<&'a str>,
    pub environment: &'a ProviderEnvironment,
    /// The cluster's API (Keptn's resources live there).
    pub cluster: Option<&'a kube::Client>,
}

/// The provider of `kind`; an error says why it cannot be made (a credential missing from the
/// Secret, a setting it needs).
pub fn provider_for(
    kind: MetricProviderType,
    settings: &ProviderSettings<'_>,
) -> Result<Box<dyn MetricProvider>, String> {
    match kind {
        MetricProviderType::Prometheus => Ok(Box::new(prometheus::Prometheus::new(settings)?)),
        MetricProviderType::Datadog => Ok(Box::new(datadog::Datadog::new(
            settings.address,
            settings.credentials,
            settings.client.clone(),
            settings.metric_interval,
        )?)),
        MetricProviderType::Newrelic => Ok(Box::new(newrelic::NewRelic::new(
            settings.address,
            settings.credentials,
            settings.client.clone(),
            settings.metric_interval,
        )?)),
        MetricProviderType::Dynatrace => Ok(Box::new(dynatrace::Dynatrace::new(
            settings.address,
            settings.credentials,
            settings.client.clone(),
            settings.metric_interval,
        )?)),
        MetricProviderType::Graphite => Ok(Box::new(graphite::Graphite::new(settings)?)),
        MetricProviderType::Influxdb => Ok(Box::new(influxdb::InfluxDb::new(settings)?)),
        MetricProviderType::Cloudwatch => Ok(Box::new(cloudwatch::CloudWatch::new(settings)?)),
        MetricProviderType::Stackdriver => Ok(Box::new(stackdriver::Stackdriver::new(settings)?)),
        MetricProviderType::Keptn => Ok(Box::new(keptn::Keptn::new(settings)?)),
        MetricProviderType::Splunk => Ok(Box::new(splunk::Splunk::new(settings)?)),
        MetricProviderType::Externalmetrics => Ok(Box::new(externalmetrics::ExternalMetrics::new(settings)?)),
    }
}

/// What went wrong with a provider's answer.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("found no values")]
    NoValues,
    #[error("returned NaN (no traffic in the window?)")]
    NotANumber,
    #[error("answered {status}: {body}")]
    Http { status: u16, body: String },
    #[error("could not be reached: {reason}")]
    Unreachable { reason: String },
    #[error("did not answer within {}s", after.as_secs())]
    Timeout { after: std::time::Duration },
    #[error("refused the credentials ({status}): {body}; check the secretRef's keys")]
    Refused { status: u16, body: String },
    #[error("cannot authenticate: {reason}")]
    Unauthenticated { reason: String },
    #[error("rate limited the query (429{}); the next check asks again", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<std::time::Duration> },
    #[error("gave an unexpected answer: {reason}")]
    Malformed { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// "no values found for metric <name>" is Flagger's wording, which users' alerts match on.
    #[error("{}", query_failure(metric, provider, error))]
    Query {
        metric: String,
        provider: String,
        error: ProviderError,
    },
    #[error("metric {metric}: MetricTemplate {namespace}/{name} not found; create it or fix templateRef")]
    MissingTemplate {
        metric: String,
        namespace: String,
        name: String,
    },
    #[error("metric {metric}: reading MetricTemplate {namespace}/{name} failed: {reason}")]
    TemplateUnreadable {
        metric: String,
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("metric {metric}: {reason}")]
    Template { metric: String, reason: String },
    #[error("metric {metric}: {reason}")]
    Provider { metric: String, reason: String },
    #[error("metric {metric}: builtin metrics are not available for provider {provider} yet; use a MetricTemplate")]
    NoBuiltin { metric: String, provider: String },
    #[error("metric {metric}: reading secret {namespace}/{name} failed: {reason}")]
    Secret {
        metric: String,
        namespace: String,
        name: String,
        reason: String,
    },
}

fn query_failure(metric: &str, provider: &str, error: &ProviderError) -> String {
    match error {
        ProviderError::NoValues => format!("no values found for metric {metric}"),
        other => format!("metric {metric}: {provider} {other}"),
    }
}

/// Told about each query a check runs (for the operator's own metrics).
pub trait QueryObserver: Send + Sync {
    /// `provider` answered (`outcome` `ok`, `no_values` or `error`) after `elapsed`.
    fn query_ran(&self, provider: &'static str, outcome: &'static str, elapsed: std::time::Duration);
}

impl ProviderError {
    /// The outcome a [`QueryObserver`] is told.
    fn outcome(&self) -> &'static str {
        match self {
            ProviderError::NoValues | ProviderError::NotANumber => "no_values",
            _ => "error",
        }
    }
}

/// Where builtin metrics are queried and which provider's series they read.
pub struct MetricContext<'a> {
    pub client: &'a Client,
    pub canary: &'a Canary,
    pub namespace: &'a str,
    pub provider: Provider,
    /// `spec.metricsServer` or the operator's `-metrics-server`.
    pub metrics_server: &'a str,
    pub http: &'a HttpClients,
    pub environment: &'a ProviderEnvironment,
    pub observer: Option<&'a dyn QueryObserver>,
}

/// A metric's provider and the query template to run on it.
struct Resolved {
    provider: Box<dyn MetricProvider>,
    query: String,
    /// Factor from the query's unit to the metric's (seconds to milliseconds for durations).
    scale: f64,
}

async fn resolve(context: &MetricContext<'_>, metric: &CanaryMetric) -> Result<Resolved, MetricError> {
    let metric_interval =
        serin_api::duration::parse_positive(metric.interval()).map_err(|e| MetricError::Provider {
            metric: metric.name.clone(),
            reason: format!("interval: {e}"),
        })?;
    let make = |kind: MetricProviderType, settings: &ProviderSettings<'_>| {
        provider_for(kind, settings).map_err(|reason| MetricError::Provider {
            metric: metric.name.clone(),
            reason,
        })
    };
    let no_credentials = BTreeMap::new();
    let default_provider = || {
        let settings = ProviderSettings {
            address: None,
            metrics_server: context.metrics_server,
            secret: None,
            credentials: &no_credentials,
            headers: None,
            client: context.http.get(true),
            insecure_skip_verify: false,
            metric_interval,
            region: None,
            environment: context.environment,
            cluster: Some(context.client),
        };
        make(MetricProviderType::Prometheus, &settings)
    };
    if let Some(reference) = &metric.template_ref {
        let namespace = reference.namespace.as_deref().unwrap_or(context.namespace);
        let template = Api::<MetricTemplate>::namespaced(context.client.clone(), namespace)
            .get_opt(&reference.name)
            .await
            .map_err(|e| MetricError::TemplateUnreadable {
                metric: metric.name.clone(),
                namespace: namespace.to_string(),
                name: reference.name.clone(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| MetricError::MissingTemplate {
                metric: metric.name.clone(),
                namespace: namespace.to_string(),
                name: reference.name.clone(),
            })?;
        let spec = &template.spec.provider;
        let credentials = match &spec.secret_ref {
            Some(secret) => credentials(context.client, namespace, &secret.name, &metric.name).await?,
            None => BTreeMap::new(),
        };
        let insecure_skip_verify = spec.insecure_skip_verify == Some(true);
        let settings = ProviderSettings {
            address: spec.address.as_deref().filter(|a| !a.is_empty()),
            metrics_server: context.metrics_server,
            secret: spec.secret_ref.as_ref().map(|s| s.name.as_str()),
            credentials: &credentials,
            headers: spec.headers.as_ref(),
            client: context.http.get(!insecure_skip_verify),
            insecure_skip_verify,
            metric_interval,
            region: spec.region.as_deref(),
            environment: context.environment,
            cluster: Some(context.client),
        };
        let provider = make(spec.type_, &settings)?;
        return Ok(Resolved {
            provider,
            query: template.spec.query.clone(),
            scale: 1.0,
        });
    }
    if let Some(query) = &metric.query {
        return Ok(Resolved {
            provider: default_provider()?,
            query: query.clone(),
            scale: 1.0,
        });
    }
    let builtin = builtin::query(context.provider, &metric.name).ok_or_else(|| MetricError::NoBuiltin {
        metric: metric.name.clone(),
        provider: format!("{:?}", context.provider),
    })?;
    Ok(Resolved {
        provider: default_provider()?,
        query: builtin.query.to_string(),
        scale: builtin.scale,
    })
}

/// Runs one metric check: its value judged against its range.
pub async fn check(context: &MetricContext<'_>, metric: &CanaryMetric) -> Result<Verdict, MetricError> {
    let spec = &context.canary.spec;
    let values = TemplateValues {
        name: context.canary.metadata.name.as_deref().unwrap_or_default(),
        namespace: context.namespace,
        target: &spec.target_ref.name,
        service: spec.service_name(),
        ingress: spec.ingress_ref.as_ref().map(|r| r.name.as_str()).unwrap_or_default(),
        route: spec.route_ref.as_ref().map(|r| r.name.as_str()).unwrap_or_default(),
        interval: metric.interval(),
        variables: metric.template_variables.clone().unwrap_or_default(),
    };
    let resolved = resolve(context, metric).await?;
    let query = query_template::render(&resolved.query, &values).map_err(|e: TemplateError| MetricError::Template {
        metric: metric.name.clone(),
        reason: e.to_string(),
    })?;
    let started = std::time::Instant::now();
    let sample = resolved.provider.query(&query).await;
    if let Some(observer) = context.observer {
        let outcome = sample.as_ref().err().map_or("ok", ProviderError::outcome);
        observer.query_ran(resolved.provider.kind(), outcome, started.elapsed());
    }
    let sample = sample.map_err(|error| MetricError::Query {
        metric: metric.name.clone(),
        provider: resolved.provider.describe(),
        error,
    })?;
    let mut verdict = checks::judge(&metric.name, sample.value * resolved.scale, &checks::range(metric));
    if sample.series > 1 {
        verdict.message.push_str(&format!(
            " (the query returned {} series; the {} one was used, as Flagger does: aggregate the query to one series)",
            sample.series, sample.picked
        ));
    }
    Ok(verdict)
}

/// The metric providers of `metrics` that cannot be reached (or cannot even be resolved), each
/// as a message; every provider is asked once.
pub async fn offline_providers(context: &MetricContext<'_>, metrics: &[CanaryMetric]) -> Vec<String> {
    let mut asked = Vec::new();
    let mut offline = Vec::new();
    for metric in metrics {
        match resolve(context, metric).await {
            Ok(resolved) => {
                let name = resolved.provider.describe();
                if asked.contains(&name) {
                    continue;
                }
                if let Err(error) = resolved.provider.is_online().await {
                    offline.push(format!(
                        "metric provider {name} {error}; checks that use it fail until it answers"
                    ));
                }
                asked.push(name);
            }
            Err(error) => offline.push(error.to_string()),
        }
    }
    offline
}

async fn credentials(
    client: &Client,
    namespace: &str,
    name: &str,
    metric: &str,
) -> Result<BTreeMap<String, String>, MetricError> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| MetricError::Secret {
            metric: metric.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key, String::from_utf8_lossy(&value.0).into_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube::{Client, Config};
    use serde_json::json;
    use serin_testenv::prometheus::Prometheus as PrometheusServer;
    use serin_testenv::traffic::{Behaviour, TrafficSource};

    use super::*;

    fn canary() -> Canary {
        let mut canary = Canary::new(
            "web",
            serde_json::from_value(
                json!({ "targetRef": { "kind": "Deployment", "name": "web" }, "service": { "port": 9898 },
                        "ingressRef": { "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web" } }),
            )
            .expect("spec"),
        );
        canary.metadata.namespace = Some("shop".into());
        canary
    }

    /// The builtin queries against a real Prometheus scraping the traffic source.
    #[tokio::test(flavor = "multi_thread")]
    async fn builtin_metrics_measure_the_targets_pods() {
        let traffic = TrafficSource::start().await.expect("traffic source");
        traffic.set(
            "shop",
            "web",
            Behaviour {
                requests_per_second: 40.0,
                error_ratio: 0.25,
                latency_seconds: 0.3,
            },
        );
        traffic.set("shop", "web-primary", Behaviour::healthy());
        let target = traffic.scrape_target();
        let server = PrometheusServer::start(&[target], Duration::from_millis(500))
            .await
            .expect("prometheus");
        let client = Client::try_from(Config::new("http://127.0.0.1:1".parse().expect("url"))).expect("client");
        let http = HttpClients::new().expect("http clients");
        let environment = ProviderEnvironment::from_variables(BTreeMap::new());
        let canary = canary();
        let context = MetricContext {
            client: &client,
            canary: &canary,
            namespace: "shop",
            provider: Provider::Kubernetes,
            metrics_server: server.url(),
            http: &http,
            environment: &environment,
            observer: None,
        };
        let success = CanaryMetric {
            name: "request-success-rate".into(),
            interval: Some("10s".into()),
            ..Default::default()
        };
        let mut verdict = check(&context, &success).await;
        for _ in 0..50 {
            if verdict.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            verdict = check(&context, &success).await;
        }
        let verdict = verdict.expect("a success rate");
        assert!(
            verdict.message.starts_with("request-success-rate 75.00"),
            "{}",
            verdict.message
        );
        let duration = CanaryMetric {
            name: "request-duration".into(),
            interval: Some("10s".into()),
            threshold_range: Some(serin_api::canary::ThresholdRange {
                min: None,
                max: Some(200.0),
            }),
            ..Default::default()
        };
        let verdict = check(&context, &duration).await.expect("a p99 latency");
        assert!(
            !verdict.passed,
            "a 300 ms p99 fails a 200 ms maximum: {}",
            verdict.message
        );
        assert!(
            verdict.message.contains("is above the maximum 200"),
            "{}",
            verdict.message
        );

        // Every provider's builtin queries over the series its mesh or ingress reports.
        for provider in [
            Provider::GatewayApiV1,
            Provider::Istio,
            Provider::Linkerd,
            Provider::Osm,
            Provider::SmiV1alpha3,
            Provider::Nginx,
            Provider::Gloo,
            Provider::AppMeshV1beta2,
        ] {
            let context = MetricContext { provider, ..context };
            let verdict = check(&context, &success).await;
            assert!(
                verdict
                    .as_ref()
                    .is_ok_and(|v| v.message.starts_with("request-success-rate 75.00")),
                "{provider:?}: {verdict:?}"
            );
            let verdict = check(&context, &duration).await;
            assert!(
                verdict
                    .as_ref()
                    .is_ok_and(|v| !v.passed && v.message.contains("is above the maximum 200")),
                "{provider:?}: a 300 ms latency fails a 200 ms maximum: {verdict:?}"
            );
        }

        let unknown = CanaryMetric {
            name: "request-success-rate".into(),
            ..Default::default()
        };
        let other_namespace = MetricContext {
            namespace: "elsewhere",
            ..context
        };
        let error = check(&other_namespace, &unknown).await.expect_err("no series there");
        assert_eq!(error.to_string(), "no values found for metric request-success-rate");

        assert!(
            offline_providers(&other_namespace, std::slice::from_ref(&unknown))
                .await
                .is_empty(),
            "the real Prometheus answers vector(1)"
        );
        let nowhere = MetricContext {
            metrics_server: "http://127.0.0.1:1",
            ..other_namespace
        };
        let offline = offline_providers(&nowhere, &[unknown.clone(), duration]).await;
        assert_eq!(offline.len(), 1, "asked once for both metrics: {offline:?}");
        assert!(
            offline[0].starts_with("metric provider prometheus at http://127.0.0.1:1 could not be reached"),
            "{offline:?}"
        );
        let error = check(&nowhere, &unknown).await.expect_err("unreachable");
        assert!(
            error
                .to_string()
                .starts_with("metric request-success-rate: prometheus at http://127.0.0.1:1 could not be reached"),
            "{error}"
        );
    }
}
