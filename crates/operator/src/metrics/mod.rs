//! Metric checks: a Canary's `analysis.metrics`, each a builtin query of the traffic provider or
//! a MetricTemplate's query, run against its provider and judged by serin-core.

mod builtin;
mod prometheus;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serin_api::canary::{CanaryMetric, Provider};
use serin_api::metric_template::MetricProviderType;
use serin_api::{Canary, MetricTemplate};
use serin_core::checks::{self, Verdict};
use serin_core::query_template::{self, TemplateError, TemplateValues};

use crate::http::HttpClients;
use prometheus::Prometheus;

#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    #[error("no values found for metric {metric}")]
    NoValues { metric: String },
    #[error("metric {metric}: the query returned NaN (no traffic in the window?)")]
    NotANumber { metric: String },
    #[error("metric {metric}: Prometheus at {address} answered {status}: {body}")]
    Http {
        metric: String,
        address: String,
        status: u16,
        body: String,
    },
    #[error("metric {metric}: could not reach Prometheus at {address}: {reason}")]
    Unreachable {
        metric: String,
        address: String,
        reason: String,
    },
    #[error("metric {metric}: unexpected answer from Prometheus: {reason}")]
    Malformed { metric: String, reason: String },
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
    #[error("metric {metric}: provider type {provider} is not supported by this serin version (prometheus is)")]
    UnsupportedProvider { metric: String, provider: String },
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

/// Where builtin metrics are queried and which provider's series they read.
pub struct MetricContext<'a> {
    pub client: &'a Client,
    pub canary: &'a Canary,
    pub namespace: &'a str,
    pub provider: Provider,
    /// `spec.metricsServer` or the operator's `-metrics-server`.
    pub metrics_server: &'a str,
    pub http: &'a HttpClients,
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
    let template_error = |e: TemplateError| MetricError::Template {
        metric: metric.name.clone(),
        reason: e.to_string(),
    };

    let (prometheus, query, scale) = if let Some(reference) = &metric.template_ref {
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
        let provider = &template.spec.provider;
        if provider.type_ != MetricProviderType::Prometheus {
            return Err(MetricError::UnsupportedProvider {
                metric: metric.name.clone(),
                provider: format!("{:?}", provider.type_).to_lowercase(),
            });
        }
        let address = provider
            .address
            .clone()
            .unwrap_or_else(|| context.metrics_server.to_string());
        let credentials = match &provider.secret_ref {
            Some(secret) => credentials(context.client, namespace, &secret.name, &metric.name).await?,
            None => BTreeMap::new(),
        };
        let prometheus = Prometheus::new(
            address,
            &credentials,
            context.http.get(provider.insecure_skip_verify != Some(true)),
        );
        (
            prometheus,
            query_template::render(&template.spec.query, &values).map_err(template_error)?,
            1.0,
        )
    } else if let Some(query) = &metric.query {
        let prometheus = Prometheus::new(
            context.metrics_server.to_string(),
            &BTreeMap::new(),
            context.http.get(true),
        );
        (
            prometheus,
            query_template::render(query, &values).map_err(template_error)?,
            1.0,
        )
    } else {
        let builtin = builtin::query(context.provider, &metric.name).ok_or_else(|| MetricError::NoBuiltin {
            metric: metric.name.clone(),
            provider: format!("{:?}", context.provider),
        })?;
        let prometheus = Prometheus::new(
            context.metrics_server.to_string(),
            &BTreeMap::new(),
            context.http.get(true),
        );
        (
            prometheus,
            query_template::render(builtin.query, &values).map_err(template_error)?,
            builtin.scale,
        )
    };
    let sample = prometheus.query(&metric.name, &query).await?;
    let mut verdict = checks::judge(&metric.name, sample.value * scale, &checks::range(metric));
    if sample.series > 1 {
        verdict.message.push_str(&format!(
            " (the query returned {} series; the last one was used, as Flagger does: aggregate the query to one series)",
            sample.series
        ));
    }
    Ok(verdict)
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
                json!({ "targetRef": { "kind": "Deployment", "name": "web" }, "service": { "port": 80 } }),
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
        let canary = canary();
        let context = MetricContext {
            client: &client,
            canary: &canary,
            namespace: "shop",
            provider: Provider::Kubernetes,
            metrics_server: server.url(),
            http: &http,
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
    }
}
