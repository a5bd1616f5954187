//! The built-in load generator: HTTP requests at a fixed rate (open loop) or as fast as the
//! workers go, with latency measured from each request's intended send time, so a slow server
//! cannot hide its latency by slowing the generator down. Each worker keeps one connection
//! (hyper's connection-level HTTP/1.1 client) and sends the request prepared once; `https` and
//! HTTP/2 loads go through reqwest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::limits::{self, LimitError};

#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Requests per second for all workers together; 0 for as fast as possible.
    pub rate: f64,
    pub concurrency: usize,
    pub duration: Duration,
    pub http2: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadReport {
    pub requests: u64,
    /// Answers by HTTP status, and `error` for requests without an answer.
    pub responses: BTreeMap<String, u64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load: {0}")]
    Invalid(String),
    #[error("invalid load: {0}")]
    Limit(#[from] LimitError),
}

impl LoadSpec {
    /// Every bound of [`crate::limits`], whichever way the load was described.
    pub fn check(&self) -> Result<(), LimitError> {
        let text = |value: &dyn std::fmt::Display| value.to_string();
        limits::check_rate("rate", &text(&self.rate), self.rate)?;
        limits::check_count(
            "concurrency",
            &text(&self.concurrency),
            self.concurrency,
            1,
            limits::MAX_CONCURRENCY,
        )?;
        if self.duration.is_zero() || self.duration > limits::MAX_DURATION {
            return Err(LimitError::OutOfBounds {
                field: "duration".into(),
                value: format!("{:?}", self.duration),
                limit: format!("more than 0 and at most {:?}", limits::MAX_DURATION),
            });
        }
        let body = self.body.as_ref().map_or(0, String::len);
        limits::check_count("body", &format!("{body} bytes"), body, 0, limits::MAX_BODY_BYTES)?;
        limits::check_count(
            "headers",
            &format!("{} lines", self.headers.len()),
            self.headers.len(),
            0,
            limits::MAX_HEADERS,
        )
    }
}

/// The answers of one worker or of all: latencies (counts in u32: ~74 KiB a worker at three
/// significant digits, half of u64's) and answers by status.
struct Tally {
    histogram: Histogram<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

impl Tally {
    fn new(bounds: &Histogram<u32>) -> Tally {
        Tally {
            histogram: Histogram::new_from(bounds),
            statuses: BTreeMap::new(),
            errors: 0,
        }
    }

    fn record(&mut self, since: Instant, answer: Option<u16>) {
        let micros = u64::try_from(since.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .min(60_000_000);
        let _ = self.histogram.record(micros.max(1));
        match answer {
            Some(status) => *self.statuses.entry(status).or_insert(0) += 1,
            None => self.errors += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.histogram.add(&other.histogram);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_insert(0) += count;
        }
        self.errors += other.errors;
    }

    fn responses(&self) -> BTreeMap<String, u64> {
        let mut responses: BTreeMap<String, u64> = self
            .statuses
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect();
        if self.errors > 0 {
            responses.insert("error".into(), self.errors);
        }
        responses
    }
}

pub async fn run(spec: &LoadSpec) -> Result<LoadReport, LoadError> {
    spec.check()?;
    let target = Arc::new(Target::new(spec)?);
    let bounds = Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let started = Instant::now();
    let deadline = started
        .checked_add(spec.duration)
        .ok_or_else(|| LoadError::Invalid(format!("duration {:?} is too long", spec.duration)))?;
    let rate = spec.rate;
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..spec.concurrency {
        let (target, next) = (target.clone(), next.clone());
        let mut tally = Tally::new(&bounds);
        workers.spawn(async move {
            let mut connection = Connection::default();
            loop {
                // At a rate, request i is due at start + i / rate and its latency counts from
                // then (open loop); without one, each worker sends as soon as it has an answer.
                let sent = if rate > 0.0 {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let due = Duration::try_from_secs_f64(index as f64 / rate)
                        .ok()
                        .and_then(|offset| started.checked_add(offset));
                    let Some(due) = due.filter(|due| *due < deadline) else {
                        break;
                    };
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    due
                } else {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    now
                };
                let answer = connection.send(&target).await;
                tally.record(sent, answer);
            }
            tally
        });
    }
    let mut total = Tally::new(&bounds);
    while let Some(worker) = workers.join_next().await {
        if let Ok(tally) = worker {
            total.merge(tally);
        }
    }
    let quantile = |q: f64| total.histogram.value_at_quantile(q) as f64 / 1000.0;
    let responses = total.responses();
    Ok(LoadReport {
        requests: responses.values().sum(),
        responses,
        p50_ms: quantile(0.5),
        p90_ms: quantile(0.9),
        p99_ms: quantile(0.99),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What every request of a load is, prepared once.
struct Target {
    method: http::Method,
    /// The request target (`/path?query`) sent on a plain connection.
    path: http::Uri,
    /// Host and port to connect to.
    address: (String, u16),
    /// The load's headers, `Host` included.
    headers: http::HeaderMap,
    body: Bytes,
    /// For `https` and HTTP/2 loads, reqwest's pooled client; plain HTTP/1.1 goes over hyper's
    /// connection-level client, one connection per worker, without a pool to consult.
    pooled: Option<(reqwest::Client, reqwest::Url)>,
}

impl Target {
    fn new(spec: &LoadSpec) -> Result<Target, LoadError> {
        let invalid = |what: String| LoadError::Invalid(what);
        let method = http::Method::from_bytes(spec.method.as_bytes())
            .map_err(|_| invalid(format!("method {:?}", spec.method)))?;
        let url = reqwest::Url::parse(&spec.url).map_err(|e| invalid(format!("url {:?}: {e}", spec.url)))?;
        let host = url
            .host_str()
            .ok_or_else(|| invalid(format!("url {:?} has no host", spec.url)))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| invalid(format!("url {:?} has no port", spec.url)))?;
        let mut headers = http::HeaderMap::new();
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_str(&authority).map_err(|e| invalid(format!("host {authority:?}: {e}")))?,
        );
        for (name, value) in &spec.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| invalid(format!("header name {name:?}: {e}")))?;
            let value = http::HeaderValue::from_str(value).map_err(|e| invalid(format!("header {name}: {e}")))?;
            headers.insert(name, value);
        }
        let path: http::Uri = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
        .parse()
        .map_err(|e| invalid(format!("url {:?}: {e}", spec.url)))?;
        let pooled = if url.scheme() == "http" && !spec.http2 {
            None
        } else {
            let mut builder = reqwest::Client::builder().pool_max_idle_per_host(spec.concurrency);
            if spec.http2 {
                builder = builder.http2_prior_knowledge();
            }
            Some((builder.build().map_err(|e| invalid(e.to_string()))?, url))
        };
        Ok(Target {
            method,
            path,
            address: (host, port),
            headers,
            body: Bytes::from(spec.body.clone().unwrap_or_default()),
            pooled,
        })
    }
}

/// A worker's connection: opened on first use and again after an error.
#[derive(Default)]
struct Connection {
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// Sends one request; the answer's status, `None` for no answer.
    async fn send(&mut self, target: &Target) -> Option<u16> {
        if let Some((client, url)) = &target.pooled {
            let request = client
                .request(target.method.clone(), url.clone())
                .headers(target.headers.clone())
                .body(target.body.clone());
            let mut response = request.send().await.ok()?;
            let status = response.status().as_u16();
            // Drained chunk by chunk: the answer is counted, never held.
            while response.chunk().await.ok()?.is_some() {}
            return Some(status);
        }
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            self.sender = connect(&target.address).await;
        }
        let sender = self.sender.as_mut()?;
        if sender.ready().await.is_err() {
            self.sender = None;
            return None;
        }
        let mut request = http::Request::new(Full::new(target.body.clone()));
        *request.method_mut() = target.method.clone();
        *request.uri_mut() = target.path.clone();
        *request.headers_mut() = target.headers.clone();
        let Ok(response) = sender.send_request(request).await else {
            self.sender = None;
            return None;
        };
        let status = response.status().as_u16();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                self.sender = None;
                return None;
            }
        }
        Some(status)
    }
}

