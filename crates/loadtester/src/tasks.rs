//! What a webhook asks the load tester to do: Flagger's payload, its `metadata.type`, and the
//! command to run, validated before anything runs.

use std::collections::BTreeMap;

use crate::limits::{self, LimitError};
use crate::load::LoadSpec;
use crate::rest::{Concord, NGrinder};

/// The body every Canary webhook sends, the type the operator sends it with.
pub type Payload = serin_api::WebhookPayload;

#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// `type: cmd` (the default): started in the background, one running copy per canary and command.
    Background {
        program: String,
        args: Vec<String>,
        command: String,
        /// The script, when the command uses shell syntax and runs with `sh -c` (as Flagger's).
        script: Option<String>,
    },
    /// `bash`, `helm`, `helmv3`, `kubectl`: run to the end; 200 or 500.
    Blocking {
        program: String,
        args: Vec<String>,
        return_output: bool,
        /// The script a `bash` task runs with `bash -c`.
        script: Option<String>,
    },
    /// `load`: the built-in generator, run to the end; its report is the answer.
    Load(LoadSpec),
    /// `ngrinder`: a test cloned and started on an nGrinder server, polled to its end.
    NGrinder(NGrinder),
    /// `concord`: a Concord process started and polled to its end.
    Concord(Concord),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("unknown task type {0:?}; use cmd, bash, helm, helmv3, kubectl, load, ngrinder or concord")]
    UnknownType(String),
    #[error("{0}")]
    InvalidRemote(String),
    #[error("metadata.{key} of a load task {problem}")]
    InvalidLoad { key: &'static str, problem: String },
    #[error("task type {0} needs metadata.cmd")]
    MissingCommand(String),
    #[error("metadata.cmd is not a valid command line: {0}")]
    Unparsable(String),
    #[error(transparent)]
    Limit(#[from] LimitError),
}

impl Task {
    /// The shell script the task runs, if it runs one.
    pub fn script(&self) -> Option<&str> {
        match self {
            Task::Background { script, .. } | Task::Blocking { script, .. } => script.as_deref(),
            Task::Load(_) | Task::NGrinder(_) | Task::Concord(_) => None,
        }
    }

    /// The program the task runs; `None` for the built-in generator.
    pub fn program(&self) -> Option<&str> {
        match self {
            Task::Background { program, .. } | Task::Blocking { program, .. } => Some(program),
            Task::Load(_) | Task::NGrinder(_) | Task::Concord(_) => None,
        }
    }
}

/// The task a payload asks for. A command is split into words like a shell would, and no shell
/// runs it, unless it is a script: `type: bash`, or a `cmd` that uses shell syntax (pipes,
/// `&&`, redirections), which Flagger's load tester runs with `sh -c`; scripts are screened
/// before they run (see [`crate::shell`]).
pub fn parse(payload: &Payload) -> Result<Task, TaskError> {
    let kind = payload.metadata.get("type").map(String::as_str).unwrap_or("cmd");
    match kind {
        "load" => return load(&payload.metadata).map(Task::Load),
        "ngrinder" => {
            return NGrinder::from_metadata(&payload.metadata)
                .map(Task::NGrinder)
                .map_err(TaskError::InvalidRemote);
        }
        "concord" => {
            return Concord::from_metadata(&payload.metadata)
                .map(Task::Concord)
                .map_err(TaskError::InvalidRemote);
        }
        _ => {}
    }
    let command = payload
        .metadata
        .get("cmd")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let command = command.ok_or_else(|| TaskError::MissingCommand(kind.to_string()))?;
    let words = || shell_words::split(&command).map_err(|e| TaskError::Unparsable(e.to_string()));
    let return_output = payload.metadata.get("returnCmdOutput").is_some_and(|v| v == "true");
    match kind {
        "cmd" if crate::shell::needs_shell(&command) => Ok(Task::Background {
            program: "sh".into(),
            args: vec!["-c".into(), command.clone()],
            script: Some(command.clone()),
            command,
        }),
        "cmd" => {
            let mut words = words()?;
            if words.is_empty() {
                return Err(TaskError::MissingCommand(kind.into()));
            }
            let program = words.remove(0);
            Ok(Task::Background {
                program,
                args: words,
                command,
                script: None,
            })
        }
        "bash" => Ok(Task::Blocking {
            program: "bash".into(),
            args: vec!["-c".into(), command.clone()],
            return_output,
            script: Some(command),
        }),
        "helm" | "helmv3" => Ok(Task::Blocking {
            program: "helm".into(),
            args: words()?,
            return_output,
            script: None,
        }),
        "kubectl" => Ok(Task::Blocking {
            program: "kubectl".into(),
            args: words()?,
            return_output,
            script: None,
        }),
        other => Err(TaskError::UnknownType(other.to_string())),
    }
}

/// `type: load` metadata: `url`, `method` (GET), `rate` (req/s, 0 = as fast as possible),
/// `concurrency` (10), `duration` (`30s`, `1m`), `headers` (`Name: value` lines), `body`, `http2`;
/// each within the bounds of [`crate::limits`].
fn load(metadata: &BTreeMap<String, String>) -> Result<LoadSpec, TaskError> {
    let url = metadata.get("url").cloned().ok_or_else(|| TaskError::InvalidLoad {
        key: "url",
        problem: "is missing".into(),
    })?;
    let field = |key: &str| format!("metadata.{key}");
    let text = |key: &str, default: &'static str| metadata.get(key).map_or(default, String::as_str);
    let mut headers = Vec::new();
    for line in text("headers", "").lines().filter(|l| !l.trim().is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| TaskError::InvalidLoad {
            key: "headers",
            problem: "must be lines of Name: value".into(),
        })?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let spec = LoadSpec {
        url,
        method: text("method", "GET").to_uppercase(),
        headers,
        body: metadata.get("body").cloned(),
        rate: limits::rate(&field("rate"), text("rate", "0"))?,
        concurrency: limits::count(
            &field("concurrency"),
            text("concurrency", "10"),
            1,
            limits::MAX_CONCURRENCY,
        )?,
        duration: limits::duration(&field("duration"), text("duration", "30s"), limits::MAX_DURATION)?,
        http2: metadata.get("http2").is_some_and(|v| v == "true"),
    };
    spec.check()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(pairs: &[(&str, &str)]) -> Payload {
        Payload {
            name: "web".into(),
            namespace: "test".into(),
            phase: "Progressing".into(),
            checksum: String::new(),
            metadata: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn parses_flaggers_task_types() {
        let cmd = parse(&payload(&[(
            "cmd",
            "hey -z 1m -q 10 -c 2 -H 'X-Test: a b' http://web-canary/",
        )]))
        .expect("cmd");
        assert_eq!(
            cmd,
            Task::Background {
                program: "hey".into(),
                args: [
                    "-z",
                    "1m",
                    "-q",
                    "10",
                    "-c",
                    "2",
                    "-H",
                    "X-Test: a b",
                    "http://web-canary/"
                ]
                .map(String::from)
                .to_vec(),
                command: "hey -z 1m -q 10 -c 2 -H 'X-Test: a b' http://web-canary/".into(),
                script: None,
            }
        );
        let kubectl = parse(&payload(&[
            ("type", "kubectl"),
            ("cmd", "get pods -n test"),
            ("returnCmdOutput", "true"),
        ]))
        .expect("kubectl");
        assert_eq!(
            kubectl,
            Task::Blocking {
                program: "kubectl".into(),
                args: ["get", "pods", "-n", "test"].map(String::from).to_vec(),
                return_output: true,
                script: None,
            }
        );
        let helm = parse(&payload(&[("type", "helmv3"), ("cmd", "test web -n test")])).expect("helm");
        assert_eq!(helm.program(), Some("helm"));
        let bash = parse(&payload(&[("type", "bash"), ("cmd", "curl -s http://a | grep ok")])).expect("bash");
        assert_eq!(
            bash,
            Task::Blocking {
                program: "bash".into(),
                args: vec!["-c".into(), "curl -s http://a | grep ok".into()],
                return_output: false,
                script: Some("curl -s http://a | grep ok".into()),
            }
        );
        let piped = parse(&payload(&[("cmd", "curl -s http://a | grep ok")])).expect("a cmd with a pipe");
        assert!(
            matches!(&piped, Task::Background { program, script: Some(_), .. } if program == "sh"),
            "{piped:?}"
        );
    }

    #[test]
    fn load_tasks_describe_the_load() {
        let task = parse(&payload(&[
            ("type", "load"),
            ("url", "http://web-canary/"),
            ("rate", "50"),
            ("concurrency", "4"),
            ("duration", "1m"),
            ("headers", "X-Canary: insider\nAccept: */*"),
        ]))
        .expect("load");
        let Task::Load(spec) = task else { panic!("a load task") };
        assert_eq!((spec.rate, spec.concurrency, spec.duration.as_secs()), (50.0, 4, 60));
        assert_eq!(spec.headers.len(), 2);
        let missing = parse(&payload(&[("type", "load")]));
        assert_eq!(
            missing,
            Err(TaskError::InvalidLoad {
                key: "url",
                problem: "is missing".into()
            })
        );
    }

    #[test]
    fn bad_tasks_are_explained() {
        assert_eq!(
            parse(&payload(&[("type", "gatling"), ("cmd", "x")])),
            Err(TaskError::UnknownType("gatling".into()))
        );
        assert_eq!(
            parse(&payload(&[("type", "kubectl")])),
            Err(TaskError::MissingCommand("kubectl".into()))
        );
        assert!(matches!(
            parse(&payload(&[("cmd", "hey 'unclosed")])),
            Err(TaskError::Unparsable(_))
        ));
    }
}
