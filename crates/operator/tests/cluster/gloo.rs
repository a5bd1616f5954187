//! The Gloo provider against Gloo's published CRDs: Upstreams for the primary and canary, the
//! RouteTable's weights at every step, A/B header matchers, the rollback, and the `upstreamRef`
//! template.

use std::sync::Arc;

use kube::Api;
use kube::api::{DynamicObject, PostParams};
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

fn gloo(cluster: &Cluster, namespace: &str, group: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    custom_api(cluster, namespace, (group, "v1", kind, plural))
}

fn route_tables(cluster: &Cluster, namespace: &str) -> Api<DynamicObject> {
    gloo(cluster, namespace, "gateway.solo.io", "RouteTable", "routetables")
}

fn upstreams(cluster: &Cluster, namespace: &str) -> Api<DynamicObject> {
    gloo(cluster, namespace, "gloo.solo.io", "Upstream", "upstreams")
}

/// (primary, canary) weights of the RouteTable's route (a weight Gloo omits is 0).
async fn weights(cluster: &Cluster, namespace: &str, name: &str) -> Option<(i64, i64)> {
    let table = route_tables(cluster, namespace).get(name).await.ok()?;
    let destinations = table.data["spec"]["routes"][0]["routeAction"]["multi"]["destinations"].clone();
    let weight = |side: &str| {
        destinations
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"]["upstream"]["name"] == json!(format!("{namespace}-{name}-{side}upstream-9898")))
            .map(|d| d["weight"].as_i64().unwrap_or(0))
    };
    Some((weight("primary")?, weight("canary")?))
}

async fn canary_on_gloo(cluster: &Cluster, namespace: &str, name: &str, extra: Value) -> Result<(), Failed> {
    cluster.traffic.set(namespace, name, Behaviour::healthy());
    create_deployment(cluster, namespace, &deployment(name, &[("app", name)], 1)).await?;
    let mut spec = json!({
        "provider": "gloo",
        "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
        "service": { "port": 9898 },
        "analysis": { "interval": "2s", "threshold": 2, "stepWeight": 30, "maxWeight": 60, "metrics": builtin_metrics() },
    });
    if let (Some(target), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    create_canary(
        cluster,
        namespace,
        json!({ "metadata": { "name": name }, "spec": spec }),
    )
    .await
}

/// Flagger's Gloo tutorial Canary initializes: an Upstream per Service selecting its pods and a
/// RouteTable with all traffic on the primary, all owned by the Canary.
pub async fn the_gloo_tutorial_initializes_upstreams_and_a_route_table(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("gloo-tutorial").await?;
    apply_tutorial(&cluster, &namespace, &["gloo/canary.yaml"], None).await?;
    let canary = wait_for_phase(&cluster, &namespace, "podinfo", Phase::Initialized).await?;
    let uid = canary.metadata.uid.clone().unwrap_or_default();
    for (side, service, pods) in [
        ("primary", "podinfo-primary", "podinfo-primary"),
        ("canary", "podinfo-canary", "podinfo"),
    ] {
        let name = format!("{namespace}-podinfo-{side}upstream-9898");
        let upstream = upstreams(&cluster, &namespace)
            .get(&name)
            .await
            .map_err(|e| format!("Upstream {name}: {e}"))?;
        ensure(
            upstream.data["spec"]["kube"]
                == json!({ "serviceName": service, "serviceNamespace": namespace, "servicePort": 9898,
                           "selector": { "app": pods } })
                && upstream
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid),
            format!("Upstream {name}: {}", upstream.data["spec"]),
        )?;
    }
    let table = route_tables(&cluster, &namespace)
        .get("podinfo")
        .await
        .map_err(|e| format!("the RouteTable: {e}"))?;
    ensure(
        table.data["spec"]["routes"][0]["inheritablePathMatchers"] == json!(true)
            && table.metadata.owner_references.iter().flatten().any(|o| o.uid == uid),
        format!("the RouteTable: {}", table.data["spec"]),
    )?;
    ensure(
        weights(&cluster, &namespace, "podinfo").await == Some((100, 0)),
        "all traffic to the primary after initialization",
    )
}

