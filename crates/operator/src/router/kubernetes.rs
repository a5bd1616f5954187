//! The `kubernetes` provider: plain ClusterIP Services. The apex Service always selects the
//! primary, so there are no weights to set; the strategy is blue/green, and the primary's
//! rollout at promotion is what switches traffic.

use futures::future::BoxFuture;
use serin_api::Canary;
use serin_core::analysis::Routes;

use super::Router;
use crate::Error;

pub struct KubernetesRouter;

impl Router for KubernetesRouter {
    fn set_routes<'a>(&'a self, _canary: &'a Canary, _routes: Routes) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// The apex Service itself is handed back by the finalizer; there is nothing else.
    fn revert<'a>(&'a self, _canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}
