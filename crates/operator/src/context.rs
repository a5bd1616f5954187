//! What every reconcile works with: the API client, the flags, the HTTP clients, the caches.

use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use serin_api::canary::Provider;
use serin_api::{CanarySpec, MetricTemplate};

use crate::Config;
use serin_metrics::{HttpClients, ProviderEnvironment};

pub struct Context {
    pub client: Client,
    pub config: Config,
    /// Who publishes serin's Events.
    pub reporter: Reporter,
    pub http: HttpClients,
    /// The process environment metric providers read (AWS credentials) and their caches.
    pub metric_environment: ProviderEnvironment,
    /// The MetricTemplates that exist (names only, a store per watched scope), to warn about a
    /// templateRef naming none. `None` when they could not be listed at startup.
    pub templates: Option<Vec<Store<PartialObjectMeta<MetricTemplate>>>>,
    /// The Prometheus metrics the operator exports.
    pub telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    pub alerting: std::sync::Arc<crate::alerts::Alerting>,
    /// Repeated Events grouped into series.
    pub repeats: crate::report::Repeats,
}

impl Context {
    /// The router of the Canary's provider (its own, or `-mesh-provider`).
    pub fn router_for(&self, spec: &CanarySpec) -> Result<Box<dyn serin_router::Router>, serin_router::Error> {
        self.router_of(self.config.provider_of(spec))
    }

    pub fn router_of(&self, provider: Provider) -> Result<Box<dyn serin_router::Router>, serin_router::Error> {
        serin_router::for_provider(provider, &self.client, &self.config.routers)
    }
}
