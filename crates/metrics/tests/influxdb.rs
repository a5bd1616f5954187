//! The InfluxDB provider: InfluxQL against a real InfluxDB 1.x (Debian's `influxdb`, with
//! authentication on), and Flux against a loopback server that speaks InfluxDB 2.x's documented
//! query API (`POST /api/v2/query?org=…` with `Authorization: Token`, annotated CSV answers,
//! JSON errors): no InfluxDB 2.x can be installed here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderError, ProviderSettings, provider_for};
use serin_testenv::influxdb::{DATABASE, InfluxDb, PASSWORD, USERNAME};

fn provider(address: &str, credentials: Option<&[(&str, &str)]>) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    let secret: BTreeMap<String, String> = credentials
        .unwrap_or_default()
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    provider_for(
        MetricProviderType::Influxdb,
        &ProviderSettings {
            address: Some(address),
            metrics_server: "http://prometheus.invalid:9090",
            secret: credentials.map(|_| "influxdb"),
            credentials: &secret,
            headers: None,
            client: &reqwest::Client::new(),
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(60),
            region: None,
            environment: &serin_metrics::ProviderEnvironment::from_variables(BTreeMap::new()),
            cluster: None,
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn influxql_against_a_real_influxdb_1() {
    let server = InfluxDb::start().await.expect("influxdb");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    server
        .write(&format!(
            "requests,deployment=web-primary errors=1,total=100 {}\n\
             requests,deployment=web errors=3,total=50 {}\n\
             requests,deployment=web errors=2,total=50 {}\n",
            now - 5,
            now - 4,
            now - 2
        ))
        .await
        .expect("points written");
    let user = [("username", USERNAME), ("password", PASSWORD)];
    let influxdb = provider(server.url(), Some(&user)).expect("a provider");
    assert_eq!(influxdb.describe(), format!("influxdb at {}", server.url()));
    influxdb.is_online().await.expect("online");

    let ratio = format!(
        "SELECT sum(\"errors\") / sum(\"total\") * 100 FROM \"{DATABASE}\".\"autogen\".\"requests\"\n  WHERE \"deployment\" = 'web' AND time > now() - 1m"
    );
    let sample = influxdb.query(&ratio).await.expect("a value");
    assert_eq!((sample.value, sample.series), (5.0, 1));
    let by_deployment = format!(
        "select sum(\"errors\") FROM \"{DATABASE}\".\"autogen\".\"requests\" WHERE time > now() - 1m GROUP BY \"deployment\""
    );
    let sample = influxdb.query(&by_deployment).await.expect("a value");
    assert_eq!(
        (sample.value, sample.series, sample.picked),
        (5.0, 2, "first"),
        "the first series (deployment web sorts first)"
    );
    let nothing =
        format!("SELECT sum(\"errors\") FROM \"{DATABASE}\".\"autogen\".\"requests\" WHERE \"deployment\" = 'none'");
    assert!(matches!(influxdb.query(&nothing).await, Err(ProviderError::NoValues)));

    let missing = influxdb.query("SELECT x FROM \"nowhere\".\"autogen\".\"m\"").await;
    let message = missing.map_err(|e| e.to_string()).expect_err("no such database");
    assert_eq!(
        message,
        "gave an unexpected answer: the query failed: database not found: nowhere"
    );
    let unparsable = influxdb.query("SELECT FROM").await;
    assert!(
        matches!(unparsable, Err(ProviderError::Http { status: 400, .. })),
        "{unparsable:?}"
    );

    let wrong = provider(server.url(), Some(&[("username", USERNAME), ("password", "wrong")])).expect("a provider");
    let refused = wrong.query(&ratio).await;
    assert!(
        matches!(refused, Err(ProviderError::Refused { status: 401, .. })),
        "{refused:?}"
    );
    assert!(matches!(wrong.is_online().await, Err(ProviderError::Refused { .. })));
    let anonymous = provider(server.url(), None).expect("a provider").query(&ratio).await;
    assert!(
        matches!(anonymous, Err(ProviderError::Refused { status: 401, .. })),
        "{anonymous:?}"
    );
}

/// The Flux queries each answer saw: (org, query).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

const ANSWER: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,double,string\r
#group,false,false,true,true,false,true\r
#default,_result,,,,,\r
,result,table,_start,_stop,_value,deployment\r
,,0,2026-12-01T10:00:00Z,2026-12-01T10:05:00Z,0.5,web\r
\r
";

async fn flux(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Token influx-token-1") {
        let body = json!({ "code": "unauthorized", "message": "unauthorized access" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let org = params.get("org").cloned().unwrap_or_default();
    let query = body["query"].as_str().unwrap_or_default().to_string();
    assert_eq!(body["type"], "flux");
    assert_eq!(body["dialect"]["annotations"], json!(["datatype", "group", "default"]));
    seen.lock().expect("seen").push((org.clone(), query.clone()));
    if org != "serin-org" {
        let body = json!({ "code": "not found", "message": format!("organization name \"{org}\" not found") });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    let csv = if query.contains("frm(") {
        let body =
            json!({ "code": "invalid", "message": "compilation failed: error @1:1-1:4: undefined identifier frm" });
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    } else if query.contains("\"empty\"") {
        "\r\n".to_string()
    } else if query.contains("count()") {
        ANSWER.replace(",double,", ",long,").replace("0.5", "12")
    } else {
        ANSWER.to_string()
    };
    ([("content-type", "text/csv; charset=utf-8")], csv).into_response()
}

#[tokio::test]
async fn flux_queries_as_flaggers_influxdb_client_sends_them() {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/api/v2/query", post(flux))
        .with_state(seen.clone());
    let address = serin_testenv::serve_on_loopback(app).await.expect("a loopback server");
    let keys = [("token", "influx-token-1"), ("org", "serin-org")];
    let influxdb = provider(&address, Some(&keys)).expect("a provider");
    influxdb.is_online().await.expect("online");
    let query =
        "from(bucket: \"canaries\")\n  |> range(start: -1m)\n  |> filter(fn: (r) => r._measurement == \"errors\")";
    let sample = influxdb.query(query).await.expect("a value");
    assert_eq!(sample.value, 0.5);
    assert_eq!(
        seen.lock().expect("seen").last().cloned(),
        Some(("serin-org".to_string(), query.to_string())),
        "the query sent as written, with the org"
    );
    let empty = influxdb.query("from(bucket: \"empty\") |> range(start: -1m)").await;
    assert!(matches!(empty, Err(ProviderError::NoValues)), "{empty:?}");
    let long = influxdb
        .query("from(bucket: \"b\") |> range(start: -1m) |> count()")
        .await;
    let message = long.map_err(|e| e.to_string()).expect_err("not a float");
    assert!(message.contains("_value is a long (12)"), "{message}");
    let invalid = influxdb.query("frm(bucket: \"b\")").await;
    assert!(
        matches!(&invalid, Err(ProviderError::Http { status: 400, body }) if body.contains("undefined identifier frm")),
        "{invalid:?}"
    );

    let wrong_token = provider(&address, Some(&[("token", "other"), ("org", "serin-org")])).expect("a provider");
    assert!(matches!(
        wrong_token.query(query).await,
        Err(ProviderError::Refused { status: 401, .. })
    ));
    let wrong_org = provider(&address, Some(&[("token", "influx-token-1"), ("org", "other")])).expect("a provider");
    assert!(matches!(
        wrong_org.is_online().await,
        Err(ProviderError::Http { status: 404, .. })
    ));
    assert_eq!(
        provider(&address, Some(&[("token", "t")])).err().as_deref(),
        Some("the secretRef's Secret has no org: influxdb needs token and org (2.x), or username and password (1.x)")
    );
    assert_eq!(
        provider(&address, Some(&[("username", "u")])).err().as_deref(),
        Some(
            "the secretRef's Secret has no password: influxdb needs token and org (2.x), or username and password (1.x)"
        )
    );
}
