//! The App Mesh provider (`appmesh:v1beta2`), writing what Flagger's AppMeshv1beta2Router
//! (pkg/router/appmesh_v1beta2.go) writes, all owned by the Canary:
//! - VirtualNodes `<service>-primary` and `<service>-canary`: a listener on the container port
//!   (`http`, or `grpc` when `service.portName` says so) with `service.timeout`, DNS discovery of
//!   `<node>.<namespace>.svc.cluster.local.`, the pods the Service of the same name selects,
//!   `service.backends` (virtual service names or ARNs), and Envoy's access log when the Canary
//!   has the annotation `appmesh.flagger.app/accesslog: enabled`;
//! - VirtualRouters with VirtualServices of the same names: `<service>` weighing the two nodes,
//!   and `<service>-canary` sending everything to the canary node. A route's prefix is the first
//!   `service.match` URI prefix (`/` otherwise), with `service.timeout` and `service.retries`.
//!   For A/B testing the apex router has a route `<service>-a` (priority 10) matching the
//!   `analysis.match` headers and weighing the nodes, then `<service>-b` (priority 20) to the
//!   primary node.
//!
//! The VirtualNodes must exist before the primary's pods start, so that App Mesh injects its
//! Envoy: this router asks for its routes before the primary is created (`registers_pods`).

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use serin_api::{Canary, CanarySpec};
use serin_core::naming::{canary_service_name, primary_name};
use serin_core::plan::{ObservedRoutes, Routes};

use super::custom_kind::CustomKind;
use super::{Error, Router, apex_annotations, apex_labels, set_fields};

const ACCESS_LOG_ANNOTATION: &str = "appmesh.flagger.app/accesslog";

pub struct AppMeshRouter {
    client: Client,
    virtual_nodes: CustomKind,
    virtual_routers: CustomKind,
    virtual_services: CustomKind,
}

impl AppMeshRouter {
    pub fn new(client: Client) -> AppMeshRouter {
        let kind = |kind: &str, plural: &str| {
            CustomKind::new(
                "appmesh.k8s.aws",
                "v1beta2",
                kind,
                plural,
                "App Mesh (appmesh.k8s.aws/v1beta2)",
            )
        };
        AppMeshRouter {
            client,
            virtual_nodes: kind("VirtualNode", "virtualnodes"),
            virtual_routers: kind("VirtualRouter", "virtualrouters"),
            virtual_services: kind("VirtualService", "virtualservices"),
        }
    }
}

impl Router for AppMeshRouter {
    fn shifts_weights(&self) -> bool {
        true
    }

    fn registers_pods(&self) -> bool {
        true
    }

    fn get_routes<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<Option<ObservedRoutes>, Error>> {
        Box::pin(async move {
            let router = self.virtual_routers.get_apex(&self.client, canary).await?;
            Ok(router.map(|router| observed_routes(canary, &router.data["spec"])))
        })
    }

    fn set_routes<'a>(&'a self, canary: &'a Canary, routes: &'a Routes) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
            let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
            let owner = serde_json::to_value(owner).map_err(Error::Serialize)?;
            let name = canary.spec.service_name();
            let node_metadata = json!({
                "ownerReferences": [owner],
                "labels": apex_labels(canary),
                "annotations": apex_annotations(canary),
            });
            for node in [primary_name(name), canary_service_name(name)] {
                let selector = Api::<Service>::namespaced(self.client.clone(), &namespace)
                    .get(&node)
                    .await?
                    .spec
                    .and_then(|s| s.selector)
                    .unwrap_or_default();
                let spec = virtual_node_spec(canary, &namespace, &node, &selector);
                let object = named(&node, node_metadata.clone(), spec);
                self.virtual_nodes.apply(&self.client, &namespace, object).await?;
            }
            let canary_router = canary_service_name(name);
            let service =
                |router: &str| json!({ "provider": { "virtualRouter": { "virtualRouterRef": { "name": router } } } });
            // The apex router and service may exist before the Canary: adopted, given back.
            let apex_router = named(name, json!({}), virtual_router_spec(canary, routes));
            self.virtual_routers
                .apply_routing(&self.client, &namespace, canary, &owner, apex_router)
                .await?;
            let metadata = json!({ "annotations": gateway_annotations(&canary.spec) });
            let apex_service = named(name, metadata, service(name));
            self.virtual_services
                .apply_routing(&self.client, &namespace, canary, &owner, apex_service)
                .await?;
            let owned = json!({ "ownerReferences": [owner] });
            let object = named(&canary_router, owned.clone(), canary_router_spec(canary));
            self.virtual_routers.apply(&self.client, &namespace, object).await?;
            let object = named(&canary_router, owned, service(&canary_router));
            self.virtual_services.apply(&self.client, &namespace, object).await
        })
    }

    /// An apex VirtualRouter or VirtualService the user had gets its spec back; what serin
    /// created is owned by the Canary and goes with it.
    fn revert<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
            let name = canary.spec.service_name();
            self.virtual_services.give_back(&self.client, &namespace, name).await?;
            self.virtual_routers.give_back(&self.client, &namespace, name).await
        })
    }

    fn ignored_fields(&self, spec: &CanarySpec) -> Vec<&'static str> {
        let service = &spec.service;
        let analysis = spec.analysis();
        let matches = analysis.and_then(|a| a.match_.as_ref());
        set_fields(&[
            (
                "service.gatewayRefs",
                service.gateway_refs.as_ref().is_some_and(|g| !g.is_empty()),
            ),
            (
                "service.gateways",
                service.gateways.as_ref().is_some_and(|g| !g.is_empty()),
            ),
            ("service.rewrite", service.rewrite.is_some()),
            ("service.headers", service.headers.is_some()),
            ("service.corsPolicy", service.cors_policy.is_some()),
            ("service.trafficPolicy", service.traffic_policy.is_some()),
            ("service.mirror", service.mirror.as_ref().is_some_and(|m| !m.is_empty())),
            (
                "analysis.match.queryParams",
                matches.is_some_and(|m| m.iter().any(|m| m.query_params.is_some())),
            ),
            (
                "analysis.match.sourceLabels",
                matches.is_some_and(|m| m.iter().any(|m| m.source_labels.is_some())),
            ),
            ("analysis.mirror", analysis.is_some_and(|a| a.mirror == Some(true))),
            (
                "analysis.sessionAffinity",
                analysis.is_some_and(|a| a.session_affinity.is_some()),
            ),
        ])
    }
}

