//! The CloudWatch provider against loopback servers speaking CloudWatch's and STS' documented
//! Query APIs (`GetMetricData`, `AssumeRoleWithWebIdentity`, XML answers and errors), which
//! check every request's Signature Version 4 by recomputing it from the AWS documentation's
//! algorithm, written here independently of the `aws-sigv4` crate the provider signs with.
//! AWS itself cannot be reached here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderEnvironment, ProviderError, ProviderSettings, provider_for};
use sha2::{Digest, Sha256};

const REGION: &str = "eu-west-1";
const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TEMPORARY_KEY: &str = "ASIATEMPORARY";
const TEMPORARY_SECRET: &str = "temporary/secret+key";
const SESSION_TOKEN: &str = "session-token-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/serin";
const WEB_IDENTITY_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.service-account-token";

#[derive(Default)]
struct Recorded {
    /// The form of each signed GetMetricData request.
    queries: Vec<BTreeMap<String, String>>,
    sts_calls: usize,
}

type Shared = Arc<Mutex<Recorded>>;

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"
    );
    (status, [("content-type", "text/xml")], body).into_response()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Recomputes the request's SigV4 signature (AWS General Reference, "Create a signed AWS API
/// request"): `Ok` with the access key it was made with, or the error CloudWatch answers.
fn verify_signature(headers: &HeaderMap, body: &[u8], service: &str) -> Result<String, (&'static str, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let authorization = header("authorization");
    let fields: BTreeMap<&str, &str> = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or(("IncompleteSignature", "not a SigV4 Authorization header".to_string()))?
        .split(", ")
        .filter_map(|field| field.split_once('='))
        .collect();
    let credential: Vec<&str> = fields
        .get("Credential")
        .copied()
        .unwrap_or_default()
        .split('/')
        .collect();
    let [access_key, date, region, signed_service, "aws4_request"] = credential[..] else {
        return Err(("IncompleteSignature", format!("bad credential scope {credential:?}")));
    };
    let secret = match access_key {
        ACCESS_KEY => SECRET_KEY,
        TEMPORARY_KEY if header("x-amz-security-token") == SESSION_TOKEN => TEMPORARY_SECRET,
        _ => {
            return Err((
                "InvalidClientTokenId",
                "The security token included in the request is invalid.".into(),
            ));
        }
    };
    if region != REGION || signed_service != service {
        return Err(("SignatureDoesNotMatch", format!("scope {region}/{signed_service}")));
    }
    let signed_headers = fields.get("SignedHeaders").copied().unwrap_or_default();
    let canonical_headers: String = signed_headers
        .split(';')
        .map(|name| format!("{name}:{}\n", header(name).trim()))
        .collect();
    let canonical_request = format!("POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}", hex_sha256(body));
    let amz_date = header("x-amz-date");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex_sha256(canonical_request.as_bytes())
    );
    let key = [date, region, service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |key, part| hmac(&key, part));
    let expected = hex::encode(hmac(&key, &string_to_sign));
    if !signed_headers.split(';').any(|h| h == "host") || !amz_date.starts_with(date) {
        return Err(("SignatureDoesNotMatch", "host or date not signed".into()));
    }
    if fields.get("Signature").copied() != Some(expected.as_str()) {
        return Err((
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.".into(),
        ));
    }
    Ok(access_key.to_string())
}

async fn cloudwatch(State(recorded): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err((code, message)) = verify_signature(&headers, &body, "monitoring") {
        return xml_error(StatusCode::FORBIDDEN, code, &message);
    }
    let form = form(&body);
    if form.get("Action").map(String::as_str) != Some("GetMetricData") || form["Version"] != "2010-08-01" {
        return xml_error(StatusCode::BAD_REQUEST, "InvalidAction", "unknown action");
    }
    if !form.contains_key("MetricDataQueries.member.1.Id") {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "The parameter MetricDataQueries is required.",
        );
    }
    recorded.lock().expect("recorded").queries.push(form.clone());
    let expression = form
        .get("MetricDataQueries.member.1.Expression")
        .cloned()
        .unwrap_or_default();
    if expression.contains("THROTTLE") {
        return xml_error(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded");
    }
    if expression.contains("INVALID") {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "Unrecognized function INVALID",
        );
    }
    let values = if expression.contains("EMPTY") {
        ""
    } else {
        "<member>2.5</member><member>9.0</member>"
    };
    let members: String = form
        .iter()
        .filter(|(name, _)| name.starts_with("MetricDataQueries.member.") && name.ends_with(".Id"))
        .filter(|(name, _)| form.get(&name.replace(".Id", ".ReturnData")).map(String::as_str) != Some("false"))
        .map(|(_, id)| {
            format!(
                "<member><Id>{id}</Id><Label>{id}</Label><Timestamps><member>2026-12-01T10:01:00Z</member>\
                 <member>2026-12-01T10:00:00Z</member></Timestamps><Values>{values}</Values>\
                 <StatusCode>Complete</StatusCode></member>"
            )
        })
        .collect();
    let answer = format!(
        "<GetMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><GetMetricDataResult>\
         <MetricDataResults>{members}</MetricDataResults><Messages/></GetMetricDataResult>\
         <ResponseMetadata><RequestId>req-2</RequestId></ResponseMetadata></GetMetricDataResponse>"
    );
    ([("content-type", "text/xml")], answer).into_response()
}

