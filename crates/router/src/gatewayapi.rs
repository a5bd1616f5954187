//! The Gateway API provider (`gatewayapi:v1`, `gatewayapi:v1beta1`): an HTTPRoute named after
//! the apex Service, attached to `service.gatewayRefs`, with weighted backendRefs to the
//! primary and canary Services and, for A/B testing, a first rule sending `analysis.match`
//! requests to the canary.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use kube::api::DynamicObject;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use serin_api::canary::{AnalysisMatch, SessionAffinity};
use serin_api::{Canary, CanarySpec};
use serin_core::naming::{canary_service_name, primary_name};
use serin_core::plan::{ObservedRoutes, Routes};
use serin_core::services::FLUX_ANNOTATIONS;
use serin_core::session_affinity::{SessionCookies, canary_max_age, set_cookie};

use super::custom_kind::CustomKind;
use super::{Error, Router, merge_matches_on, mesh_routing_fields, set_fields};

pub struct GatewayApiRouter {
    client: Client,
    http_routes: CustomKind,
}

impl GatewayApiRouter {
    pub fn new(client: Client, version: &str) -> GatewayApiRouter {
        GatewayApiRouter {
            client,
            http_routes: CustomKind::new(
                "gateway.networking.k8s.io",
                version,
                "HTTPRoute",
                "httproutes",
                "the Gateway API",
            ),
        }
    }

    async fn apply(&self, canary: &Canary, owners: Vec<Value>, spec: Value) -> Result<(), Error> {
        let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
        let route = json!({
            "metadata": {
                "name": canary.spec.service_name(),
                "ownerReferences": owners,
                "annotations": BTreeMap::from(FLUX_ANNOTATIONS),
            },
            "spec": spec,
        });
        self.http_routes.apply(&self.client, &namespace, route).await
    }
}

impl Router for GatewayApiRouter {
    fn shifts_weights(&self) -> bool {
        true
    }

    fn get_routes<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<Option<ObservedRoutes>, Error>> {
        Box::pin(async move {
            let route = self.http_routes.get_apex(&self.client, canary).await?;
            Ok(route.map(|route| observed_routes(canary, &route)))
        })
    }

    fn set_routes<'a>(&'a self, canary: &'a Canary, routes: &'a Routes) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
            let owner = serde_json::to_value(owner).map_err(Error::Serialize)?;
            self.apply(canary, vec![owner], http_route_spec(canary, routes)).await
        })
    }

    /// All traffic to the apex Service (which then selects the target's pods), no owner.
    fn revert<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut spec = http_route_spec(canary, &Routes::all_to_primary());
            let apex = json!({ "name": canary.spec.service_name(), "port": canary.spec.service.port, "weight": 100 });
            spec["rules"] = json!([{ "backendRefs": [apex] }]);
            self.apply(canary, Vec::new(), spec).await
        })
    }

    fn ignored_fields(&self, spec: &CanarySpec) -> Vec<&'static str> {
        ignored_fields(spec)
    }
}

/// What the HTTPRoute does not carry: Istio-only routing (gateways, retries, traffic policy),
/// CORS (an experimental-channel filter), and session affinity in A/B testing (whose canary
/// segment is chosen by `analysis.match`, not by weight).
fn ignored_fields(spec: &CanarySpec) -> Vec<&'static str> {
    let ab_testing = spec
        .analysis()
        .and_then(|a| a.match_.as_ref())
        .is_some_and(|m| !m.is_empty());
    let carried = |name: &str| match name {
        "service.match" | "service.rewrite" | "service.timeout" | "service.headers" | "service.mirror" => true,
        "analysis.sessionAffinity" => !ab_testing,
        _ => false,
    };
    let fields: Vec<_> = mesh_routing_fields(spec)
        .into_iter()
        .filter(|(name, _)| !carried(name))
        .collect();
    set_fields(&fields)
}

