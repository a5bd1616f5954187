//! Kubernetes external metrics (`type: externalmetrics`), as Flagger's externalmetrics.go reads
//! them: the query is `[<namespace>/]<metric>[?labelSelector=<selector>]` (namespace `default`
//! when left out), listed from `external.metrics.k8s.io/v1beta1`; the value is the first item's
//! quantity. Through the cluster's API server (an adapter such as KEDA's or Datadog's
//! registered as an APIService), or, when the template has an `address`, straight from that
//! adapter with the Secret's `token` as bearer token (and `insecureSkipVerify`). Online when
//! `kube-system/dummy-metric` is answered (with or without items), as Flagger asks.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{MetricProvider, ProviderError, ProviderSettings, Sample};
use crate::rest;

const API: &str = "/apis/external.metrics.k8s.io/v1beta1";
const TOKEN: &str = "token";
/// Flagger's timeout.
const TIMEOUT: Duration = Duration::from_secs(5);
const FORMAT: &str = "the query must be [<namespace>/]<metric>[?labelSelector=<selector>]";

pub struct ExternalMetrics {
    source: Source,
}

enum Source {
    /// The cluster's API server.
    Cluster(kube::Client),
    /// An adapter at this address.
    Adapter {
        address: String,
        client: reqwest::Client,
        token: Option<String>,
    },
}

#[derive(Deserialize)]
struct ExternalMetricValueList {
    #[serde(default)]
    items: Vec<ExternalMetricValue>,
}

#[derive(Deserialize)]
struct ExternalMetricValue {
    value: String,
}

impl ExternalMetrics {
    pub fn new(settings: &ProviderSettings<'_>) -> Result<ExternalMetrics, String> {
        let source = match (settings.address, settings.cluster) {
            (Some(address), _) => Source::Adapter {
                address: address.trim_end_matches('/').to_string(),
                client: settings.client.clone(),
                token: settings.credentials.get(TOKEN).map(|t| t.trim().to_string()),
            },
            (None, Some(cluster)) => Source::Cluster(cluster.clone()),
            (None, None) => return Err("externalmetrics needs the template's address or the cluster's API".into()),
        };
        Ok(ExternalMetrics { source })
    }

    async fn list(&self, namespace: &str, metric: &str, selector: Option<&str>) -> Result<String, ProviderError> {
        let mut path = format!("{API}/namespaces/{namespace}/{metric}");
        if let Some(selector) = selector {
            let encoded: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("labelSelector", selector)
                .finish();
            path = format!("{path}?{encoded}");
        }
        match &self.source {
            Source::Adapter { address, client, token } => {
                rest::call(
                    || {
                        let request = client.get(format!("{address}{path}"));
                        match token {
                            Some(token) => request.bearer_auth(token),
                            None => request,
                        }
                    },
                    TIMEOUT,
                )
                .await
            }
            Source::Cluster(client) => {
                let request = http::Request::get(&path)
                    .body(Vec::new())
                    .map_err(|e| ProviderError::Malformed { reason: e.to_string() })?;
                match tokio::time::timeout(TIMEOUT, client.request_text(request)).await {
                    Err(_) => Err(ProviderError::Timeout { after: TIMEOUT }),
                    Ok(Ok(body)) => Ok(body),
                    Ok(Err(kube::Error::Api(status))) if status.code == 404 => Err(ProviderError::Http {
                        status: 404,
                        body: format!(
                            "the API server does not serve external.metrics.k8s.io/v1beta1 (is a metrics adapter installed?): {}",
                            status.message
                        ),
                    }),
                    Ok(Err(kube::Error::Api(status))) if matches!(status.code, 401 | 403) => {
                        Err(ProviderError::Refused {
                            status: status.code,
                            body: status.message.clone(),
                        })
                    }
                    Ok(Err(kube::Error::Api(status))) => Err(ProviderError::Http {
                        status: status.code,
                        body: status.message.clone(),
                    }),
                    Ok(Err(error)) => Err(ProviderError::Unreachable {
                        reason: error.to_string(),
                    }),
                }
            }
        }
    }
}

/// Flagger's query format: namespace, metric and label selector.
fn parse(query: &str) -> Result<(String, String, Option<String>), ProviderError> {
    let malformed = |reason: String| ProviderError::Malformed { reason };
    let url =
        reqwest::Url::parse(&format!("dummy:///{}", query.trim())).map_err(|e| malformed(format!("{FORMAT}: {e}")))?;
    let parts: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
    let (namespace, metric) = match parts[..] {
        [metric] => ("default", metric),
        ["", metric] => ("default", metric),
        [namespace, metric] => (namespace, metric),
        _ => return Err(malformed(format!("{FORMAT}: too many slashes in {query:?}"))),
    };
    if metric.is_empty() {
        return Err(malformed(format!("{FORMAT}: the metric name is empty")));
    }
    let selector = url
        .query_pairs()
        .find(|(name, _)| name == "labelSelector")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty());
    Ok((namespace.to_string(), metric.to_string(), selector))
}

/// A Kubernetes quantity (`1500m`, `2k`, `3Gi`, `1e3`) as a number.
fn quantity(text: &str) -> Result<f64, ProviderError> {
    const SUFFIXES: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let text = text.trim();
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|number| (number, *factor)))
        .unwrap_or((text, 1.0));
    let value: f64 = number.parse().map_err(|_| ProviderError::Malformed {
        reason: format!("{text} is not a Kubernetes quantity"),
    })?;
    Ok(value * factor)
}

impl MetricProvider for ExternalMetrics {
    fn describe(&self) -> String {
        match &self.source {
            Source::Adapter { address, .. } => format!("externalmetrics at {address}"),
            Source::Cluster(_) => "externalmetrics (the cluster's external.metrics.k8s.io)".into(),
        }
    }

    fn kind(&self) -> &'static str {
        "externalmetrics"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move {
            let (namespace, metric, selector) = parse(query)?;
            let body = self.list(&namespace, &metric, selector.as_deref()).await?;
            let list: ExternalMetricValueList = crate::parse_json(&body)?;
            let first = list.items.first().ok_or(ProviderError::NoValues)?;
            Sample::of(quantity(&first.value)?, list.items.len(), "first")
        })
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move { self.list("kube-system", "dummy-metric", None).await.map(|_| ()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_in_flaggers_format() {
        assert_eq!(
            parse("shop/http_requests?labelSelector=app%3Dweb%2Ctier%21%3Ddb").ok(),
            Some(("shop".into(), "http_requests".into(), Some("app=web,tier!=db".into())))
        );
        assert_eq!(
            parse("queue_depth").ok(),
            Some(("default".into(), "queue_depth".into(), None))
        );
        assert_eq!(
            parse("/queue_depth").ok(),
            Some(("default".into(), "queue_depth".into(), None))
        );
        assert!(parse("a/b/c").is_err());
        assert!(parse("shop/").is_err());
    }

    #[test]
    fn quantities_as_numbers() {
        for (text, value) in [
            ("3", 3.0),
            ("1500m", 1.5),
            ("2k", 2000.0),
            ("1Ki", 1024.0),
            ("250u", 0.00025),
            ("1e3", 1000.0),
            ("1.5", 1.5),
        ] {
            assert_eq!(quantity(text).ok(), Some(value), "{text}");
        }
        assert!(quantity("ten").is_err());
    }
}