async fn sts(State(recorded): State<Shared>, body: Bytes) -> Response {
    let form = form(&body);
    recorded.lock().expect("recorded").sts_calls += 1;
    if form.get("Action").map(String::as_str) != Some("AssumeRoleWithWebIdentity") || form["RoleArn"] != ROLE {
        return xml_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        );
    }
    if form.get("WebIdentityToken").map(String::as_str) != Some(WEB_IDENTITY_TOKEN) {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider",
        );
    }
    let expiration = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(3600))
        .expect("time");
    let answer = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleWithWebIdentityResult><Credentials><SessionToken>{SESSION_TOKEN}</SessionToken>\
         <SecretAccessKey>{TEMPORARY_SECRET}</SecretAccessKey><Expiration>{}</Expiration>\
         <AccessKeyId>{TEMPORARY_KEY}</AccessKeyId></Credentials><AssumedRoleUser><Arn>{ROLE}/serin</Arn>\
         </AssumedRoleUser></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        expiration.round(k8s_openapi::jiff::Unit::Second).expect("rounded")
    );
    ([("content-type", "text/xml")], answer).into_response()
}

async fn aws() -> (String, String, Shared) {
    let recorded: Shared = Arc::default();
    let cloudwatch =
        serin_testenv::serve_on_loopback(Router::new().route("/", post(cloudwatch)).with_state(recorded.clone()))
            .await
            .expect("a loopback server");
    let sts = serin_testenv::serve_on_loopback(Router::new().route("/", post(sts)).with_state(recorded.clone()))
        .await
        .expect("a loopback server");
    (cloudwatch, sts, recorded)
}

fn make_provider(environment: &ProviderEnvironment, region: Option<&str>) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    provider_for(
        MetricProviderType::Cloudwatch,
        &ProviderSettings {
            address: None,
            metrics_server: "http://prometheus.invalid:9090",
            secret: None,
            credentials: &BTreeMap::new(),
            headers: None,
            client: &reqwest::Client::new(),
            insecure_skip_verify: false,
            metric_interval: Duration::from_secs(60),
            region,
            environment,
            cluster: None,
        },
    )
}

fn variables(entries: &[(&str, &str)]) -> ProviderEnvironment {
    ProviderEnvironment::from_variables(
        entries
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
    )
}

const ERROR_RATE: &str = r#"[
  { "Id": "e1", "Expression": "m1 / m2 * 100", "Label": "error rate" },
  { "Id": "m1", "ReturnData": false, "MetricStat": { "Period": 60, "Stat": "Sum",
    "Metric": { "Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count",
                "Dimensions": [{ "Name": "TargetGroup", "Value": "targetgroup/web-canary/1" }] } } },
  { "Id": "m2", "ReturnData": false, "MetricStat": { "Period": 60, "Stat": "Sum",
    "Metric": { "Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
                "Dimensions": [{ "Name": "TargetGroup", "Value": "targetgroup/web-canary/1" }] } } }
]"#;

