//! The real Prometheus scrapes a real target (the test control plane's API server, over TLS with
//! a client certificate) and answers instant queries through its HTTP API.

use std::time::Duration;

use serde_json::Value;
use serin_testenv::prometheus::Prometheus;
use serin_testenv::{Options, TestEnv, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_api_server() {
    let env = TestEnv::start(Options { nodes: 0 })
        .await
        .expect("control plane starts");
    let Some(control_plane) = env.control_plane() else {
        eprintln!("skipped: the API server of an existing cluster is not scraped");
        return;
    };
    let target = control_plane.apiserver_scrape_target();
    let prometheus = Prometheus::start(&[target], Duration::from_millis(500))
        .await
        .expect("prometheus starts");

    let query = format!(
        "{}/api/v1/query?query=up%7Bjob%3D%22kube-apiserver%22%7D",
        prometheus.url()
    );
    let value = wait_for(
        Duration::from_secs(30),
        "a sample of up{job=\"kube-apiserver\"}",
        || {
            let query = query.clone();
            async move {
                let body: Value = reqwest::get(&query).await.ok()?.json().await.ok()?;
                let result = body["data"]["result"].as_array()?.first()?.clone();
                result["value"][1].as_str().map(String::from)
            }
        },
    )
    .await
    .expect("the API server is scraped");
    assert_eq!(value, "1", "the scrape succeeded (up == 1)");
    drop(prometheus);
    env.teardown().await;
}
