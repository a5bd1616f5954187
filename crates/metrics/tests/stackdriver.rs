//! The Stackdriver (Google Cloud Monitoring) provider against loopback servers speaking Google's
//! documented OAuth 2.0 service-account flow (`POST <token_uri>` with a JWT bearer assertion)
//! and Monitoring's `timeSeries.query` REST method (JSON answers, Google API errors). The token
//! server verifies each assertion's RS256 signature with the test key's public half (ring,
//! independently of the signer) and its claims. Google itself cannot be reached here.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderEnvironment, ProviderError, ProviderSettings, provider_for};

const PROJECT: &str = "serin-test";
const EMAIL: &str = "serin@serin-test.iam.gserviceaccount.com";
const ACCESS_TOKEN: &str = "ya29.access-token-1";
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";

struct Fake {
    /// The test key's public half, PKCS#1 `RSAPublicKey` DER.
    public_key: Vec<u8>,
    token_uri: String,
    token_requests: usize,
    /// The MQL of each query.
    queries: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn google_error(status: StatusCode, name: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": status.as_u16(), "message": message, "status": name } });
    (status, axum::Json(body)).into_response()
}

/// Google's token endpoint for a JWT bearer assertion (RFC 7523).
async fn token(State(fake): State<Shared>, body: Bytes) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut fake = fake.lock().expect("fake");
    fake.token_requests += 1;
    let invalid = |description: &str| {
        let body = json!({ "error": "invalid_grant", "error_description": description });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return invalid("unsupported grant type");
    }
    let assertion = form.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return invalid("not a JWT");
    };
    // JWTs are unpadded base64url; some signers pad anyway, which Google accepts.
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).unwrap_or_default();
    let public_key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &fake.public_key);
    if public_key
        .verify(format!("{header}.{claims}").as_bytes(), &decode(signature))
        .is_err()
    {
        return invalid("Invalid JWT Signature.");
    }
    let header: Value = serde_json::from_slice(&decode(header)).unwrap_or_default();
    let claims: Value = serde_json::from_slice(&decode(claims)).unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let valid = header["alg"] == "RS256"
        && claims["iss"] == EMAIL
        && claims["scope"] == SCOPE
        && claims["aud"] == fake.token_uri.as_str()
        && claims["exp"].as_u64().is_some_and(|exp| exp > now && exp <= now + 3600);
    if !valid {
        return invalid(&format!("bad claims {header} {claims}"));
    }
    axum::Json(json!({ "access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer" })).into_response()
}

/// Monitoring's `POST /v3/projects/<project>/timeSeries:query`.
async fn query(
    State(fake): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    if name != format!("{PROJECT}/timeSeries:query") {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Permission monitoring.timeSeries.list denied (or the resource may not exist): {name}"),
        );
    }
    let query = body["query"].as_str().unwrap_or_default().to_string();
    fake.lock().expect("fake").queries.push(query.clone());
    if query.is_empty() || query.contains("syntax") {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Line 1, column 1: Query must not be empty or malformed.",
        );
    }
    if query.contains("quota") {
        return google_error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", "Quota exceeded.");
    }
    let data = if query.contains("nothing") {
        json!([])
    } else {
        json!([
            { "labelValues": [{ "stringValue": "web" }], "pointData": [
                { "values": [{ "doubleValue": 0.75 }], "timeInterval": { "endTime": "2026-12-01T10:01:00Z" } },
                { "values": [{ "doubleValue": 0.5 }], "timeInterval": { "endTime": "2026-12-01T10:00:00Z" } } ] }
        ])
    };
    axum::Json(
        json!({ "timeSeriesDescriptor": { "pointDescriptors": [{ "key": "value.ratio", "valueType": "DOUBLE" }] },
                       "timeSeriesData": data }),
    )
    .into_response()
}

