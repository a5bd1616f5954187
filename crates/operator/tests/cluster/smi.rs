//! The TrafficSplit providers (linkerd, osm, smi:v1alpha1/2/3): the weights at every step in each
//! API version, the rollback, A/B matches ignored, and Flagger's Linkerd tutorial (which routes
//! through the Gateway API).

use std::sync::Arc;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use libtest_mimic::Failed;
use serde_json::{Value, json};
use serin_api::Phase;
use serin_testenv::fixtures::deployment;
use serin_testenv::traffic::Behaviour;

use crate::analysis::builtin_metrics;
use crate::support::{
    Cluster, apply_tutorial, create_canary, create_deployment, custom_api, ensure, ensure_adopted_and_given_back,
    ensure_builtin_checks_passed, ensure_promoted_in_steps, ensure_rolled_back, set_image, wait_for_event,
    wait_for_phase,
};

fn traffic_splits(cluster: &Cluster, namespace: &str, version: &str) -> Api<DynamicObject> {
    custom_api(
        cluster,
        namespace,
        ("split.smi-spec.io", version, "TrafficSplit", "trafficsplits"),
    )
}

/// (primary, canary) weights of the TrafficSplit as `version` serves it.
async fn weights(cluster: &Cluster, namespace: &str, name: &str, version: &str) -> Option<(i64, i64)> {
    let split = traffic_splits(cluster, namespace, version).get(name).await.ok()?;
    let weight = |service: String| {
        let backend = split.data["spec"]["backends"]
            .as_array()?
            .iter()
            .find(|b| b["service"] == json!(service))?
            .clone();
        match &backend["weight"] {
            Value::String(text) => text.parse().ok(),
            other => other.as_i64(),
        }
    };
    Some((weight(format!("{name}-primary"))?, weight(format!("{name}-canary"))?))
}

async fn canary_on(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    provider: &str,
    analysis: Value,
) -> Result<(), Failed> {
    cluster.traffic.set(namespace, name, Behaviour::healthy());
    create_deployment(cluster, namespace, &deployment(name, &[("app", name)], 1)).await?;
    let mut spec_analysis = json!({ "interval": "2s", "threshold": 2, "metrics": builtin_metrics() });
    if let (Some(target), Some(extra)) = (spec_analysis.as_object_mut(), analysis.as_object()) {
        target.extend(extra.clone());
    }
    create_canary(
        cluster,
        namespace,
        json!({
            "metadata": { "name": name },
            "spec": {
                "provider": provider,
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "service": { "port": 9898 },
                "analysis": spec_analysis,
            }
        }),
    )
    .await
}

/// A progressive canary on `provider` moves the `version` TrafficSplit's weights step by step,
/// its builtin checks run on the mesh's own series.
async fn steps_through_weights(cluster: &Cluster, provider: &str, version: &str, name: &str) -> Result<(), Failed> {
    let namespace = cluster.namespace(&provider.replace(':', "-")).await?;
    canary_on(
        cluster,
        &namespace,
        name,
        provider,
        json!({ "stepWeight": 30, "maxWeight": 60 }),
    )
    .await?;
    wait_for_phase(cluster, &namespace, name, Phase::Initialized).await?;
    ensure_promoted_in_steps(cluster, &namespace, name, &format!("{name}:2"), || {
        weights(cluster, &namespace, name, version)
    })
    .await?;
    ensure_builtin_checks_passed(cluster, &namespace, name, provider).await
}

/// Linkerd (v1alpha1, weights as quantities), then a failing canary rolled back.
pub async fn linkerd_canary_steps_through_weights_and_rolls_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    steps_through_weights(&cluster, "linkerd", "v1alpha1", "books").await?;
    let namespace = cluster.namespace("linkerd-rollback").await?;
    let name = "reviews";
    canary_on(&cluster, &namespace, name, "linkerd", json!({ "stepWeight": 30 })).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    ensure_rolled_back(&cluster, &namespace, name, "reviews:2", || {
        weights(&cluster, &namespace, name, "v1alpha1")
    })
    .await
}

/// OSM writes v1alpha2 (the version OSM's own CRD serves).
pub async fn osm_canary_steps_through_weights(cluster: Arc<Cluster>) -> Result<(), Failed> {
    steps_through_weights(&cluster, "osm", "v1alpha2", "ratings").await
}

