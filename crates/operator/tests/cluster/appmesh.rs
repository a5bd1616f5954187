//! The App Mesh provider (`appmesh:v1beta2`) against App Mesh's published CRDs: VirtualNodes,
//! VirtualRouters and VirtualServices, the apex router's weights at every step, A/B header
//! routes, and the rollback.

use std::sync::Arc;

use kube::Api;
use kube::api::DynamicObject;
use libtest_mimic::Failed;
use serde_json::{Value, json};
use serin_api::Phase;
use serin_testenv::fixtures::deployment;
use serin_testenv::traffic::Behaviour;

use crate::analysis::builtin_metrics;
use crate::support::{
    Cluster, create_canary, create_deployment, custom_api, ensure, ensure_builtin_checks_passed,
    ensure_promoted_in_steps, ensure_rolled_back, set_image, wait_for_phase,
};

fn app_mesh(cluster: &Cluster, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    custom_api(cluster, namespace, ("appmesh.k8s.aws", "v1beta2", kind, plural))
}

/// (primary, canary) weights of the apex VirtualRouter's first route.
async fn weights(cluster: &Cluster, namespace: &str, name: &str) -> Option<(i64, i64)> {
    let router = app_mesh(cluster, namespace, "VirtualRouter", "virtualrouters")
        .get(name)
        .await
        .ok()?;
    let targets = router.data["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"].clone();
    let weight = |node: String| {
        targets
            .as_array()?
            .iter()
            .find(|t| t["virtualNodeRef"]["name"] == json!(node))
            .and_then(|t| t["weight"].as_i64())
    };
    Some((weight(format!("{name}-primary"))?, weight(format!("{name}-canary"))?))
}

async fn canary_on_app_mesh(cluster: &Cluster, namespace: &str, name: &str, analysis: Value) -> Result<(), Failed> {
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
            "metadata": { "name": name, "annotations": { "appmesh.flagger.app/accesslog": "enabled" } },
            "spec": {
                "provider": "appmesh:v1beta2",
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "service": { "port": 9898, "timeout": "15s", "backends": ["backend.test"],
                             "retries": { "attempts": 3, "perTryTimeout": "5s", "retryOn": "gateway-error,client-error,stream-error" } },
                "analysis": spec_analysis,
            }
        }),
    )
    .await
}

/// The nodes, routers and services of Flagger's appmesh_v1beta2.go, the weights at every step of
/// a progressive canary, Envoy's builtin checks, then a failing canary rolled back.
pub async fn app_mesh_canary_steps_through_weights_and_rolls_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("appmesh").await?;
    let name = "podinfo";
    canary_on_app_mesh(&cluster, &namespace, name, json!({ "stepWeight": 30, "maxWeight": 60 })).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let node = app_mesh(&cluster, &namespace, "VirtualNode", "virtualnodes")
        .get(&format!("{name}-primary"))
        .await
        .map_err(|e| format!("the primary's VirtualNode: {e}"))?;
    let spec = &node.data["spec"];
    ensure(
        spec["podSelector"] == json!({ "matchLabels": { "app": "podinfo-primary" } })
            && spec["serviceDiscovery"]["dns"]["hostname"]
                == json!(format!("podinfo-primary.{namespace}.svc.cluster.local."))
            && spec["listeners"][0]["portMapping"] == json!({ "port": 9898, "protocol": "http" })
            && spec["backends"] == json!([{ "virtualService": { "virtualServiceRef": { "name": "backend.test" } } }])
            && spec["logging"]["accessLog"]["file"]["path"] == json!("/dev/stdout"),
        format!("the primary's VirtualNode: {spec}"),
    )?;
    for service in [name.to_string(), format!("{name}-canary")] {
        let virtual_service = app_mesh(&cluster, &namespace, "VirtualService", "virtualservices")
            .get(&service)
            .await
            .map_err(|e| format!("VirtualService {service}: {e}"))?;
        ensure(
            virtual_service.data["spec"]["provider"]["virtualRouter"]["virtualRouterRef"]["name"] == json!(service),
            format!("VirtualService {service}: {}", virtual_service.data["spec"]),
        )?;
    }
    ensure_promoted_in_steps(&cluster, &namespace, name, "podinfo:2", || {
        weights(&cluster, &namespace, name)
    })
    .await?;
    ensure_builtin_checks_passed(&cluster, &namespace, name, "envoy_cluster_upstream_rq (App Mesh)").await?;
    ensure_rolled_back(&cluster, &namespace, name, "podinfo:3", || {
        weights(&cluster, &namespace, name)
    })
    .await
}

/// A/B testing: a first route matching the header sends those requests to the canary during the
/// analysis; a second sends the rest to the primary.
pub async fn app_mesh_ab_testing_routes_by_header(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("appmesh-ab").await?;
    let name = "billing";
    canary_on_app_mesh(
        &cluster,
        &namespace,
        name,
        json!({ "iterations": 3, "match": [{ "headers": { "x-canary": { "exact": "insider" } } }] }),
    )
    .await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    set_image(&cluster, &namespace, name, "billing:2").await?;
    let matched = serin_testenv::wait_for(
        std::time::Duration::from_secs(60),
        "the header routed to the canary",
        || {
            let (cluster, namespace) = (&cluster, &namespace);
            async move { (weights(cluster, namespace, name).await == Some((0, 100))).then_some(()) }
        },
    )
    .await;
    ensure(
        matched.is_ok(),
        "the matching requests go to the canary during the analysis",
    )?;
    let router = app_mesh(&cluster, &namespace, "VirtualRouter", "virtualrouters")
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    let routes = &router.data["spec"]["routes"];
    ensure(
        routes[0]["name"] == json!(format!("{name}-a"))
            && routes[0]["httpRoute"]["match"]["headers"]
                == json!([{ "name": "x-canary", "match": { "exact": "insider" } }])
            && routes[1]["name"] == json!(format!("{name}-b"))
            && routes[1]["httpRoute"]["action"]["weightedTargets"]
                == json!([{ "virtualNodeRef": { "name": format!("{name}-primary") }, "weight": 100 }]),
        format!("A/B routes: {routes}"),
    )?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    ensure(
        weights(&cluster, &namespace, name).await == Some((100, 0)),
        "to the primary after the promotion",
    )
}
