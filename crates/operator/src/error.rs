/// Failures of one reconcile. Each has a short PascalCase reason used in Events and logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Canary has no namespace")]
    MissingNamespace,
    #[error("the Canary has no uid to own its objects with")]
    MissingUid,
    #[error(transparent)]
    Router(#[from] serin_router::Error),
    #[error("could not build an object: {0}")]
    Serialize(serde_json::Error),
    #[error("autoscalerRef names {kind} {namespace}/{name}, which does not exist: create it or fix spec.autoscalerRef")]
    AutoscalerNotFound {
        kind: String,
        namespace: String,
        name: String,
    },
    /// Another Canary manages the target (message from `serin_core::lifecycle::target_taken`).
    #[error("{0}")]
    TargetTaken(String),
    #[error("the target lost its selector label between observation and promotion")]
    SelectorLabelLost,
    #[error("the target disappeared between observation and action")]
    TargetGone,
    #[error("the Canary's provider has no router to set routes with")]
    NoRouter,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        if self.forbidden().is_some() {
            return "Forbidden";
        }
        match self {
            Error::Kube(_) => "KubernetesApiError",
            Error::MissingNamespace => "MissingNamespace",
            Error::MissingUid => "MissingUid",
            Error::Router(error) => error.reason(),
            Error::Serialize(_) => "InvalidObject",
            Error::AutoscalerNotFound { .. } => "AutoscalerNotFound",
            Error::TargetTaken(_) => "TargetTaken",
            Error::SelectorLabelLost => "SelectorLabelMissing",
            Error::TargetGone => "TargetNotFound",
            Error::NoRouter => "UnsupportedProvider",
        }
    }

    /// Whether the API server refused the request for lack of a permission.
    pub fn is_forbidden(&self) -> bool {
        self.forbidden().is_some()
    }

    /// The API server's refusal, when serin's account lacks a permission.
    fn forbidden(&self) -> Option<&kube::core::Status> {
        let kube = match self {
            Error::Kube(error) | Error::Router(serin_router::Error::Kube(error)) => error,
            _ => return None,
        };
        match kube {
            kube::Error::Api(status) if status.code == 403 => Some(status),
            _ => None,
        }
    }

    /// What the user is told in the status and the Event: for a refused permission, the API
    /// server's words (which name the account, the verb, the resource and the namespace) and
    /// what to change.
    pub fn user_message(&self) -> String {
        match self.forbidden() {
            Some(response) => format!(
                "the API server refused a request: {}; grant serin's ServiceAccount this permission (with the Helm chart: add the Canary's provider to rbac.providers)",
                response.message
            ),
            None => self.to_string(),
        }
    }

    /// Errors the user must fix (in their manifests, or serin's permissions): reported in the
    /// status and an Event.
    pub fn is_user_error(&self) -> bool {
        if self.forbidden().is_some() {
            return true;
        }
        match self {
            Error::Router(error) => error.is_user_error(),
            Error::AutoscalerNotFound { .. } | Error::TargetTaken(_) => true,
            _ => false,
        }
    }
}

/// `error` with the causes under it (`client error (Connect): tcp connect error: Connection
/// refused`): kube's errors say only the outermost one.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_spelled_out_once() {
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        assert_eq!(with_causes(&error), "client error (Connect): Connection refused");
    }
}
