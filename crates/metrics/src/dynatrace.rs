//! Dynatrace (`type: dynatrace`), as Flagger's dynatrace.go queries it: `GET
//! <address>/api/v2/metrics/query` with `Authorization: Api-Token <dynatrace_token>`, the query
//! as the `metricSelector`, `resolution=Inf` over the last ten metric intervals (`from` and
//! `to` in Unix milliseconds); the value is the first value of the last series of the first
//! result. Online when `GET <address>/api/v2/metrics?pageSize=1` answers 200. The address (the
//! environment's URL, e.g. `https://abc123.live.dynatrace.com`) is required.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{MetricProvider, ProviderError, Sample};
use crate::rest;

const TOKEN: &str = "dynatrace_token";
/// Flagger's query window: ten metric intervals back from now.
const WINDOW_INTERVALS: u32 = 10;
/// Flagger's timeout for each call.
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Dynatrace {
    address: String,
    client: reqwest::Client,
    authorization: String,
    window: Duration,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    result: Vec<MetricResult>,
}

#[derive(Deserialize)]
struct MetricResult {
    #[serde(default)]
    data: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    /// Dynatrace answers `null` for a timeslot without data.
    #[serde(default)]
    values: Vec<Option<f64>>,
}

impl Dynatrace {
    /// A client for the environment at `address` with the Secret's token, querying over ten
    /// `metric_interval`s; an error says what is missing.
    pub fn new(
        address: Option<&str>,
        credentials: &BTreeMap<String, String>,
        client: reqwest::Client,
        metric_interval: Duration,
    ) -> Result<Dynatrace, String> {
        let address = address.ok_or("dynatrace needs the environment's URL in the template's address")?;
        let token = rest::required_key(credentials, TOKEN, &format!("dynatrace needs {TOKEN}"))?;
        Ok(Dynatrace {
            address: address.trim_end_matches('/').to_string(),
            client,
            authorization: format!("Api-Token {token}"),
            window: metric_interval.saturating_mul(WINDOW_INTERVALS),
        })
    }
}

impl MetricProvider for Dynatrace {
    fn describe(&self) -> String {
        format!("dynatrace at {}", self.address)
    }

    fn kind(&self) -> &'static str {
        "dynatrace"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let from = now.saturating_sub(self.window.as_millis());
            let url = format!("{}/api/v2/metrics/query", self.address);
            let body = rest::call(
                || {
                    self.client
                        .get(&url)
                        .header("Authorization", &self.authorization)
                        .query(&[
                            ("metricSelector", query.to_string()),
                            ("resolution", "Inf".to_string()),
                            ("from", from.to_string()),
                            ("to", now.to_string()),
                        ])
                },
                TIMEOUT,
            )
            .await?;
            let parsed: Response = crate::parse_json(&body)?;
            let first = parsed.result.into_iter().next().ok_or(ProviderError::NoValues)?;
            let series = first.data.len();
            let last = first.data.into_iter().next_back().ok_or(ProviderError::NoValues)?;
            let value = last.values.first().copied().flatten().ok_or(ProviderError::NoValues)?;
            Sample::of(value, series, "last")
        })
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let url = format!("{}/api/v2/metrics", self.address);
            rest::call(
                || {
                    self.client
                        .get(&url)
                        .header("Authorization", &self.authorization)
                        .query(&[("pageSize", "1")])
                },
                TIMEOUT,
            )
            .await
            .map(|_| ())
        })
    }
}
