//! Where the upstream binaries are: `SERIN_UPSTREAM_BIN_DIR`, or the cache that
//! `hack/upstream/build.sh` fills (building them on first use).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::Error;

const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../hack/upstream/build.sh");

pub fn binaries() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("SERIN_UPSTREAM_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let output = Command::new("bash")
        .arg(BUILD_SCRIPT)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::UpstreamBuild(format!("could not run {BUILD_SCRIPT}: {e}")))?;
    if !output.status.success() {
        return Err(Error::UpstreamBuild(format!(
            "{BUILD_SCRIPT} exited with {}",
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.lines().last().unwrap_or_default().trim();
    if dir.is_empty() {
        return Err(Error::UpstreamBuild(format!("{BUILD_SCRIPT} printed no directory")));
    }
    Ok(PathBuf::from(dir))
}