/// smi:v1alpha3 writes v1alpha3, with Istio's builtin queries as Flagger's observer factory.
pub async fn smi_v1alpha3_canary_steps_through_weights(cluster: Arc<Cluster>) -> Result<(), Failed> {
    steps_through_weights(&cluster, "smi:v1alpha3", "v1alpha3", "details").await
}

/// A TrafficSplit cannot route by header: `analysis.match` gets a warning and the canary no
/// traffic until it is promoted (Flagger would send it all of it).
pub async fn smi_ab_testing_keeps_traffic_on_the_primary(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("linkerd-ab").await?;
    let name = "payments";
    canary_on(
        &cluster,
        &namespace,
        name,
        "linkerd",
        json!({ "iterations": 2, "match": [{ "headers": { "x-canary": { "exact": "insider" } } }] }),
    )
    .await?;
    let warning = wait_for_event(&cluster, &namespace, name, "SpecWarning").await?;
    ensure(
        warning.message.as_deref().is_some_and(|m| m.contains("analysis.match")),
        format!("the warning names analysis.match: {:?}", warning.message),
    )?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    set_image(&cluster, &namespace, name, "payments:2").await?;
    // Every weight the TrafficSplit holds from the new revision to the promotion.
    let canaries = Api::<serin_api::Canary>::namespaced(cluster.client(), &namespace);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        if let Some(route) = weights(&cluster, &namespace, name, "v1alpha1").await
            && !seen.contains(&route)
        {
            seen.push(route);
        }
        let status = canaries.get(name).await.ok().and_then(|c| c.status);
        if status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded) {
            break;
        }
        ensure(
            tokio::time::Instant::now() < deadline,
            format!("not promoted within 60 s: {status:?}"),
        )?;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure(
        seen == vec![(100, 0)],
        format!("all traffic stays on the primary: {seen:?}"),
    )?;
    Ok(())
}

/// Flagger's Linkerd tutorial (its MetricTemplates and Canary, with the provider its Flagger
/// install sets by flag) initializes: an HTTPRoute attached to the podinfo Service.
pub async fn the_linkerd_tutorial_initializes_an_http_route_on_the_service(
    cluster: Arc<Cluster>,
) -> Result<(), Failed> {
    let namespace = cluster.namespace("linkerd-tutorial").await?;
    // The tutorial's Flagger install sets -mesh-provider=gatewayapi:v1beta1.
    apply_tutorial(
        &cluster,
        &namespace,
        &["linkerd/canary.yaml"],
        Some("gatewayapi:v1beta1"),
    )
    .await?;
    wait_for_phase(&cluster, &namespace, "podinfo", Phase::Initialized).await?;
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1beta1", "HTTPRoute");
    let routes: Api<DynamicObject> = Api::namespaced_with(
        cluster.client(),
        &namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    );
    let route = routes.get("podinfo").await.map_err(|e| format!("the HTTPRoute: {e}"))?;
    ensure(
        route.data["spec"]["parentRefs"]
            == json!([{ "name": "podinfo", "namespace": namespace, "group": "core", "kind": "Service", "port": 9898 }]),
        format!("attached to the podinfo Service: {}", route.data["spec"]["parentRefs"]),
    )
}

/// A TrafficSplit the user had is taken over without an owner and given back on deletion.
pub async fn a_users_traffic_split_is_adopted_and_given_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("smi-adopt").await?;
    let name = "inventory";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 1)).await?;
    let split = json!({
        "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": { "name": name },
        "spec": { "service": name, "backends": [{ "service": "inventory-v1", "weight": 100 }] },
    });
    let canary = json!({
        "metadata": { "name": name },
        "spec": {
            "provider": "osm",
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "service": { "port": 9898 },
            "analysis": { "interval": "2s", "threshold": 2, "iterations": 1 },
        }
    });
    let api = traffic_splits(&cluster, &namespace, "v1alpha2");
    ensure_adopted_and_given_back(&cluster, &namespace, &api, split, canary, || async {
        weights(&cluster, &namespace, name, "v1alpha2")
            .await
            .map(|(primary, _)| primary)
    })
    .await
}
