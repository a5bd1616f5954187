//! Prometheus instant queries (`GET /api/v1/query`), as Flagger runs them: whitespace collapsed,
//! exactly one series expected.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::MetricError;

const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Prometheus<'a> {
    address: String,
    client: &'a reqwest::Client,
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

impl<'a> Prometheus<'a> {
    /// A client for `address`; `credentials` may hold `token`, or `username` and `password`.
    pub fn new(address: String, credentials: &BTreeMap<String, String>, client: &'a reqwest::Client) -> Prometheus<'a> {
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
    pub async fn query(&self, metric: &str, query: &str) -> Result<Sample, MetricError> {
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
        let response = request.send().await.map_err(|e| MetricError::Unreachable {
            metric: metric.to_string(),
            address: self.address.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            let body: String = body.chars().take(300).collect();
            return Err(MetricError::Http {
                metric: metric.to_string(),
                address: self.address.clone(),
                status,
                body,
            });
        }
        let malformed = |reason: String| MetricError::Malformed {
            metric: metric.to_string(),
            reason,
        };
        let parsed: Response = serde_json::from_str(&body).map_err(|e| malformed(e.to_string()))?;
        if parsed.status != "success" {
            return Err(malformed(parsed.error.unwrap_or(parsed.status)));
        }
        let data = parsed.data.ok_or_else(|| malformed("no data".into()))?;
        let (value, series) = match data.result_type.as_str() {
            "vector" => {
                let series = data.result.as_array().cloned().unwrap_or_default();
                match series.last() {
                    None => {
                        return Err(MetricError::NoValues {
                            metric: metric.to_string(),
                        });
                    }
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
            return Err(MetricError::NotANumber {
                metric: metric.to_string(),
            });
        }
        Ok(Sample { value, series })
    }
}

/// A query's value and how many series it returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub series: usize,
}
