//! MetricTemplates whose provider needs credentials: read from the template's Secret at each
//! check, a changed Secret applied without a restart, never shown to the user.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{MetricTemplate, Phase};
use serin_testenv::auth_proxy::{AuthProxy, BASIC_PASSWORD, BASIC_USER};
use serin_testenv::traffic::Behaviour;

use crate::analysis::release;
use crate::support::{
    Cluster, ensure, event_messages, merge_patch, set_image, status_of, wait_for_message, wait_for_phase,
};

pub async fn a_metric_templates_secret_is_used_and_its_change_applied(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("secured").await?;
    let name = "secured";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let proxy = AuthProxy::start(cluster.prometheus.url())
        .await
        .map_err(|e| e.to_string())?;
    let wrong_password = "not-the-password-7";
    let secrets = Api::<Secret>::namespaced(cluster.client(), &namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "prometheus-auth" },
        "stringData": { "username": BASIC_USER, "password": wrong_password, "ca.crt": proxy.ca_pem() }
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;
    let template: MetricTemplate = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": { "name": "scraped" },
        "spec": {
            "provider": { "type": "prometheus", "address": format!("{}/basic", proxy.url()),
                          "secretRef": { "name": "prometheus-auth" } },
            "query": "sum(up{job=\"traffic\"})"
        }
    }))?;
    Api::<MetricTemplate>::namespaced(cluster.client(), &namespace)
        .create(&PostParams::default(), &template)
        .await?;
    let analysis = json!({
        "interval": "2s", "threshold": 30, "iterations": 3,
        "metrics": [{ "name": "scraped", "templateRef": { "name": "scraped" }, "thresholdRange": { "min": 1 } }]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "secured:2").await?;

    let refused = format!(
        "metric scraped: prometheus at {}/basic refused the credentials (401)",
        proxy.url()
    );
    wait_for_message(&cluster, &namespace, name, &refused).await?;
    let failed = status_of(&cluster, &namespace, name).await?.failed_checks.unwrap_or(0);
    ensure(failed >= 1, format!("the refused check counts as failed: {failed}"))?;

    merge_patch(
        &secrets,
        "prometheus-auth",
        json!({ "stringData": { "password": BASIC_PASSWORD } }),
    )
    .await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;

    let events = event_messages(&cluster, &namespace, name).await?;
    ensure(
        events.iter().any(|m| m.contains("refused the credentials (401)")),
        format!("an Event says the credentials were refused: {events:?}"),
    )?;
    let status = serde_json::to_string(&status_of(&cluster, &namespace, name).await?)?;
    for shown in events.iter().chain([&status]) {
        ensure(
            !shown.contains(wrong_password) && !shown.contains(BASIC_PASSWORD),
            format!("no password is shown: {shown}"),
        )?;
    }
    Ok(())
}

/// The `keptn` provider through a rollout: a KeptnMetric's value, and Analyses created for an
/// AnalysisDefinition that this test completes as Keptn's metrics operator would.
pub async fn keptn_metrics_and_analyses_judge_a_rollout(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("keptn").await?;
    let name = "keptn";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let keptn = |kind: &str, plural: &str| {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("metrics.keptn.sh", "v1beta1", kind), plural);
        Api::<DynamicObject>::namespaced_with(cluster.client(), &namespace, &resource)
    };
    let metrics = keptn("KeptnMetric", "keptnmetrics");
    let metric: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
        "metadata": { "name": "error-rate" },
        "spec": { "provider": { "name": "prometheus" }, "query": "sum(rate(errors[1m]))", "fetchIntervalSeconds": 10 }
    }))?;
    metrics.create(&PostParams::default(), &metric).await?;
    let set_value = |value: &'static str| {
        let metrics = metrics.clone();
        async move {
            let status = json!({ "status": { "value": value, "rawValue": "", "lastUpdated": "2026-12-01T10:00:00Z" } });
            metrics
                .patch_status("error-rate", &PatchParams::default(), &Patch::Merge(&status))
                .await
        }
    };
    set_value("0.5").await?;
    for (template, query) in [
        ("keptn-error-rate", "keptnmetric/{{ namespace }}/error-rate"),
        (
            "keptn-slo",
            "analysis/{{ namespace }}/slo/2m/service={{ target }};tier=web",
        ),
    ] {
        let template: MetricTemplate = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": { "name": template },
            "spec": { "provider": { "type": "keptn" }, "query": query }
        }))?;
        Api::<MetricTemplate>::namespaced(cluster.client(), &namespace)
            .create(&PostParams::default(), &template)
            .await?;
    }
    // Keptn's part: every new Analysis is completed, passed, once its spec is what Flagger writes.
    let analyses = keptn("Analysis", "analyses");
    let completed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let keptn_operator = tokio::spawn({
        let analyses = analyses.clone();
        let completed = completed.clone();
        let expected_args = json!({ "service": name, "tier": "web" });
        async move {
            loop {
                for analysis in analyses
                    .list(&Default::default())
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default()
                {
                    let spec = &analysis.data["spec"];
                    let as_written = spec["analysisDefinition"]["name"] == "slo"
                        && spec["timeframe"]["recent"] == "2m"
                        && spec["args"] == expected_args;
                    if !analysis.data["status"].is_object() && as_written {
                        let status = json!({ "status": { "state": "Completed", "pass": true } });
                        let name = analysis.metadata.name.clone().unwrap_or_default();
                        if analyses
                            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                            .await
                            .is_ok()
                        {
                            completed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    });
    let analysis = json!({
        "interval": "2s", "threshold": 1, "iterations": 2,
        "metrics": [
            { "name": "error-rate", "templateRef": { "name": "keptn-error-rate" }, "thresholdRange": { "max": 1 } },
            { "name": "slo", "templateRef": { "name": "keptn-slo" }, "thresholdRange": { "min": 1 } }
        ]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "keptn:2").await?;
    let promoted = wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await;
    let passed_analyses = completed.load(std::sync::atomic::Ordering::SeqCst);
    promoted?;
    ensure(
        passed_analyses >= 2,
        format!("an Analysis per check: {passed_analyses}"),
    )?;

    // A value above the range fails the next revision.
    set_value("5").await?;
    set_image(&cluster, &namespace, name, "keptn:3").await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Failed).await?;
    let events = event_messages(&cluster, &namespace, name).await?;
    ensure(
        events
            .iter()
            .any(|m| m.contains("error-rate 5.00 is above the maximum 1")),
        format!("the failed check's Event gives the KeptnMetric's value: {events:?}"),
    )?;
    keptn_operator.abort();
    let left = analyses.list(&Default::default()).await?.items.len();
    ensure(
        left == 0,
        format!("every Analysis was deleted after its check: {left} left"),
    )?;
    Ok(())
}
