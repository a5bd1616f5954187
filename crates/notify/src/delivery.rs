//! Delivery: one queue and one worker per destination (an AlertProvider, or the global flags),
//! so that a receiver that is down, slow or rate-limiting holds up only its own messages, and
//! the caller (a reconcile) never waits. Each worker posts at most one message per
//! `min_interval` (Slack allows about one per second per webhook), retries what may succeed
//! later (no answer, 5xx, 429 after its `Retry-After`) with exponential backoff, and logs what
//! it gives up on without the address (it carries the credentials).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::{Error, Request};

/// How messages are delivered.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long one POST may take.
    pub timeout: Duration,
    /// Attempts per message, the first included.
    pub attempts: u32,
    /// The pause after the first failed attempt, doubled after each further one.
    pub backoff: Duration,
    /// The longest pause a `Retry-After` answer can impose before a message is given up.
    pub max_retry_after: Duration,
    /// The least time between two posts to the same destination.
    pub min_interval: Duration,
    /// Messages waiting per destination; more are dropped (and counted).
    pub queue: usize,
    /// A destination's worker stops after this long without a message.
    pub idle: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout: Duration::from_secs(5),
            attempts: 4,
            backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(60),
            min_interval: Duration::from_secs(1),
            queue: 100,
            idle: Duration::from_secs(600),
        }
    }
}

/// Told how each message ended: `sent`, `refused` (a 4xx other than 429), `failed` (every
/// attempt failed) or `dropped` (the destination's queue was full).
pub trait DeliveryObserver: Send + Sync {
    fn delivered(&self, kind: &str, outcome: &str, elapsed: Duration);
}

/// Queues messages per destination and delivers them in the background.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Policy,
    queues: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    /// One HTTP client per proxy (`None`: the environment's proxy settings, as Flagger's client).
    clients: Mutex<HashMap<Option<String>, reqwest::Client>>,
    observer: Option<Arc<dyn DeliveryObserver>>,
}

struct Job {
    request: Request,
    kind: &'static str,
    client: reqwest::Client,
    queued: Instant,
}

impl Dispatcher {
    pub fn new(policy: Policy, observer: Option<Arc<dyn DeliveryObserver>>) -> Dispatcher {
        // reqwest is built without a crypto provider; use ring, as kube's rustls does. An error
        // only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Dispatcher {
            inner: Arc::new(Inner {
                policy,
                queues: Mutex::default(),
                clients: Mutex::default(),
                observer,
            }),
        }
    }

    /// Queues `request` to `destination` (a name for logs and the queue, e.g. `AlertProvider
    /// test/slack`), through `proxy` if given. Never waits; must be called within a Tokio runtime.
    pub fn send(
        &self,
        destination: &str,
        kind: &'static str,
        proxy: Option<&str>,
        request: Request,
    ) -> Result<(), Error> {
        let client = self.client(proxy)?;
        let job = Job {
            request,
            kind,
            client,
            queued: Instant::now(),
        };
        let mut queues = self.inner.queues.lock().map_err(|_| Error::QueueFull {
            destination: destination.to_string(),
        })?;
        let sender = queues.entry(destination.to_string()).or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(self.inner.policy.queue.max(1));
            tokio::spawn(work(self.inner.clone(), destination.to_string(), receiver));
            sender
        });
        sender.try_send(job).map_err(|_| {
            self.observe(kind, "dropped", Duration::ZERO);
            tracing::warn!(destination, "the alert queue is full; a message was dropped");
            Error::QueueFull {
                destination: destination.to_string(),
            }
        })
    }

    fn client(&self, proxy: Option<&str>) -> Result<reqwest::Client, Error> {
        let key = proxy.map(str::to_string);
        let mut clients = self.inner.clients.lock().map_err(|_| Error::InvalidProxy)?;
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder();
        if let Some(proxy) = proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy).map_err(|_| Error::InvalidProxy)?);
        }
        let client = builder.build().map_err(|_| Error::InvalidProxy)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn observe(&self, kind: &str, outcome: &str, elapsed: Duration) {
        if let Some(observer) = &self.inner.observer {
            observer.delivered(kind, outcome, elapsed);
        }
    }
}