/// The weights of the route's default rule (its last) and whether a parent refused the route at
/// its current generation.
fn observed_routes(canary: &Canary, route: &DynamicObject) -> ObservedRoutes {
    let name = canary.spec.service_name();
    let weight_of = |backend: &str| {
        route.data["spec"]["rules"]
            .as_array()
            .and_then(|rules| rules.last())
            .and_then(|rule| rule["backendRefs"].as_array())
            .and_then(|refs| refs.iter().find(|r| r["name"] == backend))
            .and_then(|r| r["weight"].as_i64())
            .and_then(|w| i32::try_from(w).ok())
            .unwrap_or(0)
    };
    let generation = route.metadata.generation;
    let refused: Vec<String> = route.data["status"]["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|parent| {
            let parent_name = parent["parentRef"]["name"].as_str().unwrap_or_default().to_string();
            parent["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["type"] == "Accepted" && c["status"] == "False")
                .filter(|c| generation.is_none() || c["observedGeneration"].as_i64() == generation)
                .map(move |c| {
                    format!(
                        "{parent_name} refused it ({}): {}",
                        c["reason"].as_str().unwrap_or_default(),
                        c["message"].as_str().unwrap_or_default()
                    )
                })
        })
        .collect();
    ObservedRoutes {
        primary: weight_of(&primary_name(name)),
        canary: weight_of(&canary_service_name(name)),
        refused: (!refused.is_empty()).then(|| refused.join("; ")),
    }
}

fn http_route_spec(canary: &Canary, routes: &Routes) -> Value {
    let service = &canary.spec.service;
    let name = canary.spec.service_name();
    let backends = |primary: i32, canary_weight: i32| {
        json!([
            { "name": primary_name(name), "port": service.port, "weight": primary },
            { "name": canary_service_name(name), "port": service.port, "weight": canary_weight },
        ])
    };
    let parent_refs: Vec<Value> = service
        .gateway_refs
        .iter()
        .flatten()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    let service_matches = service_matches(service);
    let filters = filters(service);
    let with_parents_and_hosts = |rules: Vec<Value>| {
        let mut spec = json!({ "parentRefs": parent_refs, "rules": rules });
        if let Some(hosts) = service.hosts.as_ref().filter(|h| !h.is_empty()) {
            spec["hostnames"] = json!(hosts);
        }
        spec
    };
    // Each rule carries the service's matches, filters and timeouts, as Flagger's router does.
    let rule = |matches: Vec<Value>, backend_refs: Value, extra_filters: Vec<Value>| {
        let mut rule = json!({ "matches": matches, "backendRefs": backend_refs });
        let all_filters: Vec<Value> = filters.iter().cloned().chain(extra_filters).collect();
        if !all_filters.is_empty() {
            rule["filters"] = json!(all_filters);
        }
        if let Some(timeouts) = timeouts(service) {
            rule["timeouts"] = timeouts;
        }
        rule
    };
    let mut rules = Vec::new();
    let analysis_matches: Vec<Value> = canary
        .spec
        .analysis()
        .and_then(|a| a.match_.as_ref())
        .into_iter()
        .flatten()
        .map(route_match)
        .collect();
    if !analysis_matches.is_empty() {
        // A/B testing, in Flagger's layout (so each can read what the other wrote): a rule for
        // the matching requests, weighted between primary and canary, then one to the primary.
        let (primary, canary_weight) = if routes.matched_to_canary {
            (0, 100)
        } else {
            (routes.primary, routes.canary)
        };
        rules.push(rule(
            merge_matches(&analysis_matches, &service_matches),
            backends(primary, canary_weight),
            vec![],
        ));
        let primary_only = json!([{ "name": primary_name(name), "port": service.port, "weight": 100 }]);
        rules.push(rule(service_matches, primary_only, vec![]));
        return with_parents_and_hosts(rules);
    }
    let mut mirror_filters = Vec::new();
    if routes.mirror {
        // Blue/green mirroring: the primary answers, the canary gets a copy of the requests.
        let mut mirror = json!({ "backendRef": { "name": canary_service_name(name), "port": service.port } });
        if let Some(percent) = canary.spec.analysis().and_then(|a| a.mirror_weight).filter(|w| *w > 0) {
            mirror["percent"] = json!(percent);
        }
        mirror_filters.push(json!({ "type": "RequestMirror", "requestMirror": mirror }));
    }
    let weighted = rule(
        service_matches.clone(),
        backends(routes.primary, routes.canary),
        mirror_filters,
    );
    let affinity = canary.spec.analysis().and_then(|a| a.session_affinity.as_ref());
    match (affinity, &routes.cookies) {
        (Some(affinity), Some(cookies)) => {
            rules.extend(sticky_rules(canary, affinity, cookies, &service_matches, weighted));
        }
        _ => rules.push(weighted),
    }
    with_parents_and_hosts(rules)
}

