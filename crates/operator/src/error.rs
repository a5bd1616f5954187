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
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApiError",
            Error::MissingNamespace => "MissingNamespace",
            Error::MissingUid => "MissingUid",
            Error::UnsupportedProvider(_) => "UnsupportedProvider",
            Error::Serialize(_) => "InvalidObject",
        }
    }
}
