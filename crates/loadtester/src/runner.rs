//! Running task commands safely: only allow-listed programs, never through a shell (unless the
//! task is `bash` and bash is allowed), one running copy of a background command per canary,
//! every process group killed at the timeout, output kept to a bounded tail.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::{Access, AccessError};
use crate::load::{self, LoadError, LoadReport};
use crate::rest::RestError;
use crate::shell::{self, DEFAULT_SCRIPT_PROGRAMS, ScriptError};
use crate::tasks::{Payload, Task};

/// The most output kept of one command (its last bytes).
const OUTPUT_LIMIT: usize = 64 * 1024;

/// Programs a `cmd` may run unless `-allowed-programs` says otherwise. Not curl: its `-d @file`
/// and `-T file` would send any file the pod can read to any server a payload names.
pub const DEFAULT_ALLOWED: [&str; 6] = ["hey", "ghz", "helm", "kubectl", "bats", "wrk"];

#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A background command was started.
    Started,
    /// The same command for the same canary is still running; nothing new was started.
    AlreadyRunning,
    Finished {
        success: bool,
        output: String,
    },
    /// The built-in generator's report.
    Report(LoadReport),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("program {program:?} is not allowed; allowed programs: {allowed} (see -allowed-programs)")]
    NotAllowed { program: String, allowed: String },
    #[error("program {program:?} could not be started: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    TimedOut { program: String, timeout: Duration },
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("{limit} tasks are running already (-max-tasks); retry later")]
    Busy { limit: usize },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Script(#[from] ScriptError),
}

impl RunError {
    /// The caller's mistake (400), rather than the task's failure (500).
    pub fn is_invalid(&self) -> bool {
        match self {
            RunError::Invalid(_) | RunError::Load(LoadError::Limit(_)) => true,
            RunError::Access(error) => !error.is_refusal(),
            RunError::Script(error) => matches!(error, ScriptError::Unparsable(_)),
            _ => false,
        }
    }
}

#[derive(Clone)]
pub struct Runner {
    /// Made on first use, for the nGrinder and Concord tasks.
    http: Arc<OnceLock<reqwest::Client>>,
    allowed: Arc<BTreeSet<String>>,
    timeout: Duration,
    running: Arc<Mutex<BTreeSet<String>>>,
    path: Option<String>,
    /// Bounds the tasks running at once, so a flood of webhooks cannot exhaust the machine.
    slots: Arc<Semaphore>,
    limit: usize,
    access: Arc<Access>,
    /// Programs screened scripts may run besides `allowed`.
    script_programs: Arc<BTreeSet<String>>,
}

/// Tasks running at once unless [`Runner::with_limit`] says otherwise.
pub const DEFAULT_MAX_TASKS: usize = 64;

impl Runner {
    pub fn new(allowed: impl IntoIterator<Item = String>, timeout: Duration) -> Runner {
        Runner {
            http: Arc::default(),
            allowed: Arc::new(allowed.into_iter().collect()),
            timeout,
            running: Arc::default(),
            path: None,
            slots: Arc::new(Semaphore::new(DEFAULT_MAX_TASKS)),
            limit: DEFAULT_MAX_TASKS,
            access: Arc::default(),
            script_programs: Arc::new(DEFAULT_SCRIPT_PROGRAMS.iter().map(|p| p.to_string()).collect()),
        }
    }

    /// Programs screened scripts may run besides the allowed ones (`-script-programs`).
    pub fn with_script_programs(mut self, programs: impl IntoIterator<Item = String>) -> Runner {
        self.script_programs = Arc::new(programs.into_iter().collect());
        self
    }

    /// Where key files may be read from, and which hosts remote tests and loads may reach.
    pub fn with_access(mut self, access: Access) -> Runner {
        self.access = Arc::new(access);
        self
    }

    pub fn with_limit(mut self, limit: usize) -> Runner {
        self.slots = Arc::new(Semaphore::new(limit));
        self.limit = limit;
        self
    }

    /// Programs are looked up in `path` (a PATH value) instead of the service's own PATH.
    pub fn with_path(mut self, path: String) -> Runner {
        self.path = Some(path);
        self
    }

