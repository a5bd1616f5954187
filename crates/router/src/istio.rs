//! The Istio provider (`istio`), writing what Flagger's IstioRouter (pkg/router/istio.go) writes:
//! DestinationRules `<service>-primary` and `<service>-canary` (host and `service.trafficPolicy`)
//! and a VirtualService named after the apex Service whose HTTP route (or TCP route, with
//! `service.appProtocol: tcp`) weighs the two hosts, carrying `service.match`, `rewrite`,
//! `timeout`, `retries`, `corsPolicy` and `headers`. A/B testing puts a route for the
//! `analysis.match` requests first; blue/green mirroring adds `mirror` and `mirrorPercentage`;
//! session affinity adds the sticky cookie routes.
//!
//! A VirtualService that existed before the Canary is taken over as Flagger does: its spec is
//! kept in the annotation `flagger.kubernetes.app/original-configuration` (unless kubectl's
//! last-applied annotation already holds it) and it gets no owner; `revertOnDeletion` puts that
//! spec back. One serin created is handed to the apex Service instead (see docs/compat.md).

use futures::future::BoxFuture;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use serin_api::canary::{AnalysisMatch, SessionAffinity};
use serin_api::{Canary, CanarySpec};
use serin_core::naming::{canary_service_name, primary_name};
use serin_core::plan::{ObservedRoutes, Routes};
use serin_core::session_affinity::{SessionCookies, canary_max_age, set_cookie};

use super::custom_kind::CustomKind;
use super::{Error, Router, apex_annotations, apex_labels, merge_matches_on, mesh_routing_fields, set_fields};

const GROUP: &str = "networking.istio.io";
const VERSION: &str = "v1beta1";
/// Where Flagger keeps the spec of a VirtualService it took over.
const ORIGINAL_CONFIGURATION: &str = "flagger.kubernetes.app/original-configuration";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub struct IstioRouter {
    client: Client,
    virtual_services: CustomKind,
    destination_rules: CustomKind,
}

impl IstioRouter {
    pub fn new(client: Client) -> IstioRouter {
        IstioRouter {
            client,
            virtual_services: CustomKind::new(GROUP, VERSION, "VirtualService", "virtualservices", "Istio"),
            destination_rules: CustomKind::new(GROUP, VERSION, "DestinationRule", "destinationrules", "Istio"),
        }
    }

    async fn apply_destination_rules(&self, canary: &Canary, owner: &Value) -> Result<(), Error> {
        let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
        let service = canary.spec.service_name();
        for host in [canary_service_name(service), primary_name(service)] {
            let mut spec = json!({ "host": host });
            if let Some(policy) = &canary.spec.service.traffic_policy {
                spec["trafficPolicy"] = serde_json::to_value(policy).map_err(Error::Serialize)?;
            }
            let rule = json!({
                "metadata": { "name": host, "ownerReferences": [owner] },
                "spec": spec,
            });
            self.destination_rules.apply(&self.client, &namespace, rule).await?;
        }
        Ok(())
    }

    /// Applies the VirtualService with `spec`. One that exists without this Canary as its owner
    /// was the user's: it stays without an owner, and its spec is kept for the revert the first
    /// time serin writes it.
    async fn apply_virtual_service(&self, canary: &Canary, owner: Option<Value>, spec: Value) -> Result<(), Error> {
        let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
        let name = canary.spec.service_name().to_string();
        let existing = self.virtual_services.get(&self.client, &namespace, &name).await?;
        let mut annotations = apex_annotations(canary);
        let mut owners = owner.into_iter().collect::<Vec<_>>();
        if let Some(existing) = &existing {
            let uid = canary.metadata.uid.as_deref();
            let ours = existing.owner_references().iter().any(|o| Some(o.uid.as_str()) == uid);
            if !ours {
                owners.clear();
                let kept = existing.annotations();
                if let Some(original) = kept.get(ORIGINAL_CONFIGURATION) {
                    annotations.insert(ORIGINAL_CONFIGURATION.into(), original.clone());
                } else if !kept.contains_key(LAST_APPLIED) {
                    annotations.insert(ORIGINAL_CONFIGURATION.into(), existing.data["spec"].to_string());
                }
            }
        }
        let service = json!({
            "metadata": {
                "name": name,
                "ownerReferences": owners,
                "labels": apex_labels(canary),
                "annotations": annotations,
            },
            "spec": spec,
        });
        self.virtual_services.apply(&self.client, &namespace, service).await
    }
}