/// Session affinity as Flagger's router writes it: while the canary has weight, its responses
/// in the weighted rule set the canary cookie (and the primary's the primary cookie, for one
/// interval), and rules before it send requests carrying a cookie to its side. Once the canary
/// has no weight, a rule before the weighted one expires the previous run's cookie.
fn sticky_rules(
    canary: &Canary,
    affinity: &SessionAffinity,
    cookies: &SessionCookies,
    service_matches: &[Value],
    mut weighted: Value,
) -> Vec<Value> {
    let service = &canary.spec.service;
    let name = canary.spec.service_name();
    let set_cookie_filter = |value: String| {
        json!({ "type": "ResponseHeaderModifier",
                "responseHeaderModifier": { "add": [{ "name": "Set-Cookie", "value": value }] } })
    };
    let cookie_matches = |cookie: &str| {
        let (key, value) = cookie.split_once('=').unwrap_or((cookie, ""));
        let header = json!({ "type": "RegularExpression", "name": "Cookie", "value": format!(".*{key}.*{value}.*") });
        merge_matches(&[json!({ "headers": [header] })], service_matches)
    };
    let sticky_to = |cookie: &str, primary: i32, canary_weight: i32, weighted: &Value| {
        let mut sticky = weighted.clone();
        sticky["matches"] = json!(cookie_matches(cookie));
        sticky["backendRefs"] = json!([
            { "name": primary_name(name), "port": service.port, "weight": primary },
            { "name": canary_service_name(name), "port": service.port, "weight": canary_weight },
        ]);
        sticky
    };
    if let Some(canary_cookie) = &cookies.canary {
        let mut rules = vec![sticky_to(canary_cookie, 0, 100, &weighted)];
        if let Some(primary_cookie) = &cookies.primary {
            rules.push(sticky_to(primary_cookie, 100, 0, &weighted));
            let interval = canary
                .spec
                .analysis()
                .and_then(|a| a.interval().ok())
                .unwrap_or(serin_api::canary::defaults::INTERVAL);
            let primary_max_age = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
            weighted["backendRefs"][0]["filters"] =
                json!([set_cookie_filter(set_cookie(primary_cookie, primary_max_age, affinity))]);
        }
        weighted["backendRefs"][1]["filters"] = json!([set_cookie_filter(set_cookie(
            canary_cookie,
            canary_max_age(affinity),
            affinity
        ))]);
        rules.push(weighted);
        return rules;
    }
    let mut rules = Vec::new();
    if let Some(previous) = &cookies.previous {
        let mut expire = weighted.clone();
        expire["matches"] = json!(cookie_matches(previous));
        let mut filters = expire["filters"].as_array().cloned().unwrap_or_default();
        filters.push(set_cookie_filter(format!("{previous}; Max-Age=-1")));
        expire["filters"] = json!(filters);
        rules.push(expire);
    }
    rules.push(weighted);
    rules
}

/// `service.match` as HTTPRouteMatches (path, method, headers, query parameters); all paths
/// (`PathPrefix /`) when there is none.
fn service_matches(service: &serin_api::service::CanaryService) -> Vec<Value> {
    let matches: Vec<Value> = service
        .match_
        .iter()
        .flatten()
        .map(|entry| {
            let mut route_match = json!({});
            if let Some(uri) = &entry.uri {
                let path = match (&uri.regex, &uri.exact, &uri.prefix) {
                    (Some(regex), _, _) => Some(("RegularExpression", regex)),
                    (None, Some(exact), _) => Some(("Exact", exact)),
                    (None, None, Some(prefix)) => Some(("PathPrefix", prefix)),
                    _ => None,
                };
                if let Some((kind, value)) = path {
                    route_match["path"] = json!({ "type": kind, "value": value });
                }
            }
            if let Some(method) = entry.method.as_ref().and_then(|m| m.exact.as_ref()) {
                route_match["method"] = json!(method);
            }
            let exact_or_regex =
                |pairs: Option<&std::collections::BTreeMap<String, serin_api::service::StringMatch>>| {
                    pairs
                        .into_iter()
                        .flatten()
                        .filter_map(|(name, m)| match (&m.exact, &m.regex) {
                            (Some(exact), _) => Some(json!({ "name": name, "type": "Exact", "value": exact })),
                            (None, Some(regex)) => {
                                Some(json!({ "name": name, "type": "RegularExpression", "value": regex }))
                            }
                            _ => None,
                        })
                        .collect::<Vec<Value>>()
                };
            let headers = exact_or_regex(entry.headers.as_ref());
            if !headers.is_empty() {
                route_match["headers"] = json!(headers);
            }
            let query = exact_or_regex(entry.query_params.as_ref());
            if !query.is_empty() {
                route_match["queryParams"] = json!(query);
            }
            route_match
        })
        .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()))
        .collect();
    if matches.is_empty() {
        vec![json!({ "path": { "type": "PathPrefix", "value": "/" } })]
    } else {
        matches
    }
}

