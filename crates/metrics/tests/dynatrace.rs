//! The Dynatrace provider against a loopback server that speaks Dynatrace's documented Metrics
//! API v2 (`GET /api/v2/metrics/query` with `metricSelector`, `resolution`, `from` and `to`;
//! `GET /api/v2/metrics?pageSize=1`; `Authorization: Api-Token`, 401 for a wrong token, 400 for
//! a bad selector, 429 with `Retry-After`): Dynatrace itself cannot be reached here.

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
    /// Answers to the next queries, in order, with a `Retry-After`; then the series below.
    queued: Vec<(StatusCode, Option<u64>)>,
    /// The query parameters of each query.
    seen: Vec<BTreeMap<String, String>>,
}

type Shared = Arc<Mutex<Fake>>;

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "error": { "code": status.as_u16(), "message": message } });
    (status, axum::Json(body)).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Api-Token dt0c01.token-1")
}

async fn query(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Token Authentication failed");
    }
    let mut fake = fake.lock().expect("fake");
    fake.seen.push(params.clone());
    if !fake.queued.is_empty() {
        let (status, retry_after) = fake.queued.remove(0);
        let mut response = error(status, "Too many requests");
        if let Some(seconds) = retry_after {
            response.headers_mut().insert("retry-after", seconds.into());
        }
        return response;
    }
    let series = |dimension: &str, value: serde_json::Value| {
        json!({ "dimensions": [dimension], "dimensionMap": { "dt.entity.service": dimension },
                "timestamps": [1_700_000_000_000u64], "values": [value] })
    };
    let data = match params.get("metricSelector").map(String::as_str) {
        Some("builtin:service.response.time:splitBy(\"dt.entity.service\")") => {
            json!([series("SERVICE-1", json!(250.0)), series("SERVICE-2", json!(310.5))])
        }
        Some("builtin:service.errors.total.rate:avg") => json!([series("SERVICE-1", json!(1.25))]),
        Some("builtin:service.requestCount.total:none") => json!([series("SERVICE-1", json!(null))]),
        Some("builtin:nothing") => json!([]),
        Some("bad selector(") => return error(StatusCode::BAD_REQUEST, "Invalid metric selector"),
        _ => json!([series("SERVICE-1", json!(3.0))]),
    };
    let body = json!({ "totalCount": 1, "nextPageKey": null, "resolution": "Inf",
                       "result": [{ "metricId": params.get("metricSelector"), "data": data }] });
    axum::Json(body).into_response()
}

async fn metrics(headers: HeaderMap, Query(params): Query<BTreeMap<String, String>>) -> Response {
    if !authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "Token Authentication failed");
    }
    assert_eq!(params.get("pageSize").map(String::as_str), Some("1"));
    let body = json!({ "totalCount": 2000, "nextPageKey": "next", "metrics": [{ "metricId": "builtin:apps.other.apdex.osAndGeo" }] });
    axum::Json(body).into_response()
}

async fn dynatrace() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v2/metrics/query", get(query))
        .route("/api/v2/metrics", get(metrics))
        .with_state(fake.clone());
    let address = serin_testenv::serve_on_loopback(app).await.expect("a loopback server");
    (address, fake)
}

fn provider(address: Option<&str>, credentials: &[(&str, &str)]) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    let credentials = credentials
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    provider_for(
        MetricProviderType::Dynatrace,
        &ProviderSettings {
            address,
            metrics_server: "http://prometheus.invalid:9090",
            secret: Some("dynatrace"),
            credentials: &credentials,
            headers: None,
            client: &reqwest::Client::new(),
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(30),
            region: None,
            environment: &serin_metrics::ProviderEnvironment::from_variables(BTreeMap::new()),
            cluster: None,
        },
    )
}

