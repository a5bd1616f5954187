//! A loopback server speaking Datadog's documented metrics API, for the tests of the Datadog
//! provider (Datadog itself cannot be reached here): `GET /api/v1/query` (`query`, `from`, `to`)
//! and `GET /api/v1/validate`, the `DD-API-KEY` and `DD-APPLICATION-KEY` headers checked against
//! [`API_KEY`] and [`APPLICATION_KEY`] (403 otherwise, as Datadog answers), answers queued with
//! a status and `Retry-After` to play rate limiting.
//!
//! Series by query: `sum:requests.errors{*}` two series (first points 1.5 and 7), `sum:nothing{*}`
//! none, `sum:gaps{*}` one null point; any other query one point of [`DEFAULT_VALUE`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::Error;

pub const API_KEY: &str = "api-key-1";
pub const APPLICATION_KEY: &str = "app-key-1";
pub const DEFAULT_VALUE: f64 = 42.0;

#[derive(Default)]
struct Recorded {
    queued: Vec<(StatusCode, Option<u64>, serde_json::Value)>,
    seen: Vec<BTreeMap<String, String>>,
}

type Shared = Arc<Mutex<Recorded>>;

pub struct DatadogApi {
    url: String,
    recorded: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl DatadogApi {
    pub async fn start() -> Result<DatadogApi, Error> {
        let recorded: Shared = Arc::default();
        let app = Router::new()
            .route("/api/v1/query", get(query))
            .route("/api/v1/validate", get(validate))
            .with_state(recorded.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "datadog fake stopped");
            }
        });
        Ok(DatadogApi { url, recorded, server })
    }

    /// e.g. `http://127.0.0.1:40000`, the template's `address`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next query is answered with `status` and `body` (and `Retry-After: retry_after`).
    pub fn queue(&self, status: u16, retry_after: Option<u64>, body: serde_json::Value) {
        if let Ok(mut recorded) = self.recorded.lock() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            recorded.queued.push((status, retry_after, body));
        }
    }

    /// The query parameters of each authorized query so far.
    pub fn seen(&self) -> Vec<BTreeMap<String, String>> {
        self.recorded.lock().map(|r| r.seen.clone()).unwrap_or_default()
    }
}

impl Drop for DatadogApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("dd-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY)
        && headers.get("dd-application-key").and_then(|v| v.to_str().ok()) == Some(APPLICATION_KEY)
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, axum::Json(json!({ "errors": ["Forbidden"] }))).into_response()
}

async fn query(
    State(recorded): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return forbidden();
    }
    let Ok(mut recorded) = recorded.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    recorded.seen.push(params.clone());
    if !recorded.queued.is_empty() {
        let (status, retry_after, body) = recorded.queued.remove(0);
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
        _ => json!([{ "pointlist": [[1.0e12, DEFAULT_VALUE]] }]),
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
