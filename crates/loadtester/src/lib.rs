//! serin-loadtester: the service Canary webhooks call to run load tests and commands and to
//! hold manual approval gates. It answers the calls existing Canaries make to Flagger's load
//! tester unchanged, and adds what Flagger's lacks: an allow-list of programs (no shell), an
//! optional bearer token, 400 for a task it does not know, and gates that survive a restart.

pub mod gates;
pub mod load;
pub mod rest;
pub mod runner;
pub mod tasks;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use regex::Regex;

use crate::gates::{Gate, GateStore};
use crate::runner::{Outcome, RunError, Runner};
use crate::tasks::{Payload, parse};

pub struct Service {
    pub runner: Runner,
    pub gates: GateStore,
    /// Required as `Authorization: Bearer <token>` on every endpoint but /healthz.
    pub token: Option<String>,
    /// Canaries of other namespaces are refused (403).
    pub namespace_regexp: Option<Regex>,
    counters: Mutex<BTreeMap<(String, String), u64>>,
    /// Requests the built-in generator sent, by answer.
    requests: Mutex<BTreeMap<String, u64>>,
    /// The latest load report of each canary (`namespace/name`).
    latest: Mutex<BTreeMap<String, load::LoadReport>>,
}

impl Service {
    pub fn new(runner: Runner, gates: GateStore, token: Option<String>, namespace_regexp: Option<Regex>) -> Service {
        Service {
            runner,
            gates,
            token,
            namespace_regexp,
            counters: Mutex::default(),
            requests: Mutex::default(),
            latest: Mutex::default(),
        }
    }

    fn count_requests(&self, status: &str, count: u64) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry(status.to_string()).or_insert(0) += count;
        }
    }

    fn count(&self, kind: &str, result: &str) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry((kind.to_string(), result.to_string())).or_insert(0) += 1;
        }
    }
}

type Reply = (StatusCode, String);

/// A duration as the flags and tasks write it: `30s`, `10m`, `1h`.
pub fn duration(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 30s, 10m or 1h");
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let value: u64 = digits.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        _ => return Err(invalid()),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

pub fn router(service: Arc<Service>) -> Router {
    let gate = |gate: Gate, action: GateAction| {
        move |State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes| async move {
            gate_endpoint(&service, &headers, &body, gate, action).await
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "OK" }))
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

fn authorized(service: &Service, headers: &HeaderMap) -> Result<(), Reply> {
    let Some(token) = &service.token else { return Ok(()) };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(token.as_str()) {
        Ok(())
    } else {
        Err((StatusCode::UNAUTHORIZED, "missing or wrong bearer token".into()))
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
            service.count(&kind, "invalid");
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
            for (status, count) in &report.responses {
                service.count_requests(status, *count);
            }
            if let Ok(mut latest) = service.latest.lock() {
                latest.insert(format!("{}/{}", payload.namespace, payload.name), report.clone());
            }
            (
                "succeeded",
                (StatusCode::OK, serde_json::to_string(&report).unwrap_or_default()),
            )
        }
        Err(error @ RunError::NotAllowed { .. }) => ("refused", (StatusCode::FORBIDDEN, error.to_string())),
        Err(error @ RunError::Busy { .. }) => ("busy", (StatusCode::TOO_MANY_REQUESTS, error.to_string())),
        Err(error) => ("failed", (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())),
    };
    service.count(&kind, result);
    reply
}

async fn metrics(State(service): State<Arc<Service>>, headers: HeaderMap) -> Reply {
    if let Err(reply) = authorized(&service, &headers) {
        return reply;
    }
    let mut out = String::from("# TYPE serin_loadtester_tasks_total counter\n");
    for ((kind, result), count) in service.counters.lock().map(|c| c.clone()).unwrap_or_default() {
        let _ = writeln!(
            out,
            "serin_loadtester_tasks_total{{type=\"{kind}\",result=\"{result}\"}} {count}"
        );
    }
    out.push_str("# TYPE serin_loadtester_load_requests_total counter\n");
    for (status, count) in service.requests.lock().map(|c| c.clone()).unwrap_or_default() {
        let _ = writeln!(
            out,
            "serin_loadtester_load_requests_total{{status=\"{status}\"}} {count}"
        );
    }
    out.push_str("# TYPE serin_loadtester_load_latency_ms gauge\n");
    for (canary, report) in service.latest.lock().map(|l| l.clone()).unwrap_or_default() {
        for (quantile, value) in [("0.5", report.p50_ms), ("0.9", report.p90_ms), ("0.99", report.p99_ms)] {
            let _ = writeln!(
                out,
                "serin_loadtester_load_latency_ms{{canary=\"{canary}\",quantile=\"{quantile}\"}} {value}"
            );
        }
    }
    (StatusCode::OK, out)
}