/// The RouteTable's weights at every step of a progressive canary, the builtin checks on Gloo's
/// Envoy stats, then a failing canary rolled back.
pub async fn gloo_canary_steps_through_weights_and_rolls_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("gloo").await?;
    let name = "cart";
    canary_on_gloo(&cluster, &namespace, name, json!({})).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    ensure_promoted_in_steps(&cluster, &namespace, name, "cart:2", || {
        weights(&cluster, &namespace, name)
    })
    .await?;
    ensure_builtin_checks_passed(&cluster, &namespace, name, "envoy_cluster_upstream_rq*").await?;
    ensure_rolled_back(&cluster, &namespace, name, "cart:3", || {
        weights(&cluster, &namespace, name)
    })
    .await
}

/// A/B testing: the route matches the header and sends those requests to the canary during the
/// analysis, and to the primary after the promotion.
pub async fn gloo_ab_testing_matches_headers(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("gloo-ab").await?;
    let name = "search";
    let analysis = json!({ "interval": "2s", "threshold": 2, "iterations": 3, "metrics": builtin_metrics(),
                           "match": [{ "headers": { "x-canary": { "exact": "insider" } } }] });
    canary_on_gloo(&cluster, &namespace, name, json!({ "analysis": analysis })).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    set_image(&cluster, &namespace, name, "search:2").await?;
    let matched = serin_testenv::wait_for(std::time::Duration::from_secs(60), "the canary matched", || {
        let (cluster, namespace) = (&cluster, &namespace);
        async move { (weights(cluster, namespace, name).await == Some((0, 100))).then_some(()) }
    })
    .await;
    ensure(
        matched.is_ok(),
        "the matched requests go to the canary during the analysis",
    )?;
    let table = route_tables(&cluster, &namespace)
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    ensure(
        table.data["spec"]["routes"][0]["matchers"]
            == json!([{ "headers": [{ "name": "x-canary", "value": "insider" }] }]),
        format!("header matchers: {}", table.data["spec"]["routes"][0]),
    )?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    ensure(
        weights(&cluster, &namespace, name).await == Some((100, 0)),
        "to the primary after the promotion",
    )
}

/// `upstreamRef`: an Upstream naming none is reported until it exists; its settings are
/// copied to the primary's and canary's Upstreams.
pub async fn a_gloo_upstream_template_is_copied_once_it_exists(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("gloo-template").await?;
    let name = "orders";
    canary_on_gloo(
        &cluster,
        &namespace,
        name,
        json!({ "upstreamRef": { "apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "orders-template" } }),
    )
    .await?;
    let event = wait_for_event(&cluster, &namespace, name, "UpstreamNotFound").await?;
    ensure(
        event
            .message
            .as_deref()
            .is_some_and(|m| m.contains(&format!("Upstream {namespace}/orders-template, which does not exist"))),
        format!("the Event names the Upstream: {:?}", event.message),
    )?;
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
        "metadata": { "name": "orders-template" },
        "spec": { "circuitBreakers": { "maxConnections": 64 }, "useHttp2": true,
                  "kube": { "serviceName": "unused", "serviceNamespace": namespace, "servicePort": 80 } },
    }))
    .map_err(|e| e.to_string())?;
    upstreams(&cluster, &namespace)
        .create(&PostParams::default(), &template)
        .await
        .map_err(|e| format!("create the template: {e}"))?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let upstream = upstreams(&cluster, &namespace)
        .get(&format!("{namespace}-{name}-canaryupstream-9898"))
        .await
        .map_err(|e| e.to_string())?;
    let spec = &upstream.data["spec"];
    ensure(
        spec["circuitBreakers"] == json!({ "maxConnections": 64 })
            && spec["useHttp2"] == json!(true)
            && spec["kube"]["serviceName"] == json!(format!("{name}-canary")),
        format!("the template's settings, the canary's Service: {spec}"),
    )
}

/// A RouteTable the user had is taken over without an owner and given back on deletion.
pub async fn a_users_route_table_is_adopted_and_given_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("gloo-adopt").await?;
    let name = "profile";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 1)).await?;
    let table = json!({
        "apiVersion": "gateway.solo.io/v1", "kind": "RouteTable",
        "metadata": { "name": name },
        "spec": { "routes": [{ "routeAction": { "single": { "upstream": { "name": "profile-v1", "namespace": namespace } } } }] },
    });
    let canary = json!({
        "metadata": { "name": name },
        "spec": {
            "provider": "gloo",
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "service": { "port": 9898 },
            "analysis": { "interval": "2s", "threshold": 2, "iterations": 1 },
        }
    });
    let api = route_tables(&cluster, &namespace);
    ensure_adopted_and_given_back(&cluster, &namespace, &api, table, canary, || async {
        weights(&cluster, &namespace, name).await.map(|(primary, _)| primary)
    })
    .await
}
