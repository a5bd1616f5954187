//! The built-in load generator against a real HTTP server on loopback: the rate is held, every
//! request is counted on both sides, and `hey` command lines run on it when hey is not installed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use serin_loadtester::gates::GateStore;
use serin_loadtester::load::{LoadSpec, run};
use serin_loadtester::runner::{DEFAULT_ALLOWED, Runner};
use serin_loadtester::{Service, router};

/// A loopback server answering 200, counting what it served.
async fn target() -> (String, Arc<AtomicU64>) {
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let app = Router::new().route(
        "/",
        get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, served)
}

fn spec(url: &str, rate: f64, seconds: u64) -> LoadSpec {
    LoadSpec {
        url: url.to_string(),
        method: "GET".into(),
        headers: vec![("X-Test".into(), "1".into())],
        body: None,
        rate,
        concurrency: 4,
        duration: Duration::from_secs(seconds),
        http2: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_is_held_and_every_request_counted() {
    serin_testenv::install_crypto_provider();
    let (url, served) = target().await;
    let report = run(&spec(&url, 200.0, 3)).await.expect("load");
    let expected = 600.0;
    let off = (report.requests as f64 - expected).abs() / expected;
    assert!(off <= 0.05, "{} requests for {expected} expected", report.requests);
    assert_eq!(
        served.load(Ordering::SeqCst),
        report.requests,
        "the server saw every request"
    );
    assert_eq!(report.responses.get("200").copied(), Some(report.requests));
    assert!(report.p50_ms > 0.0 && report.p50_ms <= report.p99_ms, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unlimited_rate_runs_as_fast_as_the_workers_go() {
    serin_testenv::install_crypto_provider();
    let (url, served) = target().await;
    let report = run(&spec(&url, 0.0, 1)).await.expect("load");
    assert!(report.requests > 100, "{report:?}");
    assert_eq!(served.load(Ordering::SeqCst), report.requests);
}

async fn post(tester: &str, body: Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(tester)
        .json(&body)
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

async fn load_tester(runner: Runner) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let app = router(Arc::new(Service::new(runner, GateStore::memory(), None, None)));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn load_tasks_answer_with_their_report_and_hey_lines_run_without_hey() {
    serin_testenv::install_crypto_provider();
    let (url, served) = target().await;
    // A PATH without hey: the hey line runs on the built-in generator.
    let empty = tempfile::tempdir().expect("empty directory");
    let runner = Runner::new(DEFAULT_ALLOWED.map(String::from), Duration::from_secs(30))
        .with_path(empty.path().display().to_string());
    let tester = load_tester(runner).await;
    let payload = |metadata: Value| json!({ "name": "podinfo", "namespace": "test", "metadata": metadata });

    let (status, body) = post(
        &tester,
        payload(json!({ "type": "load", "url": url, "rate": "50", "duration": "2s" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).expect("a JSON report");
    assert_eq!(report["requests"], json!(100));
    assert_eq!(report["responses"]["200"], json!(100));

    let before = served.load(Ordering::SeqCst);
    let hey = format!("hey -z 2s -q 10 -c 2 {url}");
    assert_eq!(
        post(&tester, payload(json!({ "cmd": hey }))).await,
        (202, "started".to_string())
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let by_hey = served.load(Ordering::SeqCst) - before;
    assert!(
        (38..=42).contains(&by_hey),
        "-q 10 per worker × 2 workers × 2 s = 40 requests, got {by_hey}"
    );

    let metrics = reqwest::get(format!("{tester}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains("serin_loadtester_load_requests_total{status=\"200\"} 100"),
        "{metrics}"
    );
}

/// Debian's hey (installed by hack/test.sh) runs for a `cmd` task when it is on the PATH.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_hey_runs_when_installed() {
    serin_testenv::install_crypto_provider();
    assert!(
        std::path::Path::new("/usr/bin/hey").exists(),
        "Debian's hey is missing: apt-get install hey (hack/test.sh does)"
    );
    let (url, served) = target().await;
    let tester = load_tester(Runner::new(DEFAULT_ALLOWED.map(String::from), Duration::from_secs(30))).await;
    let payload =
        json!({ "name": "podinfo", "namespace": "test", "metadata": { "cmd": format!("hey -z 2s -q 10 -c 2 {url}") } });
    assert_eq!(post(&tester, payload).await, (202, "started".to_string()));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let count = served.load(Ordering::SeqCst);
    assert!(
        (30..=45).contains(&count),
        "hey at 10 req/s per worker, 2 workers, 2 s: {count} requests"
    );
}
