//! Datadog (`type: datadog`), as Flagger's datadog.go queries it: `GET <address>/api/v1/query`
//! with the `DD-API-KEY` and `DD-APPLICATION-KEY` headers (the Secret's `datadog_api_key` and
//! `datadog_application_key`), over the last ten metric intervals (`from` and `to` in Unix
//! seconds); the value is the first point of the first series, the oldest and so complete
//! bucket. Online when `GET <address>/api/v1/validate` answers 200. The address defaults to
//! `https://api.datadoghq.com` (another Datadog site in `address`, e.g.
//! `https://api.datadoghq.eu`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{MetricProvider, ProviderError, Sample};
use crate::rest;

pub const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";
const API_KEY: &str = "datadog_api_key";
const APPLICATION_KEY: &str = "datadog_application_key";
/// Flagger's query window: ten metric intervals back from now.
const WINDOW_INTERVALS: u64 = 10;
/// Flagger's timeout for each call.
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Datadog {
    address: String,
    client: reqwest::Client,
    api_key: String,
    application_key: String,
    window: Duration,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    series: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    pointlist: Vec<Vec<Option<f64>>>,
}

impl Datadog {
    /// A client for `address` with the keys from the Secret's `credentials`, querying over ten
    /// `metric_interval`s; an error names a missing key.
    pub fn new(
        address: Option<&str>,
        credentials: &BTreeMap<String, String>,
        client: reqwest::Client,
        metric_interval: Duration,
    ) -> Result<Datadog, String> {
        let needs = format!("datadog needs {API_KEY} and {APPLICATION_KEY}");
        let key = |name: &str| rest::required_key(credentials, name, &needs);
        Ok(Datadog {
            address: address.unwrap_or(DEFAULT_ADDRESS).trim_end_matches('/').to_string(),
            client,
            api_key: key(API_KEY)?,
            application_key: key(APPLICATION_KEY)?,
            window: metric_interval.saturating_mul(u32::try_from(WINDOW_INTERVALS).unwrap_or(u32::MAX)),
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header("DD-API-KEY", &self.api_key)
            .header("DD-APPLICATION-KEY", &self.application_key)
    }
}

impl MetricProvider for Datadog {
    fn describe(&self) -> String {
        format!("datadog at {}", self.address)
    }

    fn kind(&self) -> &'static str {
        "datadog"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let from = now.saturating_sub(self.window.as_secs());
            let url = format!("{}/api/v1/query", self.address);
            let body = rest::call(
                || {
                    self.authorized(self.client.get(&url)).query(&[
                        ("query", query.to_string()),
                        ("from", from.to_string()),
                        ("to", now.to_string()),
                    ])
                },
                TIMEOUT,
            )
            .await?;
            let parsed: Response = crate::parse_json(&body)?;
            let series = parsed.series.len();
            let first = parsed.series.into_iter().next().ok_or(ProviderError::NoValues)?;
            let point = first.pointlist.into_iter().next().ok_or(ProviderError::NoValues)?;
            let value = point.get(1).copied().flatten().ok_or(ProviderError::NoValues)?;
            Sample::of(value, series, "first")
        })
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let url = format!("{}/api/v1/validate", self.address);
            rest::call(|| self.authorized(self.client.get(&url)), TIMEOUT)
                .await
                .map(|_| ())
        })
    }
}
