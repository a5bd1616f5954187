//! Load tests delegated to a load-testing server over its REST API, as Flagger's load tester
//! does: nGrinder (clone a test and start it, poll its status) and Concord (start a process,
//! poll it). Both run to the end: the webhook gets 200 when the test finished, 500 otherwise.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::limits;

#[derive(Debug, Clone, PartialEq)]
pub struct NGrinder {
    pub server: String,
    /// The test to clone for each run.
    pub clone: u64,
    pub username: String,
    pub password: String,
    pub poll_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Concord {
    pub server: String,
    pub org: String,
    pub project: String,
    pub repo: String,
    pub entrypoint: String,
    pub endpoint: String,
    /// File holding the API key (under `-secrets-dir`), sent as the Authorization header.
    pub api_key_path: String,
    pub arguments: BTreeMap<String, String>,
    pub poll_interval: Duration,
    pub poll_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("{server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("{server} refused: {body}")]
    Refused { server: String, body: String },
    #[error("the test ended {status}")]
    Failed { status: String },
    #[error("the test did not finish within {0:?}; it was stopped")]
    TimedOut(Duration),
    #[error("{server} answered with more than {limit} bytes; the answer was cut off")]
    TooLarge { server: String, limit: usize },
}

fn unreachable(server: &str) -> impl Fn(reqwest::Error) -> RestError + '_ {
    move |e| RestError::Unreachable {
        server: server.to_string(),
        reason: e.to_string(),
    }
}

/// The most of a remote server's answer read: nGrinder's and Concord's answers are a few KiB.
pub const ANSWER_LIMIT: usize = 1024 * 1024;

async fn json(server: &str, mut response: reqwest::Response) -> Result<Value, RestError> {
    let status = response.status();
    // Read chunk by chunk, so that an endless or huge answer is cut off instead of held whole.
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable(server))? {
        if body.len() + chunk.len() > ANSWER_LIMIT {
            return Err(RestError::TooLarge {
                server: server.to_string(),
                limit: ANSWER_LIMIT,
            });
        }
        body.extend_from_slice(&chunk);
    }
    let body = String::from_utf8_lossy(&body);
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if !status.is_success() || value.is_null() || value.get("success") == Some(&Value::Bool(false)) {
        return Err(RestError::Refused {
            server: server.to_string(),
            body: body.chars().take(512).collect(),
        });
    }
    Ok(value)
}

impl NGrinder {
    /// From webhook metadata: `server`, `clone`, `username`, `passwd` (base64), `pollInterval`.
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Result<NGrinder, String> {
        let field = |key: &str| {
            metadata
                .get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or(format!("ngrinder tasks need metadata.{key}"))
        };
        let clone = field("clone")?
            .parse()
            .map_err(|_| "metadata.clone of an ngrinder task must be a test number".to_string())?;
        let password = base64::engine::general_purpose::STANDARD
            .decode(field("passwd")?)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or("metadata.passwd of an ngrinder task must be base64")?;
        let poll_interval = match metadata.get("pollInterval") {
            Some(text) => {
                limits::duration("metadata.pollInterval", text, limits::MAX_POLL_INTERVAL).map_err(|e| e.to_string())?
            }
            None => Duration::from_secs(1),
        };
        Ok(NGrinder {
            server: field("server")?,
            clone,
            username: field("username")?,
            password,
            poll_interval,
        })
    }

