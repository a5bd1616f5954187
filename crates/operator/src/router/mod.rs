//! Traffic routers: one file per provider, each implementing [`Router`]. Adding a provider is
//! adding a file and a line in [`for_provider`].

mod gatewayapi;
mod kubernetes;

use futures::future::BoxFuture;
use kube::Client;
use serin_api::Canary;
use serin_api::canary::Provider;
use serin_core::analysis::Routes;

use crate::Error;

pub trait Router: Send + Sync {
    /// Sends traffic between the primary and the canary as `routes` says, creating the
    /// provider's routing objects if needed. Idempotent.
    fn set_routes<'a>(&'a self, canary: &'a Canary, routes: Routes) -> BoxFuture<'a, Result<(), Error>>;

    /// Hands the provider's routing back to the apex Service when the Canary is deleted with
    /// `revertOnDeletion`: the routes then no longer belong to the Canary. Idempotent.
    fn revert<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>>;
}

pub fn for_provider(provider: Provider, client: &Client) -> Result<Box<dyn Router>, Error> {
    match provider {
        Provider::Kubernetes => Ok(Box::new(kubernetes::KubernetesRouter)),
        Provider::GatewayApiV1 => Ok(Box::new(gatewayapi::GatewayApiRouter::new(client.clone(), "v1"))),
        Provider::GatewayApiV1beta1 => Ok(Box::new(gatewayapi::GatewayApiRouter::new(client.clone(), "v1beta1"))),
        other => Err(Error::UnsupportedProvider(other)),
    }
}