#[tokio::test]
async fn dynatrace_queries_are_answered_as_flagger_reads_them() {
    let (address, fake) = dynatrace().await;
    let dynatrace = provider(Some(&address), &[("dynatrace_token", "dt0c01.token-1\n")]).expect("a provider");
    assert_eq!(dynatrace.describe(), format!("dynatrace at {address}"));
    dynatrace.is_online().await.expect("the token is valid");

    let sample = dynatrace
        .query("builtin:service.response.time:splitBy(\"dt.entity.service\")")
        .await
        .expect("a value");
    assert_eq!(
        (sample.value, sample.series, sample.picked),
        (310.5, 2, "last"),
        "the last series' value"
    );
    let seen = fake.lock().expect("fake").seen.last().cloned().expect("a query");
    assert_eq!(seen["resolution"], "Inf");
    let (from, to): (u128, u128) = (seen["from"].parse().expect("from"), seen["to"].parse().expect("to"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis();
    assert_eq!(to - from, 300_000, "ten metric intervals, in milliseconds");
    assert!(now.abs_diff(to) <= 5_000, "up to now");

    let sample = dynatrace.query("builtin:service.errors.total.rate:avg").await;
    assert_eq!(sample.expect("a value").value, 1.25);
    for empty in ["builtin:nothing", "builtin:service.requestCount.total:none"] {
        let answer = dynatrace.query(empty).await;
        assert!(matches!(answer, Err(ProviderError::NoValues)), "{empty}: {answer:?}");
    }
}

#[tokio::test]
async fn dynatrace_failures_are_each_told_apart() {
    let (address, fake) = dynatrace().await;
    let wrong = provider(Some(&address), &[("dynatrace_token", "dt0c01.token-2")]).expect("a provider");
    let refused = wrong.query("builtin:x").await;
    assert!(
        matches!(&refused, Err(ProviderError::Refused { status: 401, body }) if body.contains("Token Authentication failed")),
        "{refused:?}"
    );
    assert!(matches!(wrong.is_online().await, Err(ProviderError::Refused { .. })));

    let dynatrace = provider(Some(&address), &[("dynatrace_token", "dt0c01.token-1")]).expect("a provider");
    let bad = dynatrace.query("bad selector(").await;
    assert!(
        matches!(&bad, Err(ProviderError::Http { status: 400, body }) if body.contains("Invalid metric selector")),
        "{bad:?}"
    );
    fake.lock()
        .expect("fake")
        .queued
        .push((StatusCode::TOO_MANY_REQUESTS, Some(1)));
    let started = Instant::now();
    let sample = dynatrace.query("builtin:x").await.expect("answered after the retry");
    assert_eq!(sample.value, 3.0);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    fake.lock()
        .expect("fake")
        .queued
        .push((StatusCode::TOO_MANY_REQUESTS, None));
    assert!(matches!(
        dynatrace.query("builtin:x").await,
        Err(ProviderError::RateLimited { retry_after: None })
    ));

    let unreachable = provider(Some("http://127.0.0.1:9"), &[("dynatrace_token", "t")]).expect("a provider");
    assert!(matches!(
        unreachable.query("builtin:x").await,
        Err(ProviderError::Unreachable { .. })
    ));
    // A server that takes the connection and never answers: the check fails after Flagger's 5 s.
    let silent = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let silent_address = format!("http://{}", silent.local_addr().expect("address"));
    let started = Instant::now();
    let timed_out = provider(Some(&silent_address), &[("dynatrace_token", "t")])
        .expect("a provider")
        .query("builtin:x")
        .await;
    assert!(
        matches!(timed_out, Err(ProviderError::Timeout { after }) if after == Duration::from_secs(5)),
        "{timed_out:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(
        ProviderError::Timeout {
            after: Duration::from_secs(5)
        }
        .to_string(),
        "did not answer within 5s"
    );
    drop(silent);
    assert_eq!(
        provider(Some(&address), &[]).err().as_deref(),
        Some("the secretRef's Secret has no dynatrace_token: dynatrace needs dynatrace_token")
    );
    assert_eq!(
        provider(None, &[("dynatrace_token", "t")]).err().as_deref(),
        Some("dynatrace needs the environment's URL in the template's address")
    );
}
