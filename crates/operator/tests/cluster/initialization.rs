//! Initialization of a new Canary on the real control plane: the primary, the Services, the
//! target scaled to zero, phase Initialized and the Promoted condition.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::wait_for;

use crate::support::Cluster;
use crate::support::{
    TIMEOUT, create_canary, create_deployment, ensure, example, kubectl, wait_for_event, wait_for_message,
    wait_for_phase,
};
use serin_testenv::fixtures::deployment;

fn selector_of(service: &Service) -> Vec<(String, String)> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

pub async fn a_canary_is_initialized(env: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = env.namespace("init").await?;
    for file in ["podinfo/deployment.yaml", "podinfo/canary.yaml"] {
        let path = example(file);
        let (ok, _, stderr) = kubectl(&env, &["apply", "-n", &namespace, "-f", &path.display().to_string()]).await?;
        ensure(ok, format!("kubectl apply {file}: {stderr}"))?;
    }
    let (ok, stdout, stderr) = kubectl(
        &env,
        &[
            "wait",
            "-n",
            &namespace,
            "canary/podinfo",
            "--for=condition=promoted",
            "--timeout=60s",
        ],
    )
    .await?;
    ensure(
        ok,
        format!("kubectl wait --for=condition=promoted failed: {stdout}{stderr}"),
    )?;

    let canary = wait_for_phase(&env, &namespace, "podinfo", Phase::Initialized).await?;
    let status = canary.status.clone().unwrap_or_default();
    ensure(
        status.canary_weight == Some(0) && status.failed_checks == Some(0),
        format!("status {status:?}"),
    )?;
    let revision = status.last_applied_spec.clone().unwrap_or_default();
    let target = Api::<Deployment>::namespaced(env.client(), &namespace)
        .get("podinfo")
        .await?;
    let template = target.spec.map(|s| s.template).unwrap_or_default();
    ensure(
        revision == serin_core::revision::revision(&template),
        format!("lastAppliedSpec {revision:?} is the hash of the target's template"),
    )?;
    ensure(
        status.last_promoted_spec.as_deref() == Some(revision.as_str()),
        "lastPromotedSpec equals lastAppliedSpec",
    )?;
    let condition = serin_core::status::promoted_condition(&status)
        .cloned()
        .unwrap_or_default();
    ensure(
        condition.status == "True" && condition.reason.as_deref() == Some("Initialized"),
        format!("{condition:?}"),
    )?;

    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    let primary = deployments
        .get("podinfo-primary")
        .await
        .map_err(|e| format!("primary: {e}"))?;
    let primary_spec = primary.spec.clone().unwrap_or_default();
    let primary_selector: Vec<(String, String)> = primary_spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    ensure(
        primary_selector == vec![("app".into(), "podinfo-primary".into())],
        format!("primary selector {primary_selector:?}"),
    )?;
    ensure(
        primary_spec.replicas == Some(2),
        format!("primary replicas {:?}", primary_spec.replicas),
    )?;
    ensure(
        primary.status.as_ref().and_then(|s| s.available_replicas) == Some(2),
        "primary has 2 available kwok pods",
    )?;
    let owner = primary.metadata.owner_references.clone().unwrap_or_default();
    ensure(
        owner
            .iter()
            .any(|o| o.kind == "Canary" && o.name == "podinfo" && o.controller == Some(true)),
        format!("primary owner references {owner:?}"),
    )?;
    let image = primary_spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers[0].image.clone());
    ensure(
        image.as_deref() == Some("ghcr.io/stefanprodan/podinfo:6.7.0"),
        format!("primary image {image:?}"),
    )?;

    let target = deployments.get("podinfo").await.map_err(|e| format!("target: {e}"))?;
    ensure(target.spec.and_then(|s| s.replicas) == Some(0), "target scaled to 0")?;

    let services = Api::<Service>::namespaced(env.client(), &namespace);
    for (name, selected) in [
        ("podinfo", "podinfo-primary"),
        ("podinfo-primary", "podinfo-primary"),
        ("podinfo-canary", "podinfo"),
    ] {
        let service = services.get(name).await.map_err(|e| format!("service {name}: {e}"))?;
        let spec = service.spec.clone().unwrap_or_default();
        ensure(
            spec.type_.as_deref() == Some("ClusterIP"),
            format!("{name} type {:?}", spec.type_),
        )?;
        ensure(
            selector_of(&service) == vec![("app".into(), selected.into())],
            format!("{name} selects {:?}", selector_of(&service)),
        )?;
        let port = spec.ports.unwrap_or_default().into_iter().next().unwrap_or_default();
        ensure(
            port.port == 80 && port.name.as_deref() == Some("http"),
            format!("{name} port {port:?}"),
        )?;
        let annotations = service.metadata.annotations.clone().unwrap_or_default();
        ensure(
            annotations
                .get("kustomize.toolkit.fluxcd.io/reconcile")
                .map(String::as_str)
                == Some("disabled"),
            format!("{name} annotations {annotations:?}"),
        )?;
        let owned = service
            .metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "Canary");
        ensure(owned, format!("{name} is owned by the Canary"))?;
    }
    let event = wait_for_event(&env, &namespace, "podinfo", "Initialized").await?;
    ensure(
        event
            .message
            .as_deref()
            .is_some_and(|m| m.contains("Initialization done")),
        format!("{event:?}"),
    )?;
    Ok(())
}

