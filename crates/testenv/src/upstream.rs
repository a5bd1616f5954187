//! Where the upstream binaries are: `SERIN_UPSTREAM_BIN_DIR` (or `SERIN_FLAGGER_DIR` for
//! Flagger), or the cache that the `hack/upstream` scripts fill (building them on first use).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::Error;

const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../hack/upstream/build.sh");
const FLAGGER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../hack/upstream/flagger.sh");

/// The directory of etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok
/// and the upstream CRDs.
pub fn binaries() -> Result<PathBuf, Error> {
    cached("SERIN_UPSTREAM_BIN_DIR", BUILD_SCRIPT)
}

/// The directory of the `flagger` binary and its `crd.yaml`.
pub fn flagger() -> Result<PathBuf, Error> {
    cached("SERIN_FLAGGER_DIR", FLAGGER_SCRIPT)
}

fn cached(variable: &str, script: &str) -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(variable) {
        return Ok(PathBuf::from(dir));
    }
    let output = Command::new("bash")
        .arg(script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::UpstreamBuild(format!("could not run {script}: {e}")))?;
    if !output.status.success() {
        return Err(Error::UpstreamBuild(format!("{script} exited with {}", output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.lines().last().unwrap_or_default().trim();
    if dir.is_empty() {
        return Err(Error::UpstreamBuild(format!("{script} printed no directory")));
    }
    Ok(PathBuf::from(dir))
}
