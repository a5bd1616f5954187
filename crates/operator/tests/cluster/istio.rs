//! The Istio provider against Istio's published CRDs (istio.io/api): the API server validates
//! every VirtualService and DestinationRule serin writes against Istio's own schema.

use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use libtest_mimic::Failed;
use serde_json::{Value, json};
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::traffic::Behaviour;

use crate::analysis::builtin_metrics;
use crate::support::{
    Cluster, apply_tutorial, create_canary, create_deployment, custom_api, ensure, ensure_promoted_in_steps,
    ensure_rolled_back, events_for, wait_for_phase,
};

fn istio(cluster: &Cluster, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    custom_api(cluster, namespace, ("networking.istio.io", "v1beta1", kind, plural))
}

/// (primary, canary) weights of the VirtualService's last HTTP route.
async fn weights(cluster: &Cluster, namespace: &str, name: &str) -> Option<(i64, i64)> {
    let service = istio(cluster, namespace, "VirtualService", "virtualservices")
        .get(name)
        .await
        .ok()?;
    let route = service.data["spec"]["http"].as_array()?.last()?.clone();
    Some(route_weights(&route, name))
}

/// (primary, canary) weights of an HTTP or TCP route's destinations (0 for one it lacks).
fn route_weights(route: &Value, name: &str) -> (i64, i64) {
    let weight = |host: String| {
        route["route"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"]["host"] == json!(host))
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(0)
    };
    (weight(format!("{name}-primary")), weight(format!("{name}-canary")))
}

async fn canary_with(cluster: &Cluster, namespace: &str, name: &str, spec: Value) -> Result<(), Failed> {
    cluster.traffic.set(namespace, name, Behaviour::healthy());
    create_deployment(cluster, namespace, &deployment(name, &[("app", name)], 1)).await?;
    let mut canary = json!({
        "metadata": { "name": name },
        "spec": {
            "provider": "istio",
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "service": { "port": 9898 },
            "analysis": {
                "interval": "2s", "threshold": 2, "stepWeight": 30, "maxWeight": 60,
                "metrics": builtin_metrics(),
            },
        }
    });
    if let (Some(target), Some(extra)) = (canary["spec"].as_object_mut(), spec.as_object()) {
        for (key, value) in extra {
            target.insert(key.clone(), value.clone());
        }
    }
    create_canary(cluster, namespace, canary).await
}

/// Istio's tutorial fields on the service, DestinationRules with the traffic policy, and the
/// VirtualService's weights at every step of a progressive canary.
pub async fn istio_canary_steps_through_weights(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("istio").await?;
    let name = "podinfo";
    let service = json!({
        "port": 9898,
        "gateways": ["public-gateway.istio-system.svc.cluster.local"],
        "hosts": ["app.example.com"],
        "trafficPolicy": { "tls": { "mode": "DISABLE" } },
        "retries": { "attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream" },
        "match": [{ "uri": { "prefix": "/" } }],
        "rewrite": { "uri": "/" },
        "timeout": "30s",
        "headers": { "request": { "add": { "x-envoy-upstream-rq-timeout-ms": "15000" } } },
    });
    canary_with(&cluster, &namespace, name, json!({ "service": service })).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    ensure(
        weights(&cluster, &namespace, name).await == Some((100, 0)),
        "all traffic to the primary after initialization",
    )?;
    let rules = istio(&cluster, &namespace, "DestinationRule", "destinationrules");
    for host in [format!("{name}-primary"), format!("{name}-canary")] {
        let rule = rules
            .get(&host)
            .await
            .map_err(|e| format!("DestinationRule {host}: {e}"))?;
        ensure(
            rule.data["spec"]["host"] == json!(host)
                && rule.data["spec"]["trafficPolicy"]["tls"]["mode"] == json!("DISABLE"),
            format!("DestinationRule {host}: {}", rule.data["spec"]),
        )?;
    }
    let virtual_service = istio(&cluster, &namespace, "VirtualService", "virtualservices")
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    let spec = &virtual_service.data["spec"];
    ensure(
        spec["hosts"] == json!(["app.example.com", name])
            && spec["gateways"] == json!(["public-gateway.istio-system.svc.cluster.local"])
            && spec["http"][0]["retries"]["attempts"] == json!(3)
            && spec["http"][0]["timeout"] == json!("30s"),
        format!("VirtualService {spec}"),
    )?;

    ensure_promoted_in_steps(&cluster, &namespace, name, "podinfo:2", || {
        weights(&cluster, &namespace, name)
    })
    .await?;
    // Istio's builtin queries ran against the sidecar metrics the traffic source exposes.
    let events = events_for(&cluster, &namespace, name).await?;
    ensure(
        events.iter().any(|e| {
            e.reason.as_deref() == Some("MetricPassed")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("request-success-rate"))
        }),
        "request-success-rate passed on istio_requests_total",
    )
}

/// A canary whose sidecar reports errors is rolled back: all traffic to the primary again.
pub async fn istio_rollback_returns_traffic_to_the_primary(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("istio-rollback").await?;
    let name = "checkout";
    canary_with(&cluster, &namespace, name, json!({})).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    ensure_rolled_back(&cluster, &namespace, name, "checkout:2", || {
        weights(&cluster, &namespace, name)
    })
    .await
}