/// An object `name` with `metadata` and `spec`.
fn named(name: &str, mut metadata: Value, spec: Value) -> Value {
    metadata["name"] = json!(name);
    json!({ "metadata": metadata, "spec": spec })
}

fn protocol(canary: &Canary) -> &'static str {
    if canary
        .spec
        .service
        .port_name
        .as_deref()
        .is_some_and(|p| p.contains("grpc"))
    {
        "grpc"
    } else {
        "http"
    }
}

/// `service.targetPort` when it is a number, else `service.port` (Flagger's getContainerPort).
fn container_port(canary: &Canary) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match &canary.spec.service.target_port {
        Some(IntOrString::Int(port)) if *port > 0 => *port,
        _ => canary.spec.service.port,
    }
}

/// `service.timeout` in milliseconds, as App Mesh's duration.
fn timeout(canary: &Canary) -> Option<Value> {
    let millis = millis(canary.spec.service.timeout.as_deref()?)?;
    Some(json!({ "perRequest": { "unit": "ms", "value": millis } }))
}

/// A Go duration in whole milliseconds (Go's `Duration.Milliseconds`); `None` when it is not one.
fn millis(text: &str) -> Option<i64> {
    serin_api::duration::parse_go(text).ok().map(|nanos| nanos / 1_000_000)
}

fn virtual_node_spec(canary: &Canary, namespace: &str, node: &str, selector: &BTreeMap<String, String>) -> Value {
    let mut listener = json!({ "portMapping": { "port": container_port(canary), "protocol": protocol(canary) } });
    if let Some(timeout) = timeout(canary) {
        listener["timeout"] = json!({ "http": timeout });
    }
    let mut spec = json!({
        "listeners": [listener],
        "serviceDiscovery": { "dns": { "hostname": format!("{node}.{namespace}.svc.cluster.local.") } },
        "podSelector": { "matchLabels": selector },
    });
    let backends: Vec<Value> = canary
        .spec
        .service
        .backends
        .iter()
        .flatten()
        .map(|backend| match backend.starts_with("arn:aws") {
            true => json!({ "virtualService": { "virtualServiceARN": backend } }),
            false => json!({ "virtualService": { "virtualServiceRef": { "name": backend } } }),
        })
        .collect();
    if !backends.is_empty() {
        spec["backends"] = json!(backends);
    }
    if canary.annotations().get(ACCESS_LOG_ANNOTATION).map(String::as_str) == Some("enabled") {
        spec["logging"] = json!({ "accessLog": { "file": { "path": "/dev/stdout" } } });
    }
    spec
}

/// `service.retries` as App Mesh's retry policy: the per-try timeout (250 ms unless given), at
/// least one attempt, the `retryOn` events (`gateway-error` unless given).
fn retry_policy(canary: &Canary) -> Option<Value> {
    let retries = canary.spec.service.retries.as_ref()?;
    let per_try = retries.per_try_timeout.as_deref().and_then(millis).unwrap_or(250);
    let attempts = retries.attempts.filter(|a| *a > 0).unwrap_or(1);
    let events: Vec<&str> = match retries.retry_on.as_deref() {
        Some(on) if !on.is_empty() => on.split(',').collect(),
        _ => vec!["gateway-error"],
    };
    Some(json!({
        "perRetryTimeout": { "unit": "ms", "value": per_try },
        "maxRetries": attempts,
        "httpRetryEvents": events,
    }))
}

