//! The built-in load generator: HTTP requests at a fixed rate (open loop) or as fast as the
//! workers go, with latency measured from each request's intended send time, so a slow server
//! cannot hide its latency by slowing the generator down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};

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

struct Tally {
    histogram: Histogram<u64>,
    responses: BTreeMap<String, u64>,
}

pub async fn run(spec: &LoadSpec) -> Result<LoadReport, LoadError> {
    spec.check()?;
    let method = reqwest::Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| LoadError::Invalid(format!("method {:?}", spec.method)))?;
    let mut builder = reqwest::Client::builder().pool_max_idle_per_host(spec.concurrency);
    if spec.http2 {
        builder = builder.http2_prior_knowledge();
    }
    let client = builder.build().map_err(|e| LoadError::Invalid(e.to_string()))?;
    let histogram = Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let started = Instant::now();
    let deadline = started
        .checked_add(spec.duration)
        .ok_or_else(|| LoadError::Invalid(format!("duration {:?} is too long", spec.duration)))?;
    let request = Arc::new(Template {
        client,
        method,
        spec: spec.clone(),
    });
    let tally = if spec.rate > 0.0 {
        open_loop(&request, histogram, started, deadline).await
    } else {
        closed_loop(&request, histogram, deadline).await
    };
    let quantile = |q: f64| tally.histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(LoadReport {
        requests: tally.responses.values().sum(),
        responses: tally.responses.clone(),
        p50_ms: quantile(0.5),
        p90_ms: quantile(0.9),
        p99_ms: quantile(0.99),
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct Template {
    client: reqwest::Client,
    method: reqwest::Method,
    spec: LoadSpec,
}

impl Template {
    /// Sends one request; the answer's status, or `error`.
    async fn send(&self) -> String {
        let mut request = self.client.request(self.method.clone(), &self.spec.url);
        for (name, value) in &self.spec.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &self.spec.body {
            request = request.body(body.clone());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16().to_string();
                let _ = response.bytes().await;
                status
            }
            Err(_) => "error".to_string(),
        }
    }
}

impl Tally {
    fn record(&mut self, since: Instant, outcome: String) {
        let micros = since.elapsed().as_micros().min(60_000_000) as u64;
        let _ = self.histogram.record(micros.max(1));
        *self.responses.entry(outcome).or_insert(0) += 1;
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.histogram.add(&other.histogram);
        for (outcome, count) in other.responses {
            *self.responses.entry(outcome).or_insert(0) += count;
        }
    }
}

/// At the fixed rate: request i is due at start + i / rate and its latency counts from then;
/// `concurrency` bounds the requests in flight.
async fn open_loop(request: &Arc<Template>, histogram: Histogram<u64>, started: Instant, deadline: Instant) -> Tally {
    let empty = Histogram::new_from(&histogram);
    let tally = Arc::new(Mutex::new(Tally {
        histogram,
        responses: BTreeMap::new(),
    }));
    let permits = Arc::new(Semaphore::new(request.spec.concurrency));
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let due = Duration::try_from_secs_f64(sent as f64 / request.spec.rate)
            .ok()
            .and_then(|offset| started.checked_add(offset));
        let Some(intended) = due.filter(|due| *due < deadline) else {
            break;
        };
        // Timers have a millisecond's granularity: sleep only when the request is not due yet.
        if intended > Instant::now() {
            tokio::time::sleep_until(intended.into()).await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        sent += 1;
        let (request, tally) = (request.clone(), tally.clone());
        tasks.spawn(async move {
            let outcome = request.send().await;
            tally.lock().await.record(intended, outcome);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut tally = tally.lock().await;
    std::mem::replace(
        &mut *tally,
        Tally {
            histogram: empty,
            responses: BTreeMap::new(),
        },
    )
}

/// As fast as possible: `concurrency` workers, each with its own tally, merged at the end.
async fn closed_loop(request: &Arc<Template>, histogram: Histogram<u64>, deadline: Instant) -> Tally {
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..request.spec.concurrency {
        let request = request.clone();
        let mut tally = Tally {
            histogram: Histogram::new_from(&histogram),
            responses: BTreeMap::new(),
        };
        workers.spawn(async move {
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = request.send().await;
                tally.record(sent, outcome);
            }
            tally
        });
    }
    let mut total = Tally {
        histogram,
        responses: BTreeMap::new(),
    };
    while let Some(worker) = workers.join_next().await {
        if let Ok(tally) = worker {
            total.merge(tally);
        }
    }
    total
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
