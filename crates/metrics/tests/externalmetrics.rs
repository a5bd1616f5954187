//! The externalmetrics provider: against a loopback server speaking the external metrics API as
//! an adapter serves it (`GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>`
//! with a label selector, bearer token), and through a real kube-apiserver that has no adapter
//! registered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderEnvironment, ProviderError, ProviderSettings, provider_for};
use serin_testenv::{Options, TestEnv};

const TOKEN: &str = "adapter-token-1";

/// (namespace, metric, labelSelector) of each list.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

async fn list(
    State(seen): State<Seen>,
    Path((namespace, metric)): Path<(String, String)>,
    Query(params): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        let status = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401 });
        return (StatusCode::UNAUTHORIZED, axum::Json(status)).into_response();
    }
    seen.lock()
        .expect("seen")
        .push((namespace.clone(), metric.clone(), params.get("labelSelector").cloned()));
    let value = |quantity: &str| json!({ "metricName": metric, "metricLabels": { "app": "web" }, "timestamp": "2026-12-01T10:00:00Z", "value": quantity });
    let items = match metric.as_str() {
        "queue_depth" => json!([value("1500m"), value("7")]),
        "empty" => json!([]),
        _ => json!([value("2k")]),
    };
    axum::Json(
        json!({ "kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1",
                       "metadata": {}, "items": items }),
    )
    .into_response()
}

fn provider(
    address: Option<&str>,
    token: Option<&str>,
    cluster: Option<&kube::Client>,
) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    let credentials: BTreeMap<String, String> = token
        .map(|t| ("token".to_string(), t.to_string()))
        .into_iter()
        .collect();
    provider_for(
        MetricProviderType::Externalmetrics,
        &ProviderSettings {
            address,
            metrics_server: "http://prometheus.invalid:9090",
            secret: token.map(|_| "adapter"),
            credentials: &credentials,
            headers: None,
            client: &reqwest::Client::new(),
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(60),
            region: None,
            environment: &ProviderEnvironment::from_variables(BTreeMap::new()),
            cluster,
        },
    )
}

#[tokio::test]
async fn an_adapters_external_metrics() {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}",
            get(list),
        )
        .with_state(seen.clone());
    let address = serin_testenv::serve_on_loopback(app).await.expect("a loopback server");
    let adapter = provider(Some(&address), Some(TOKEN), None).expect("a provider");
    assert_eq!(adapter.describe(), format!("externalmetrics at {address}"));
    adapter.is_online().await.expect("online");
    assert_eq!(
        seen.lock().expect("seen").last().cloned(),
        Some(("kube-system".into(), "dummy-metric".into(), None))
    );

    let sample = adapter
        .query("shop/queue_depth?labelSelector=app%3Dweb%2Ctier%21%3Ddb")
        .await
        .expect("a value");
    assert_eq!((sample.value, sample.series, sample.picked), (1.5, 2, "first"));
    assert_eq!(
        seen.lock().expect("seen").last().cloned(),
        Some(("shop".into(), "queue_depth".into(), Some("app=web,tier!=db".into())))
    );
    let sample = adapter.query("requests_per_second").await.expect("a value");
    assert_eq!(sample.value, 2000.0);
    assert_eq!(
        seen.lock()
            .expect("seen")
            .last()
            .map(|(namespace, ..)| namespace.clone()),
        Some("default".into())
    );
    assert!(matches!(
        adapter.query("shop/empty").await,
        Err(ProviderError::NoValues)
    ));
    assert!(matches!(
        adapter.query("a/b/c").await,
        Err(ProviderError::Malformed { .. })
    ));
    let anonymous = provider(Some(&address), None, None).expect("a provider");
    assert!(matches!(
        anonymous.query("shop/queue_depth").await,
        Err(ProviderError::Refused { status: 401, .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn through_an_api_server_without_an_adapter() {
    let env = TestEnv::start(Options { nodes: 1 }).await.expect("control plane");
    let client = env.client();
    let cluster = provider(None, None, Some(&client)).expect("a provider");
    assert_eq!(
        cluster.describe(),
        "externalmetrics (the cluster's external.metrics.k8s.io)"
    );
    let answer = cluster.query("shop/queue_depth").await;
    let message = answer.map_err(|e| e.to_string()).expect_err("no adapter");
    assert!(
        message.starts_with("answered 404: the API server does not serve external.metrics.k8s.io/v1beta1 (is a metrics adapter installed?)"),
        "{message}"
    );
    assert!(cluster.is_online().await.is_err());
    env.teardown().await;
}
