//! Prometheus instant queries (`GET <address>/api/v1/query`), as Flagger's prometheus.go runs
//! them: whitespace collapsed, the last series taken; online when `vector(1)` answers 1. The
//! address may carry a path prefix (Thanos, Cortex and Mimir serve the API under one, e.g.
//! `http://mimir/prometheus`). The template's `headers` go with every query (e.g. Mimir's
//! `X-Scope-OrgID`); the `secretRef` holds `token` (bearer) or `username` and `password`
//! (basic), and may hold `ca.crt`, a CA to trust beside the system's (serin's addition).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::{MetricProvider, ProviderError, ProviderSettings, Sample};
use crate::rest;

const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
const ONLINE_QUERY: &str = "vector(1)";

pub struct Prometheus {
    address: String,
    client: reqwest::Client,
    headers: HeaderMap,
    authorization: Authorization,
}

enum Authorization {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

const TOKEN: &str = "token";
const USERNAME: &str = "username";
const PASSWORD: &str = "password";
/// A PEM CA bundle in the Secret, trusted for the address's certificate.
pub const CA: &str = "ca.crt";

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
    /// A client for the template's address (or the operator's metrics server); an error says what
    /// in the Secret or the headers cannot be used.
    pub fn new(settings: &ProviderSettings<'_>) -> Result<Prometheus, String> {
        let address = settings.address.unwrap_or(settings.metrics_server);
        let url = reqwest::Url::parse(address)
            .map_err(|e| format!("prometheus address {address:?} is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("prometheus address {address:?} is not an http or https URL"));
        }
        let credentials = settings.credentials;
        let authorization = match settings.secret {
            None => Authorization::None,
            Some(_) => authorization(credentials)?,
        };
        let client = match credentials.get(CA).filter(|_| settings.secret.is_some()) {
            Some(pem) => client_trusting(pem, settings.insecure_skip_verify)?,
            None => settings.client.clone(),
        };
        Ok(Prometheus {
            address: address.trim_end_matches('/').to_string(),
            client,
            headers: headers(settings.headers)?,
            authorization,
        })
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
            .headers(self.headers.clone())
            .query(&[("query", query.as_str())]);
        request = match &self.authorization {
            Authorization::None => request,
            Authorization::Bearer(token) => request.bearer_auth(token),
            Authorization::Basic { user, password } => request.basic_auth(user, Some(password)),
        };
        let response = request.send().await.map_err(|e| rest::send_error(&e, QUERY_TIMEOUT))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            let body: String = body.chars().take(300).collect();
            return Err(match status {
                401 | 403 => ProviderError::Refused { status, body },
                _ => ProviderError::Http { status, body },
            });
        }
        let malformed = |reason: String| ProviderError::Malformed { reason };
        let parsed: Response = crate::parse_json(&body)?;
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
        let value = value
            .as_str()
            .ok_or_else(|| malformed("the sample has no value".into()))?;
        Sample::of(crate::parse_value(value)?, series, "last")
    }
}

/// As Flagger: a `token` is sent as a bearer token; without one, both `username` and `password`
/// are needed. A Secret with only `ca.crt` authenticates nothing.
fn authorization(credentials: &BTreeMap<String, String>) -> Result<Authorization, String> {
    if let Some(token) = credentials.get(TOKEN) {
        return Ok(Authorization::Bearer(token.trim().to_string()));
    }
    match (credentials.get(USERNAME), credentials.get(PASSWORD)) {
        (Some(user), Some(password)) => Ok(Authorization::Basic {
            user: user.trim().to_string(),
            password: password.trim().to_string(),
        }),
        (None, None) if credentials.contains_key(CA) => Ok(Authorization::None),
        (user, _) => Err(format!(
            "the secretRef's Secret has no {}: prometheus needs {TOKEN}, or {USERNAME} and {PASSWORD} (and may have {CA})",
            if user.is_none() { USERNAME } else { PASSWORD }
        )),
    }
}

fn headers(configured: Option<&BTreeMap<String, Vec<String>>>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, values) in configured.into_iter().flatten() {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header {name:?} is not a valid header name"))?;
        for value in values {
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
            headers.append(header.clone(), value);
        }
    }
    Ok(headers)
}

fn client_trusting(pem: &str, insecure_skip_verify: bool) -> Result<reqwest::Client, String> {
    let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| format!("the secretRef's {CA} is not a PEM certificate: {e}"))?;
    if certificates.is_empty() {
        return Err(format!("the secretRef's {CA} holds no PEM certificate"));
    }
    certificates
        .into_iter()
        .fold(reqwest::Client::builder(), reqwest::ClientBuilder::add_root_certificate)
        .tls_danger_accept_invalid_certs(insecure_skip_verify)
        .build()
        .map_err(|e| format!("a client trusting the secretRef's {CA} cannot be built: {e}"))
}
