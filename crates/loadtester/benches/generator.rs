//! The built-in load generator beside the HTTP/1.1 generators people use: Debian's `hey` and
//! `wrk` (the physical anchor), and `oha` from crates.io when it is installed (`SERIN_OHA`, or
//! on the PATH). The loopback server runs in a process of its own pinned to the first core and
//! every generator is pinned to the second, so the server does not take the generator's CPU.
//! Prints for each generator its requests per second, CPU seconds per 100,000 requests and p99
//! latency; then the built-in generator's accuracy at fixed rates (open loop); then the load
//! tester's RSS.
//!
//! `cargo bench -p serin-loadtester --bench generator`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;

const SECONDS: u64 = 10;
const CONCURRENCY: usize = 50;
const SERVER_CORE: &str = "0";
const GENERATOR_CORE: &str = "1";

struct Row {
    name: String,
    requests_per_second: f64,
    cpu_per_100k: f64,
    p99_ms: f64,
}

/// CPU seconds (user + system) in a /proc/<pid>/stat line: the process's own (`first` 11) or
/// its waited-for children's (`first` 13).
fn cpu_seconds(stat: &str, first: usize) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(first) + ticks(first + 1)) / 100.0
}

fn children_cpu() -> f64 {
    cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default(), 13)
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

fn pinned(core: &str, program: &str) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", core, program]);
    command
}

/// A duration as hey, wrk and oha print it (`0.0047 secs`, `1.23ms`, `850.00us`), in ms.
fn milliseconds(value: &str, unit: &str) -> f64 {
    let number: f64 = value.trim().parse().unwrap_or(f64::NAN);
    match unit.trim() {
        "us" => number / 1000.0,
        "ms" => number,
        "s" | "secs" | "sec" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => f64::NAN,
    }
}

/// Runs a generator to its end, pinned; its stdout, wall time and CPU time.
fn run_child(mut command: Command) -> (String, f64, f64) {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let output = command.output().expect("the generator runs");
    let wall = started.elapsed().as_secs_f64();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        wall,
        children_cpu() - cpu_before,
    )
}

fn hey(url: &str) -> Option<Row> {
    let mut command = pinned(GENERATOR_CORE, "hey");
    command.args(["-z", &format!("{SECONDS}s"), "-c", &CONCURRENCY.to_string(), url]);
    let (text, wall, cpu) = run_child(command);
    let requests: f64 = text
        .lines()
        .find(|l| l.trim_start().starts_with("[200]"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99% in "))
        .map(|rest| rest.split_once(' ').map_or(f64::NAN, |(v, unit)| milliseconds(v, unit)))
        .unwrap_or(f64::NAN);
    Some(Row {
        name: "hey (Debian)".into(),
        requests_per_second: requests / wall,
        cpu_per_100k: cpu / requests * 100_000.0,
        p99_ms: p99,
    })
}

fn wrk(url: &str) -> Option<Row> {
    let mut command = pinned(GENERATOR_CORE, "wrk");
    command.args([
        "-t1",
        &format!("-c{CONCURRENCY}"),
        &format!("-d{SECONDS}s"),
        "--latency",
        url,
    ]);
    let (text, _, cpu) = run_child(command);
    let requests: f64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())?;
    let per_second: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| {
            let v = v.trim();
            let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
            milliseconds(&v[..split], &v[split..])
        })
        .unwrap_or(f64::NAN);
    Some(Row {
        name: "wrk (Debian)".into(),
        requests_per_second: per_second,
        cpu_per_100k: cpu / requests * 100_000.0,
        p99_ms: p99,
    })
}

fn oha(url: &str) -> Option<Row> {
    let program = std::env::var("SERIN_OHA").unwrap_or_else(|_| "oha".into());
    Command::new(&program).arg("--version").output().ok()?;
    let mut command = pinned(GENERATOR_CORE, &program);
    command.args([
        "-z",
        &format!("{SECONDS}s"),
        "-c",
        &CONCURRENCY.to_string(),
        "--no-tui",
        "--output-format",
        "json",
        url,
    ]);
    let (text, _, cpu) = run_child(command);
    let report: serde_json::Value = serde_json::from_str(&text).ok()?;
    let per_second = report["summary"]["requestsPerSec"].as_f64()?;
    let requests: f64 = report["statusCodeDistribution"]
        .as_object()?
        .values()
        .filter_map(serde_json::Value::as_f64)
        .sum();
    Some(Row {
        name: "oha (crates.io)".into(),
        requests_per_second: per_second,
        cpu_per_100k: cpu / requests * 100_000.0,
        p99_ms: report["latencyPercentiles"]["p99"].as_f64().unwrap_or(f64::NAN) * 1000.0,
    })
}

struct LoadTester {
    child: Child,
    url: String,
    client: reqwest::Client,
}

impl LoadTester {
    async fn start() -> LoadTester {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = pinned(GENERATOR_CORE, env!("CARGO_BIN_EXE_serin-loadtester"))
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
        let tester = LoadTester {
            child,
            url: format!("http://127.0.0.1:{port}/"),
            client: reqwest::Client::new(),
        };
        while tester
            .client
            .get(format!("{}healthz", tester.url))
            .send()
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tester
    }