#[tokio::test]
async fn get_metric_data_signed_with_keys_from_the_environment() {
    let (cloudwatch, _, recorded) = aws().await;
    let environment = variables(&[
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch),
    ]);
    let provider = make_provider(&environment, Some(REGION)).expect("a provider");
    assert_eq!(provider.describe(), format!("cloudwatch in {REGION} at {cloudwatch}"));
    provider
        .is_online()
        .await
        .expect("the empty request is refused as invalid only");

    let sample = provider.query(ERROR_RATE).await.expect("a value");
    assert_eq!(
        (sample.value, sample.series, sample.picked),
        (2.5, 1, "first"),
        "the first (newest) value of the one returned result"
    );
    let sent = recorded
        .lock()
        .expect("recorded")
        .queries
        .last()
        .cloned()
        .expect("a query");
    assert_eq!(sent["MaxDatapoints"], "20");
    assert_eq!(
        sent["MetricDataQueries.member.2.MetricStat.Metric.Dimensions.member.1.Value"],
        "targetgroup/web-canary/1"
    );
    let start: k8s_openapi::jiff::Timestamp = sent["StartTime"].parse().expect("StartTime");
    let end: k8s_openapi::jiff::Timestamp = sent["EndTime"].parse().expect("EndTime");
    assert_eq!(end.duration_since(start).as_secs(), 600, "ten metric intervals");

    let empty = provider.query(r#"[{ "Id": "e1", "Expression": "EMPTY" }]"#).await;
    assert!(matches!(empty, Err(ProviderError::NoValues)), "{empty:?}");
    let throttled = provider.query(r#"[{ "Id": "e1", "Expression": "THROTTLE" }]"#).await;
    assert!(
        matches!(throttled, Err(ProviderError::RateLimited { .. })),
        "{throttled:?}"
    );
    let invalid = provider.query(r#"[{ "Id": "e1", "Expression": "INVALID(m1)" }]"#).await;
    assert!(
        matches!(&invalid, Err(ProviderError::Http { status: 400, body }) if body == "ValidationError: Unrecognized function INVALID"),
        "{invalid:?}"
    );
    let not_json = provider
        .query("SELECT AVG(CPUUtilization) FROM SCHEMA(\"AWS/EC2\")")
        .await;
    let message = not_json.map_err(|e| e.to_string()).expect_err("not JSON");
    assert!(message.contains("not a JSON array of MetricDataQuery"), "{message}");

    let wrong_secret = variables(&[
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ("AWS_ENDPOINT_URL", &cloudwatch),
    ]);
    let refused = make_provider(&wrong_secret, Some(REGION))
        .expect("a provider")
        .query(ERROR_RATE)
        .await;
    let message = refused.as_ref().map_err(ToString::to_string).expect_err("refused");
    assert!(matches!(refused, Err(ProviderError::Refused { status: 403, .. })));
    assert!(message.contains("SignatureDoesNotMatch"), "{message}");
    assert!(
        !message.contains("not-the-secret"),
        "no secret in the message: {message}"
    );
    let unknown_key = variables(&[
        ("AWS_ACCESS_KEY_ID", "AKIDOTHER"),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_ENDPOINT_URL", &cloudwatch),
    ]);
    let offline = make_provider(&unknown_key, Some(REGION))
        .expect("a provider")
        .is_online()
        .await;
    assert!(
        matches!(&offline, Err(ProviderError::Refused { body, .. }) if body.starts_with("InvalidClientTokenId")),
        "{offline:?}"
    );

    let nothing = variables(&[("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch)]);
    let message = make_provider(&nothing, Some(REGION))
        .expect("a provider")
        .query(ERROR_RATE)
        .await
        .map_err(|e| e.to_string())
        .expect_err("no credentials");
    assert!(
        message.starts_with("cannot authenticate: no AWS credentials: set AWS_ACCESS_KEY_ID"),
        "{message}"
    );
    assert_eq!(
        make_provider(&environment, None).err().as_deref(),
        Some("cloudwatch needs the template's region (e.g. us-east-1)")
    );
}

#[tokio::test]
async fn web_identity_credentials_from_sts_are_cached() {
    let (cloudwatch, sts, recorded) = aws().await;
    let token_file = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token_file.path(), format!("{WEB_IDENTITY_TOKEN}\n")).expect("token written");
    let token_path = token_file.path().display().to_string();
    let environment = variables(&[
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch),
        ("AWS_ENDPOINT_URL_STS", &sts),
    ]);
    for _ in 0..3 {
        // A provider per check, as the operator makes them; the credentials outlive it.
        let provider = make_provider(&environment, Some(REGION)).expect("a provider");
        assert_eq!(provider.query(ERROR_RATE).await.expect("a value").value, 2.5);
    }
    assert_eq!(recorded.lock().expect("recorded").sts_calls, 1, "STS asked once");

    std::fs::write(token_file.path(), "a-revoked-token").expect("token written");
    let fresh = variables(&[
        ("AWS_ROLE_ARN", ROLE),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", &cloudwatch),
        ("AWS_ENDPOINT_URL_STS", &sts),
    ]);
    let refused = make_provider(&fresh, Some(REGION))
        .expect("a provider")
        .query(ERROR_RATE)
        .await;
    let message = refused.map_err(|e| e.to_string()).expect_err("refused by STS");
    assert!(
        message.starts_with(&format!(
            "cannot authenticate: STS refused role {ROLE} (400): InvalidIdentityToken"
        )),
        "{message}"
    );
    assert!(
        !message.contains("a-revoked-token"),
        "no token in the message: {message}"
    );
}