/// Every A/B match combined with every service match: the A/B headers and query parameters on
/// the service's paths (Flagger's `mergeMatchConditions`).
fn merge_matches(analysis: &[Value], service: &[Value]) -> Vec<Value> {
    merge_matches_on(analysis, service, &["headers", "queryParams"])
}

/// `service.headers`, `service.rewrite` and `service.mirror` as HTTPRoute filters.
fn filters(service: &serin_api::service::CanaryService) -> Vec<Value> {
    let mut filters = Vec::new();
    let modifier = |operations: &serin_api::service::HeaderOperations| {
        let pairs = |map: &Option<std::collections::BTreeMap<String, String>>| {
            map.iter()
                .flatten()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect::<Vec<Value>>()
        };
        let mut modifier = json!({});
        for (key, list) in [("add", pairs(&operations.add)), ("set", pairs(&operations.set))] {
            if !list.is_empty() {
                modifier[key] = json!(list);
            }
        }
        if let Some(remove) = operations.remove.as_ref().filter(|r| !r.is_empty()) {
            modifier["remove"] = json!(remove);
        }
        modifier
    };
    if let Some(headers) = &service.headers {
        if let Some(request) = &headers.request {
            filters.push(json!({ "type": "RequestHeaderModifier", "requestHeaderModifier": modifier(request) }));
        }
        if let Some(response) = &headers.response {
            filters.push(json!({ "type": "ResponseHeaderModifier", "responseHeaderModifier": modifier(response) }));
        }
    }
    if let Some(rewrite) = &service.rewrite {
        let mut url_rewrite = json!({});
        if let Some(authority) = rewrite.authority.as_ref().filter(|a| !a.is_empty()) {
            url_rewrite["hostname"] = json!(authority);
        }
        if let Some(uri) = rewrite.uri.as_ref().filter(|u| !u.is_empty()) {
            url_rewrite["path"] = if rewrite.type_.as_deref() == Some("ReplacePrefixMatch") {
                json!({ "type": "ReplacePrefixMatch", "replacePrefixMatch": uri })
            } else {
                json!({ "type": "ReplaceFullPath", "replaceFullPath": uri })
            };
        }
        filters.push(json!({ "type": "URLRewrite", "urlRewrite": url_rewrite }));
    }
    for mirror in service.mirror.iter().flatten() {
        let backend = serde_json::to_value(&mirror.backend_ref).unwrap_or(Value::Null);
        filters.push(json!({ "type": "RequestMirror", "requestMirror": { "backendRef": backend } }));
    }
    filters
}

/// `service.timeout` and `service.backendTimeout` as the rule's timeouts.
fn timeouts(service: &serin_api::service::CanaryService) -> Option<Value> {
    let mut timeouts = json!({});
    if let Some(request) = &service.timeout {
        timeouts["request"] = json!(request);
    }
    if let Some(backend) = &service.backend_timeout {
        timeouts["backendRequest"] = json!(backend);
    }
    timeouts.as_object().is_some_and(|t| !t.is_empty()).then_some(timeouts)
}

