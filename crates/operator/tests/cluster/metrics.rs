//! MetricTemplates whose provider needs credentials: read from the template's Secret at each
//! check, a changed Secret applied without a restart, never shown to the user.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{MetricTemplate, Phase};
use serin_testenv::auth_proxy::{AuthProxy, BASIC_PASSWORD, BASIC_USER};
use serin_testenv::traffic::Behaviour;

use crate::analysis::release;
use crate::support::{
    Cluster, ensure, events_for, merge_patch, set_image, status_of, wait_for_message, wait_for_phase,
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

    let events: Vec<String> = events_for(&cluster, &namespace, name)
        .await?
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
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