async fn work(inner: Arc<Inner>, destination: String, mut receiver: mpsc::Receiver<Job>) {
    let dispatcher = Dispatcher { inner: inner.clone() };
    let mut last_post: Option<Instant> = None;
    loop {
        let job = match tokio::time::timeout(inner.policy.idle, receiver.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                // Senders queue under this lock, so an empty queue seen under it stays empty.
                let Ok(mut queues) = inner.queues.lock() else { return };
                if receiver.is_empty() {
                    queues.remove(&destination);
                    return;
                }
                continue;
            }
        };
        if let Some(last) = last_post {
            tokio::time::sleep_until((last + inner.policy.min_interval).into()).await;
        }
        let outcome = deliver(&inner.policy, &destination, &job).await;
        last_post = Some(Instant::now());
        dispatcher.observe(job.kind, outcome, job.queued.elapsed());
    }
}

/// Why one attempt failed.
enum Failure {
    /// May succeed later; `wait` is the receiver's `Retry-After`.
    Transient {
        why: String,
        wait: Option<Duration>,
    },
    Permanent(String),
}

async fn deliver(policy: &Policy, destination: &str, job: &Job) -> &'static str {
    let attempts = policy.attempts.max(1);
    for attempt in 1..=attempts {
        match post(&job.client, &job.request, policy.timeout).await {
            Ok(()) => {
                tracing::debug!(destination, kind = job.kind, "alert sent");
                return "sent";
            }
            Err(Failure::Permanent(why)) => {
                tracing::warn!(destination, kind = job.kind, "alert refused: {why}");
                return "refused";
            }
            Err(Failure::Transient { why, wait }) => {
                if attempt == attempts {
                    tracing::warn!(destination, kind = job.kind, attempts, "alert not delivered: {why}");
                    return "failed";
                }
                let backoff = policy.backoff.saturating_mul(2u32.saturating_pow(attempt - 1));
                let pause = match wait {
                    Some(wait) if wait > policy.max_retry_after => {
                        tracing::warn!(
                            destination,
                            kind = job.kind,
                            "alert not delivered: the receiver asks to wait {wait:?}, longer than {:?}",
                            policy.max_retry_after
                        );
                        return "failed";
                    }
                    Some(wait) => wait,
                    None => backoff,
                };
                tracing::debug!(
                    destination,
                    kind = job.kind,
                    attempt,
                    "alert will be retried in {pause:?}: {why}"
                );
                tokio::time::sleep(pause).await;
            }
        }
    }
    "failed"
}

async fn post(client: &reqwest::Client, request: &Request, timeout: Duration) -> Result<(), Failure> {
    let mut builder = client
        .post(request.url.clone())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(request.body.to_string());
    if let Some(token) = &request.bearer {
        builder = builder.bearer_auth(token);
    }
    let mut response = builder.send().await.map_err(|error| Failure::Transient {
        // The URL carries the webhook's credentials: keep it out of the message.
        why: error.without_url().to_string(),
        wait: None,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = start_of_body(&mut response).await;
    let why = format!("the receiver answered {status}: {body}");
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Failure::Transient { why, wait: retry_after })
    } else if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
        Err(Failure::Transient { why, wait: None })
    } else {
        Err(Failure::Permanent(why))
    }
}

/// The first few hundred bytes of an answer, for the log; the rest is never read.
async fn start_of_body(response: &mut reqwest::Response) -> String {
    const SHOWN: usize = 300;
    let mut bytes = Vec::new();
    while bytes.len() < SHOWN {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(SHOWN);
    String::from_utf8_lossy(&bytes).trim().to_string()
}
