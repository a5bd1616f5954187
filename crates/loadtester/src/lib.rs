//! serin-loadtester: the service Canary webhooks call to run load tests and commands and to
//! hold manual approval gates. It answers the calls existing Canaries make to Flagger's load
//! tester unchanged, and adds what Flagger's lacks: an allow-list of programs (no shell), an
//! optional bearer token, 400 for a task it does not know, and gates that survive a restart.

pub mod access;
pub mod gates;
pub mod limits;
pub mod load;
pub mod metrics;
pub mod rest;
pub mod runner;
pub mod shell;
pub mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine;
use regex::Regex;

use crate::gates::{Gate, GateStore};
use crate::metrics::Metrics;
use crate::runner::{Outcome, RunError, Runner};
use crate::tasks::{Payload, parse};

pub struct Service {
    pub runner: Runner,
    pub gates: GateStore,
    /// Required as `Authorization: Bearer <token>` on every endpoint but /healthz.
    pub token: Option<String>,
    /// Canaries of other namespaces are refused (403).
    pub namespace_regexp: Option<Regex>,
    metrics: Metrics,
}

impl Service {
    pub fn new(runner: Runner, gates: GateStore, token: Option<String>, namespace_regexp: Option<Regex>) -> Service {
        Service {
            runner,
            gates,
            token,
            namespace_regexp,
            metrics: Metrics::default(),
        }
    }
}

type Reply = (StatusCode, String);

pub fn router(service: Arc<Service>) -> Router {
    let gate = |gate: Gate, action: GateAction| {
        move |State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes| async move {
            gate_endpoint(&service, &headers, &body, gate, action).await
        }
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", post(task))
        .route(
            "/gate/approve",
            post(|| async { (StatusCode::OK, "approved".to_string()) }),
        )
        .route(
            "/gate/halt",
            post(|| async { (StatusCode::FORBIDDEN, "halted".to_string()) }),
        )
        .route("/gate/check", post(gate(Gate::Confirm, GateAction::Check)))
        .route("/gate/open", post(gate(Gate::Confirm, GateAction::Open)))
        .route("/gate/close", post(gate(Gate::Confirm, GateAction::Close)))
        .route("/rollback/check", post(gate(Gate::Rollback, GateAction::Check)))
        .route("/rollback/open", post(gate(Gate::Rollback, GateAction::Open)))
        .route("/rollback/close", post(gate(Gate::Rollback, GateAction::Close)))
        .with_state(service)
}

#[derive(Clone, Copy)]
enum GateAction {
    Check,
    Open,
    Close,
}

/// The token as `Authorization: Bearer <token>`, or as HTTP basic credentials (user or password),
/// which is how a Canary's webhook carries it: in its URL, `http://<token>@flagger-loadtester/`.
fn authorized(service: &Service, headers: &HeaderMap) -> Result<(), Reply> {
    let Some(token) = &service.token else { return Ok(()) };
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bearer = header.strip_prefix("Bearer ").is_some_and(|given| given == token);
    let basic = header
        .strip_prefix("Basic ")
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .is_some_and(|credentials| match credentials.split_once(':') {
            Some((user, "")) => user == token,
            Some((_, password)) => password == token,
            None => false,
        });
    if bearer || basic {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send it as a bearer token, or in the webhook URL as http://<token>@host/".into(),
        ))
    }
}

/// The checks every payload endpoint makes: the token, the payload, the namespace.
fn admit(service: &Service, headers: &HeaderMap, body: &[u8]) -> Result<Payload, Reply> {
    authorized(service, headers)?;
    let payload: Payload = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("malformed payload: {e}; expected JSON with name, namespace and metadata"),
        )
    })?;
    for (field, value) in [("name", &payload.name), ("namespace", &payload.namespace)] {
        if !is_kubernetes_name(value) {
            let message =
                format!("{field} {value:?} is not a Kubernetes name (lower case letters, digits, '-' and '.')");
            return Err((StatusCode::BAD_REQUEST, message));
        }
    }
    if let Some(regexp) = &service.namespace_regexp
        && !regexp.is_match(&payload.namespace)
    {
        let message = format!(
            "namespace {} does not match -namespace-regexp {regexp}",
            payload.namespace
        );
        return Err((StatusCode::FORBIDDEN, message));
    }
    Ok(payload)
}

