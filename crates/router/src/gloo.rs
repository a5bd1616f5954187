//! The Gloo provider (`gloo`), writing what Flagger's GlooRouter (pkg/router/gloo.go) writes:
//! Upstreams `<namespace>-<service>-primaryupstream-<port>` and `...-canaryupstream-<port>` for
//! the primary and canary Services (their `kube` selector copied from each Service, the rest
//! from the Upstream `spec.upstreamRef` names, when it does), and a RouteTable named after the
//! apex Service (labels and annotations from `service.apex`) with one route weighing the two
//! Upstreams, `inheritablePathMatchers: true`, and the `analysis.match` headers as its matchers.
//! A Gloo VirtualService the user owns delegates to that RouteTable. Everything is owned by the
//! Canary; there is nothing to revert.

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use serin_api::{Canary, CanarySpec};
use serin_core::naming::{canary_service_name, primary_name};
use serin_core::plan::{ObservedRoutes, Routes};

use super::custom_kind::CustomKind;
use super::{Error, Router, apex_annotations, apex_labels, ingress_routing_fields, set_fields};

/// The fields of the `upstreamRef` Upstream's spec copied to the primary's and canary's.
const TEMPLATE_FIELDS: [&str; 8] = [
    "sslConfig",
    "circuitBreakers",
    "connectionConfig",
    "loadBalancerConfig",
    "useHttp2",
    "initialStreamWindowSize",
    "initialConnectionWindowSize",
    "httpProxyHostname",
];

pub struct GlooRouter {
    client: Client,
    route_tables: CustomKind,
    upstreams: CustomKind,
}

impl GlooRouter {
    pub fn new(client: Client) -> GlooRouter {
        GlooRouter {
            client,
            route_tables: CustomKind::new("gateway.solo.io", "v1", "RouteTable", "routetables", "Gloo"),
            upstreams: CustomKind::new("gloo.solo.io", "v1", "Upstream", "upstreams", "Gloo"),
        }
    }

    /// The fields the `upstreamRef` template gives the Upstreams (none without one).
    async fn template(&self, canary: &Canary, namespace: &str) -> Result<serde_json::Map<String, Value>, Error> {
        let Some(reference) = &canary.spec.upstream_ref else {
            return Ok(serde_json::Map::new());
        };
        let template_namespace = reference.namespace.as_deref().unwrap_or(namespace);
        let template = self
            .upstreams
            .get(&self.client, template_namespace, &reference.name)
            .await?
            .ok_or_else(|| Error::UpstreamNotFound {
                name: format!("{template_namespace}/{}", reference.name),
            })?;
        Ok(TEMPLATE_FIELDS
            .iter()
            .filter_map(|field| Some((field.to_string(), template.data["spec"].get(*field)?.clone())))
            .collect())
    }

    /// Creates or updates the Upstream of the primary's or canary's Service (written only when
    /// its spec differs).
    async fn apply_upstream(
        &self,
        canary: &Canary,
        namespace: &str,
        owner: &Value,
        side: Side,
        template: &serde_json::Map<String, Value>,
    ) -> Result<(), Error> {
        let port = canary.spec.service.port;
        let apex = canary.spec.service_name();
        let name = upstream_name(namespace, apex, port, side);
        let service = match side {
            Side::Primary => primary_name(apex),
            Side::Canary => canary_service_name(apex),
        };
        let selector = Api::<Service>::namespaced(self.client.clone(), namespace)
            .get(&service)
            .await?
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default();
        let mut spec = template.clone();
        spec.insert(
            "kube".into(),
            json!({ "serviceName": service, "serviceNamespace": namespace, "servicePort": port, "selector": selector }),
        );
        let existing = self.upstreams.get(&self.client, namespace, &name).await?;
        if existing.is_some_and(|e| spec.iter().all(|(key, value)| e.data["spec"].get(key) == Some(value))) {
            return Ok(());
        }
        let upstream = json!({
            "metadata": { "name": name, "ownerReferences": [owner] },
            "spec": spec,
        });
        self.upstreams.apply(&self.client, namespace, upstream).await
    }
}

impl Router for GlooRouter {
    fn shifts_weights(&self) -> bool {
        true
    }

    fn get_routes<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<Option<ObservedRoutes>, Error>> {
        Box::pin(async move {
            let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
            let table = self.route_tables.get_apex(&self.client, canary).await?;
            Ok(table.map(|table| observed_routes(canary, &namespace, &table.data["spec"])))
        })
    }

    fn set_routes<'a>(&'a self, canary: &'a Canary, routes: &'a Routes) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
            let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
            let owner = serde_json::to_value(owner).map_err(Error::Serialize)?;
            let template = self.template(canary, &namespace).await?;
            let name = canary.spec.service_name();
            for side in [Side::Primary, Side::Canary] {
                self.apply_upstream(canary, &namespace, &owner, side, &template).await?;
            }
            let table = json!({
                "metadata": {
                    "name": name,
                    "labels": apex_labels(canary),
                    "annotations": apex_annotations(canary),
                },
                "spec": route_table_spec(canary, &namespace, routes),
            });
            self.route_tables
                .apply_routing(&self.client, &namespace, canary, &owner, table)
                .await
        })
    }

    /// A RouteTable the user had gets its spec back; the Upstreams and a RouteTable serin created
    /// are owned by the Canary and go with it. The user's Gloo VirtualService is not serin's.
    fn revert<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
            self.route_tables
                .give_back(&self.client, &namespace, canary.spec.service_name())
                .await
        })
    }

    fn ignored_fields(&self, spec: &CanarySpec) -> Vec<&'static str> {
        set_fields(&ingress_routing_fields(spec))
    }
}