fn route_prefix(canary: &Canary) -> String {
    canary
        .spec
        .service
        .match_
        .as_ref()
        .and_then(|m| m.first())
        .and_then(|m| m.uri.as_ref())
        .and_then(|uri| uri.prefix.clone())
        .filter(|prefix| !prefix.is_empty())
        .unwrap_or_else(|| "/".into())
}

fn http_route(canary: &Canary, headers: Option<Vec<Value>>, targets: Value) -> Value {
    let mut route_match = json!({ "prefix": route_prefix(canary) });
    if let Some(headers) = headers {
        route_match["headers"] = json!(headers);
    }
    let mut route = json!({ "match": route_match, "action": { "weightedTargets": targets } });
    if let Some(timeout) = timeout(canary) {
        route["timeout"] = timeout;
    }
    if let Some(policy) = retry_policy(canary) {
        route["retryPolicy"] = policy;
    }
    route
}

fn targets(canary: &Canary, primary: i32, canary_weight: i32) -> Value {
    let name = canary.spec.service_name();
    json!([
        { "virtualNodeRef": { "name": canary_service_name(name) }, "weight": canary_weight },
        { "virtualNodeRef": { "name": primary_name(name) }, "weight": primary },
    ])
}

fn listeners(canary: &Canary) -> Value {
    json!([{ "portMapping": { "port": container_port(canary), "protocol": protocol(canary) } }])
}

/// The apex VirtualRouter's spec for `routes`.
fn virtual_router_spec(canary: &Canary, routes: &Routes) -> Value {
    let name = canary.spec.service_name();
    let (primary, canary_weight) = if routes.matched_to_canary {
        (0, 100)
    } else {
        (routes.primary, routes.canary)
    };
    let headers = analysis_headers(canary);
    let routes = if headers.is_empty() {
        json!([{ "name": name, "httpRoute": http_route(canary, None, targets(canary, primary, canary_weight)) }])
    } else {
        let primary_only = json!([{ "virtualNodeRef": { "name": primary_name(name) }, "weight": 100 }]);
        json!([
            { "name": format!("{name}-a"), "priority": 10,
              "httpRoute": http_route(canary, Some(headers), targets(canary, primary, canary_weight)) },
            { "name": format!("{name}-b"), "priority": 20, "httpRoute": http_route(canary, None, primary_only) },
        ])
    };
    json!({ "listeners": listeners(canary), "routes": routes })
}

/// The `<service>-canary` VirtualRouter: everything to the canary node.
fn canary_router_spec(canary: &Canary) -> Value {
    let route_name = canary_service_name(canary.spec.service_name());
    json!({
        "listeners": listeners(canary),
        "routes": [{ "name": route_name, "httpRoute": http_route(canary, None, targets(canary, 0, 100)) }],
    })
}

/// The `analysis.match` headers as App Mesh route headers (Flagger's makeHeaders).
fn analysis_headers(canary: &Canary) -> Vec<Value> {
    super::match_headers(canary)
        .map(|(name, value)| json!({ "name": name, "match": serde_json::to_value(value).unwrap_or(Value::Null) }))
        .collect()
}

/// The gateway annotations of the apex VirtualService (Flagger's gatewayAnnotations): with
/// `service.hosts`, App Mesh's gateway exposes it on those domains.
fn gateway_annotations(spec: &CanarySpec) -> BTreeMap<String, String> {
    let service = &spec.service;
    let hosts = service.hosts.clone().unwrap_or_default();
    let mut annotations = BTreeMap::new();
    if hosts.is_empty() {
        return annotations;
    }
    let domains: String = hosts.iter().map(|h| format!("{h},")).collect();
    annotations.insert("gateway.appmesh.k8s.aws/expose".into(), "true".into());
    annotations.insert("gateway.appmesh.k8s.aws/domain".into(), domains);
    if let Some(timeout) = &service.timeout {
        annotations.insert("gateway.appmesh.k8s.aws/timeout".into(), timeout.clone());
    }
    if let Some(attempts) = service.retries.as_ref().and_then(|r| r.attempts).filter(|a| *a > 0) {
        annotations.insert("gateway.appmesh.k8s.aws/retries".into(), attempts.to_string());
    }
    annotations
}

