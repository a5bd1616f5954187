//! A server program a test starts beside it (Prometheus, nginx, InfluxDB, Graphite): in a
//! directory of its own that [`reaper`] can clean up after a killed run, its output in
//! `<dir>/<name>.log`, in a process group of its own, killed when dropped.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use crate::{Error, reaper};

/// The directory a server keeps its configuration, data and log in.
pub fn directory() -> Result<TempDir, Error> {
    crate::install_crypto_provider();
    reaper::reap_orphans();
    let dir = tempfile::Builder::new().prefix(reaper::DIR_PREFIX).tempdir()?;
    reaper::record_owner(dir.path())?;
    Ok(dir)
}

/// The program at `path`, or an error naming the Debian package that installs it.
pub fn program(path: PathBuf, package: &str) -> Result<PathBuf, Error> {
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::MissingProgram {
            program: path.display().to_string(),
            hint: format!("install Debian's {package} package (hack/test.sh does)"),
        })
    }
}

pub struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Starts `command` as `name`, recorded in `dir`.
    pub fn spawn(name: &str, command: &mut Command, dir: &Path) -> Result<ServerProcess, Error> {
        let log = File::create(dir.join(format!("{name}.log")))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                name: name.into(),
                path: PathBuf::from(command.get_program()),
                source,
            })?;
        reaper::record_child(dir, child.id(), name)?;
        Ok(ServerProcess { child })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