    pub async fn run(&self, client: &reqwest::Client, timeout: Duration) -> Result<(), RestError> {
        let base = self.server.trim_end_matches('/');
        let started = Instant::now();
        let response = client
            .post(format!("{base}/perftest/api/{}/clone_and_start", self.clone))
            .basic_auth(&self.username, Some(&self.password))
            .send()
            .await
            .map_err(unreachable(&self.server))?;
        let test = json(&self.server, response).await?["id"]
            .as_u64()
            .ok_or_else(|| RestError::Refused {
                server: self.server.clone(),
                body: "the answer to clone_and_start has no test id".into(),
            })?;
        loop {
            tokio::time::sleep(self.poll_interval).await;
            if started.elapsed() > timeout {
                let stop = client
                    .put(format!("{base}/perftest/api/{test}?action=stop"))
                    .basic_auth(&self.username, Some(&self.password));
                let _ = stop.send().await;
                return Err(RestError::TimedOut(timeout));
            }
            let response = client
                .get(format!("{base}/perftest/api/{test}/status"))
                .basic_auth(&self.username, Some(&self.password))
                .send()
                .await
                .map_err(unreachable(&self.server))?;
            let status = json(&self.server, response).await?["status"][0]["status_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match status.as_str() {
                "FINISHED" => return Ok(()),
                "STOP_BY_ERROR" | "CANCELED" | "UNKNOWN" => return Err(RestError::Failed { status }),
                _ => {}
            }
        }
    }
}

impl Concord {
    /// From webhook metadata: `server`, `org`, `project`, `repo`, `entrypoint`, `apiKeyPath`,
    /// `endpoint`, `pollInterval` and `pollTimeout` (seconds, 5 and 30), `arguments.<name>`.
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Result<Concord, String> {
        let field = |key: &str| {
            metadata
                .get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or(format!("concord tasks need metadata.{key}"))
        };
        let seconds = |key: &str, default: u64, max: Duration| -> Result<Duration, String> {
            match metadata.get(key) {
                None => Ok(Duration::from_secs(default)),
                Some(text) => limits::seconds(&format!("metadata.{key}"), text, max).map_err(|e| e.to_string()),
            }
        };
        if metadata.contains_key("arguments.endpoint") {
            return Err("metadata.arguments.endpoint cannot be set; set metadata.endpoint".into());
        }
        let arguments = metadata
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("arguments.").map(|name| (name.to_string(), v.clone())))
            .collect();
        Ok(Concord {
            server: field("server")?,
            org: field("org")?,
            project: field("project")?,
            repo: field("repo")?,
            entrypoint: field("entrypoint")?,
            endpoint: field("endpoint")?,
            api_key_path: field("apiKeyPath")?,
            arguments,
            poll_interval: seconds("pollInterval", 5, limits::MAX_POLL_INTERVAL)?,
            poll_timeout: seconds("pollTimeout", 30, limits::MAX_DURATION)?,
        })
    }

    /// Starts the process with `key` (the content of `apiKeyPath`) and polls it to its end.
    pub async fn run(&self, client: &reqwest::Client, key: &str) -> Result<(), RestError> {
        let base = self.server.trim_end_matches('/');
        let mut form = reqwest::multipart::Form::new()
            .text("org", self.org.clone())
            .text("project", self.project.clone())
            .text("repo", self.repo.clone())
            .text("entryPoint", self.entrypoint.clone())
            .text("arguments.endpoint", self.endpoint.clone());
        for (name, value) in &self.arguments {
            form = form.text(format!("arguments.{name}"), value.clone());
        }
        let response = client
            .post(format!("{base}/api/v1/process"))
            .header("Authorization", key)
            .multipart(form)
            .send()
            .await
            .map_err(unreachable(&self.server))?;
        let instance = json(&self.server, response).await?["instanceId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if instance.is_empty() {
            return Err(RestError::Refused {
                server: self.server.clone(),
                body: "the answer has no instanceId".into(),
            });
        }
        let started = Instant::now();
        while started.elapsed() < self.poll_timeout {
            tokio::time::sleep(self.poll_interval).await;
            let response = client
                .get(format!("{base}/api/v1/process/{instance}"))
                .header("Authorization", key)
                .send()
                .await
                .map_err(unreachable(&self.server))?;
            match json(&self.server, response).await?["status"]
                .as_str()
                .unwrap_or_default()
            {
                "FINISHED" => return Ok(()),
                "FAILED" => {
                    return Err(RestError::Failed {
                        status: "FAILED".into(),
                    });
                }
                _ => {}
            }
        }
        Err(RestError::TimedOut(self.poll_timeout))
    }
}
