//! The built-in load generator against Debian's `hey`: the same minimal loopback server, the
//! same concurrency, no rate limit. Prints requests per second and CPU seconds per 100,000
//! requests for each, then the load tester's idle RSS and its RSS while it generates 1,000 req/s.
//!
//! `cargo bench -p serin-loadtester --bench generator`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;

const SECONDS: u64 = 10;
const CONCURRENCY: usize = 50;

/// CPU seconds (user + system) from a /proc/<pid>/stat line.
fn cpu_seconds(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn server() -> String {
    let app = Router::new().route("/", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn loadtester() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_serin-loadtester"))
}

#[tokio::main]
async fn main() {
    let url = server().await;
    println!("load generators against a loopback server, {CONCURRENCY} workers, {SECONDS} s, no rate limit:");

    // hey's CPU time is this process's waited-for children's (cutime + cstime): hey is the first.
    let started = Instant::now();
    let output = Command::new("hey")
        .args(["-z", &format!("{SECONDS}s"), "-c", &CONCURRENCY.to_string(), &url])
        .output()
        .expect("Debian's hey (apt-get install hey)");
    let elapsed = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    let hey_requests: f64 = text
        .lines()
        .find(|l| l.trim_start().starts_with("[200]"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let children = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = children
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let hey_cpu = (fields.get(13).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(14).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / 100.0;
    println!(
        "  hey:      {:>8.0} req/s, {:.2} CPU s per 100k requests",
        hey_requests / elapsed,
        hey_cpu / hey_requests * 100_000.0
    );

    // The built-in generator inside the load tester process.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("port")
        .local_addr()
        .expect("address")
        .port();
    let mut child = Command::new(loadtester())
        .args([
            "-port",
            &port.to_string(),
            "-gate-store",
            "memory",
            "-log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serin-loadtester");
    let pid = child.id();
    let tester = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    while client.get(format!("{tester}healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mib(pid);
    let stat = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cpu_before = cpu_seconds(&stat());
    let load = |rate: u32, seconds: u64| {
        serde_json::json!({ "name": "bench", "namespace": "bench", "metadata": {
            "type": "load", "url": url, "rate": rate.to_string(), "concurrency": CONCURRENCY.to_string(), "duration": format!("{seconds}s")
        }})
    };
    let report: serde_json::Value = client
        .post(&tester)
        .json(&load(0, SECONDS))
        .send()
        .await
        .expect("load")
        .json()
        .await
        .expect("report");
    let cpu = cpu_seconds(&stat()) - cpu_before;
    let requests = report["requests"].as_f64().unwrap_or(0.0);
    println!(
        "  built-in: {:>8.0} req/s, {:.2} CPU s per 100k requests (p50 {} ms, p99 {} ms)",
        requests / report["seconds"].as_f64().unwrap_or(1.0),
        cpu / requests * 100_000.0,
        report["p50_ms"],
        report["p99_ms"]
    );

    let steady = tokio::spawn({
        let client = client.clone();
        let tester = tester.clone();
        let body = load(1000, 5);
        async move { client.post(&tester).json(&body).send().await.map(|_| ()) }
    });
    let mut peak: f64 = 0.0;
    while !steady.is_finished() {
        peak = peak.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("serin-loadtester RSS: idle {idle:.1} MiB, {peak:.1} MiB while generating 1,000 req/s");
    let _ = child.kill();
    let _ = child.wait();
}
