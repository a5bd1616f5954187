//! What every reconcile works with: the API client, the flags, the HTTP clients, the caches.

use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use serin_api::MetricTemplate;

use crate::Config;
use serin_metrics::HttpClients;

pub struct Context {
    pub client: Client,
    pub config: Config,
    /// Who publishes serin's Events.
    pub reporter: Reporter,
    pub http: HttpClients,
    /// The MetricTemplates that exist (names only), to warn about a templateRef naming none.
    /// `None` when they could not be listed at startup.
    pub templates: Option<Store<PartialObjectMeta<MetricTemplate>>>,
}
