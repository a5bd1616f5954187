//! The Splunk (SignalFx) provider against a loopback server speaking SignalFlow's documented
//! HTTP interface (`POST /v2/signalflow/execute` answered with Server-Sent Events, `GET
//! /v2/metric`, the `X-SF-Token` header, 401 for a wrong token, 400 for a program that does not
//! compile, 429): Splunk Observability Cloud cannot be reached here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderEnvironment, ProviderError, ProviderSettings, provider_for};

const TOKEN: &str = "sf-token-1";

/// The query parameters and program of each execution.
type Seen = Arc<Mutex<Vec<(BTreeMap<String, String>, String)>>>;

fn unauthorized() -> Response {
    let body = json!({ "code": 401, "message": "You must use your user session" });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("x-sf-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
}

fn event(kind: &str, data: serde_json::Value) -> String {
    format!("event: {kind}\r\ndata: {data}\r\n\r\n")
}

async fn execute(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
    program: String,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/plain")
    );
    seen.lock().expect("seen").push((params, program.clone()));
    if program.contains("syntax") {
        let body = json!({ "code": 400, "message": "Unable to parse program: unexpected token" });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    if program.contains("quota") {
        return (StatusCode::TOO_MANY_REQUESTS, "Too many requests").into_response();
    }
    let point = |ts: &str, value: serde_json::Value, at: u64| {
        event(
            "data",
            json!({ "logicalTimestampMs": at, "data": [{ "tsId": ts, "value": value }] }),
        )
    };
    let mut stream = event(
        "control-message",
        json!({ "type": "control-message", "event": "STREAM_START" }),
    );
    stream.push_str(&event(
        "control-message",
        json!({ "type": "control-message", "event": "JOB_START", "handle": "ChkVxy0AEAA" }),
    ));
    if !program.contains("nothing") {
        stream.push_str(&event("metadata", json!({ "type": "metadata", "tsId": "AAAAAKE5" })));
        stream.push_str(&point("AAAAAKE5", json!(0.5), 1));
        stream.push_str(&point("AAAAAKE5", json!(0.75), 2));
        if program.contains("by service") {
            stream.push_str(&point("BBBBBKE5", json!(3.0), 2));
        }
        stream.push_str(&point("AAAAAKE5", json!(null), 3));
    }
    stream.push_str(&event(
        "control-message",
        json!({ "type": "control-message", "event": "END_OF_CHANNEL" }),
    ));
    ([("content-type", "text/event-stream")], stream).into_response()
}

async fn metric(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    axum::Json(json!({ "count": 1, "results": [{ "name": "demo.trans.latency" }] })).into_response()
}

fn provider(address: &str, token: Option<&str>) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    let credentials: BTreeMap<String, String> = token
        .map(|t| ("sf_token_key".to_string(), t.to_string()))
        .into_iter()
        .collect();
    provider_for(
        MetricProviderType::Splunk,
        &ProviderSettings {
            address: Some(address),
            metrics_server: "http://prometheus.invalid:9090",
            secret: Some("splunk"),
            credentials: &credentials,
            headers: None,
            client: &reqwest::Client::new(),
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(60),
            region: None,
            environment: &ProviderEnvironment::from_variables(BTreeMap::new()),
            cluster: None,
        },
    )
}

#[tokio::test]
async fn signalflow_programs_over_server_sent_events() {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/v2/signalflow/execute", post(execute))
        .route("/v2/metric", get(metric))
        .with_state(seen.clone());
    let address = serin_testenv::serve_on_loopback(app).await.expect("a loopback server");
    let splunk = provider(&address, Some(TOKEN)).expect("a provider");
    assert_eq!(splunk.describe(), format!("splunk at {address}"));
    splunk.is_online().await.expect("the token is valid");

    let program = "data('requests.errors', filter=filter('service', 'web')).sum().publish()";
    let sample = splunk.query(program).await.expect("a value");
    assert_eq!(
        (sample.value, sample.picked),
        (0.75, "last"),
        "the last point with a value"
    );
    let (params, sent) = seen.lock().expect("seen").last().cloned().expect("an execution");
    assert_eq!(sent, program);
    assert_eq!(params["immediate"], "true");
    let (start, stop): (u128, u128) = (
        params["start"].parse().expect("start"),
        params["stop"].parse().expect("stop"),
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis();
    assert_eq!(stop - start, 600_000, "ten metric intervals");
    assert!(now.abs_diff(stop) < 5_000, "up to now");

    let several = splunk.query("data('requests.errors').sum(by service).publish()").await;
    let message = several.map_err(|e| e.to_string()).expect_err("two series");
    assert!(message.contains("2 time series where one is needed"), "{message}");
    assert!(matches!(
        splunk.query("data('nothing').publish()").await,
        Err(ProviderError::NoValues)
    ));
    let invalid = splunk.query("a syntax error").await;
    assert!(
        matches!(&invalid, Err(ProviderError::Http { status: 400, body }) if body.contains("Unable to parse program")),
        "{invalid:?}"
    );
    assert!(matches!(
        splunk.query("over quota").await,
        Err(ProviderError::RateLimited { .. })
    ));

    let wrong = provider(&address, Some("other")).expect("a provider");
    assert!(matches!(
        wrong.query(program).await,
        Err(ProviderError::Refused { status: 401, .. })
    ));
    assert!(matches!(wrong.is_online().await, Err(ProviderError::Refused { .. })));
    assert_eq!(
        provider(&address, None).err().as_deref(),
        Some("the secretRef's Secret has no sf_token_key: splunk needs sf_token_key")
    );
}

#[test]
fn the_stream_address_is_the_apis_with_api_turned_into_stream() {
    let splunk = provider("https://api.us1.signalfx.com/", Some(TOKEN)).expect("a provider");
    assert_eq!(splunk.describe(), "splunk at https://stream.us1.signalfx.com");
}
