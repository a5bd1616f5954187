//! The `AlertProvider` custom resource: where rollout notifications go (Slack, MS Teams, ...).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::metric_template::SecretRef;

#[skip_serializing_none]
// clippy reads the repeated keys of printcolumn(...) as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "AlertProvider",
    namespaced,
    status = "AlertProviderStatus",
    category = "all",
    doc = "A notification channel that Canaries reference from analysis.alerts[].providerRef.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type")
)]
#[x_kube(validation = Rule::new("has(self.address) || has(self.secretRef)")
    .message("an AlertProvider needs an address or a secretRef whose secret holds the address"))]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderSpec {
    #[serde(rename = "type")]
    pub type_: AlertProviderType,
    pub channel: Option<String>,
    pub username: Option<String>,
    /// Webhook address; may instead come from the secret's `address` key.
    pub address: Option<String>,
    pub proxy: Option<String>,
    pub secret_ref: Option<SecretRef>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertProviderType {
    Slack,
    Msteams,
    Discord,
    Rocket,
    Gchat,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AlertProviderStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<crate::canary::CanaryCondition>>,
}
