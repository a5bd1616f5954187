//! Prometheus instant queries (`GET /api/v1/query`), as Flagger runs them: whitespace collapsed,
//! the last series taken; online when `vector(1)` answers 1.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{MetricProvider, ProviderError, Sample};

const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
const ONLINE_QUERY: &str = "vector(1)";

pub struct Prometheus {
    address: String,
    client: reqwest::Client,
    bearer: Option<String>,
    basic: Option<(String, String)>,
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

impl MetricProvider for Prometheus {
    fn describe(&self) -> String {
        format!("prometheus at {}", self.address)
    }

    fn kind(&self) -> &'static str {
        "prometheus"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(self.instant_query(query))
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let sample = self.instant_query(ONLINE_QUERY).await?;
            if sample.value == 1.0 {
                Ok(())
            } else {
                Err(ProviderError::Malformed {
                    reason: format!("{ONLINE_QUERY} gave {} instead of 1", sample.value),
                })
            }
        })
    }
}

impl Prometheus {
    /// A client for `address`; `credentials` may hold `token`, or `username` and `password`.
    pub fn new(address: String, credentials: &BTreeMap<String, String>, client: reqwest::Client) -> Prometheus {
        let basic = match (credentials.get("username"), credentials.get("password")) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            _ => None,
        };
        Prometheus {
            address: address.trim_end_matches('/').to_string(),
            client,
            bearer: credentials.get("token").cloned(),
            basic,
        }
    }

    /// The value of `query`. When it returns several series the last one is taken, as Flagger's
    /// Prometheus provider does (pkg/metrics/providers/prometheus.go); the count is kept so the
    /// verdict can say so.
    async fn instant_query(&self, query: &str) -> Result<Sample, ProviderError> {
        let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut request = self
            .client
            .get(format!("{}/api/v1/query", self.address))
            .timeout(QUERY_TIMEOUT)
            .query(&[("query", query.as_str())]);
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        } else if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable { reason: e.to_string() })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            let body: String = body.chars().take(300).collect();
            return Err(ProviderError::Http { status, body });
        }
        let malformed = |reason: String| ProviderError::Malformed { reason };
        let parsed: Response = serde_json::from_str(&body).map_err(|e| malformed(e.to_string()))?;
        if parsed.status != "success" {
            return Err(malformed(parsed.error.unwrap_or(parsed.status)));
        }
        let data = parsed.data.ok_or_else(|| malformed("no data".into()))?;
        let (value, series) = match data.result_type.as_str() {
            "vector" => {
                let series = data.result.as_array().cloned().unwrap_or_default();
                match series.last() {
                    None => return Err(ProviderError::NoValues),
                    Some(last) => (last["value"][1].clone(), series.len()),
                }
            }
            "scalar" => (data.result[1].clone(), 1),
            other => {
                return Err(malformed(format!(
                    "result type {other}; the query must return a vector or a scalar"
                )));
            }
        };
        let value: f64 = value
            .as_str()
            .ok_or_else(|| malformed("the sample has no value".into()))?
            .parse()
            .map_err(|_| malformed(format!("{value} is not a number")))?;
        if value.is_nan() {
            return Err(ProviderError::NotANumber);
        }
        Ok(Sample {
            value,
            series,
            picked: "last",
        })
    }
}