impl Router for IstioRouter {
    fn shifts_weights(&self) -> bool {
        true
    }

    fn get_routes<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<Option<ObservedRoutes>, Error>> {
        Box::pin(async move {
            let service = self.virtual_services.get_apex(&self.client, canary).await?;
            Ok(service.map(|service| observed_routes(canary, &service.data["spec"])))
        })
    }

    fn set_routes<'a>(&'a self, canary: &'a Canary, routes: &'a Routes) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
            let owner = serde_json::to_value(owner).map_err(Error::Serialize)?;
            self.apply_destination_rules(canary, &owner).await?;
            self.apply_virtual_service(canary, Some(owner), virtual_service_spec(canary, routes))
                .await
        })
    }

    /// The spec the VirtualService had before the Canary took it over, as Flagger's Finalize;
    /// one serin created sends all traffic to the apex Service and loses its owner.
    fn revert<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
            let name = canary.spec.service_name();
            let Some(existing) = self.virtual_services.get(&self.client, &namespace, name).await? else {
                return Ok(());
            };
            let annotations = existing.annotations();
            let original = annotations
                .get(LAST_APPLIED)
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .map(|applied| applied["spec"].clone())
                .or_else(|| {
                    annotations
                        .get(ORIGINAL_CONFIGURATION)
                        .and_then(|a| serde_json::from_str(a).ok())
                });
            let spec = original.unwrap_or_else(|| to_apex(canary));
            self.apply_virtual_service(canary, None, spec).await
        })
    }

    fn ignored_fields(&self, spec: &CanarySpec) -> Vec<&'static str> {
        let fields: Vec<_> = mesh_routing_fields(spec)
            .into_iter()
            .filter(|(name, _)| *name == "service.mirror")
            .collect();
        set_fields(&fields)
    }
}

fn is_tcp(canary: &Canary) -> bool {
    canary
        .spec
        .service
        .app_protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
}

/// The weights of the last route (the weighted one, or in A/B testing the one to the primary
/// alone, which gets all of its traffic).
fn observed_routes(canary: &Canary, spec: &Value) -> ObservedRoutes {
    let service = canary.spec.service_name();
    let routes = if is_tcp(canary) { &spec["tcp"] } else { &spec["http"] };
    let last = routes.as_array().and_then(|r| r.last());
    let destinations = last.and_then(|route| route["route"].as_array()).map_or(0, Vec::len);
    let weight_of = |host: &str| {
        if destinations == 1 {
            // A lone destination gets all of the route's traffic.
            return i32::from(last.is_some_and(|route| route["route"][0]["destination"]["host"] == host)) * 100;
        }
        last.and_then(|route| route["route"].as_array())
            .and_then(|destinations| destinations.iter().find(|d| d["destination"]["host"] == host))
            .and_then(|d| d["weight"].as_i64())
            .and_then(|w| i32::try_from(w).ok())
            .unwrap_or(0)
    };
    ObservedRoutes {
        primary: weight_of(&primary_name(service)),
        canary: weight_of(&canary_service_name(service)),
        refused: None,
    }
}

/// A destination as Flagger's `makeDestination`: the port is named when `service.portDiscovery`
/// is on and the route is served by a gateway other than the mesh (or delegated).
fn destination(canary: &Canary, host: String, weight: i32) -> Value {
    let service = &canary.spec.service;
    let gateway = service
        .gateways
        .as_ref()
        .and_then(|g| g.first())
        .is_some_and(|g| g != "mesh");
    let mut destination = json!({ "destination": { "host": host }, "weight": weight });
    if service.port_discovery == Some(true) && (gateway || service.delegation == Some(true)) {
        destination["destination"]["port"] = json!({ "number": service.port });
    }
    destination
}

fn weighted(canary: &Canary, primary: i32, canary_weight: i32) -> Value {
    let service = canary.spec.service_name();
    json!([
        destination(canary, primary_name(service), primary),
        destination(canary, canary_service_name(service), canary_weight),
    ])
}