/// A VirtualService the user had is taken over without an owner and its spec kept; deleting
/// the Canary with `revertOnDeletion` puts that spec back.
pub async fn an_existing_virtual_service_is_adopted_and_given_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("istio-adopt").await?;
    let name = "frontend";
    let services = istio(&cluster, &namespace, "VirtualService", "virtualservices");
    let original = json!({
        "hosts": [name],
        "http": [{ "route": [{ "destination": { "host": name }, "weight": 100 }] }],
    });
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": { "name": name, "namespace": namespace },
        "spec": original,
    }))
    .map_err(|e| e.to_string())?;
    services
        .create(&PostParams::default(), &existing)
        .await
        .map_err(|e| e.to_string())?;
    canary_with(&cluster, &namespace, name, json!({ "revertOnDeletion": true })).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let adopted = services.get(name).await.map_err(|e| e.to_string())?;
    let kept = adopted
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("flagger.kubernetes.app/original-configuration"))
        .and_then(|a| serde_json::from_str::<Value>(a).ok());
    ensure(
        adopted.metadata.owner_references.as_ref().is_none_or(Vec::is_empty) && kept == Some(original.clone()),
        format!(
            "adopted without an owner, the original spec kept: {:?} {kept:?}",
            adopted.metadata.owner_references
        ),
    )?;
    ensure(
        weights(&cluster, &namespace, name).await == Some((100, 0)),
        "routes to the primary once adopted",
    )?;

    Api::<Canary>::namespaced(cluster.client(), &namespace)
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let restored = serin_testenv::wait_for(Duration::from_secs(30), "the original VirtualService back", || {
        let services = services.clone();
        let original = original.clone();
        async move {
            let service = services.get(name).await.ok()?;
            let spec = &service.data["spec"];
            (spec["http"] == original["http"] && spec["hosts"] == original["hosts"]).then_some(())
        }
    })
    .await;
    ensure(restored.is_ok(), "the VirtualService has its original spec again")
}

/// Flagger's Istio tutorial Canary (its Flagger runs with -mesh-provider=istio) initializes: the
/// VirtualService on the tutorial's gateway and host with its retries, the DestinationRules
/// with its TLS mode.
pub async fn the_istio_tutorial_initializes_a_virtual_service(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("istio-tutorial").await?;
    apply_tutorial(&cluster, &namespace, &["istio/canary.yaml"], Some("istio")).await?;
    wait_for_phase(&cluster, &namespace, "podinfo", Phase::Initialized).await?;
    let service = istio(&cluster, &namespace, "VirtualService", "virtualservices")
        .get("podinfo")
        .await
        .map_err(|e| format!("the VirtualService: {e}"))?;
    let spec = &service.data["spec"];
    ensure(
        spec["gateways"] == json!(["istio-system/public-gateway"])
            && spec["hosts"] == json!(["app.example.com", "podinfo"])
            && spec["http"][0]["retries"]
                == json!({ "attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream" }),
        format!("the VirtualService: {spec}"),
    )?;
    let rule = istio(&cluster, &namespace, "DestinationRule", "destinationrules")
        .get("podinfo-primary")
        .await
        .map_err(|e| format!("the primary's DestinationRule: {e}"))?;
    ensure(
        rule.data["spec"]["trafficPolicy"] == json!({ "tls": { "mode": "DISABLE" } }),
        format!("the primary's DestinationRule: {}", rule.data["spec"]),
    )?;
    ensure(
        weights(&cluster, &namespace, "podinfo").await == Some((100, 0)),
        "all traffic to the primary",
    )
}

/// A TCP service gets a TCP route matching its ports, and a delegate VirtualService has neither
/// hosts nor gateways; Istio's CRDs accept both, and the TCP route's weights move with the steps.
pub async fn istio_tcp_and_delegate_virtual_services_are_accepted(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("istio-tcp").await?;
    let services = istio(&cluster, &namespace, "VirtualService", "virtualservices");
    let tcp = "redis";
    canary_with(
        &cluster,
        &namespace,
        tcp,
        json!({ "service": { "port": 6379, "appProtocol": "tcp", "match": [{ "port": 6379 }] } }),
    )
    .await?;
    let delegate = "search";
    canary_with(
        &cluster,
        &namespace,
        delegate,
        json!({ "service": { "port": 9898, "delegation": true } }),
    )
    .await?;
    wait_for_phase(&cluster, &namespace, tcp, Phase::Initialized).await?;
    wait_for_phase(&cluster, &namespace, delegate, Phase::Initialized).await?;
    let delegated = services.get(delegate).await.map_err(|e| e.to_string())?;
    let spec = &delegated.data["spec"];
    ensure(
        spec.get("hosts").is_none_or(|h| h == &json!([])) && spec.get("gateways").is_none_or(|g| g == &json!([])),
        format!("the delegate has no hosts or gateways: {spec}"),
    )?;
    let tcp_weights = || async {
        let service = services.get(tcp).await.ok()?;
        let route = service.data["spec"]["tcp"][0].clone();
        (route["match"] == json!([{ "port": 6379 }])).then(|| route_weights(&route, tcp))
    };
    ensure_promoted_in_steps(&cluster, &namespace, tcp, "redis:2", tcp_weights).await
}
