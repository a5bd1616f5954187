//! The Datadog provider against a loopback server that speaks Datadog's documented metrics API
//! (`GET /api/v1/query`, `GET /api/v1/validate`, the `DD-API-KEY` and `DD-APPLICATION-KEY`
//! headers, 403 for wrong keys, 429 with `Retry-After`): Datadog itself cannot be reached here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderError, ProviderSettings, provider_for};
use serin_testenv::datadog::{API_KEY, APPLICATION_KEY, DatadogApi};

async fn datadog() -> DatadogApi {
    DatadogApi::start().await.expect("the datadog fake")
}

fn provider(address: &str, api_key: &str) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    let credentials = BTreeMap::from([
        ("datadog_api_key".to_string(), format!("{api_key}\n")),
        ("datadog_application_key".to_string(), APPLICATION_KEY.to_string()),
    ]);
    let client = reqwest::Client::new();
    provider_for(
        MetricProviderType::Datadog,
        &ProviderSettings {
            address: Some(address),
            metrics_server: "http://prometheus.invalid:9090",
            secret: Some("keys"),
            credentials: &credentials,
            headers: None,
            client: &client,
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(60),
            region: None,
            environment: &serin_metrics::ProviderEnvironment::from_variables(BTreeMap::new()),
            cluster: None,
        },
    )
}

#[tokio::test]
async fn datadog_queries_are_answered_as_flagger_reads_them() {
    let fake = datadog().await;
    let address = fake.url();
    let datadog = provider(address, API_KEY).expect("a datadog provider");
    assert_eq!(datadog.describe(), format!("datadog at {address}"));
    datadog.is_online().await.expect("the keys are valid");

    let sample = datadog.query("sum:requests.errors{*}").await.expect("a value");
    assert_eq!(
        (sample.value, sample.series, sample.picked),
        (1.5, 2, "first"),
        "the first point of the first series"
    );
    let seen = fake.seen().last().cloned().expect("a query");
    let (from, to): (u64, u64) = (seen["from"].parse().expect("from"), seen["to"].parse().expect("to"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    assert_eq!(to - from, 600, "ten metric intervals");
    assert!(now.abs_diff(to) <= 5, "up to now");

    assert!(matches!(
        datadog.query("sum:nothing{*}").await,
        Err(ProviderError::NoValues)
    ));
    assert!(matches!(
        datadog.query("sum:gaps{*}").await,
        Err(ProviderError::NoValues)
    ));
}

#[tokio::test]
async fn datadog_failures_are_each_told_apart() {
    let fake = datadog().await;
    let address = fake.url();
    let wrong = provider(address, "api-key-2").expect("a provider");
    let refused = wrong.query("sum:x{*}").await;
    assert!(
        matches!(refused, Err(ProviderError::Refused { status: 403, .. })),
        "{refused:?}"
    );
    assert!(
        refused
            .map_err(|e| e.to_string())
            .expect_err("refused")
            .contains("check the secretRef's keys")
    );
    assert!(matches!(wrong.is_online().await, Err(ProviderError::Refused { .. })));

    let datadog = provider(address, API_KEY).expect("a provider");
    // A short Retry-After is waited out once; a long one fails the check, saying so.
    fake.queue(429, Some(1), json!({ "errors": ["Rate limit exceeded"] }));
    let started = Instant::now();
    let sample = datadog.query("sum:x{*}").await.expect("answered after the retry");
    assert_eq!(sample.value, serin_testenv::datadog::DEFAULT_VALUE);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    fake.queue(429, Some(60), json!({ "errors": ["Rate limit exceeded"] }));
    let limited = datadog.query("sum:x{*}").await;
    assert!(
        matches!(limited, Err(ProviderError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(60)),
        "{limited:?}"
    );
    fake.queue(400, None, json!({ "errors": ["Error parsing query"] }));
    let bad = datadog.query("sum:x{*").await;
    assert!(matches!(bad, Err(ProviderError::Http { status: 400, .. })), "{bad:?}");

    let unreachable = provider("http://127.0.0.1:9", API_KEY).expect("a provider");
    assert!(matches!(
        unreachable.query("sum:x{*}").await,
        Err(ProviderError::Unreachable { .. })
    ));

    let missing = provider_for(
        MetricProviderType::Datadog,
        &ProviderSettings {
            address: None,
            metrics_server: "http://prometheus.invalid:9090",
            secret: Some("keys"),
            credentials: &BTreeMap::from([("datadog_api_key".to_string(), "k".to_string())]),
            headers: None,
            client: &reqwest::Client::new(),
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(60),
            region: None,
            environment: &serin_metrics::ProviderEnvironment::from_variables(BTreeMap::new()),
            cluster: None,
        },
    );
    assert_eq!(
        missing.err().as_deref(),
        Some(
            "the secretRef's Secret has no datadog_application_key: datadog needs datadog_api_key and datadog_application_key"
        )
    );
}
