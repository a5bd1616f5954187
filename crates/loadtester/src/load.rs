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
    let tally = Arc::new(Mutex::new(Tally {
        histogram,
        responses: BTreeMap::new(),
    }));
    let started = Instant::now();
    let deadline = started + spec.duration;
    let permits = Arc::new(Semaphore::new(spec.concurrency));
    let mut requests = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let intended = if spec.rate > 0.0 {
            started + Duration::from_secs_f64(requests as f64 / spec.rate)
        } else {
            Instant::now()
        };
        if intended >= deadline {
            break;
        }
        tokio::time::sleep_until(intended.into()).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        requests += 1;
        let mut request = client.request(method.clone(), &spec.url);
        for (name, value) in &spec.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &spec.body {
            request = request.body(body.clone());
        }
        let tally = tally.clone();
        tasks.spawn(async move {
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16().to_string();
                    let _ = response.bytes().await;
                    status
                }
                Err(_) => "error".to_string(),
            };
            let micros = intended.elapsed().as_micros().min(60_000_000) as u64;
            let mut tally = tally.lock().await;
            let _ = tally.histogram.record(micros.max(1));
            *tally.responses.entry(outcome).or_insert(0) += 1;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let tally = tally.lock().await;
    let quantile = |q: f64| tally.histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(LoadReport {
        requests,
        responses: tally.responses.clone(),
        p50_ms: quantile(0.5),
        p90_ms: quantile(0.9),
        p99_ms: quantile(0.99),
        seconds: started.elapsed().as_secs_f64(),
    })
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
