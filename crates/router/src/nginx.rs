//! The NGINX provider (`nginx`), writing what Flagger's IngressRouter (pkg/router/ingress.go)
//! writes: beside the user's Ingress (`spec.ingressRef`), whose backend is the apex Service, a
//! canary Ingress `<ingress>-canary` with the same rules sent to `<service>-canary` and
//! ingress-nginx's canary annotations: `canary-weight` for a progressive canary, and for A/B
//! testing `canary-by-header`, `canary-by-header-value`, `canary-by-header-pattern` or
//! `canary-by-cookie`. The user's Ingress is never written, so there is nothing to revert; the
//! canary Ingress is owned by the Canary and goes with it.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};
use serin_api::canary::AnalysisMatch;
use serin_api::{Canary, CanarySpec};
use serin_core::naming::canary_service_name;
use serin_core::plan::{ObservedRoutes, Routes};

use super::{Error, Router, ingress_routing_fields, set_fields, with_flux_annotations};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub struct NginxRouter {
    client: Client,
    /// `-ingress-annotations-prefix`: `nginx.ingress.kubernetes.io` unless set.
    prefix: String,
}

impl NginxRouter {
    pub fn new(client: Client, prefix: String) -> NginxRouter {
        NginxRouter { client, prefix }
    }

    fn annotation(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.prefix)
    }

    fn api(&self, canary: &Canary) -> Result<Api<Ingress>, Error> {
        let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
        Ok(Api::namespaced(self.client.clone(), &namespace))
    }

    /// The canary Ingress's annotations with no canary routing: the ones given, without kubectl's
    /// last-applied annotation and ingress-nginx's canary annotations, plus `canary: "true"`
    /// and `canary-weight: "0"` (Flagger's `makeAnnotations`).
    fn without_routing(&self, annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let canary_prefix = self.annotation("canary");
        let mut kept: BTreeMap<String, String> = with_flux_annotations(annotations)
            .into_iter()
            .filter(|(key, _)| !key.contains(&canary_prefix) && !key.contains(LAST_APPLIED))
            .collect();
        kept.insert(canary_prefix, "true".into());
        kept.insert(self.annotation("canary-weight"), "0".into());
        kept
    }

    /// The annotations that send `analysis.match` requests to the canary (Flagger's
    /// `makeHeaderAnnotations`, which keeps every annotation already there).
    fn matching(&self, annotations: &BTreeMap<String, String>, matches: &[AnalysisMatch]) -> BTreeMap<String, String> {
        let mut result = with_flux_annotations(annotations);
        result.insert(self.annotation("canary"), "true".into());
        for (suffix, value) in header_annotations(matches) {
            result.insert(self.annotation(suffix), value);
        }
        result
    }

    /// The canary Ingress's annotations for `routes`, from the ones it has (Flagger's SetRoutes).
    fn routed(
        &self,
        canary: &Canary,
        annotations: &BTreeMap<String, String>,
        routes: &Routes,
    ) -> BTreeMap<String, String> {
        let weight = if routes.matched_to_canary { 100 } else { routes.canary };
        if weight <= 0 {
            return self.without_routing(annotations);
        }
        match analysis_matches(canary) {
            Some(matches) => self.matching(annotations, matches),
            None => {
                let mut result = annotations.clone();
                result.insert(self.annotation("canary-weight"), weight.to_string());
                result.insert(self.annotation("canary"), "true".into());
                result
            }
        }
    }

    /// The user's Ingress with its apex backends sent to the canary Service: the canary
    /// Ingress's spec (Flagger's Reconcile).
    async fn canary_spec(&self, canary: &Canary, api: &Api<Ingress>) -> Result<(Ingress, IngressSpec), Error> {
        let name = ingress_name(canary)?;
        let ingress = api
            .get_opt(name)
            .await?
            .ok_or_else(|| Error::IngressNotFound { name: name.to_string() })?;
        let apex = canary.spec.service_name();
        let mut spec = ingress.spec.clone().unwrap_or_default();
        let mut found = false;
        for rule in spec.rules.iter_mut().flatten() {
            for path in rule.http.iter_mut().flat_map(|http| http.paths.iter_mut()) {
                if let Some(service) = path.backend.service.as_mut().filter(|s| s.name == apex) {
                    service.name = canary_service_name(apex);
                    found = true;
                }
            }
        }
        if !found {
            return Err(Error::IngressBackendNotFound {
                ingress: name.to_string(),
                service: apex.to_string(),
            });
        }
        Ok((ingress, spec))
    }
}

