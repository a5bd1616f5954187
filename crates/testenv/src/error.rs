use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("building the upstream Kubernetes binaries failed: {0}")]
    UpstreamBuild(String),
    #[error("could not start {name} ({path}): {source}")]
    Spawn {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} exited early with {status}; last lines of its log ({log}):\n{tail}")]
    Exited {
        name: String,
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("{program} not found: {hint}")]
    MissingProgram { program: String, hint: String },
    #[error("SERIN_TESTENV=existing needs KUBECONFIG to point at the cluster to use")]
    MissingKubeconfig,
    #[error("generating the control plane's certificates failed: {0}")]
    Certificates(#[from] rcgen::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("Kubernetes API error: {0}")]
    Kube(kube::Error),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("invalid manifest {0}")]
    Manifest(String),
    #[error("{server}: {reason}")]
    Server { server: &'static str, reason: String },
    #[error("invalid kubeconfig: {0}")]
    Kubeconfig(String),
}