/// An RSA key made by Debian's openssl: the PKCS#8 PEM and the public key's PKCS#1 DER.
fn rsa_key(dir: &std::path::Path) -> (String, Vec<u8>) {
    let private = dir.join("key.pem");
    let public = dir.join("public.der");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .status()
        .expect("openssl (Debian's openssl package) runs");
    assert!(made.success(), "openssl genpkey");
    let exported = Command::new("openssl")
        .args(["rsa", "-RSAPublicKey_out", "-outform", "DER", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .expect("openssl runs");
    assert!(exported.success(), "openssl rsa -RSAPublicKey_out");
    (
        std::fs::read_to_string(&private).expect("private key"),
        std::fs::read(&public).expect("public key"),
    )
}

fn provider(
    address: &str,
    secret: &BTreeMap<String, String>,
    environment: &ProviderEnvironment,
) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    provider_for(
        MetricProviderType::Stackdriver,
        &ProviderSettings {
            address: Some(address),
            metrics_server: "http://prometheus.invalid:9090",
            secret: Some("stackdriver"),
            credentials: secret,
            headers: None,
            client: &reqwest::Client::new(),
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(60),
            region: None,
            environment,
            cluster: None,
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn mql_queries_with_a_service_account_key() {
    let dir = tempfile::tempdir().expect("dir");
    let (private_key, public_key) = rsa_key(dir.path());
    let fake: Shared = Arc::new(Mutex::new(Fake {
        public_key,
        token_uri: String::new(),
        token_requests: 0,
        queries: Vec::new(),
    }));
    let app = Router::new()
        .route("/token", post(token))
        .route("/v3/projects/{*name}", post(query))
        .with_state(fake.clone());
    let address = serin_testenv::serve_on_loopback(app).await.expect("a loopback server");
    let token_uri = format!("{address}/token");
    fake.lock().expect("fake").token_uri = token_uri.clone();
    let key = json!({ "type": "service_account", "project_id": PROJECT, "private_key_id": "key-1",
                      "private_key": private_key, "client_email": EMAIL, "client_id": "1",
                      "token_uri": token_uri });
    let secret = BTreeMap::from([
        ("project".to_string(), PROJECT.to_string()),
        ("serviceAccountKey".to_string(), key.to_string()),
    ]);
    let environment = ProviderEnvironment::from_variables(BTreeMap::new());

    let stackdriver = provider(&address, &secret, &environment).expect("a provider");
    assert_eq!(
        stackdriver.describe(),
        format!("stackdriver project {PROJECT} at {address}")
    );
    stackdriver
        .is_online()
        .await
        .expect("an empty query is refused as invalid only");
    let mql = "fetch k8s_container | metric 'istio.io/service/server/request_count' | align rate(1m) | every 1m";
    for _ in 0..3 {
        // A provider per check, as the operator makes them; the token outlives it.
        let sample = provider(&address, &secret, &environment)
            .expect("a provider")
            .query(mql)
            .await
            .expect("a value");
        assert_eq!((sample.value, sample.series, sample.picked), (0.75, 1, "first"));
    }
    assert_eq!(
        fake.lock().expect("fake").token_requests,
        1,
        "one token for every check"
    );
    assert_eq!(fake.lock().expect("fake").queries.last().map(String::as_str), Some(mql));

    assert!(matches!(
        stackdriver.query("fetch nothing").await,
        Err(ProviderError::NoValues)
    ));
    let invalid = stackdriver.query("a syntax error").await;
    assert!(
        matches!(&invalid, Err(ProviderError::Http { status: 400, body }) if body.starts_with("INVALID_ARGUMENT: Line 1")),
        "{invalid:?}"
    );
    let limited = stackdriver.query("over quota").await;
    assert!(matches!(limited, Err(ProviderError::RateLimited { .. })), "{limited:?}");

    let other_project = BTreeMap::from([
        ("project".to_string(), "someone-else".to_string()),
        ("serviceAccountKey".to_string(), key.to_string()),
    ]);
    let denied = provider(&address, &other_project, &environment)
        .expect("a provider")
        .query(mql)
        .await;
    assert!(
        matches!(&denied, Err(ProviderError::Refused { status: 403, body }) if body.starts_with("PERMISSION_DENIED")),
        "{denied:?}"
    );

    // A key the token server does not know: its signature fails, and the check says so.
    let other_dir = tempfile::tempdir().expect("dir");
    let (other_key, _) = rsa_key(other_dir.path());
    let mut forged = key.clone();
    forged["private_key"] = json!(other_key);
    let forged_secret = BTreeMap::from([
        ("project".to_string(), PROJECT.to_string()),
        ("serviceAccountKey".to_string(), forged.to_string()),
    ]);
    let refused = provider(&address, &forged_secret, &environment)
        .expect("a provider")
        .query(mql)
        .await;
    let message = refused.map_err(|e| e.to_string()).expect_err("refused");
    assert!(
        message.starts_with("cannot authenticate: Google refused a token"),
        "{message}"
    );
    assert!(!message.contains("PRIVATE KEY"), "no key in the message: {message}");

    let broken = BTreeMap::from([
        ("project".to_string(), PROJECT.to_string()),
        ("serviceAccountKey".to_string(), "{ not json".to_string()),
    ]);
    let message = provider(&address, &broken, &environment)
        .expect("a provider")
        .query(mql)
        .await
        .map_err(|e| e.to_string())
        .expect_err("no key");
    assert!(
        message.starts_with("cannot authenticate: the secretRef's serviceAccountKey is not a service-account key"),
        "{message}"
    );
    assert_eq!(
        provider(&address, &BTreeMap::new(), &environment).err().as_deref(),
        Some("the secretRef's Secret has no project: stackdriver needs project (and may have serviceAccountKey)")
    );
    let slash = BTreeMap::from([("project".to_string(), "a/../b".to_string())]);
    assert_eq!(
        provider(&address, &slash, &environment).err().as_deref(),
        Some("the secretRef's project \"a/../b\" is not a project ID")
    );
}
