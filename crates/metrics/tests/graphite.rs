//! The Graphite provider against a real Graphite (Debian's carbon-cache and graphite-web), and
//! behind a real nginx asking for basic auth.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serin_api::metric_template::MetricProviderType;
use serin_metrics::{MetricProvider, ProviderError, ProviderSettings, Sample, provider_for};
use serin_testenv::auth_proxy::{AuthProxy, BASIC_PASSWORD, BASIC_USER};
use serin_testenv::graphite::Graphite;

fn provider(
    address: &str,
    credentials: Option<&BTreeMap<String, String>>,
    insecure_skip_verify: bool,
) -> Result<Box<dyn MetricProvider>, String> {
    serin_testenv::install_crypto_provider();
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(insecure_skip_verify)
        .build()
        .map_err(|e| e.to_string())?;
    let none = BTreeMap::new();
    provider_for(
        MetricProviderType::Graphite,
        &ProviderSettings {
            address: Some(address),
            metrics_server: "http://prometheus.invalid:9090",
            secret: credentials.map(|_| "graphite-auth"),
            credentials: credentials.unwrap_or(&none),
            headers: None,
            client: &client,
            insecure_skip_verify,
            metric_interval: Duration::from_secs(60),
            region: None,
            environment: &serin_metrics::ProviderEnvironment::from_variables(BTreeMap::new()),
            cluster: None,
        },
    )
}

/// Asks until carbon has taken the points and graphite-web serves them.
async fn first_answer(graphite: &dyn MetricProvider, query: &str) -> Sample {
    let mut answer = graphite.query(query).await;
    for _ in 0..100 {
        if answer.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        answer = graphite.query(query).await;
    }
    answer.unwrap_or_else(|e| panic!("{query}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn graphite_render_queries_as_flagger_reads_them() {
    let server = Graphite::start().await.expect("graphite");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    server
        .send(&[
            ("serin.web.errors", 4.0, now - 6),
            ("serin.web.errors", 5.0, now - 5),
            ("serin.web.errors", 6.0, now - 3),
            ("serin.web.requests", 100.0, now - 6),
            ("serin.web.requests", 120.0, now - 4),
        ])
        .await
        .expect("points sent");
    let graphite = provider(server.url(), None, false).expect("a provider");
    assert_eq!(graphite.describe(), format!("graphite at {}", server.url()));
    graphite.is_online().await.expect("online");

    let sample = first_answer(&*graphite, "target=serin.web.errors&from=-1min").await;
    assert_eq!((sample.value, sample.series), (6.0, 1), "the last non-null datapoint");
    let sample = first_answer(
        &*graphite,
        "target=serin.web.requests&target=serin.web.errors&from=-1min",
    )
    .await;
    assert_eq!(
        (sample.value, sample.series, sample.picked),
        (6.0, 2, "last"),
        "the last target's"
    );
    let sample = graphite
        .query("target=sumSeries(\n    serin.web.errors,\n    serin.web.requests)&from=-1min&format=raw")
        .await
        .expect("whitespace collapsed, format json kept");
    assert_eq!(sample.value, 6.0, "at now-3 only the errors have a point");
    let sample = graphite
        .query("target=divideSeries(sumSeries(serin.web.errors),sumSeries(serin.web.requests))&from=-1min")
        .await
        .expect("a ratio");
    assert!(
        (sample.value - 0.04).abs() < 1e-9,
        "now-6 is the only second where both have a point: {sample:?}"
    );
    assert!(matches!(
        graphite.query("target=serin.nothing&from=-1min").await,
        Err(ProviderError::NoValues)
    ));
    let bad = graphite.query("target=noSuchFunction(serin.web.errors)").await;
    assert!(
        matches!(bad, Err(ProviderError::Http { status: 400 | 500, .. })),
        "{bad:?}"
    );

    // Behind nginx with basic auth, its certificate not verified (insecureSkipVerify).
    let proxy = AuthProxy::start(server.url()).await.expect("nginx");
    let behind = format!("{}/basic", proxy.url());
    let credentials = BTreeMap::from([
        ("username".to_string(), BASIC_USER.to_string()),
        ("password".to_string(), BASIC_PASSWORD.to_string()),
    ]);
    let graphite = provider(&behind, Some(&credentials), true).expect("a provider");
    let sample = graphite.query("target=serin.web.errors&from=-1min").await;
    assert_eq!(sample.expect("through nginx").value, 6.0);
    let wrong = BTreeMap::from([
        ("username".to_string(), BASIC_USER.to_string()),
        ("password".to_string(), "wrong".to_string()),
    ]);
    let refused = provider(&behind, Some(&wrong), true)
        .expect("a provider")
        .query("target=serin.web.errors")
        .await;
    assert!(
        matches!(refused, Err(ProviderError::Refused { status: 401, .. })),
        "{refused:?}"
    );
    let unverified = provider(&behind, Some(&credentials), false)
        .expect("a provider")
        .is_online()
        .await;
    assert!(
        matches!(unverified, Err(ProviderError::Unreachable { .. })),
        "{unverified:?}"
    );

    drop(proxy);
    drop(server);
    assert!(matches!(
        provider(&behind, None, true).expect("a provider").is_online().await,
        Err(ProviderError::Unreachable { .. })
    ));
    assert_eq!(
        provider(&behind, Some(&BTreeMap::new()), true).err().as_deref(),
        Some("the secretRef's Secret has no username: graphite needs username and password")
    );
}
