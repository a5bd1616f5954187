//! New Relic (`type: newrelic`), as Flagger's newrelic.go queries it: NRQL through the Insights
//! query API, `GET <address>/v1/accounts/<newrelic_account_id>/query?nrql=<query> SINCE <n>
//! seconds ago` (n: the metric's interval) with the `X-Query-Key` header (the Secret's
//! `newrelic_query_key`); the value is the one result, which must not be null. Online when
//! `SELECT * FROM Metric` is answered. The address defaults to
//! `https://insights-api.newrelic.com`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{MetricProvider, ProviderError, Sample};
use crate::rest;

pub const DEFAULT_ADDRESS: &str = "https://insights-api.newrelic.com";
const ACCOUNT_ID: &str = "newrelic_account_id";
const QUERY_KEY: &str = "newrelic_query_key";
/// Flagger's timeout for each call.
const TIMEOUT: Duration = Duration::from_secs(5);
const ONLINE_QUERY: &str = "SELECT * FROM Metric";

pub struct NewRelic {
    address: String,
    endpoint: String,
    client: reqwest::Client,
    query_key: String,
    since_seconds: u64,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    results: Vec<QueryResult>,
}

#[derive(Deserialize)]
struct QueryResult {
    #[serde(default)]
    result: Option<f64>,
}

impl NewRelic {
    /// A client for the account in `credentials`, querying since one `metric_interval` ago; an
    /// error names a missing key.
    pub fn new(
        address: Option<&str>,
        credentials: &BTreeMap<String, String>,
        client: reqwest::Client,
        metric_interval: Duration,
    ) -> Result<NewRelic, String> {
        let needs = format!("newrelic needs {ACCOUNT_ID} and {QUERY_KEY}");
        let account = rest::required_key(credentials, ACCOUNT_ID, &needs)?;
        let address = address.unwrap_or(DEFAULT_ADDRESS).trim_end_matches('/').to_string();
        Ok(NewRelic {
            endpoint: format!("{address}/v1/accounts/{account}/query"),
            address,
            client,
            query_key: rest::required_key(credentials, QUERY_KEY, &needs)?,
            since_seconds: metric_interval.as_secs(),
        })
    }

    async fn run(&self, nrql: &str) -> Result<Response, ProviderError> {
        let nrql = format!("{nrql} SINCE {} seconds ago", self.since_seconds);
        let body = rest::call(
            || {
                self.client
                    .get(&self.endpoint)
                    .header("X-Query-Key", &self.query_key)
                    .query(&[("nrql", nrql.as_str())])
            },
            TIMEOUT,
        )
        .await?;
        crate::parse_json(&body)
    }
}

impl MetricProvider for NewRelic {
    fn describe(&self) -> String {
        format!("newrelic at {}", self.address)
    }

    fn kind(&self) -> &'static str {
        "newrelic"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move {
            let response = self.run(query).await?;
            // Flagger wants exactly one result: a query with FACET or several functions has no
            // single value to judge.
            match response.results.as_slice() {
                [] => Err(ProviderError::NoValues),
                [only] => Sample::of(only.result.ok_or(ProviderError::NoValues)?, 1, "only"),
                several => Err(ProviderError::Malformed {
                    reason: format!(
                        "{} results where one is needed: select a single value (no FACET, one function)",
                        several.len()
                    ),
                }),
            }
        })
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move { self.run(ONLINE_QUERY).await.map(|_| ()) })
    }
}
