//! Config tracking: ConfigMaps and Secrets the target uses are part of its revision and are
//! copied for the primary as `<name>-primary`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::PostParams;
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::Phase;
use serin_testenv::fixtures::deployment;

use crate::support::{
    Cluster, canary_manifest, create_canary, create_deployment, ensure, merge_patch, status_of, trace_until,
    wait_for_phase,
};

async fn create<K>(api: &Api<K>, object: serde_json::Value) -> Result<(), Failed>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).map_err(|e| e.to_string())?;
    api.create(&PostParams::default(), &object)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

pub async fn a_config_change_is_a_new_revision_copied_to_the_primary(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("configs").await?;
    let name = "cfg";
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client(), &namespace);
    let secrets = Api::<Secret>::namespaced(cluster.client(), &namespace);
    create(
        &config_maps,
        json!({ "metadata": { "name": "settings" }, "data": { "greeting": "hello" } }),
    )
    .await?;
    create(
        &config_maps,
        json!({
            "metadata": { "name": "untracked", "annotations": { "flagger.app/config-tracking": "disabled" } },
            "data": { "x": "1" }
        }),
    )
    .await?;
    create(
        &secrets,
        json!({ "metadata": { "name": "creds" }, "stringData": { "password": "s3cret" } }),
    )
    .await?;

    let mut target = deployment(name, &[("app", name)], 1);
    if let Some(pod) = target.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod.containers[0].env = Some(serde_json::from_value(json!([
            { "name": "GREETING", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "greeting" } } }
        ]))?);
        pod.containers[0].env_from = Some(serde_json::from_value(json!([{ "secretRef": { "name": "creds" } }]))?);
        pod.volumes = Some(serde_json::from_value(
            json!([{ "name": "extra", "configMap": { "name": "untracked" } }]),
        )?);
    }
    create_deployment(&cluster, &namespace, &target).await?;
    create_canary(
        &cluster,
        &namespace,
        canary_manifest(
            name,
            "Deployment",
            json!({ "interval": "2s", "threshold": 1, "iterations": 1 }),
        ),
    )
    .await?;
    let canary = wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let tracked: Vec<String> = canary
        .status
        .as_ref()
        .and_then(|s| s.tracked_configs.clone())
        .unwrap_or_default()
        .into_keys()
        .collect();
    ensure(
        tracked == vec!["configmap/settings".to_string(), "secret/creds".to_string()],
        format!("trackedConfigs {tracked:?}"),
    )?;

    let greeting = |cm: ConfigMap| cm.data.unwrap_or_default().get("greeting").cloned();
    let copy = config_maps
        .get("settings-primary")
        .await
        .map_err(|e| format!("settings-primary: {e}"))?;
    ensure(
        copy.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == "Canary"),
        "the copy is owned by the Canary",
    )?;
    ensure(
        greeting(copy).as_deref() == Some("hello"),
        "settings-primary holds the data",
    )?;
    let secret = secrets
        .get("creds-primary")
        .await
        .map_err(|e| format!("creds-primary: {e}"))?;
    ensure(
        secret.data.unwrap_or_default().get("password").map(|b| b.0.clone()) == Some(b"s3cret".to_vec()),
        "creds-primary holds the data",
    )?;
    ensure(
        config_maps
            .get_opt("untracked-primary")
            .await
            .map_err(|e| e.to_string())?
            .is_none(),
        "an opted-out config is not copied",
    )?;

    let primary = Api::<Deployment>::namespaced(cluster.client(), &namespace)
        .get("cfg-primary")
        .await
        .map_err(|e| e.to_string())?;
    let pod = primary.spec.and_then(|s| s.template.spec).unwrap_or_default();
    let env_ref = pod.containers[0].env.clone().unwrap_or_default()[0]
        .value_from
        .clone()
        .and_then(|v| v.config_map_key_ref)
        .map(|r| r.name);
    let env_from = pod.containers[0].env_from.clone().unwrap_or_default()[0]
        .secret_ref
        .clone()
        .map(|r| r.name);
    let volume = pod.volumes.clone().unwrap_or_default()[0]
        .config_map
        .clone()
        .map(|c| c.name);
    ensure(
        env_ref.as_deref() == Some("settings-primary")
            && env_from.as_deref() == Some("creds-primary")
            && volume.as_deref() == Some("untracked"),
        format!("the primary uses the copies of tracked configs only: {env_ref:?} {env_from:?} {volume:?}"),
    )?;

    let first = canary.status.unwrap_or_default();
    merge_patch(&config_maps, "settings", json!({ "data": { "greeting": "hola" } })).await?;
    let trace = trace_until(&cluster, &namespace, name, Phase::Succeeded, Duration::from_secs(60)).await?;
    ensure(
        trace.iter().any(|s| s.phase == Phase::Progressing),
        format!("the ConfigMap change started a rollout: {trace:?}"),
    )?;
    let copy = config_maps.get("settings-primary").await.map_err(|e| e.to_string())?;
    ensure(
        greeting(copy).as_deref() == Some("hola"),
        "the promotion copied the new data to settings-primary",
    )?;
    let status = status_of(&cluster, &namespace, name).await?;
    // As Flagger: the template's hash stays, the ConfigMap's checksum in trackedConfigs changes.
    let checksum = |s: &serin_api::CanaryStatus| {
        s.tracked_configs
            .as_ref()
            .and_then(|t| t.get("configmap/settings").cloned())
    };
    ensure(
        status.last_applied_spec == first.last_applied_spec
            && checksum(&status).is_some()
            && checksum(&status) != checksum(&first),
        format!(
            "the new revision is recorded in trackedConfigs: {:?} then {:?}",
            first.tracked_configs, status.tracked_configs
        ),
    )?;

    merge_patch(&config_maps, "untracked", json!({ "data": { "x": "2" } })).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = status_of(&cluster, &namespace, name).await?;
    ensure(
        after.phase == Some(Phase::Succeeded) && after.tracked_configs == status.tracked_configs,
        format!("an opted-out config change starts nothing: {:?}", after.phase),
    )?;
    Ok(())
}
