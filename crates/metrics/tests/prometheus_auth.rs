//! The Prometheus provider against a real Prometheus behind a real nginx: HTTPS with a CA of its
//! own, a path prefix (as Thanos, Cortex and Mimir serve the query API), basic auth, and a bearer
//! token with Mimir's tenant header.

use std::collections::BTreeMap;
use std::time::Duration;

use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderError, ProviderSettings, provider_for};
use serin_testenv::auth_proxy::{AuthProxy, BASIC_PASSWORD, BASIC_USER, BEARER_TOKEN, TENANT};
use serin_testenv::prometheus::Prometheus;
use serin_testenv::traffic::TrafficSource;

struct Template<'a> {
    address: &'a str,
    secret: Option<BTreeMap<String, String>>,
    headers: Option<BTreeMap<String, Vec<String>>>,
    insecure_skip_verify: bool,
}

impl Template<'_> {
    fn provider(&self) -> Result<Box<dyn MetricProvider>, String> {
        serin_testenv::install_crypto_provider();
        let no_credentials = BTreeMap::new();
        // As the operator's shared clients: one verifying certificates, one not.
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(self.insecure_skip_verify)
            .build()
            .map_err(|e| e.to_string())?;
        provider_for(
            MetricProviderType::Prometheus,
            &ProviderSettings {
                address: Some(self.address),
                metrics_server: "http://prometheus.invalid:9090",
                secret: self.secret.as_ref().map(|_| "prometheus-auth"),
                credentials: self.secret.as_ref().unwrap_or(&no_credentials),
                headers: self.headers.as_ref(),
                client: &client,
                insecure_skip_verify: self.insecure_skip_verify,
                metric_interval: Duration::from_secs(60),
                region: None,
                environment: &serin_metrics::ProviderEnvironment::from_variables(BTreeMap::new()),
                cluster: None,
            },
        )
    }
}

fn secret(entries: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_behind_tls_auth_and_a_path_prefix() {
    let traffic = TrafficSource::start().await.expect("traffic source");
    let prometheus = Prometheus::start(&[traffic.scrape_target()], Duration::from_secs(1))
        .await
        .expect("prometheus");
    let proxy = AuthProxy::start(prometheus.url()).await.expect("nginx");
    let ca = proxy.ca_pem();
    let basic = format!("{}/basic", proxy.url());
    let bearer = format!("{}/bearer/", proxy.url());
    let tenant = Some(BTreeMap::from([(
        "X-Scope-OrgID".to_string(),
        vec![TENANT.to_string()],
    )]));

    // Basic auth, the CA from the Secret.
    let with_basic = Template {
        address: &basic,
        secret: secret(&[("username", BASIC_USER), ("password", BASIC_PASSWORD), ("ca.crt", ca)]),
        headers: None,
        insecure_skip_verify: false,
    };
    let provider = with_basic.provider().expect("a provider");
    provider.is_online().await.expect("online through nginx");
    let sample = provider.query("vector(42)").await.expect("a value");
    assert_eq!(sample.value, 42.0);
    let sample = provider
        .query("sum(\n  up{job=\"traffic\"}\n)")
        .await
        .expect("the scraped series, the query's whitespace collapsed");
    assert_eq!(sample.value, 1.0);

    // A bearer token and the tenant header.
    let with_token = Template {
        address: &bearer,
        secret: secret(&[("token", &format!("{BEARER_TOKEN}\n")), ("ca.crt", ca)]),
        headers: tenant.clone(),
        insecure_skip_verify: false,
    };
    let sample = with_token.provider().expect("a provider").query("vector(7)").await;
    assert_eq!(sample.expect("a value").value, 7.0);

    // Without the tenant header, with a wrong password or token: refused, saying so.
    let no_tenant = Template {
        headers: None,
        ..with_token
    };
    let refused = no_tenant.provider().expect("a provider").query("vector(7)").await;
    assert!(
        matches!(refused, Err(ProviderError::Refused { status: 403, .. })),
        "{refused:?}"
    );
    let wrong_password = Template {
        secret: secret(&[("username", BASIC_USER), ("password", "wrong"), ("ca.crt", ca)]),
        ..with_basic
    };
    let refused = wrong_password.provider().expect("a provider").query("vector(1)").await;
    let message = refused.as_ref().map_err(ToString::to_string).expect_err("refused");
    assert!(message.starts_with("refused the credentials (401)"), "{message}");
    assert!(!message.contains("wrong"), "no credential in the message: {message}");
    let wrong_token = Template {
        address: &bearer,
        secret: secret(&[("token", "other"), ("ca.crt", ca)]),
        headers: tenant.clone(),
        insecure_skip_verify: false,
    };
    assert!(matches!(
        wrong_token.provider().expect("a provider").query("vector(1)").await,
        Err(ProviderError::Refused { status: 401, .. })
    ));

    // Without the CA the certificate is not trusted, unless insecureSkipVerify says so.
    let untrusted = Template {
        address: &bearer,
        secret: secret(&[("token", BEARER_TOKEN)]),
        headers: tenant.clone(),
        insecure_skip_verify: false,
    };
    let error = untrusted.provider().expect("a provider").query("vector(1)").await;
    assert!(matches!(error, Err(ProviderError::Unreachable { .. })), "{error:?}");
    let skip = Template {
        insecure_skip_verify: true,
        ..untrusted
    };
    let provider = skip.provider().expect("a provider");
    assert_eq!(provider.query("vector(3)").await.expect("a value").value, 3.0);
}

#[test]
fn unusable_secrets_and_headers_are_named() {
    let error = |template: Template<'_>| template.provider().err().unwrap_or_default();
    let plain = |secret, headers| Template {
        address: "https://prometheus.example",
        secret,
        headers,
        insecure_skip_verify: false,
    };
    assert_eq!(
        error(plain(secret(&[("username", "u")]), None)),
        "the secretRef's Secret has no password: prometheus needs token, or username and password (and may have ca.crt)"
    );
    assert_eq!(
        error(plain(secret(&[("password", "p")]), None)),
        "the secretRef's Secret has no username: prometheus needs token, or username and password (and may have ca.crt)"
    );
    assert_eq!(
        error(plain(secret(&[("ca.crt", "not a certificate")]), None)),
        "the secretRef's ca.crt holds no PEM certificate"
    );
    assert_eq!(
        error(plain(
            None,
            Some(BTreeMap::from([("X Tenant".to_string(), vec!["a".to_string()])]))
        )),
        "header \"X Tenant\" is not a valid header name"
    );
    assert_eq!(
        error(Template {
            address: "prometheus.monitoring:9090",
            ..plain(None, None)
        }),
        "prometheus address \"prometheus.monitoring:9090\" is not an http or https URL"
    );
    assert_eq!(
        error(Template {
            address: "/prometheus",
            ..plain(None, None)
        }),
        "prometheus address \"/prometheus\" is not a valid URL: relative URL without a base"
    );
}