    pub async fn run(&self, payload: &Payload, task: Task) -> Result<Outcome, RunError> {
        match (task.program(), task.script()) {
            // A shell listed in -allowed-programs runs its scripts unscreened, as Flagger's does.
            (Some(shell), Some(script)) if !self.allowed.contains(shell) => {
                let programs = self.allowed.union(&self.script_programs).cloned().collect();
                shell::screen(script, &programs)?;
            }
            (Some(program), _) => self.check_program(program)?,
            (None, _) => {}
        }
        match &task {
            Task::Load(spec) => self.access.check_url("metadata.url", &spec.url)?,
            Task::NGrinder(test) => self.access.check_url("metadata.server", &test.server)?,
            Task::Concord(process) => self.access.check_url("metadata.server", &process.server)?,
            Task::Background { .. } | Task::Blocking { .. } => {}
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Err(RunError::Busy { limit: self.limit });
        };
        match task {
            Task::Load(spec) => Ok(Outcome::Report(load::run(&spec).await?)),
            Task::NGrinder(test) => {
                // One nGrinder test per canary and cloned test at a time.
                let key = format!(
                    "{}/{}/ngrinder/{}/{}",
                    payload.namespace, payload.name, test.server, test.clone
                );
                let Some(_claim) = self.claim(key) else {
                    return Ok(Outcome::AlreadyRunning);
                };
                Ok(remote_outcome(test.run(self.http(), self.timeout).await))
            }
            Task::Concord(process) => {
                let key = self.access.read_secret("metadata.apiKeyPath", &process.api_key_path)?;
                Ok(remote_outcome(process.run(self.http(), key.trim()).await))
            }
            Task::Background {
                program, args, command, ..
            } => {
                let key = format!("{}/{}/{command}", payload.namespace, payload.name);
                let Some(claim) = self.claim(key) else {
                    return Ok(Outcome::AlreadyRunning);
                };
                let child = match spawn(&program, &args, self.path.as_deref()) {
                    Ok(child) => child,
                    // No hey installed: its usual command lines run on the built-in generator.
                    Err(RunError::Spawn { source, .. })
                        if program == "hey" && source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        return self.hey_built_in(claim, &args, command, slot);
                    }
                    Err(error) => return Err(error),
                };
                let runner = self.clone();
                tokio::spawn(async move {
                    let (_claim, _slot) = (claim, slot);
                    match runner.wait(&program, child).await {
                        Ok((success, output)) => {
                            tracing::info!(%command, success, output = %last_line(&output), "command finished")
                        }
                        Err(error) => tracing::warn!(%command, %error, "command failed"),
                    }
                });
                Ok(Outcome::Started)
            }
            Task::Blocking { program, args, .. } => {
                let child = spawn(&program, &args, self.path.as_deref())?;
                let (success, output) = self.wait(&program, child).await?;
                Ok(Outcome::Finished { success, output })
            }
        }
    }

    /// An allowed program, named as such: a path must lead to the program of that name on
    /// the PATH, so that `/tmp/x/hey` is not taken for `hey`.
    fn check_program(&self, program: &str) -> Result<(), RunError> {
        let name = program.rsplit('/').next().unwrap_or_default();
        let allowed = self.allowed.contains(name) && (!program.contains('/') || same_file(program, &self.find(name)));
        if allowed {
            return Ok(());
        }
        Err(RunError::NotAllowed {
            program: program.to_string(),
            allowed: self.allowed.iter().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Where `name` is found on the PATH the programs run with.
    fn find(&self, name: &str) -> Option<std::path::PathBuf> {
        let path = self
            .path
            .clone()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        std::env::split_paths(&path)
            .map(|directory| directory.join(name))
            .find(|candidate| candidate.is_file())
    }

    fn hey_built_in(
        &self,
        claim: Claim,
        args: &[String],
        command: String,
        slot: OwnedSemaphorePermit,
    ) -> Result<Outcome, RunError> {
        let spec = load::from_hey(args).map_err(|error| RunError::Invalid(error.to_string()))?;
        self.access.check_url("the hey URL", &spec.url)?;
        tokio::spawn(async move {
            let (_claim, _slot) = (claim, slot);
            match load::run(&spec).await {
                Ok(report) => {
                    tracing::info!(%command, requests = report.requests, p99_ms = report.p99_ms, "built-in load finished")
                }
                Err(error) => tracing::warn!(%command, %error, "built-in load failed"),
            }
        });
        Ok(Outcome::Started)
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(reqwest::Client::new)
    }

    /// Marks `key` as running; `None` when it already is. Dropping the claim frees the key,
    /// however the task ends: finished, failed, panicked, or abandoned by its caller.
    fn claim(&self, key: String) -> Option<Claim> {
        let fresh = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone());
        fresh.then(|| Claim {
            running: self.running.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn is_running(&self, key: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(key)
    }

    /// Waits for the child with the timeout; kills its whole process group when it runs over.
    async fn wait(&self, program: &str, mut child: Child) -> Result<(bool, String), RunError> {
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let output = tokio::spawn(async move {
            let (out, err) = tokio::join!(read_bounded(stdout), read_bounded(stderr));
            format!("{out}{err}")
        });
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) => {
                let output = output.await.unwrap_or_default();
                Ok((status.success() && status.signal().is_none(), output))
            }
            Ok(Err(source)) => Err(RunError::Spawn {
                program: program.to_string(),
                source,
            }),
            Err(_) => {
                if let Some(pid) = child.id() {
                    // The child leads its own process group: kill it and everything it started.
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .status();
                }
                let _ = child.kill().await;
                output.abort();
                Err(RunError::TimedOut {
                    program: program.to_string(),
                    timeout: self.timeout,
                })
            }
        }
    }
}

/// A running task's key in the runner's set, released on drop.
struct Claim {
    running: Arc<Mutex<BTreeSet<String>>>,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

fn same_file(path: &str, found: &Option<std::path::PathBuf>) -> bool {
    let canonical = |p: &std::path::Path| p.canonicalize().ok();
    found
        .as_deref()
        .and_then(canonical)
        .is_some_and(|found| canonical(std::path::Path::new(path)) == Some(found))
}

fn remote_outcome(result: Result<(), RestError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Finished {
            success: true,
            output: "the test finished".into(),
        },
        Err(error) => Outcome::Finished {
            success: false,
            output: error.to_string(),
        },
    }
}

fn spawn(program: &str, args: &[String], path: Option<&str>) -> Result<Child, RunError> {
    let mut command = Command::new(program);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.to_string(),
            source,
        })
}

