//! The `kubernetes` provider: plain ClusterIP Services. The apex Service always selects the
//! primary, so there are no weights to set; the strategy is blue/green, and the primary's
//! rollout at promotion is what switches traffic.

use futures::future::BoxFuture;
use serin_api::{Canary, CanarySpec};
use serin_core::plan::{ObservedRoutes, Routes};

use super::{Error, Router, mesh_routing_fields, set_fields};

pub struct KubernetesRouter;

impl Router for KubernetesRouter {
    fn shifts_weights(&self) -> bool {
        false
    }

    /// There is no routing object: the apex Service selects the primary.
    fn get_routes<'a>(&'a self, _canary: &'a Canary) -> BoxFuture<'a, Result<Option<ObservedRoutes>, Error>> {
        Box::pin(async { Ok(None) })
    }

    fn set_routes<'a>(&'a self, _canary: &'a Canary, _routes: &'a Routes) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// The apex Service itself is handed back by the finalizer; there is nothing else.
    fn revert<'a>(&'a self, _canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// Plain Services route nothing: every routing field is for a mesh, an ingress or the
    /// Gateway API. (`analysis.match` has its own warning: the strategy changes.)
    fn ignored_fields(&self, spec: &CanarySpec) -> Vec<&'static str> {
        let service = &spec.service;
        let mut fields = vec![
            ("service.hosts", service.hosts.as_ref().is_some_and(|h| !h.is_empty())),
            (
                "service.gatewayRefs",
                service.gateway_refs.as_ref().is_some_and(|g| !g.is_empty()),
            ),
            (
                "analysis.mirror",
                spec.analysis().is_some_and(|a| a.mirror == Some(true)),
            ),
        ];
        fields.extend(mesh_routing_fields(spec));
        set_fields(&fields)
    }
}
