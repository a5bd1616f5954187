//! The New Relic provider against a loopback server that speaks New Relic's documented Insights
//! query API (`GET /v1/accounts/<id>/query?nrql=…` with `X-Query-Key`, 403 for a wrong key, 400
//! for bad NRQL, 429 with `Retry-After`): New Relic itself cannot be reached here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderError, ProviderSettings, provider_for};

/// The NRQL of each query.
type Seen = Arc<Mutex<Vec<String>>>;

async fn query(
    State(seen): State<Seen>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if account != "1234567" || headers.get("x-query-key").and_then(|v| v.to_str().ok()) != Some("NRIQ-key") {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "error": "Invalid query key" })),
        )
            .into_response();
    }
    let nrql = params.get("nrql").cloned().unwrap_or_default();
    seen.lock().expect("seen").push(nrql.clone());
    let results = if nrql.starts_with("SELECT percentage(count(*), WHERE error IS true) FROM Transaction") {
        json!([{ "result": 2.5 }])
    } else if nrql.starts_with("SELECT * FROM Metric") {
        json!([{ "events": [] }])
    } else if nrql.starts_with("SELECT nothing") {
        json!([{ "result": null }])
    } else if nrql.starts_with("SELECT faceted") {
        json!([{ "result": 1.0 }, { "result": 2.0 }])
    } else if nrql.starts_with("SELECT busy") {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({ "error": "Rate limited" })),
        )
            .into_response();
        response.headers_mut().insert("retry-after", 30.into());
        return response;
    } else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "NRQL Syntax Error" })),
        )
            .into_response();
    };
    axum::Json(json!({ "results": results })).into_response()
}

async fn newrelic() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/v1/accounts/{account}/query", get(query))
        .with_state(seen.clone());
    let address = serin_testenv::serve_on_loopback(app).await.expect("a loopback server");
    (address, seen)
}

fn provider(address: &str, credentials: &[(&str, &str)]) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    let credentials: BTreeMap<String, String> = credentials
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    provider_for(
        MetricProviderType::Newrelic,
        &ProviderSettings {
            address: Some(address),
            metrics_server: "http://prometheus.invalid:9090",
            secret: Some("keys"),
            credentials: &credentials,
            headers: None,
            client: &reqwest::Client::new(),
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(60),
            region: None,
            environment: &serin_metrics::ProviderEnvironment::from_variables(BTreeMap::new()),
            cluster: None,
        },
    )
}

#[tokio::test]
async fn newrelic_queries_are_run_as_flagger_runs_them() {
    let (address, seen) = newrelic().await;
    let keys = [("newrelic_account_id", "1234567"), ("newrelic_query_key", "NRIQ-key\n")];
    let newrelic = provider(&address, &keys).expect("a newrelic provider");
    assert_eq!(newrelic.describe(), format!("newrelic at {address}"));
    newrelic.is_online().await.expect("the key is valid");
    let query = "SELECT percentage(count(*), WHERE error IS true) FROM Transaction WHERE appName = 'podinfo'";
    let sample = newrelic.query(query).await.expect("a value");
    assert_eq!(sample.value, 2.5);
    assert_eq!(
        seen.lock().expect("seen").last().map(String::as_str),
        Some(format!("{query} SINCE 60 seconds ago").as_str()),
        "the window is the metric's interval"
    );
    assert!(matches!(
        newrelic.query("SELECT nothing FROM Transaction").await,
        Err(ProviderError::NoValues)
    ));
    let faceted = newrelic.query("SELECT faceted FROM Transaction FACET appName").await;
    assert!(
        faceted
            .as_ref()
            .map_err(|e| e.to_string())
            .err()
            .is_some_and(|m| m.contains("no FACET")),
        "{faceted:?}"
    );
    assert!(matches!(
        newrelic.query("SELECT busy FROM Transaction").await,
        Err(ProviderError::RateLimited { retry_after: Some(_) })
    ));
    assert!(matches!(
        newrelic.query("SELEC typo").await,
        Err(ProviderError::Http { status: 400, .. })
    ));

    let wrong = provider(
        &address,
        &[("newrelic_account_id", "1234567"), ("newrelic_query_key", "other")],
    )
    .expect("a provider");
    assert!(matches!(
        wrong.query(query).await,
        Err(ProviderError::Refused { status: 403, .. })
    ));
    assert!(matches!(wrong.is_online().await, Err(ProviderError::Refused { .. })));
    assert_eq!(
        provider(&address, &[("newrelic_query_key", "NRIQ-key")])
            .err()
            .as_deref(),
        Some(
            "the secretRef's Secret has no newrelic_account_id: newrelic needs newrelic_account_id and newrelic_query_key"
        )
    );
}
