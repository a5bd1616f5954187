//! The built-in load generator: HTTP requests at a fixed rate (open loop) or as fast as the
//! workers go, with latency measured from each request's intended send time, so a slow server
//! cannot hide its latency by slowing the generator down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};

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
}

struct Tally {
    histogram: Histogram<u64>,
    responses: BTreeMap<String, u64>,
}

pub async fn run(spec: &LoadSpec) -> Result<LoadReport, LoadError> {
    if spec.concurrency == 0 {
        return Err(LoadError::Invalid("concurrency must be at least 1".into()));
    }
    let method = reqwest::Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| LoadError::Invalid(format!("method {:?}", spec.method)))?;
    let mut builder = reqwest::Client::builder().pool_max_idle_per_host(spec.concurrency);
    if spec.http2 {
        builder = builder.http2_prior_knowledge();
    }
    let client = builder.build().map_err(|e| LoadError::Invalid(e.to_string()))?;
    let histogram = Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let started = Instant::now();
    let deadline = started + spec.duration;
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
        let intended = started + Duration::from_secs_f64(sent as f64 / request.spec.rate);
        if intended >= deadline {
            break;
        }
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
/// as a load: hey's `-q` is per worker, so the total rate is `q × c`. `None` when the line uses
/// something this reading does not cover (then only the real `hey` can run it).
pub fn from_hey(args: &[String]) -> Option<LoadSpec> {
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
        match word.as_str() {
            "-z" => spec.duration = parse_hey_duration(words.next()?)?,
            "-q" => per_worker_rate = words.next()?.parse().ok()?,
            "-c" => spec.concurrency = words.next()?.parse().ok()?,
            "-m" => spec.method = words.next()?.to_uppercase(),
            "-d" => spec.body = Some(words.next()?.clone()),
            "-H" => {
                let (name, value) = words.next()?.split_once(':')?;
                spec.headers.push((name.trim().to_string(), value.trim().to_string()));
            }
            "-h2" => spec.http2 = true,
            url if !url.starts_with('-') && spec.url.is_empty() => spec.url = url.to_string(),
            _ => return None,
        }
    }
    if spec.url.is_empty() || spec.duration.is_zero() {
        return None;
    }
    spec.rate = per_worker_rate * spec.concurrency as f64;
    Some(spec)
}

fn parse_hey_duration(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let value: u64 = digits.parse().ok()?;
    match unit {
        "s" => Some(Duration::from_secs(value)),
        "m" => Some(Duration::from_secs(value * 60)),
        "h" => Some(Duration::from_secs(value * 3600)),
        _ => None,
    }
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
            None,
            "request counts are left to the real hey"
        );
        assert_eq!(from_hey(&words("-z 1m")), None, "no URL");
    }
}
