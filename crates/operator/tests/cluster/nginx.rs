//! The NGINX provider: the canary Ingress beside the user's, its ingress-nginx annotations at
//! every step, A/B testing by header and cookie, the rollback, and an Ingress that is missing.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::PostParams;
use libtest_mimic::Failed;
use serde_json::{Value, json};
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::traffic::Behaviour;

use crate::analysis::builtin_metrics;
use crate::support::{
    Cluster, apply_tutorial, create_canary, create_deployment, ensure, ensure_builtin_checks_passed,
    ensure_promoted_in_steps, ensure_rolled_back, set_image, wait_for_event, wait_for_message, wait_for_phase,
};

const PREFIX: &str = "nginx.ingress.kubernetes.io";

/// The user's Ingress `name`, for host app.example.com, whose backend is the apex Service.
fn ingress(name: &str) -> Result<Ingress, Failed> {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": name },
                      "annotations": { "kubernetes.io/ingress.class": "nginx" } },
        "spec": { "rules": [{ "host": "app.example.com", "http": { "paths": [{
            "pathType": "Prefix", "path": "/",
            "backend": { "service": { "name": name, "port": { "number": 80 } } }
        }] } }] }
    }))
    .map_err(|e| format!("the Ingress: {e}").into())
}

async fn create_ingress(cluster: &Cluster, namespace: &str, name: &str) -> Result<(), Failed> {
    Api::<Ingress>::namespaced(cluster.client(), namespace)
        .create(&PostParams::default(), &ingress(name)?)
        .await
        .map_err(|e| format!("create Ingress {name}: {e}"))?;
    Ok(())
}

async fn annotations(cluster: &Cluster, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let ingress = Api::<Ingress>::namespaced(cluster.client(), namespace)
        .get(name)
        .await
        .ok()?;
    Some(ingress.metadata.annotations.unwrap_or_default())
}

/// (primary, canary) weights as the canary Ingress's `canary-weight` says.
async fn weights(cluster: &Cluster, namespace: &str, ingress: &str) -> Option<(i64, i64)> {
    let annotations = annotations(cluster, namespace, &format!("{ingress}-canary")).await?;
    let weight = annotations
        .get(&format!("{PREFIX}/canary-weight"))?
        .parse::<i64>()
        .ok()?;
    Some((100 - weight, weight))
}

async fn canary_with(cluster: &Cluster, namespace: &str, name: &str, analysis: Value) -> Result<(), Failed> {
    cluster.traffic.set(namespace, name, Behaviour::healthy());
    create_deployment(cluster, namespace, &deployment(name, &[("app", name)], 1)).await?;
    create_ingress(cluster, namespace, name).await?;
    let mut canary = json!({
        "metadata": { "name": name },
        "spec": {
            "provider": "nginx",
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "ingressRef": { "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": name },
            "service": { "port": 80, "targetPort": 9898 },
            "analysis": { "interval": "2s", "threshold": 2, "metrics": builtin_metrics() },
        }
    });
    if let (Some(target), Some(extra)) = (canary["spec"]["analysis"].as_object_mut(), analysis.as_object()) {
        for (key, value) in extra {
            target.insert(key.clone(), value.clone());
        }
    }
    create_canary(cluster, namespace, canary).await
}

