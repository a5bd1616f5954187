//! The operator's own metrics, scraped by the real Prometheus during a rollout: Flagger's names
//! and labels (so queries written against Flagger's carry over), and the health endpoints.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{Canary, Phase};

use crate::analysis::{builtin_metrics, release};
use crate::support::{Cluster, ensure, set_image};

/// `flagger_canary_weight` follows the steps of a progressive canary, `flagger_canary_status`
/// ends at 1 with one success counted, the checked values are exported, and `/healthz` and
/// `/readyz` answer.
pub async fn the_operators_metrics_follow_a_rollout(cluster: Arc<Cluster>) -> Result<(), Failed> {
    // The operator starts its server once its caches are set up; the tests start with it.
    for path in ["/healthz", "/readyz"] {
        let url = format!("{}{path}", cluster.telemetry_url);
        let answered = serin_testenv::wait_for(Duration::from_secs(30), &url, || {
            let url = url.clone();
            async move {
                let status = reqwest::get(url).await.ok()?.status();
                status.is_success().then_some(())
            }
        })
        .await;
        ensure(answered.is_ok(), format!("{path} answers 200"))?;
    }
    let namespace = cluster.namespace("telemetry").await?;
    let name = "telemetry";
    cluster
        .traffic
        .set(&namespace, name, serin_testenv::traffic::Behaviour::healthy());
    let analysis =
        json!({ "interval": "3s", "threshold": 2, "stepWeight": 30, "maxWeight": 60, "metrics": builtin_metrics() });
    release(&cluster, &namespace, name, 1, "gatewayapi:v1", analysis).await?;
    set_image(&cluster, &namespace, name, "telemetry:2").await?;
    let weight = format!(r#"flagger_canary_weight{{namespace="{namespace}",workload="{name}"}}"#);
    let canaries = Api::<Canary>::namespaced(cluster.client(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut seen = BTreeSet::new();
    loop {
        if let Some(value) = cluster.prometheus.instant(&weight).await {
            seen.insert(value as i64);
        }
        let phase = canaries
            .get(name)
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.phase);
        if phase == Some(Phase::Succeeded) {
            break;
        }
        ensure(
            tokio::time::Instant::now() < deadline,
            format!("not promoted within 90 s; flagger_canary_weight seen {seen:?}"),
        )?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    ensure(
        seen.contains(&30) && seen.contains(&60),
        format!("flagger_canary_weight went through 30 and 60: {seen:?}"),
    )?;
    let labels = format!(r#"namespace="{namespace}",name="{name}""#);
    let queries = [
        (format!("flagger_canary_status{{{labels}}}"), 1.0),
        (
            format!(
                r#"flagger_canary_successes_total{{{labels},deployment_strategy="canary",analysis_status="completed"}}"#
            ),
            1.0,
        ),
        (format!(r#"flagger_canary_total{{namespace="{namespace}"}}"#), 1.0),
        (
            format!(r#"flagger_canary_metric_analysis{{{labels},metric="request-success-rate"}}"#),
            100.0,
        ),
        (
            format!(r#"flagger_canary_weight{{namespace="{namespace}",workload="{name}"}}"#),
            0.0,
        ),
    ];
    for (query, expected) in queries {
        let got = serin_testenv::wait_for(Duration::from_secs(20), &query, || {
            let (cluster, query) = (&cluster, &query);
            async move {
                cluster
                    .prometheus
                    .instant(query)
                    .await
                    .filter(|v| (*v - expected).abs() < 0.01)
            }
        })
        .await;
        ensure(
            got.is_ok(),
            format!(
                "{query} is {expected}; last {:?}",
                cluster.prometheus.instant(&query).await
            ),
        )?;
    }
    ensure(
        cluster
            .prometheus
            .instant(r#"flagger_info{mesh_provider="kubernetes"}"#)
            .await
            == Some(1.0)
            && cluster
                .prometheus
                .instant(r#"sum(serin_reconciles_total{result="ok"})"#)
                .await
                .is_some_and(|n| n > 0.0)
            && cluster
                .prometheus
                .instant(r#"sum(serin_metric_queries_total{provider="prometheus",outcome="ok"})"#)
                .await
                .is_some_and(|n| n >= 2.0),
        "flagger_info, serin_reconciles_total and serin_metric_queries_total (this rollout's checks) are exported",
    )
}