    fn cpu(&self) -> f64 {
        cpu_seconds(
            &std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default(),
            11,
        )
    }

    /// A load from the built-in generator; its report and the CPU time it took.
    async fn load(&self, target: &str, rate: u32, seconds: u64) -> (serde_json::Value, f64) {
        let body = serde_json::json!({ "name": "bench", "namespace": "bench", "metadata": {
            "type": "load", "url": target, "rate": rate.to_string(),
            "concurrency": CONCURRENCY.to_string(), "duration": format!("{seconds}s")
        }});
        let before = self.cpu();
        let report = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .expect("load")
            .json()
            .await
            .expect("report");
        (report, self.cpu() - before)
    }
}

/// The minimal server every generator loads: `ok` to every GET, on one core.
fn serve() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let app = Router::new().route("/", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
        println!("{}", listener.local_addr().expect("address").port());
        let _ = axum::serve(listener, app).await;
    });
}

fn main() {
    if std::env::var_os("SERIN_BENCH_SERVER").is_some() {
        serve();
        return;
    }
    tokio::runtime::Runtime::new().expect("a runtime").block_on(compare());
}

async fn compare() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        cores >= 2,
        "the benchmark pins the server and the generator to two cores; this machine has {cores}"
    );
    let mut server = pinned(
        SERVER_CORE,
        &std::env::current_exe().expect("this benchmark").display().to_string(),
    )
    .env("SERIN_BENCH_SERVER", "1")
    .stdout(Stdio::piped())
    .spawn()
    .expect("the server process");
    let mut port = String::new();
    BufReader::new(server.stdout.take().expect("the server's stdout"))
        .read_line(&mut port)
        .expect("the server's port");
    let url = format!("http://127.0.0.1:{}/", port.trim());
    println!(
        "HTTP/1.1 generators against a loopback server (its own process on core {SERVER_CORE}), each on core {GENERATOR_CORE}, {CONCURRENCY} connections, {SECONDS} s, no rate limit:"
    );
    let tester = LoadTester::start().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mib(tester.child.id());
    let (report, cpu) = tester.load(&url, 0, SECONDS).await;
    let requests = report["requests"].as_f64().unwrap_or(0.0);
    let serin = Row {
        name: "serin-loadtester built-in".into(),
        requests_per_second: requests / report["seconds"].as_f64().unwrap_or(1.0),
        cpu_per_100k: cpu / requests * 100_000.0,
        p99_ms: report["p99_ms"].as_f64().unwrap_or(f64::NAN),
    };
    let rows: Vec<Row> = [hey(&url), wrk(&url), oha(&url), Some(serin)]
        .into_iter()
        .flatten()
        .collect();
    println!(
        "  {:<28} {:>12} {:>26} {:>10}",
        "generator", "requests/s", "CPU s per 100k requests", "p99 ms"
    );
    for row in &rows {
        println!(
            "  {:<28} {:>12.0} {:>26.3} {:>10.2}",
            row.name, row.requests_per_second, row.cpu_per_100k, row.p99_ms
        );
    }
    let cost = |name: &str| rows.iter().find(|r| r.name.starts_with(name)).map(|r| r.cpu_per_100k);
    if let (Some(serin), Some(hey)) = (cost("serin"), cost("hey")) {
        println!("  requests per CPU second: serin {:.2}× hey's", hey / serin);
    }
    if let (Some(serin), Some(wrk)) = (cost("serin"), cost("wrk")) {
        println!("  CPU per request: serin {:.2}× wrk's", serin / wrk);
    }

    println!("open-loop accuracy of the built-in generator ({SECONDS} s at each rate):");
    for rate in [1_000u32, 10_000, 50_000] {
        let (report, _) = tester.load(&url, rate, SECONDS).await;
        // Over the time the load took: a generator that falls behind sends its due requests late
        // and takes longer than asked, which shows here as a lower rate.
        let achieved = report["requests"].as_f64().unwrap_or(0.0) / report["seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  asked {rate:>6} req/s: sent {achieved:>9.1} req/s ({:+.2} %), p99 {} ms",
            (achieved / f64::from(rate) - 1.0) * 100.0,
            report["p99_ms"]
        );
    }

    let pid = tester.child.id();
    let steady = tokio::spawn({
        let (client, url_of_tester) = (tester.client.clone(), tester.url.clone());
        let body = serde_json::json!({ "name": "bench", "namespace": "bench", "metadata": {
            "type": "load", "url": url, "rate": "1000", "concurrency": CONCURRENCY.to_string(), "duration": "5s"
        }});
        async move { client.post(&url_of_tester).json(&body).send().await.map(|_| ()) }
    });
    let mut peak: f64 = 0.0;
    while !steady.is_finished() {
        peak = peak.max(rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("serin-loadtester RSS: idle {idle:.1} MiB, {peak:.1} MiB while generating 1,000 req/s");
    let mut tester = tester;
    let _ = tester.child.kill();
    let _ = tester.child.wait();
    let _ = server.kill();
    let _ = server.wait();
}
