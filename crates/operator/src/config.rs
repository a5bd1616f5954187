use serin_api::CanarySpec;
use serin_api::canary::Provider;
use serin_core::naming::DEFAULT_SELECTOR_LABELS;

/// What the operator's flags decide.
#[derive(Debug, Clone)]
pub struct Config {
    /// Watch Canaries of these namespaces only (`-namespace a,b`); all namespaces when empty.
    pub namespaces: Vec<String>,
    /// `-selector-labels`: the labels that identify a target's pods, in order of preference.
    pub selector_labels: Vec<String>,
    /// `-include-label-prefix`: labels and annotations copied from the target to the primary.
    pub include_label_prefixes: Vec<String>,
    /// `-mesh-provider`: the traffic provider of Canaries that do not set `spec.provider`.
    pub mesh_provider: Provider,
    /// Said (a `SpecWarning`) to every Canary that takes `-mesh-provider` because the flag names
    /// a provider serin serves under another name (SuperGloo).
    pub mesh_provider_warning: Option<String>,
    /// `-metrics-server`: Prometheus for the builtin metrics of Canaries without `spec.metricsServer`.
    pub metrics_server: String,
    /// `-enable-config-tracking`: ConfigMaps and Secrets of the target are part of its revision.
    pub config_tracking: bool,
    /// `-event-webhook`: also sent every Event serin publishes.
    pub event_webhook: Option<String>,
    /// `-ingress-annotations-prefix` and the other routing flags.
    pub routers: serin_router::Settings,
    /// `-port`: where `/metrics`, `/healthz` and `/readyz` are served; none when `None`.
    pub telemetry_address: Option<std::net::SocketAddr>,
    /// Alerts: the global notifier, `-cluster-name`, `-no-cross-namespace-refs`.
    pub alerts: crate::AlertSettings,
    /// `-shard`: only the Canaries labelled `serin.dev/shard=<shard>`; without it, only those
    /// without the label. Operators with different shards divide the Canaries between them.
    pub shard: Option<String>,
    /// `-enable-leader-election`: only the holder of this Lease reconciles.
    pub leader_election: Option<crate::LeaderElection>,
    /// How long a reconcile in progress may take to finish after SIGTERM before the process
    /// stops anyway (the API server may be unreachable).
    pub shutdown_grace: std::time::Duration,
    /// Name this operator gives itself in Events and field managers.
    pub controller_name: String,
}

/// The label that puts a Canary in a shard (`-shard`).
pub const SHARD_LABEL: &str = "serin.dev/shard";

impl Config {
    /// What each set of watches covers: one namespace each, or all of them (`None`).
    pub fn scopes(&self) -> Vec<Option<String>> {
        if self.namespaces.is_empty() {
            vec![None]
        } else {
            self.namespaces.iter().cloned().map(Some).collect()
        }
    }

    /// Whether `namespace` is one this operator watches.
    pub fn watches(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }

    /// The label selector of the Canaries this operator runs: its shard's, or those in none.
    pub fn canary_selector(&self) -> String {
        match &self.shard {
            Some(shard) => format!("{SHARD_LABEL}={shard}"),
            None => format!("!{SHARD_LABEL}"),
        }
    }

    /// The traffic provider of a Canary: its own, or `-mesh-provider`.
    pub fn provider_of(&self, spec: &CanarySpec) -> Provider {
        spec.provider.unwrap_or(self.mesh_provider)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespaces: Vec::new(),
            selector_labels: DEFAULT_SELECTOR_LABELS.iter().map(|s| s.to_string()).collect(),
            include_label_prefixes: Vec::new(),
            mesh_provider: Provider::Kubernetes,
            mesh_provider_warning: None,
            metrics_server: "http://prometheus:9090".to_string(),
            routers: serin_router::Settings::default(),
            telemetry_address: None,
            config_tracking: true,
            event_webhook: None,
            alerts: crate::AlertSettings::default(),
            shard: None,
            leader_election: None,
            shutdown_grace: std::time::Duration::from_secs(10),
            controller_name: "serin".to_string(),
        }
    }
}