fn virtual_service_spec(canary: &Canary, routes: &Routes) -> Value {
    let service = &canary.spec.service;
    let name = canary.spec.service_name();
    let delegated = service.delegation == Some(true);
    let mut hosts: Vec<String> = service.hosts.clone().unwrap_or_default();
    if !hosts.iter().any(|h| h == name || h == "*") {
        hosts.push(name.to_string());
    }
    let mut gateways: Vec<String> = service.gateways.clone().unwrap_or_default();
    if gateways.is_empty() {
        gateways.push("mesh".into());
    }
    if delegated {
        // A delegate VirtualService has neither hosts nor gateways.
        hosts.clear();
        gateways.clear();
    }
    let mut spec = json!({ "hosts": hosts, "gateways": gateways });
    if is_tcp(canary) {
        let ports: Vec<Value> = service
            .match_
            .iter()
            .flatten()
            .map(|m| json!({ "port": m.port.unwrap_or_default() }))
            .collect();
        let mut route = json!({ "route": weighted(canary, routes.primary, routes.canary) });
        if !ports.is_empty() {
            route["match"] = json!(ports);
        }
        spec["tcp"] = json!([route]);
        return spec;
    }
    let service_matches: Vec<Value> = service
        .match_
        .iter()
        .flatten()
        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
        .collect();
    let http_route = |matches: &[Value], destinations: Value| {
        let mut route = json!({ "route": destinations });
        if !matches.is_empty() {
            route["match"] = json!(matches);
        }
        if let Some(rewrite) = &service.rewrite {
            // The Gateway API's rewrite `type` is not Istio's (Flagger's GetIstioRewrite).
            let mut rewrite = serde_json::to_value(rewrite).unwrap_or(Value::Null);
            if let Some(fields) = rewrite.as_object_mut() {
                fields.remove("type");
            }
            route["rewrite"] = rewrite;
        }
        for (key, value) in [
            ("timeout", service.timeout.as_ref().map(|t| json!(t))),
            (
                "retries",
                service.retries.as_ref().and_then(|r| serde_json::to_value(r).ok()),
            ),
            (
                "corsPolicy",
                service.cors_policy.as_ref().and_then(|c| serde_json::to_value(c).ok()),
            ),
            (
                "headers",
                service.headers.as_ref().and_then(|h| serde_json::to_value(h).ok()),
            ),
        ] {
            if let Some(value) = value {
                route[key] = value;
            }
        }
        route
    };
    let analysis_matches: Vec<&AnalysisMatch> = canary
        .spec
        .analysis()
        .and_then(|a| a.match_.as_ref())
        .into_iter()
        .flatten()
        .collect();
    if !analysis_matches.is_empty() {
        let (primary, canary_weight) = if routes.matched_to_canary {
            (0, 100)
        } else {
            (routes.primary, routes.canary)
        };
        // The weight Flagger gives the primary alone (0 while the matching requests go to the
        // canary); Istio sends all of a route's traffic to a lone destination whatever it says.
        let primary_only = json!([destination(canary, primary_name(name), primary)]);
        spec["http"] = json!([
            http_route(
                &merge_matches(&analysis_matches, &service_matches),
                weighted(canary, primary, canary_weight)
            ),
            http_route(&service_matches, primary_only),
        ]);
        return spec;
    }
    let weighted_route = http_route(&service_matches, weighted(canary, routes.primary, routes.canary));
    let affinity = canary.spec.analysis().and_then(|a| a.session_affinity.as_ref());
    let mut http = match (affinity, &routes.cookies) {
        (Some(affinity), Some(cookies)) => sticky_routes(canary, affinity, cookies, &service_matches, weighted_route),
        _ => vec![weighted_route],
    };
    if routes.mirror
        && let Some(first) = http.first_mut()
    {
        // Blue/green mirroring, on the first route as Flagger's SetRoutes puts it.
        first["mirror"] = json!({ "host": canary_service_name(name) });
        if let Some(percent) = canary.spec.analysis().and_then(|a| a.mirror_weight).filter(|w| *w > 0) {
            first["mirrorPercentage"] = json!({ "value": percent });
        }
    }
    spec["http"] = json!(http);
    spec
}

