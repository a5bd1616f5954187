use serin_api::canary::Provider;

/// Failures of one reconcile. Each has a short PascalCase reason used in Events and logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Canary has no namespace")]
    MissingNamespace,
    #[error("the Canary has no uid to own its objects with")]
    MissingUid,
    #[error("provider {0:?} is not supported by this serin version; use kubernetes or gatewayapi:v1")]
    UnsupportedProvider(Provider),
    #[error("could not build an object: {0}")]
    Serialize(serde_json::Error),
    #[error("autoscalerRef names {kind} {namespace}/{name}, which does not exist: create it or fix spec.autoscalerRef")]
    AutoscalerNotFound {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error(
        "{kind} {target} already has a Canary: {target}-primary belongs to Canary {owner}; a target can have only one Canary, so delete this one or target another workload"
    )]
    TargetTaken {
        kind: &'static str,
        target: String,
        owner: String,
    },
    #[error("Service {service} belongs to Canary {owner}; set spec.service.name to a name no other Canary uses")]
    ServiceTaken { service: String, owner: String },
    #[error("the target lost its selector label between observation and promotion")]
    SelectorLabelLost,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApiError",
            Error::MissingNamespace => "MissingNamespace",
            Error::MissingUid => "MissingUid",
            Error::UnsupportedProvider(_) => "UnsupportedProvider",
            Error::Serialize(_) => "InvalidObject",
            Error::AutoscalerNotFound { .. } => "AutoscalerNotFound",
            Error::TargetTaken { .. } => "TargetTaken",
            Error::ServiceTaken { .. } => "ServiceTaken",
            Error::SelectorLabelLost => "SelectorLabelMissing",
        }
    }

    /// Errors the user must fix in their manifests: reported in the status and an Event.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedProvider(_)
                | Error::AutoscalerNotFound { .. }
                | Error::TargetTaken { .. }
                | Error::ServiceTaken { .. }
        )
    }
}