/// An `analysis.match` entry as an HTTPRouteMatch: exact values match exactly; prefix, suffix
/// and regex become regular expressions.
fn route_match(entry: &AnalysisMatch) -> Value {
    let headers: Vec<Value> = entry
        .headers
        .iter()
        .flatten()
        .filter_map(|(name, m)| {
            string_match(
                m.exact.as_deref(),
                m.prefix.as_deref(),
                m.suffix.as_deref(),
                m.regex.as_deref(),
            )
            .map(|(kind, value)| json!({ "name": name, "type": kind, "value": value }))
        })
        .collect();
    let query: Vec<Value> = entry
        .query_params
        .iter()
        .flatten()
        .filter_map(|(name, m)| {
            string_match(m.exact.as_deref(), m.prefix.as_deref(), None, m.regex.as_deref())
                .map(|(kind, value)| json!({ "name": name, "type": kind, "value": value }))
        })
        .collect();
    let mut route_match = json!({});
    if !headers.is_empty() {
        route_match["headers"] = json!(headers);
    }
    if !query.is_empty() {
        route_match["queryParams"] = json!(query);
    }
    route_match
}

fn string_match(
    exact: Option<&str>,
    prefix: Option<&str>,
    suffix: Option<&str>,
    regex: Option<&str>,
) -> Option<(&'static str, String)> {
    if let Some(value) = exact {
        return Some(("Exact", value.to_string()));
    }
    if let Some(value) = prefix {
        return Some(("RegularExpression", format!("^{}.*", regex_escape(value))));
    }
    if let Some(value) = suffix {
        return Some(("RegularExpression", format!(".*{}$", regex_escape(value))));
    }
    regex.map(|value| ("RegularExpression", value.to_string()))
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canary(analysis: Value) -> Canary {
        let mut canary = Canary::new(
            "web",
            serde_json::from_value(json!({
                "targetRef": { "kind": "Deployment", "name": "web" },
                "service": { "port": 9898, "hosts": ["web.example.com"], "gatewayRefs": [{ "name": "gw", "namespace": "infra" }] },
                "analysis": analysis,
            }))
            .expect("spec"),
        );
        canary.metadata.namespace = Some("test".into());
        canary
    }

    #[test]
    fn weighted_backends() {
        let spec = http_route_spec(
            &canary(json!({ "interval": "1m", "threshold": 1, "stepWeight": 10 })),
            &Routes::weights(70, 30),
        );
        assert_eq!(spec["parentRefs"], json!([{ "name": "gw", "namespace": "infra" }]));
        assert_eq!(spec["hostnames"], json!(["web.example.com"]));
        assert_eq!(
            spec["rules"],
            json!([{
                "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                "backendRefs": [
                    { "name": "web-primary", "port": 9898, "weight": 70 },
                    { "name": "web-canary", "port": 9898, "weight": 30 },
                ]
            }])
        );
    }

    #[test]
    fn blue_green_mirroring_copies_requests_to_the_canary() {
        let analysis = json!({ "interval": "1m", "threshold": 1, "iterations": 5, "mirror": true, "mirrorWeight": 50 });
        let routes = Routes {
            mirror: true,
            ..Routes::all_to_primary()
        };
        let spec = http_route_spec(&canary(analysis), &routes);
        assert_eq!(
            spec["rules"][0]["filters"],
            json!([{ "type": "RequestMirror", "requestMirror": { "backendRef": { "name": "web-canary", "port": 9898 }, "percent": 50 } }])
        );
        assert_eq!(spec["rules"][0]["backendRefs"][0]["weight"], json!(100));
        let plain = http_route_spec(
            &canary(json!({ "interval": "1m", "threshold": 1, "iterations": 5 })),
            &Routes::all_to_primary(),
        );
        assert_eq!(plain["rules"][0].get("filters"), None);
    }

    #[test]
    fn ab_matches_go_to_the_canary() {
        let analysis = json!({
            "interval": "1m", "threshold": 1, "iterations": 5,
            "match": [
                { "headers": { "x-canary": { "exact": "insider" } } },
                { "headers": { "user-agent": { "regex": ".*Firefox.*" } }, "queryParams": { "beta": { "prefix": "y.s" } } }
            ]
        });
        let routes = Routes {
            matched_to_canary: true,
            ..Routes::all_to_primary()
        };
        let spec = http_route_spec(&canary(analysis.clone()), &routes);
        let rules = spec["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0]["matches"],
            json!([
                { "path": { "type": "PathPrefix", "value": "/" },
                  "headers": [{ "name": "x-canary", "type": "Exact", "value": "insider" }] },
                { "path": { "type": "PathPrefix", "value": "/" },
                  "headers": [{ "name": "user-agent", "type": "RegularExpression", "value": ".*Firefox.*" }],
                  "queryParams": [{ "name": "beta", "type": "RegularExpression", "value": "^y\\.s.*" }] },
            ])
        );
        assert_eq!(rules[0]["backendRefs"][1]["weight"], json!(100));
        assert_eq!(
            rules[1]["backendRefs"],
            json!([{ "name": "web-primary", "port": 9898, "weight": 100 }]),
            "Flagger's layout: the other requests go to the primary alone"
        );
        let promoted = http_route_spec(&canary(analysis), &Routes::all_to_primary());
        assert_eq!(
            promoted["rules"][0]["matches"], rules[0]["matches"],
            "the match rule stays"
        );
        assert_eq!(promoted["rules"][0]["backendRefs"][0]["weight"], json!(100));
        assert_eq!(promoted["rules"][0]["backendRefs"][1]["weight"], json!(0));
    }

    #[test]
    fn observed_routes_read_the_default_rule_and_a_refusal() {
        let canary = canary(json!({ "interval": "1m", "threshold": 1, "stepWeight": 10 }));
        let mut route: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": { "name": "web", "namespace": "test", "generation": 3 },
            "spec": http_route_spec(&canary, &Routes::weights(70, 30)),
            "status": { "parents": [{
                "parentRef": { "name": "gw" },
                "conditions": [{ "type": "Accepted", "status": "False", "observedGeneration": 3,
                                 "reason": "NotAllowedByListeners", "message": "no listener allows this namespace" }]
            }] }
        }))
        .expect("route");
        let observed = observed_routes(&canary, &route);
        assert_eq!((observed.primary, observed.canary), (70, 30));
        assert_eq!(
            observed.refused.as_deref(),
            Some("gw refused it (NotAllowedByListeners): no listener allows this namespace")
        );
        route.metadata.generation = Some(4);
        assert_eq!(
            observed_routes(&canary, &route).refused,
            None,
            "a verdict on an older generation is stale"
        );
    }

    /// The service's routing fields, as Flagger's gateway_api.go writes them into every rule.
    #[test]
    fn service_match_headers_rewrite_timeouts_and_mirrors_are_carried() {
        let mut canary = canary(json!({
            "interval": "1m", "threshold": 1, "iterations": 2,
            "match": [{ "headers": { "x-canary": { "exact": "1" } } }]
        }));
        canary.spec.service = serde_json::from_value(json!({
            "port": 9898,
            "match": [{ "uri": { "prefix": "/api" }, "method": { "exact": "GET" },
                        "headers": { "x-team": { "regex": "web|api" } } }],
            "headers": { "request": { "set": { "x-env": "prod" }, "remove": ["x-debug"] },
                         "response": { "add": { "x-served-by": "serin" } } },
            "rewrite": { "uri": "/v2", "authority": "api.internal", "type": "ReplacePrefixMatch" },
            "timeout": "15s",
            "backendTimeout": "10s",
            "mirror": [{ "backendRef": { "name": "shadow", "port": 8080 } }],
            "corsPolicy": { "allowOrigin": ["https://example.com"] },
            "retries": { "attempts": 3 }
        }))
        .expect("service");
        let routes = Routes {
            matched_to_canary: true,
            ..Routes::all_to_primary()
        };
        let spec = http_route_spec(&canary, &routes);
        let rules = spec["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 2);
        let service_match = json!({
            "path": { "type": "PathPrefix", "value": "/api" },
            "method": "GET",
            "headers": [{ "name": "x-team", "type": "RegularExpression", "value": "web|api" }]
        });
        assert_eq!(rules[1]["matches"], json!([service_match]));
        let mut merged = service_match.clone();
        merged["headers"] = json!([{ "name": "x-canary", "type": "Exact", "value": "1" }]);
        assert_eq!(
            rules[0]["matches"],
            json!([merged]),
            "A/B headers on the service's paths"
        );
        let expected_filters = json!([
            { "type": "RequestHeaderModifier",
              "requestHeaderModifier": { "set": [{ "name": "x-env", "value": "prod" }], "remove": ["x-debug"] } },
            { "type": "ResponseHeaderModifier",
              "responseHeaderModifier": { "add": [{ "name": "x-served-by", "value": "serin" }] } },
            { "type": "URLRewrite",
              "urlRewrite": { "hostname": "api.internal", "path": { "type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2" } } },
            { "type": "RequestMirror", "requestMirror": { "backendRef": { "name": "shadow", "port": 8080 } } },
        ]);
        for rule in rules {
            assert_eq!(rule["filters"], expected_filters);
            assert_eq!(rule["timeouts"], json!({ "request": "15s", "backendRequest": "10s" }));
        }
        assert_eq!(
            ignored_fields(&canary.spec),
            vec!["service.retries", "service.corsPolicy"],
            "what the HTTPRoute cannot carry is named"
        );
    }

    /// Flagger's getSessionAffinityRouteRules: sticky rules first, the weighted rule last with
    /// Set-Cookie on each backend; with no canary weight, the previous cookie is expired.
    #[test]
    fn session_affinity_sticky_rules() {
        let canary = canary(json!({
            "interval": "2m", "threshold": 1, "stepWeight": 10,
            "sessionAffinity": { "cookieName": "c", "primaryCookieName": "p", "maxAge": 600, "path": "/" }
        }));
        let routes = Routes {
            cookies: Some(SessionCookies {
                canary: Some("c=AbCdEfGhIj".into()),
                primary: Some("p=KlMnOpQrSt".into()),
                previous: None,
            }),
            ..Routes::weights(80, 20)
        };
        let spec = http_route_spec(&canary, &routes);
        let backends = |primary: i32, canary: i32| {
            json!([
                { "name": "web-primary", "port": 9898, "weight": primary },
                { "name": "web-canary", "port": 9898, "weight": canary },
            ])
        };
        let cookie_match = |regex: &str| {
            json!([{ "path": { "type": "PathPrefix", "value": "/" },
                     "headers": [{ "type": "RegularExpression", "name": "Cookie", "value": regex }] }])
        };
        let set_cookie = |value: &str| {
            json!([{ "type": "ResponseHeaderModifier",
                     "responseHeaderModifier": { "add": [{ "name": "Set-Cookie", "value": value }] } }])
        };
        let mut weighted_backends = backends(80, 20);
        weighted_backends[0]["filters"] = set_cookie("p=KlMnOpQrSt; Max-Age=120; Path=/");
        weighted_backends[1]["filters"] = set_cookie("c=AbCdEfGhIj; Max-Age=600; Path=/");
        assert_eq!(
            spec["rules"],
            json!([
                { "matches": cookie_match(".*c.*AbCdEfGhIj.*"), "backendRefs": backends(0, 100) },
                { "matches": cookie_match(".*p.*KlMnOpQrSt.*"), "backendRefs": backends(100, 0) },
                { "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }], "backendRefs": weighted_backends },
            ])
        );
        let observed: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": { "name": "web", "namespace": "test" }, "spec": spec,
        }))
        .expect("route");
        let observed = observed_routes(&canary, &observed);
        assert_eq!(
            (observed.primary, observed.canary),
            (80, 20),
            "the weights are read from the weighted rule"
        );

        let done = Routes {
            cookies: Some(SessionCookies {
                previous: Some("c=AbCdEfGhIj".into()),
                ..SessionCookies::default()
            }),
            ..Routes::all_to_primary()
        };
        assert_eq!(
            http_route_spec(&canary, &done)["rules"],
            json!([
                { "matches": cookie_match(".*c.*AbCdEfGhIj.*"), "backendRefs": backends(100, 0),
                  "filters": set_cookie("c=AbCdEfGhIj; Max-Age=-1") },
                { "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }], "backendRefs": backends(100, 0) },
            ])
        );
        assert_eq!(ignored_fields(&canary.spec), Vec::<&str>::new());
    }

    #[test]
    fn session_affinity_is_ignored_in_ab_testing() {
        let canary = canary(json!({
            "interval": "1m", "threshold": 1, "iterations": 2,
            "match": [{ "headers": { "x-canary": { "exact": "1" } } }],
            "sessionAffinity": { "cookieName": "c" }
        }));
        assert_eq!(ignored_fields(&canary.spec), vec!["analysis.sessionAffinity"]);
    }
}
