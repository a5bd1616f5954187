//! The `flagger.app` API that serin serves: Canary, MetricTemplate and AlertProvider, with
//! Flagger's field names, enums and defaults, plus the validation the API server enforces.
//! No I/O here.

pub mod alert_provider;
pub mod canary;
pub mod crd;
pub mod duration;
pub mod metric_template;
pub mod service;
pub mod webhook;

pub use alert_provider::{AlertProvider, AlertProviderSpec};
pub use canary::{Canary, CanarySpec, CanaryStatus, Phase};
pub use metric_template::{MetricTemplate, MetricTemplateSpec};
pub use webhook::WebhookPayload;

/// An enum value as manifests write it (`gatewayapi:v1`, `prometheus`), for messages.
pub fn wire_name<T: serde::Serialize + std::fmt::Debug>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{value:?}"))
}