/// The routes session affinity adds before the weighted one (Flagger's
/// `getSessionAffinityRouteRules`): while the canary has weight, requests with the canary cookie
/// go to the canary (and with the primary cookie to the primary), and the weighted route's
/// destinations set those cookies; afterwards the previous run's cookie is expired on sight.
fn sticky_routes(
    canary: &Canary,
    affinity: &SessionAffinity,
    cookies: &SessionCookies,
    service_matches: &[Value],
    mut weighted_route: Value,
) -> Vec<Value> {
    let cookie_matches = |cookie: &str| {
        let (key, value) = cookie.split_once('=').unwrap_or((cookie, ""));
        let cookie_match = json!({ "headers": { "Cookie": { "regex": format!(".*{key}.*{value}.*") } } });
        merge_value_matches(&[cookie_match], service_matches)
    };
    let sticky = |cookie: &str, primary: i32, canary_weight: i32, weighted_route: &Value| {
        let mut route = weighted_route.clone();
        route["match"] = json!(cookie_matches(cookie));
        route["route"] = weighted(canary, primary, canary_weight);
        route
    };
    let set_cookie_header = |value: String| json!({ "response": { "add": { "Set-Cookie": value } } });
    if let Some(canary_cookie) = &cookies.canary {
        let mut routes = vec![sticky(canary_cookie, 0, 100, &weighted_route)];
        weighted_route["route"][1]["headers"] =
            set_cookie_header(set_cookie(canary_cookie, canary_max_age(affinity), affinity));
        if let Some(primary_cookie) = &cookies.primary {
            routes.push(sticky(primary_cookie, 100, 0, &weighted_route));
            let interval = canary
                .spec
                .analysis()
                .and_then(|a| a.interval().ok())
                .unwrap_or(serin_api::canary::defaults::INTERVAL);
            let max_age = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
            weighted_route["route"][0]["headers"] = set_cookie_header(set_cookie(primary_cookie, max_age, affinity));
        }
        routes.push(weighted_route);
        return routes;
    }
    let mut routes = Vec::new();
    if let Some(previous) = &cookies.previous {
        let mut expire = weighted_route.clone();
        expire["match"] = json!(cookie_matches(previous));
        expire["headers"]["response"]["add"]["Set-Cookie"] = json!(format!("{previous}; Max-Age=-1"));
        routes.push(expire);
    }
    routes.push(weighted_route);
    routes
}

/// Flagger's `mergeMatchConditions`: each A/B match's headers and source labels on each service
/// match; the A/B matches as they are when the service has none.
fn merge_matches(analysis: &[&AnalysisMatch], service: &[Value]) -> Vec<Value> {
    let analysis: Vec<Value> = analysis
        .iter()
        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
        .collect();
    merge_value_matches(&analysis, service)
}

fn merge_value_matches(analysis: &[Value], service: &[Value]) -> Vec<Value> {
    if service.is_empty() {
        return analysis.to_vec();
    }
    merge_matches_on(analysis, service, &["headers", "sourceLabels"])
}

