/// Failures of one reconcile. Each has a short PascalCase reason used in Events and logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Canary has no namespace")]
    MissingNamespace,
    #[error("the Canary has no uid to own its objects with")]
    MissingUid,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApiError",
            Error::MissingNamespace => "MissingNamespace",
            Error::MissingUid => "MissingUid",
        }
    }
}
