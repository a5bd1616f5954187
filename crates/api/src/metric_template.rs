//! The `MetricTemplate` custom resource: a query against a metrics provider, reusable by Canaries.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

// clippy reads the repeated keys of printcolumn(...) as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "MetricTemplate",
    namespaced,
    status = "MetricTemplateStatus",
    category = "all",
    doc = "A query against a metrics provider that Canaries reference from analysis.metrics[].templateRef.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider.type")
)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateSpec {
    pub provider: MetricProvider,
    /// The query, a template over name, namespace, target, service, ingress, route, interval and variables.
    pub query: String,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    #[serde(rename = "type")]
    pub type_: MetricProviderType,
    pub address: Option<String>,
    /// Secret with the provider's credentials (keys depend on the provider type).
    pub secret_ref: Option<SecretRef>,
    pub insecure_skip_verify: Option<bool>,
    pub region: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricProviderType {
    Prometheus,
    Influxdb,
    Datadog,
    Externalmetrics,
    Stackdriver,
    Cloudwatch,
    Newrelic,
    Graphite,
    Dynatrace,
    Keptn,
    Splunk,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MetricTemplateStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<crate::canary::CanaryCondition>>,
}