/// All traffic to the apex Service, which then selects the target's pods.
fn to_apex(canary: &Canary) -> Value {
    let mut spec = virtual_service_spec(canary, &Routes::all_to_primary());
    let apex = json!([{ "destination": { "host": canary.spec.service_name() }, "weight": 100 }]);
    for kind in ["http", "tcp"] {
        if let Some(routes) = spec[kind].as_array_mut() {
            routes.truncate(1);
            if let Some(route) = routes.first_mut() {
                route["route"] = apex.clone();
                if let Some(fields) = route.as_object_mut() {
                    fields.remove("mirror");
                    fields.remove("mirrorPercentage");
                }
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(spec: Value) -> Canary {
        let mut manifest = json!({
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": { "name": "podinfo", "namespace": "test", "uid": "u1" },
            "spec": {
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
                "service": { "port": 9898 },
                "analysis": { "interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50 }
            }
        });
        json_merge(&mut manifest["spec"], spec);
        serde_json::from_value(manifest).expect("a Canary")
    }

    fn json_merge(target: &mut Value, patch: Value) {
        match (target, patch) {
            (Value::Object(target), Value::Object(patch)) => {
                for (key, value) in patch {
                    json_merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
            (target, patch) => *target = patch,
        }
    }

    fn hosts_and_weights(route: &Value) -> Vec<(String, i64)> {
        route["route"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["destination"]["host"].as_str().unwrap_or_default().to_string(),
                    d["weight"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn weighs_primary_and_canary_on_the_mesh_gateway() {
        let canary = canary(json!({}));
        let spec = virtual_service_spec(&canary, &Routes::weights(70, 30));
        assert_eq!(spec["hosts"], json!(["podinfo"]));
        assert_eq!(spec["gateways"], json!(["mesh"]));
        assert_eq!(
            hosts_and_weights(&spec["http"][0]),
            vec![("podinfo-primary".into(), 70), ("podinfo-canary".into(), 30)]
        );
        assert_eq!(
            observed_routes(&canary, &spec),
            ObservedRoutes {
                primary: 70,
                canary: 30,
                refused: None
            }
        );
    }

    #[test]
    fn carries_the_service_fields_as_flagger_does() {
        let canary = canary(json!({ "service": {
            "hosts": ["app.example.com"], "gateways": ["public-gateway"], "portDiscovery": true,
            "match": [{ "uri": { "prefix": "/api" } }],
            "rewrite": { "uri": "/", "type": "ReplacePrefixMatch" },
            "timeout": "5s",
            "retries": { "attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error" },
            "headers": { "request": { "add": { "x-some-header": "value" } } },
            "corsPolicy": { "allowOrigins": [{ "exact": "example.com" }], "maxAge": "24h" }
        } }));
        let spec = virtual_service_spec(&canary, &Routes::weights(100, 0));
        assert_eq!(spec["hosts"], json!(["app.example.com", "podinfo"]));
        assert_eq!(spec["gateways"], json!(["public-gateway"]));
        let route = &spec["http"][0];
        assert_eq!(route["match"], json!([{ "uri": { "prefix": "/api" } }]));
        assert_eq!(route["rewrite"], json!({ "uri": "/" }));
        assert_eq!(route["timeout"], json!("5s"));
        assert_eq!(route["retries"]["attempts"], json!(3));
        assert_eq!(route["headers"]["request"]["add"]["x-some-header"], json!("value"));
        assert_eq!(route["corsPolicy"]["maxAge"], json!("24h"));
        assert_eq!(route["route"][0]["destination"]["port"], json!({ "number": 9898 }));
    }

    #[test]
    fn ab_testing_puts_the_matching_requests_first() {
        let canary = canary(json!({ "analysis": { "iterations": 10, "match": [
            { "headers": { "x-canary": { "exact": "insider" } } },
            { "headers": { "cookie": { "regex": "^(.*?;)?(canary=always)(;.*)?$" } } }
        ] } }));
        let routes = Routes {
            matched_to_canary: true,
            ..Routes::all_to_primary()
        };
        let spec = virtual_service_spec(&canary, &routes);
        let http = spec["http"].as_array().expect("http routes");
        assert_eq!(http.len(), 2);
        assert_eq!(http[0]["match"][0]["headers"]["x-canary"]["exact"], json!("insider"));
        assert_eq!(
            hosts_and_weights(&http[0]),
            vec![("podinfo-primary".into(), 0), ("podinfo-canary".into(), 100)]
        );
        // Flagger's weight for the primary alone during the analysis; it gets that route's
        // traffic all the same, as the observed routes say.
        assert_eq!(hosts_and_weights(&http[1]), vec![("podinfo-primary".into(), 0)]);
        assert_eq!(http[1].get("match"), None);
        assert_eq!(
            observed_routes(&canary, &spec),
            ObservedRoutes {
                primary: 100,
                canary: 0,
                refused: None
            }
        );
    }

    #[test]
    fn ab_matches_are_merged_onto_the_service_matches() {
        let canary = canary(json!({
            "service": { "match": [{ "uri": { "prefix": "/api" } }, { "uri": { "prefix": "/v2" } }] },
            "analysis": { "iterations": 10, "match": [{ "headers": { "x-canary": { "exact": "insider" } } }] }
        }));
        let spec = virtual_service_spec(&canary, &Routes::all_to_primary());
        let merged = spec["http"][0]["match"].as_array().expect("matches");
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[1]["uri"]["prefix"], json!("/v2"));
        assert_eq!(merged[1]["headers"]["x-canary"]["exact"], json!("insider"));
    }

    #[test]
    fn blue_green_mirrors_to_the_canary() {
        let canary = canary(json!({ "analysis": { "iterations": 10, "mirror": true, "mirrorWeight": 25 } }));
        let routes = Routes {
            mirror: true,
            ..Routes::all_to_primary()
        };
        let spec = virtual_service_spec(&canary, &routes);
        assert_eq!(spec["http"][0]["mirror"], json!({ "host": "podinfo-canary" }));
        assert_eq!(spec["http"][0]["mirrorPercentage"], json!({ "value": 25 }));
    }

    #[test]
    fn tcp_services_get_a_tcp_route() {
        let canary = canary(json!({ "service": { "appProtocol": "TCP", "match": [{ "port": 9898 }] } }));
        let spec = virtual_service_spec(&canary, &Routes::weights(90, 10));
        assert_eq!(spec.get("http"), None);
        assert_eq!(spec["tcp"][0]["match"], json!([{ "port": 9898 }]));
        assert_eq!(
            observed_routes(&canary, &spec),
            ObservedRoutes {
                primary: 90,
                canary: 10,
                refused: None
            }
        );
    }

    #[test]
    fn delegates_have_no_hosts_or_gateways() {
        let canary = canary(json!({ "service": { "delegation": true, "portDiscovery": true } }));
        let spec = virtual_service_spec(&canary, &Routes::all_to_primary());
        assert_eq!(spec["hosts"], json!([]));
        assert_eq!(spec["gateways"], json!([]));
        assert_eq!(
            spec["http"][0]["route"][1]["destination"]["port"],
            json!({ "number": 9898 })
        );
    }

    #[test]
    fn session_affinity_routes_cookies_to_their_side() {
        let canary = canary(json!({ "analysis": { "sessionAffinity": {
            "cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie", "maxAge": 7200
        } } }));
        let routes = Routes {
            cookies: Some(SessionCookies {
                canary: Some("flagger-cookie=abc".into()),
                primary: Some("primary-cookie=def".into()),
                previous: None,
            }),
            ..Routes::weights(80, 20)
        };
        let spec = virtual_service_spec(&canary, &routes);
        let http = spec["http"].as_array().expect("http routes");
        assert_eq!(http.len(), 3);
        assert_eq!(
            http[0]["match"][0]["headers"]["Cookie"]["regex"],
            json!(".*flagger-cookie.*abc.*")
        );
        assert_eq!(hosts_and_weights(&http[0])[1], ("podinfo-canary".into(), 100));
        assert_eq!(hosts_and_weights(&http[1])[0], ("podinfo-primary".into(), 100));
        assert_eq!(
            http[2]["route"][1]["headers"]["response"]["add"]["Set-Cookie"],
            json!("flagger-cookie=abc; Max-Age=7200")
        );
        assert_eq!(
            http[2]["route"][0]["headers"]["response"]["add"]["Set-Cookie"],
            json!("primary-cookie=def; Max-Age=60")
        );
        assert_eq!(observed_routes(&canary, &spec).canary, 20);

        let after = Routes {
            cookies: Some(SessionCookies {
                canary: None,
                primary: None,
                previous: Some("flagger-cookie=abc".into()),
            }),
            ..Routes::all_to_primary()
        };
        let spec = virtual_service_spec(&canary, &after);
        assert_eq!(
            spec["http"][0]["headers"]["response"]["add"]["Set-Cookie"],
            json!("flagger-cookie=abc; Max-Age=-1")
        );
        assert_eq!(spec["http"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn the_revert_sends_everything_to_the_apex_service() {
        let canary = canary(json!({ "analysis": { "iterations": 10, "mirror": true } }));
        let spec = to_apex(&canary);
        assert_eq!(hosts_and_weights(&spec["http"][0]), vec![("podinfo".into(), 100)]);
        assert_eq!(spec["http"][0].get("mirror"), None);
    }
}