async fn connect(address: &(String, u16)) -> Option<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect((address.0.as_str(), address.1))
        .await
        .ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// Reads a `hey` command line (`hey -z 1m -q 10 -c 2 [-m POST] [-d BODY] [-H header] [-h2] URL`)
/// as a load: hey's `-q` is per worker, so the total rate is `q × c`. An error says what this
/// reading does not cover (then only the real `hey` can run it) or which value is out of bounds.
pub fn from_hey(args: &[String]) -> Result<LoadSpec, HeyError> {
    let mut spec = LoadSpec {
        url: String::new(),
        method: "GET".into(),
        headers: Vec::new(),
        body: None,
        rate: 0.0,
        concurrency: 50,
        duration: Duration::ZERO,
        http2: false,
    };
    let mut per_worker_rate = 0.0;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let mut value = || {
            words
                .next()
                .ok_or_else(|| HeyError::Unsupported(format!("{word} without a value")))
        };
        match word.as_str() {
            "-z" => spec.duration = limits::duration("hey -z", value()?, limits::MAX_DURATION)?,
            "-q" => per_worker_rate = limits::rate("hey -q", value()?)?,
            "-c" => spec.concurrency = limits::count("hey -c", value()?, 1, limits::MAX_CONCURRENCY)?,
            "-m" => spec.method = value()?.to_uppercase(),
            "-d" => spec.body = Some(value()?.clone()),
            "-H" => {
                let header = value()?;
                let (name, value) = header
                    .split_once(':')
                    .ok_or_else(|| HeyError::Unsupported(format!("-H {header:?} (not Name: value)")))?;
                spec.headers.push((name.trim().to_string(), value.trim().to_string()));
            }
            "-h2" => spec.http2 = true,
            url if !url.starts_with('-') && spec.url.is_empty() => spec.url = url.to_string(),
            other => return Err(HeyError::Unsupported(other.to_string())),
        }
    }
    if spec.url.is_empty() {
        return Err(HeyError::Unsupported("a line without a URL".into()));
    }
    if spec.duration.is_zero() {
        return Err(HeyError::Unsupported("a line without -z".into()));
    }
    spec.rate = per_worker_rate * spec.concurrency as f64;
    spec.check()?;
    Ok(spec)
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum HeyError {
    #[error(
        "hey is not installed and the built-in generator reads only -z, -q, -c, -m, -d, -H, -h2 and a URL, not {0}"
    )]
    Unsupported(String),
    #[error("{0}")]
    Limit(#[from] LimitError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn reads_heys_command_lines() {
        let spec = from_hey(&words(
            "-z 1m -q 10 -c 2 -m post -d {} -H X-Canary:insider -h2 http://web-canary/",
        ))
        .expect("spec");
        assert_eq!(spec.url, "http://web-canary/");
        assert_eq!(
            (spec.rate, spec.concurrency, spec.duration),
            (20.0, 2, Duration::from_secs(60))
        );
        assert_eq!(
            (spec.method.as_str(), spec.body.as_deref(), spec.http2),
            ("POST", Some("{}"), true)
        );
        assert_eq!(spec.headers, vec![("X-Canary".to_string(), "insider".to_string())]);
        let unlimited = from_hey(&words("-z 30s -c 4 http://web/")).expect("spec");
        assert_eq!(unlimited.rate, 0.0, "no -q: as fast as possible");
        assert_eq!(
            from_hey(&words("-n 100 http://web/")),
            Err(HeyError::Unsupported("-n".into())),
            "request counts are left to the real hey"
        );
        assert_eq!(
            from_hey(&words("-z 1m")),
            Err(HeyError::Unsupported("a line without a URL".into()))
        );
        assert!(matches!(
            from_hey(&words("-z 18446744073709551615s http://web/")),
            Err(HeyError::Limit(_))
        ));
        assert!(
            matches!(
                from_hey(&words("-z 1m -q 1000 -c 9999 http://web/")),
                Err(HeyError::Limit(_))
            ),
            "a total rate above the bound"
        );
    }
}
