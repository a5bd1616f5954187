//! The Datadog provider against a loopback server that speaks Datadog's documented metrics API
//! (`GET /api/v1/query`, `GET /api/v1/validate`, the `DD-API-KEY` and `DD-APPLICATION-KEY`
//! headers, 403 for wrong keys, 429 with `Retry-After`): Datadog itself cannot be reached here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderError, ProviderSettings, provider_for};

#[derive(Default)]
struct Fake {
    /// Answers to the next queries, in order; then the series below.
    queued: Vec<(StatusCode, Option<u64>, serde_json::Value)>,
    /// The query parameters of each query.
    seen: Vec<BTreeMap<String, String>>,
}

type Shared = Arc<Mutex<Fake>>;

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("dd-api-key").and_then(|v| v.to_str().ok()) == Some("api-key-1")
        && headers.get("dd-application-key").and_then(|v| v.to_str().ok()) == Some("app-key-1")
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, axum::Json(json!({ "errors": ["Forbidden"] }))).into_response()
}

async fn query(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return forbidden();
    }
    let mut fake = fake.lock().expect("fake");
    fake.seen.push(params.clone());
    if !fake.queued.is_empty() {
        let (status, retry_after, body) = fake.queued.remove(0);
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert("retry-after", seconds.into());
        }
        return response;
    }
    let series = match params.get("query").map(String::as_str) {
        Some("sum:requests.errors{*}") => json!([
            { "metric": "requests.errors", "pointlist": [[1.0e12, 1.5], [1.00006e12, 9.0]] },
            { "metric": "requests.errors", "pointlist": [[1.0e12, 7.0]] }
        ]),
        Some("sum:nothing{*}") => json!([]),
        Some("sum:gaps{*}") => json!([{ "pointlist": [[1.0e12, null]] }]),
        _ => json!([{ "pointlist": [[1.0e12, 42.0]] }]),
    };
    axum::Json(json!({ "status": "ok", "res_type": "time_series", "series": series })).into_response()
}

async fn validate(headers: HeaderMap) -> Response {
    if authorized(&headers) {
        axum::Json(json!({ "valid": true })).into_response()
    } else {
        forbidden()
    }
}

async fn datadog() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v1/query", get(query))
        .route("/api/v1/validate", get(validate))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, fake)
}

fn provider(address: &str, api_key: &str) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    let credentials = BTreeMap::from([
        ("datadog_api_key".to_string(), format!("{api_key}\n")),
        ("datadog_application_key".to_string(), "app-key-1".to_string()),
    ]);
    let client = reqwest::Client::new();
    provider_for(
        MetricProviderType::Datadog,
        &ProviderSettings {
            address: Some(address),
            metrics_server: "http://prometheus.invalid:9090",
            credentials: &credentials,
            client: &client,
            metric_interval: Duration::from_secs(60),
        },
    )
}

#[tokio::test]
async fn datadog_queries_are_answered_as_flagger_reads_them() {
    let (address, fake) = datadog().await;
    let datadog = provider(&address, "api-key-1").expect("a datadog provider");
    assert_eq!(datadog.describe(), format!("datadog at {address}"));
    datadog.is_online().await.expect("the keys are valid");

    let sample = datadog.query("sum:requests.errors{*}").await.expect("a value");
    assert_eq!(
        (sample.value, sample.series, sample.picked),
        (1.5, 2, "first"),
        "the first point of the first series"
    );
    let seen = fake.lock().expect("fake").seen.last().cloned().expect("a query");
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
    let (address, fake) = datadog().await;
    let wrong = provider(&address, "api-key-2").expect("a provider");
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

    let datadog = provider(&address, "api-key-1").expect("a provider");
    // A short Retry-After is waited out once; a long one fails the check, saying so.
    fake.lock().expect("fake").queued.push((
        StatusCode::TOO_MANY_REQUESTS,
        Some(1),
        json!({ "errors": ["Rate limit exceeded"] }),
    ));
    let started = Instant::now();
    let sample = datadog.query("sum:x{*}").await.expect("answered after the retry");
    assert_eq!(sample.value, 42.0);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    fake.lock().expect("fake").queued.push((
        StatusCode::TOO_MANY_REQUESTS,
        Some(60),
        json!({ "errors": ["Rate limit exceeded"] }),
    ));
    let limited = datadog.query("sum:x{*}").await;
    assert!(
        matches!(limited, Err(ProviderError::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(60)),
        "{limited:?}"
    );
    fake.lock().expect("fake").queued.push((
        StatusCode::BAD_REQUEST,
        None,
        json!({ "errors": ["Error parsing query"] }),
    ));
    let bad = datadog.query("sum:x{*").await;
    assert!(matches!(bad, Err(ProviderError::Http { status: 400, .. })), "{bad:?}");

    let unreachable = provider("http://127.0.0.1:9", "api-key-1").expect("a provider");
    assert!(matches!(
        unreachable.query("sum:x{*}").await,
        Err(ProviderError::Unreachable { .. })
    ));

    let missing = provider_for(
        MetricProviderType::Datadog,
        &ProviderSettings {
            address: None,
            metrics_server: "http://prometheus.invalid:9090",
            credentials: &BTreeMap::from([("datadog_api_key".to_string(), "k".to_string())]),
            client: &reqwest::Client::new(),
            metric_interval: Duration::from_secs(60),
        },
    );
    assert_eq!(
        missing.err().as_deref(),
        Some(
            "the secretRef's Secret has no datadog_application_key: datadog needs datadog_api_key and datadog_application_key"
        )
    );
}