/// The stream's last `OUTPUT_LIMIT` bytes, as text.
async fn read_bounded<R: AsyncRead + Unpin>(reader: Option<R>) -> String {
    let Some(mut reader) = reader else { return String::new() };
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(read) = reader.read(&mut chunk).await {
        if read == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..read]);
        if kept.len() > OUTPUT_LIMIT {
            kept.drain(..kept.len() - OUTPUT_LIMIT);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn last_line(output: &str) -> &str {
    output.trim_end().rsplit('\n').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that panics, or whose caller goes away, still frees its key.
    #[tokio::test]
    async fn a_claim_is_freed_however_its_task_ends() {
        let runner = Runner::new(Vec::new(), Duration::from_secs(1));
        let claim = runner.claim("ns/web/hey".into()).expect("a fresh key");
        assert!(runner.claim("ns/web/hey".into()).is_none(), "the key is held");
        let panicked = tokio::spawn(async move {
            let _claim = claim;
            panic!("a task that panics");
        })
        .await;
        assert!(panicked.is_err(), "the task panicked");
        assert!(!runner.is_running("ns/web/hey"), "the key is freed by the panic");

        let claim = runner.claim("ns/web/ngrinder".into()).expect("a fresh key");
        let abandoned = tokio::spawn(async move {
            let _claim = claim;
            std::future::pending::<()>().await;
        });
        abandoned.abort();
        let _ = abandoned.await;
        assert!(!runner.is_running("ns/web/ngrinder"), "the key is freed when abandoned");
    }
}