/// The Upstream of the primary or the canary (`side`), as Flagger names it.
fn upstream_name(namespace: &str, service: &str, port: i32, side: Side) -> String {
    let side = match side {
        Side::Primary => "primary",
        Side::Canary => "canary",
    };
    format!("{namespace}-{service}-{side}upstream-{port}")
}

#[derive(Clone, Copy)]
enum Side {
    Primary,
    Canary,
}

/// A destination of the route; Gloo's weight is omitted when 0, as Flagger's `omitempty` does.
fn destination(namespace: &str, upstream: String, weight: i32) -> Value {
    let mut destination = json!({ "destination": { "upstream": { "name": upstream, "namespace": namespace } } });
    if weight != 0 {
        destination["weight"] = json!(weight);
    }
    destination
}

fn route_table_spec(canary: &Canary, namespace: &str, routes: &Routes) -> Value {
    let name = canary.spec.service_name();
    let port = canary.spec.service.port;
    let (primary, canary_weight) = if routes.matched_to_canary {
        (0, 100)
    } else {
        (routes.primary, routes.canary)
    };
    let mut route = json!({
        "inheritablePathMatchers": true,
        "routeAction": { "multi": { "destinations": [
            destination(namespace, upstream_name(namespace, name, port, Side::Primary), primary),
            destination(namespace, upstream_name(namespace, name, port, Side::Canary), canary_weight),
        ] } },
    });
    let headers = header_matchers(canary);
    if !headers.is_empty() {
        route["matchers"] = json!([{ "headers": headers }]);
    }
    json!({ "routes": [route] })
}

/// `analysis.match` headers as Gloo's header matchers (Flagger's `getHeaderMatchers`): the exact
/// value, or the regex with `regex: true`.
fn header_matchers(canary: &Canary) -> Vec<Value> {
    super::match_headers(canary)
        .map(|(name, value)| match value.regex.as_deref().filter(|r| !r.is_empty()) {
            Some(regex) => json!({ "name": name, "value": regex, "regex": true }),
            None => {
                let mut matcher = json!({ "name": name });
                if let Some(exact) = value.exact.as_deref().filter(|e| !e.is_empty()) {
                    matcher["value"] = json!(exact);
                }
                matcher
            }
        })
        .collect()
}

/// The primary's weight in the first route and the rest for the canary, as Flagger's GetRoutes.
fn observed_routes(canary: &Canary, namespace: &str, spec: &Value) -> ObservedRoutes {
    let name = canary.spec.service_name();
    let primary = upstream_name(namespace, name, canary.spec.service.port, Side::Primary);
    let destinations = &spec["routes"][0]["routeAction"]["multi"]["destinations"];
    let primary_weight = destinations
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["destination"]["upstream"]["name"] == json!(primary))
        .map(|d| d["weight"].as_i64().and_then(|w| i32::try_from(w).ok()).unwrap_or(0));
    let ab_testing = super::is_ab_testing(canary);
    match primary_weight {
        // A/B testing's matched requests all go to the canary, which serin's status counts as
        // no weight (as its other routers report A/B).
        Some(0 | 100) if ab_testing => ObservedRoutes {
            primary: 100,
            canary: 0,
            refused: None,
        },
        Some(weight) => ObservedRoutes {
            primary: weight,
            canary: 100 - weight,
            refused: None,
        },
        // Not ours any more: reported as nothing routed, so it is set back.
        None => ObservedRoutes {
            primary: 0,
            canary: 0,
            refused: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(analysis: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": { "name": "podinfo", "namespace": "test" },
            "spec": {
                "provider": "gloo",
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
                "service": { "port": 9898 },
                "analysis": analysis,
            }
        }))
        .expect("a Canary")
    }

    #[test]
    fn the_route_weighs_the_upstreams_and_omits_a_zero_weight() {
        let spec = route_table_spec(&canary(json!({})), "test", &Routes::all_to_primary());
        assert_eq!(
            spec,
            json!({ "routes": [{
                "inheritablePathMatchers": true,
                "routeAction": { "multi": { "destinations": [
                    { "destination": { "upstream": { "name": "test-podinfo-primaryupstream-9898", "namespace": "test" } }, "weight": 100 },
                    { "destination": { "upstream": { "name": "test-podinfo-canaryupstream-9898", "namespace": "test" } } },
                ] } },
            }] })
        );
        let observed = observed_routes(&canary(json!({})), "test", &spec);
        assert_eq!((observed.primary, observed.canary), (100, 0));
    }

    #[test]
    fn ab_testing_matches_the_headers_and_sends_them_to_the_canary() {
        let canary = canary(json!({ "iterations": 2, "match": [
            { "headers": { "x-canary": { "exact": "insider" }, "user-agent": { "regex": ".*Firefox.*" } } },
        ] }));
        let routes = Routes {
            matched_to_canary: true,
            ..Routes::all_to_primary()
        };
        let spec = route_table_spec(&canary, "test", &routes);
        let observed = observed_routes(&canary, "test", &spec);
        assert_eq!(
            (observed.primary, observed.canary),
            (100, 0),
            "A/B's weights as the status has them"
        );
        assert_eq!(
            spec["routes"][0]["matchers"],
            json!([{ "headers": [
                { "name": "user-agent", "value": ".*Firefox.*", "regex": true },
                { "name": "x-canary", "value": "insider" },
            ] }])
        );
        let destinations = &spec["routes"][0]["routeAction"]["multi"]["destinations"];
        assert_eq!(destinations[0].get("weight"), None);
        assert_eq!(destinations[1]["weight"], 100);
    }
}