impl Router for NginxRouter {
    fn shifts_weights(&self) -> bool {
        true
    }

    fn get_routes<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<Option<ObservedRoutes>, Error>> {
        Box::pin(async move {
            let name = canary_ingress_name(ingress_name(canary)?);
            let Some(ingress) = self.api(canary)?.get_opt(&name).await? else {
                return Ok(None);
            };
            // A/B testing leaves `canary-weight` at 0: its weights are all to the primary, as
            // serin's other routers report them (Flagger's GetRoutes says 0/100 instead).
            let canary_weight = ingress
                .annotations()
                .get(&self.annotation("canary-weight"))
                .and_then(|w| w.parse::<i32>().ok())
                .unwrap_or(0);
            Ok(Some(ObservedRoutes {
                primary: 100 - canary_weight,
                canary: canary_weight,
                refused: None,
            }))
        })
    }

    fn set_routes<'a>(&'a self, canary: &'a Canary, routes: &'a Routes) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let api = self.api(canary)?;
            let (ingress, spec) = self.canary_spec(canary, &api).await?;
            let name = canary_ingress_name(&ingress.name_any());
            match api.get_opt(&name).await? {
                Some(mut existing) => {
                    let annotations = self.routed(canary, existing.annotations(), routes);
                    if existing.spec.as_ref() == Some(&spec) && existing.annotations() == &annotations {
                        return Ok(());
                    }
                    existing.spec = Some(spec);
                    existing.metadata.annotations = Some(annotations);
                    api.replace(&name, &PostParams::default(), &existing).await?;
                }
                None => {
                    let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
                    let annotations = self.without_routing(ingress.annotations());
                    let mut created = Ingress {
                        spec: Some(spec),
                        ..Ingress::default()
                    };
                    created.metadata.name = Some(name);
                    created.metadata.labels = ingress.metadata.labels.clone();
                    created.metadata.owner_references = Some(vec![owner]);
                    created.metadata.annotations = Some(self.routed(canary, &annotations, routes));
                    api.create(&PostParams::default(), &created).await?;
                }
            }
            Ok(())
        })
    }

    /// The user's Ingress was never changed; the canary Ingress is owned by the Canary.
    fn revert<'a>(&'a self, _canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// ingress-nginx's canary annotations route by weight, one header or one cookie: the mesh
    /// routing fields, query and source-label matches and mirroring have no annotation.
    fn ignored_fields(&self, spec: &CanarySpec) -> Vec<&'static str> {
        set_fields(&ingress_routing_fields(spec))
    }
}

fn ingress_name(canary: &Canary) -> Result<&str, Error> {
    canary
        .spec
        .ingress_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|name| !name.is_empty())
        .ok_or(Error::MissingIngressRef)
}

fn canary_ingress_name(ingress: &str) -> String {
    format!("{ingress}-canary")
}

fn analysis_matches(canary: &Canary) -> Option<&[AnalysisMatch]> {
    canary
        .spec
        .analysis()
        .and_then(|a| a.match_.as_deref())
        .filter(|m| !m.is_empty())
}

