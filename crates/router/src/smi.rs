//! The SMI TrafficSplit providers, writing what Flagger's SmiRouter, Smiv1alpha2Router and
//! Smiv1alpha3Router (pkg/router/smi*.go) write: a TrafficSplit named after the apex Service
//! (owned by the Canary) whose `service` is the first of `service.hosts` or the apex Service,
//! with the backends `<service>-canary` and `<service>-primary` weighted. `linkerd` and
//! `smi:v1alpha1` use `split.smi-spec.io/v1alpha1` (weights as quantities, which Flagger
//! writes as strings), `osm` and `smi:v1alpha2` use `v1alpha2`, `smi:v1alpha3` `v1alpha3`.
//!
//! A TrafficSplit routes by weight only: `analysis.match` is ignored (with a warning), and the
//! canary gets no traffic until it is promoted, as in blue/green. (Flagger sends all traffic to
//! the canary then; see docs/compat.md.)

use futures::future::BoxFuture;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use serin_api::{Canary, CanarySpec};
use serin_core::naming::{canary_service_name, primary_name};
use serin_core::plan::{ObservedRoutes, Routes};

use super::custom_kind::CustomKind;
use super::{Error, Router, mesh_routing_fields, set_fields};

pub struct SmiRouter {
    client: Client,
    traffic_splits: CustomKind,
}

impl SmiRouter {
    /// The router writing `split.smi-spec.io/<version>` TrafficSplits for `mesh` (named in the
    /// message when the CRD is missing).
    pub fn new(client: Client, version: &str, mesh: &'static str) -> SmiRouter {
        SmiRouter {
            client,
            traffic_splits: CustomKind::new("split.smi-spec.io", version, "TrafficSplit", "trafficsplits", mesh),
        }
    }

    /// A weight as this API version writes it: v1alpha1's is a quantity.
    fn weight(&self, weight: i32) -> Value {
        if self.traffic_splits.resource.version == "v1alpha1" {
            json!(weight.to_string())
        } else {
            json!(weight)
        }
    }

    fn traffic_split(&self, canary: &Canary, routes: &Routes) -> Value {
        let name = canary.spec.service_name();
        let service = canary
            .spec
            .service
            .hosts
            .as_ref()
            .and_then(|hosts| hosts.first())
            .map_or(name, String::as_str);
        json!({
            "metadata": { "name": name },
            "spec": {
                "service": service,
                "backends": [
                    { "service": canary_service_name(name), "weight": self.weight(routes.canary) },
                    { "service": primary_name(name), "weight": self.weight(routes.primary) },
                ],
            },
        })
    }
}

impl Router for SmiRouter {
    fn shifts_weights(&self) -> bool {
        true
    }

    fn get_routes<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<Option<ObservedRoutes>, Error>> {
        Box::pin(async move {
            let name = canary.spec.service_name();
            let split = self.traffic_splits.get_apex(&self.client, canary).await?;
            Ok(split.map(|split| {
                let weight_of = |service: String| {
                    split.data["spec"]["backends"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|b| b["service"] == json!(service))
                        .map_or(0, |b| weight_value(&b["weight"]))
                };
                ObservedRoutes {
                    primary: weight_of(primary_name(name)),
                    canary: weight_of(canary_service_name(name)),
                    refused: None,
                }
            }))
        })
    }

    /// The weights of `routes`; A/B's matched requests have no route in a TrafficSplit.
    fn set_routes<'a>(&'a self, canary: &'a Canary, routes: &'a Routes) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
            let owner = serde_json::to_value(owner).map_err(Error::Serialize)?;
            let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
            let split = self.traffic_split(canary, routes);
            self.traffic_splits
                .apply_routing(&self.client, &namespace, canary, &owner, split)
                .await
        })
    }

    /// A TrafficSplit the user had gets its spec back; one serin created is owned by the Canary
    /// and goes with it (the apex Service routes by itself then).
    fn revert<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
            self.traffic_splits
                .give_back(&self.client, &namespace, canary.spec.service_name())
                .await
        })
    }

    fn ignored_fields(&self, spec: &CanarySpec) -> Vec<&'static str> {
        let analysis = spec.analysis();
        let mut fields = vec![
            (
                "service.gatewayRefs",
                spec.service.gateway_refs.as_ref().is_some_and(|g| !g.is_empty()),
            ),
            (
                "analysis.match",
                analysis.is_some_and(|a| a.match_.as_ref().is_some_and(|m| !m.is_empty())),
            ),
            ("analysis.mirror", analysis.is_some_and(|a| a.mirror == Some(true))),
        ];
        fields.extend(mesh_routing_fields(spec));
        set_fields(&fields)
    }
}

/// A backend's weight: a number, or v1alpha1's quantity string ("50").
fn weight_value(weight: &Value) -> i32 {
    let parsed = match weight {
        Value::String(text) => text.parse::<f64>().ok(),
        other => other.as_f64(),
    };
    // Weights are percentages; anything else reads as 0 and is set back.
    parsed
        .filter(|w| (0.0..=100.0).contains(w))
        .map_or(0, |w| w.round() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(version: &str) -> SmiRouter {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URI"));
        SmiRouter::new(Client::try_from(config).expect("a client"), version, "Linkerd")
    }

    fn canary(hosts: Value) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": { "name": "podinfo", "namespace": "test", "uid": "u-1" },
            "spec": {
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
                "service": { "port": 9898, "hosts": hosts },
            }
        }))
        .expect("a Canary")
    }

    #[tokio::test]
    async fn v1alpha1_weights_are_quantities_and_the_first_host_is_the_service() {
        let split = router("v1alpha1").traffic_split(&canary(json!(["podinfo.test.svc"])), &Routes::weights(70, 30));
        assert_eq!(
            split["spec"],
            json!({ "service": "podinfo.test.svc", "backends": [
                { "service": "podinfo-canary", "weight": "30" },
                { "service": "podinfo-primary", "weight": "70" },
            ] })
        );
    }

    #[tokio::test]
    async fn later_versions_write_integers_for_the_apex_service() {
        let split = router("v1alpha3").traffic_split(&canary(json!(null)), &Routes::all_to_primary());
        assert_eq!(split["spec"]["service"], "podinfo");
        assert_eq!(
            split["spec"]["backends"][1],
            json!({ "service": "podinfo-primary", "weight": 100 })
        );
    }

    #[test]
    fn weights_read_from_numbers_and_quantities() {
        assert_eq!(weight_value(&json!("40")), 40);
        assert_eq!(weight_value(&json!(60)), 60);
        assert_eq!(weight_value(&json!("1e9")), 0);
        assert_eq!(weight_value(&json!(null)), 0);
    }
}