/// 200; says so when the gates are kept in memory although a ConfigMap was asked for.
async fn healthz(State(service): State<Arc<Service>>) -> String {
    match service.gates.fallback() {
        Some(why) => format!("OK; gates are kept in memory and lost on restart: {why}"),
        None => "OK".to_string(),
    }
}

/// What Kubernetes accepts as an object's name (DNS subdomain): the Canary's name and namespace.
fn is_kubernetes_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=253).contains(&bytes.len())
        && bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes.iter().all(|b| alphanumeric(b) || *b == b'-' || *b == b'.')
}

async fn gate_endpoint(service: &Service, headers: &HeaderMap, body: &[u8], gate: Gate, action: GateAction) -> Reply {
    let payload = match admit(service, headers, body) {
        Ok(payload) => payload,
        Err(reply) => return reply,
    };
    let (namespace, name) = (payload.namespace.as_str(), payload.name.as_str());
    let result = match action {
        GateAction::Check => service.gates.is_open(gate, namespace, name).await.map(|open| {
            if open {
                (StatusCode::OK, "open".to_string())
            } else {
                (StatusCode::FORBIDDEN, "closed".to_string())
            }
        }),
        GateAction::Open => service
            .gates
            .set(gate, namespace, name, true)
            .await
            .map(|()| (StatusCode::ACCEPTED, "opened".into())),
        GateAction::Close => service
            .gates
            .set(gate, namespace, name, false)
            .await
            .map(|()| (StatusCode::ACCEPTED, "closed".into())),
    };
    result.unwrap_or_else(|error| (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
}

async fn task(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Reply {
    let payload = match admit(&service, &headers, &body) {
        Ok(payload) => payload,
        Err(reply) => return reply,
    };
    let kind = payload.metadata.get("type").cloned().unwrap_or_else(|| "cmd".into());
    let task = match parse(&payload) {
        Ok(task) => task,
        Err(error) => {
            service.metrics.task(&kind, "invalid");
            return (StatusCode::BAD_REQUEST, error.to_string());
        }
    };
    // Remote tests answer with a short verdict; commands only when returnCmdOutput is set.
    let return_output = matches!(
        task,
        tasks::Task::Blocking {
            return_output: true,
            ..
        } | tasks::Task::NGrinder(_)
            | tasks::Task::Concord(_)
    );
    let (result, reply) = match service.runner.run(&payload, task).await {
        Ok(Outcome::Started) => ("started", (StatusCode::ACCEPTED, "started".to_string())),
        Ok(Outcome::AlreadyRunning) => ("already-running", (StatusCode::ACCEPTED, "already running".to_string())),
        Ok(Outcome::Finished { success: true, output }) => (
            "succeeded",
            (StatusCode::OK, if return_output { output } else { "succeeded".into() }),
        ),
        Ok(Outcome::Finished { success: false, output }) => ("failed", (StatusCode::INTERNAL_SERVER_ERROR, output)),
        Ok(Outcome::Report(report)) => {
            service
                .metrics
                .load(&format!("{}/{}", payload.namespace, payload.name), &report);
            (
                "succeeded",
                (StatusCode::OK, serde_json::to_string(&report).unwrap_or_default()),
            )
        }
        Err(error) if error.is_invalid() => ("invalid", (StatusCode::BAD_REQUEST, error.to_string())),
        Err(error @ (RunError::NotAllowed { .. } | RunError::Access(_) | RunError::Script(_))) => {
            ("refused", (StatusCode::FORBIDDEN, error.to_string()))
        }
        Err(error @ RunError::Busy { .. }) => ("busy", (StatusCode::TOO_MANY_REQUESTS, error.to_string())),
        Err(error) => ("failed", (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())),
    };
    service.metrics.task(&kind, result);
    reply
}

async fn metrics(State(service): State<Arc<Service>>, headers: HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Err(reply) = authorized(&service, &headers) {
        return reply.into_response();
    }
    match service.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "could not encode the metrics").into_response(),
    }
}