/// Flagger's NGINX tutorial (Ingress, HPA, Canary with webhooks) applies unchanged and
/// initializes: the canary Ingress is the user's sent to the canary Service, with the user's
/// labels and annotations, the canary annotations at weight 0, and the Canary as owner.
pub async fn the_nginx_tutorial_initializes_a_canary_ingress(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("nginx-tutorial").await?;
    apply_tutorial(&cluster, &namespace, &["nginx/ingress.yaml", "nginx/canary.yaml"], None).await?;
    let initialized = wait_for_phase(&cluster, &namespace, "podinfo", Phase::Initialized).await?;
    let ingresses = Api::<Ingress>::namespaced(cluster.client(), &namespace);
    let canary_ingress = ingresses
        .get("podinfo-canary")
        .await
        .map_err(|e| format!("the canary Ingress: {e}"))?;
    let backend = |ingress: &Ingress| {
        let value = serde_json::to_value(&ingress.spec).unwrap_or_default();
        value["rules"][0]["http"]["paths"][0]["backend"]["service"].clone()
    };
    ensure(
        backend(&canary_ingress) == json!({ "name": "podinfo-canary", "port": { "number": 80 } }),
        format!("the canary Ingress's backend: {}", backend(&canary_ingress)),
    )?;
    let annotations = canary_ingress.metadata.annotations.clone().unwrap_or_default();
    let expected: BTreeMap<String, String> = [
        ("kubernetes.io/ingress.class", "nginx"),
        ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
        ("helm.toolkit.fluxcd.io/driftDetection", "disabled"),
        ("nginx.ingress.kubernetes.io/canary", "true"),
        ("nginx.ingress.kubernetes.io/canary-weight", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ensure(
        annotations == expected,
        format!("the canary Ingress's annotations: {annotations:?}"),
    )?;
    let owner = canary_ingress
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| (o.kind.clone(), o.uid.clone()));
    ensure(
        owner == Some(("Canary".into(), initialized.metadata.uid.clone().unwrap_or_default()))
            && canary_ingress.metadata.labels.as_ref().and_then(|l| l.get("app")) == Some(&"podinfo".to_string()),
        format!(
            "owned by the Canary, with the user's labels: {owner:?} {:?}",
            canary_ingress.metadata.labels
        ),
    )?;
    let user_ingress = ingresses.get("podinfo").await.map_err(|e| e.to_string())?;
    ensure(
        backend(&user_ingress)["name"] == json!("podinfo")
            && user_ingress.metadata.annotations.as_ref().map(BTreeMap::len) == Some(2),
        format!(
            "the user's Ingress is left as applied: {:?}",
            user_ingress.metadata.annotations
        ),
    )
}

/// A progressive canary moves `canary-weight` step by step; the builtin checks ran on
/// ingress-nginx's metrics; a canary that fails is rolled back to weight 0.
pub async fn nginx_canary_steps_through_weights_and_rolls_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("nginx").await?;
    let name = "storefront";
    canary_with(&cluster, &namespace, name, json!({ "stepWeight": 30, "maxWeight": 60 })).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    ensure_promoted_in_steps(&cluster, &namespace, name, "storefront:2", || {
        weights(&cluster, &namespace, name)
    })
    .await?;
    ensure_builtin_checks_passed(&cluster, &namespace, name, "nginx_ingress_controller_*").await?;

    ensure_rolled_back(&cluster, &namespace, name, "storefront:3", || {
        weights(&cluster, &namespace, name)
    })
    .await?;
    let message = wait_for_event(&cluster, &namespace, name, "MetricFailed")
        .await?
        .message;
    ensure(
        message.as_deref().is_some_and(|m| m.contains("request-success-rate")),
        format!("the failed check is named: {message:?}"),
    )
}

/// A/B testing: while the analysis runs, the canary Ingress routes requests with the header or
/// the cookie to the canary; after the promotion those annotations are gone.
pub async fn nginx_ab_testing_routes_by_header_and_cookie(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("nginx-ab").await?;
    let name = "catalog";
    canary_with(
        &cluster,
        &namespace,
        name,
        json!({ "iterations": 3, "match": [
            { "headers": { "x-canary": { "exact": "insider" } } },
            { "headers": { "cookie": { "exact": "canary" } } },
        ] }),
    )
    .await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    set_image(&cluster, &namespace, name, "catalog:2").await?;
    let canary_ingress = format!("{name}-canary");
    let key = |suffix: &str| format!("{PREFIX}/{suffix}");
    let routed = serin_testenv::wait_for(std::time::Duration::from_secs(60), "the A/B annotations", || {
        let (cluster, namespace, canary_ingress) = (&cluster, &namespace, &canary_ingress);
        async move {
            let annotations = annotations(cluster, namespace, canary_ingress).await?;
            annotations
                .contains_key(&key("canary-by-header"))
                .then_some(annotations)
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let get = |suffix: &str| routed.get(&key(suffix)).map(String::as_str);
    ensure(
        get("canary-by-header") == Some("x-canary")
            && get("canary-by-header-value") == Some("insider")
            && get("canary-by-cookie") == Some("canary")
            && get("canary") == Some("true"),
        format!("A/B annotations {routed:?}"),
    )?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    let after = annotations(&cluster, &namespace, &canary_ingress)
        .await
        .unwrap_or_default();
    ensure(
        !after.keys().any(|k| k.starts_with(&key("canary-by")))
            && after.get(&key("canary-weight")).map(String::as_str) == Some("0"),
        format!("the A/B annotations are cleared after the promotion: {after:?}"),
    )
}

/// An `ingressRef` naming an Ingress that does not exist is reported in the status and an
/// Event; once the Ingress is created the Canary initializes.
pub async fn a_missing_nginx_ingress_is_reported_until_it_exists(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("nginx-missing").await?;
    let name = "ledger";
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 1)).await?;
    create_canary(
        &cluster,
        &namespace,
        json!({
            "metadata": { "name": name },
            "spec": {
                "provider": "nginx",
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "ingressRef": { "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": name },
                "service": { "port": 80 },
                "analysis": { "interval": "2s", "threshold": 2, "iterations": 1 },
            }
        }),
    )
    .await?;
    wait_for_message(
        &cluster,
        &namespace,
        name,
        &format!("Ingress {name}, which does not exist"),
    )
    .await?;
    let event = wait_for_event(&cluster, &namespace, name, "IngressNotFound").await?;
    ensure(
        event
            .message
            .as_deref()
            .is_some_and(|m| m.contains("create it or fix spec.ingressRef")),
        format!("the Event says what to fix: {:?}", event.message),
    )?;
    create_ingress(&cluster, &namespace, name).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let canary = Api::<Canary>::namespaced(cluster.client(), &namespace)
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    ensure(
        canary.status.is_some_and(|s| s.canary_weight == Some(0)),
        "initialized once the Ingress exists",
    )
}