pub async fn a_missing_target_is_reported_then_picked_up(env: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = env.namespace("missing").await?;
    create_canary(&env, &namespace, json!({
        "metadata": { "name": "late" },
        "spec": { "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "late" }, "service": { "port": 9898 } }
    }))
    .await?;
    let canary = wait_for_message(&env, &namespace, "late", "target Deployment").await?;
    let message = serin_core::status::promoted_condition(canary.status.as_ref().ok_or("status")?)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    ensure(
        message == format!("target Deployment {namespace}/late not found: create it or fix spec.targetRef.name"),
        format!("message {message:?}"),
    )?;
    ensure(
        canary.status.and_then(|s| s.phase) == Some(Phase::Initializing),
        "phase Initializing",
    )?;
    let event = wait_for_event(&env, &namespace, "late", "TargetNotFound").await?;
    ensure(
        event.type_.as_deref() == Some("Warning"),
        format!("event type {:?}", event.type_),
    )?;
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    ensure(
        deployments
            .get_opt("late-primary")
            .await
            .map_err(|e| e.to_string())?
            .is_none(),
        "no primary without a target",
    )?;
    let services = Api::<Service>::namespaced(env.client(), &namespace);
    ensure(
        services.get_opt("late").await.map_err(|e| e.to_string())?.is_none(),
        "no services without a target",
    )?;

    create_deployment(&env, &namespace, &deployment("late", &[("app", "late")], 1)).await?;
    wait_for_phase(&env, &namespace, "late", Phase::Initialized).await?;
    Ok(())
}

pub async fn a_target_without_selector_label_is_reported(env: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = env.namespace("nolabel").await?;
    create_deployment(&env, &namespace, &deployment("web", &[("tier", "web")], 1)).await?;
    create_canary(&env, &namespace, json!({
        "metadata": { "name": "web" },
        "spec": { "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" }, "service": { "port": 9898 } }
    }))
    .await?;
    wait_for_message(
        &env,
        &namespace,
        "web",
        "has none of the labels app, name, app.kubernetes.io/name",
    )
    .await?;
    wait_for_event(&env, &namespace, "web", "SelectorLabelMissing").await?;
    let target = Api::<Deployment>::namespaced(env.client(), &namespace)
        .get("web")
        .await
        .map_err(|e| e.to_string())?;
    ensure(
        target.spec.and_then(|s| s.replicas) == Some(1),
        "the target is left alone",
    )?;
    Ok(())
}

pub async fn a_v1alpha3_canary_with_canary_analysis_is_served(env: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = env.namespace("legacy").await?;
    create_deployment(&env, &namespace, &deployment("podinfo", &[("app", "podinfo")], 1)).await?;
    let path = example("legacy/canary-v1alpha3.yaml").display().to_string();
    let (ok, _, stderr) = kubectl(&env, &["apply", "-n", &namespace, "-f", &path]).await?;
    ensure(ok, format!("kubectl apply of the v1alpha3 canary: {stderr}"))?;
    ensure(
        stderr.contains("flagger.app/v1alpha3 Canary is deprecated"),
        format!("no deprecation warning in {stderr:?}"),
    )?;

    let api = Api::<Canary>::namespaced(env.client(), &namespace);
    let canary = wait_for(TIMEOUT, "the v1alpha3 canary", || {
        let api = api.clone();
        async move { api.get("podinfo").await.ok() }
    })
    .await
    .map_err(|e| e.to_string())?;
    let analysis = canary.spec.analysis().cloned().unwrap_or_default();
    ensure(
        analysis.step_weight == Some(10) && analysis.max_weight == Some(50) && analysis.threshold == Some(5),
        format!("canaryAnalysis not read as analysis: {analysis:?}"),
    )?;
    ensure(
        analysis.interval.as_deref() == Some("30s"),
        format!("interval {:?}", analysis.interval),
    )?;
    wait_for_phase(&env, &namespace, "podinfo", Phase::Initialized).await?;
    Ok(())
}