/// The weights of the apex router's first route; A/B's matched route as serin's status has it.
fn observed_routes(canary: &Canary, spec: &Value) -> ObservedRoutes {
    let name = canary.spec.service_name();
    let targets = spec["routes"][0]["httpRoute"]["action"]["weightedTargets"].clone();
    let weight_of = |node: String| {
        targets
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["virtualNodeRef"]["name"] == json!(node))
            .and_then(|t| t["weight"].as_i64())
            .and_then(|w| i32::try_from(w).ok())
            .unwrap_or(0)
    };
    let (primary, canary_weight) = (weight_of(primary_name(name)), weight_of(canary_service_name(name)));
    let matched = super::is_ab_testing(canary) && (primary, canary_weight) == (0, 100);
    if matched {
        return ObservedRoutes {
            primary: 100,
            canary: 0,
            refused: None,
        };
    }
    ObservedRoutes {
        primary,
        canary: canary_weight,
        refused: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(service: Value, analysis: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": { "name": "podinfo", "namespace": "test",
                          "annotations": { "appmesh.flagger.app/accesslog": "enabled" } },
            "spec": {
                "provider": "appmesh:v1beta2",
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
                "service": service,
                "analysis": analysis,
            }
        }))
        .expect("a Canary")
    }

    #[test]
    fn virtual_nodes_carry_the_listener_discovery_backends_and_access_log() {
        let canary = canary(
            json!({ "port": 9898, "targetPort": 8080, "timeout": "15s", "backends": ["backend1", "arn:aws:appmesh:eu-west-1:1:mesh/m/virtualService/b2"] }),
            json!({}),
        );
        let selector = BTreeMap::from([("app".to_string(), "podinfo-primary".to_string())]);
        let spec = virtual_node_spec(&canary, "test", "podinfo-primary", &selector);
        assert_eq!(
            spec,
            json!({
                "listeners": [{ "portMapping": { "port": 8080, "protocol": "http" },
                                "timeout": { "http": { "perRequest": { "unit": "ms", "value": 15000 } } } }],
                "serviceDiscovery": { "dns": { "hostname": "podinfo-primary.test.svc.cluster.local." } },
                "podSelector": { "matchLabels": { "app": "podinfo-primary" } },
                "backends": [
                    { "virtualService": { "virtualServiceRef": { "name": "backend1" } } },
                    { "virtualService": { "virtualServiceARN": "arn:aws:appmesh:eu-west-1:1:mesh/m/virtualService/b2" } },
                ],
                "logging": { "accessLog": { "file": { "path": "/dev/stdout" } } },
            })
        );
    }

    #[test]
    fn the_apex_router_weighs_the_nodes_with_retries() {
        let canary = canary(
            json!({ "port": 9898, "match": [{ "uri": { "prefix": "/api" } }],
                    "retries": { "attempts": 3, "perTryTimeout": "5s", "retryOn": "gateway-error,client-error" } }),
            json!({}),
        );
        let spec = virtual_router_spec(&canary, &Routes::weights(70, 30));
        let route = &spec["routes"][0];
        assert_eq!(route["name"], "podinfo");
        assert_eq!(route["httpRoute"]["match"], json!({ "prefix": "/api" }));
        assert_eq!(
            route["httpRoute"]["retryPolicy"],
            json!({ "perRetryTimeout": { "unit": "ms", "value": 5000 }, "maxRetries": 3,
                    "httpRetryEvents": ["gateway-error", "client-error"] })
        );
        let observed = observed_routes(&canary, &spec);
        assert_eq!((observed.primary, observed.canary), (70, 30));
    }

    #[test]
    fn ab_testing_matches_headers_first_then_the_primary() {
        let canary = canary(
            json!({ "port": 9898 }),
            json!({ "iterations": 2, "match": [{ "headers": { "x-canary": { "exact": "insider" } } }] }),
        );
        let routes = Routes {
            matched_to_canary: true,
            ..Routes::all_to_primary()
        };
        let spec = virtual_router_spec(&canary, &routes);
        assert_eq!(spec["routes"][0]["name"], "podinfo-a");
        assert_eq!(spec["routes"][0]["priority"], 10);
        assert_eq!(
            spec["routes"][0]["httpRoute"]["match"]["headers"],
            json!([{ "name": "x-canary", "match": { "exact": "insider" } }])
        );
        assert_eq!(
            spec["routes"][0]["httpRoute"]["action"]["weightedTargets"][0]["weight"],
            100
        );
        assert_eq!(spec["routes"][1]["name"], "podinfo-b");
        let observed = observed_routes(&canary, &spec);
        assert_eq!((observed.primary, observed.canary), (100, 0));
    }

    #[test]
    fn hosts_expose_the_apex_virtual_service_on_the_gateway() {
        let canary = canary(
            json!({ "port": 9898, "hosts": ["app.example.com"], "timeout": "30s" }),
            json!({}),
        );
        let annotations = gateway_annotations(&canary.spec);
        assert_eq!(annotations["gateway.appmesh.k8s.aws/domain"], "app.example.com,");
        assert_eq!(annotations["gateway.appmesh.k8s.aws/timeout"], "30s");
    }
}