/// The ingress-nginx annotations (without prefix) for the A/B matches: a `cookie` header
/// match's exact value names the cookie, any other header is matched by its exact value or
/// regex. ingress-nginx honours one header and one cookie; as in Flagger, the last one given
/// wins (in the order of the matches, then of the header names).
fn header_annotations(matches: &[AnalysisMatch]) -> Vec<(&'static str, String)> {
    let mut cookie = None;
    let mut header = None;
    for headers in matches.iter().filter_map(|m| m.headers.as_ref()) {
        for (name, value) in headers {
            if name == "cookie" {
                cookie = value.exact.clone();
            } else {
                header = Some((name.clone(), value.exact.clone(), value.regex.clone()));
            }
        }
    }
    let mut annotations = Vec::new();
    if let Some(cookie) = cookie.filter(|c| !c.is_empty()) {
        annotations.push(("canary-by-cookie", cookie));
    }
    if let Some((name, exact, regex)) = header {
        annotations.push(("canary-by-header", name));
        if let Some(exact) = exact.filter(|v| !v.is_empty()) {
            annotations.push(("canary-by-header-value", exact));
        }
        if let Some(regex) = regex.filter(|v| !v.is_empty()) {
            annotations.push(("canary-by-header-pattern", regex));
        }
    }
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn router() -> NginxRouter {
        // Never connects: the tests exercise the annotation logic only.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URI"));
        NginxRouter::new(
            Client::try_from(config).expect("a client"),
            "nginx.ingress.kubernetes.io".into(),
        )
    }

    fn canary(analysis: serde_json::Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": { "name": "podinfo", "namespace": "test" },
            "spec": {
                "provider": "nginx",
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
                "ingressRef": { "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo" },
                "service": { "port": 80 },
                "analysis": analysis,
            }
        }))
        .expect("a Canary")
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[tokio::test]
    async fn weights_go_in_the_canary_weight_annotation() {
        let router = router();
        let canary = canary(json!({ "stepWeight": 10 }));
        let created = router.without_routing(&map(&[
            ("kubernetes.io/ingress.class", "nginx"),
            ("nginx.ingress.kubernetes.io/canary-weight", "40"),
            (LAST_APPLIED, "{}"),
        ]));
        assert_eq!(
            created,
            map(&[
                ("kubernetes.io/ingress.class", "nginx"),
                ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
                ("helm.toolkit.fluxcd.io/driftDetection", "disabled"),
                ("nginx.ingress.kubernetes.io/canary", "true"),
                ("nginx.ingress.kubernetes.io/canary-weight", "0"),
            ])
        );
        let stepped = router.routed(&canary, &created, &Routes::weights(70, 30));
        assert_eq!(stepped["nginx.ingress.kubernetes.io/canary-weight"], "30");
        assert_eq!(router.routed(&canary, &stepped, &Routes::all_to_primary()), created);
    }

    #[tokio::test]
    async fn ab_testing_sets_the_header_and_cookie_annotations_and_clears_them_after() {
        let router = router();
        let canary = canary(json!({ "match": [
            { "headers": { "x-canary": { "exact": "insider" } } },
            { "headers": { "cookie": { "exact": "canary" } } },
        ] }));
        let created = router.without_routing(&BTreeMap::new());
        let matched = Routes {
            matched_to_canary: true,
            ..Routes::all_to_primary()
        };
        let routed = router.routed(&canary, &created, &matched);
        assert_eq!(routed["nginx.ingress.kubernetes.io/canary-by-header"], "x-canary");
        assert_eq!(routed["nginx.ingress.kubernetes.io/canary-by-header-value"], "insider");
        assert_eq!(routed["nginx.ingress.kubernetes.io/canary-by-cookie"], "canary");
        // As Flagger: the weight annotation stays at 0 beside the header annotations.
        assert_eq!(routed["nginx.ingress.kubernetes.io/canary-weight"], "0");
        assert_eq!(router.routed(&canary, &routed, &Routes::all_to_primary()), created);
    }

    #[test]
    fn a_header_regex_is_a_pattern() {
        let matches: Vec<AnalysisMatch> =
            serde_json::from_value(json!([{ "headers": { "user-agent": { "regex": ".*Firefox.*" } } }]))
                .expect("matches");
        assert_eq!(
            header_annotations(&matches),
            vec![
                ("canary-by-header", "user-agent".to_string()),
                ("canary-by-header-pattern", ".*Firefox.*".to_string())
            ]
        );
    }
}
