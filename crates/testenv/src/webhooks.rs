//! A webhook receiver on loopback: records every call (path and JSON body, in order) and answers
//! with the status the test sets for the path (200 unless told otherwise). As the target of a
//! proxy it records the host the request was meant for.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub path: String,
    pub body: Value,
    /// The host the request named in an absolute URI (`POST http://host/path`), as a client
    /// sends it to an HTTP proxy; `None` for a direct request.
    pub proxied_host: Option<String>,
    pub authorization: Option<String>,
    pub received: Instant,
}

/// An answer the test chose: status, body and an optional `Retry-After` in seconds.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: String,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct Shared {
    calls: Vec<Call>,
    answers: BTreeMap<String, Answer>,
    /// Answers given once each, before `answers`, in order.
    next_answers: BTreeMap<String, VecDeque<Answer>>,
    /// How long calls to a path wait before they are answered (they are recorded at once).
    holds: BTreeMap<String, Duration>,
}

pub struct WebhookReceiver {
    url: String,
    shared: Arc<Mutex<Shared>>,
    server: JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> Result<WebhookReceiver, Error> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new().fallback(record).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "webhook receiver stopped");
            }
        });
        Ok(WebhookReceiver { url, shared, server })
    }

    /// The same receiver over HTTPS, with a self-signed certificate for 127.0.0.1 that no
    /// client trusts (for `disableTLS`).
    pub async fn start_https() -> Result<WebhookReceiver, Error> {
        crate::install_crypto_provider();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("https://{}", listener.local_addr()?);
        let key = rcgen::KeyPair::generate()?;
        let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.self_signed(&key)?;
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| Error::Tls(e.to_string()))?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![certificate.der().clone()], key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let app = Router::new().fallback(record).with_state(shared.clone());
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let _ = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(WebhookReceiver { url, shared, server })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`; hooks point at `<url>/<path>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls to `path` from now on are answered with `status` and `body`.
    pub fn answer(&self, path: &str, status: u16, body: &str) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.answers.insert(
                path.to_string(),
                Answer {
                    status,
                    body: body.to_string(),
                    retry_after: None,
                },
            );
        }
    }

    /// The next call to `path` (after those already queued) is answered with `status`, and a
    /// `Retry-After` header when given; later calls as before.
    pub fn answer_once(&self, path: &str, status: u16, retry_after: Option<u64>) {
        if let Ok(mut shared) = self.shared.lock() {
            shared
                .next_answers
                .entry(path.to_string())
                .or_default()
                .push_back(Answer {
                    status,
                    body: "answered once".to_string(),
                    retry_after,
                });
        }
    }

    /// Calls to `path` from now on are recorded at once but answered only after `delay`, so a
    /// test can act while the caller waits for the answer.
    pub fn hold(&self, path: &str, delay: Duration) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.holds.insert(path.to_string(), delay);
        }
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().map(|s| s.calls.clone()).unwrap_or_default()
    }

    /// The calls whose path starts with `prefix`.
    pub fn calls_to(&self, prefix: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(State(shared): State<Arc<Mutex<Shared>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (hold, answer) = {
        let Ok(mut shared) = shared.lock() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "receiver state poisoned").into_response();
        };
        shared.calls.push(Call {
            path: path.clone(),
            body,
            proxied_host: uri.authority().map(|a| a.to_string()),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            received: Instant::now(),
        });
        let once = shared.next_answers.get_mut(&path).and_then(VecDeque::pop_front);
        let answer = once.or_else(|| shared.answers.get(&path).cloned()).unwrap_or(Answer {
            status: 200,
            body: "ok".into(),
            retry_after: None,
        });
        (shared.holds.get(&path).copied(), answer)
    };
    if let Some(delay) = hold {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match answer.retry_after {
        Some(seconds) => (status, [(header::RETRY_AFTER, seconds.to_string())], answer.body).into_response(),
        None => (status, answer.body).into_response(),
    }
}
