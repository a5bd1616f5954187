//! Leftovers of a test run that was killed before it could stop its processes (SIGKILL, a CI
//! timeout): each control plane directory records its owner and children, and the next start
//! stops the children of owners that are gone and removes their directories.

use std::path::Path;
use std::process::Command;

pub const DIR_PREFIX: &str = "serin-testenv-";
const OWNER_FILE: &str = "owner.pid";
const CHILDREN_FILE: &str = "children.pid";

pub fn record_owner(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())
}

pub fn record_child(dir: &Path, pid: u32, program: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CHILDREN_FILE))?;
    writeln!(file, "{pid} {program}")
}

/// Stops the processes of control planes whose owning process no longer runs.
pub fn reap_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_ours = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        if !is_ours || is_running(owner.trim()) {
            continue;
        }
        let children = std::fs::read_to_string(dir.join(CHILDREN_FILE)).unwrap_or_default();
        for line in children.lines() {
            let Some((pid, program)) = line.split_once(' ') else {
                continue;
            };
            if runs_program(pid, program) {
                tracing::warn!(pid, program, "stopping a process left over by a killed test run");
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A killed owner may linger a moment as a zombie; that counts as gone.
fn is_running(pid: &str) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid).join("status")).is_ok_and(|status| {
        !status
            .lines()
            .any(|line| line.starts_with("State:") && line.contains('Z'))
    })
}

/// Guards against a recycled pid: the process must still be the program that was started.
fn runs_program(pid: &str, program: &str) -> bool {
    std::fs::read(Path::new("/proc").join(pid).join("cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(program))
        .unwrap_or(false)
}
