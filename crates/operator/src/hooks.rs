//! Webhooks: the calls a Canary's `analysis.webhooks` ask for, with Flagger's payload and rules
//! (HTTP 200–202 passes; any other status, a timeout or a connection error fails).

use std::time::Duration;

use serin_api::canary::{CanaryWebhook, HookType};
use serin_api::{Canary, CanaryStatus, WebhookPayload};

use serin_metrics::HttpClients;

use crate::telemetry::Telemetry;

/// Response bodies longer than this are cut in messages and Events.
const BODY_LIMIT: usize = 512;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("webhook {name} timed out after {timeout:?}")]
    Timeout { name: String, timeout: Duration },
    #[error("webhook {name} could not reach {url}: {reason}")]
    Unreachable { name: String, url: String, reason: String },
    #[error("webhook {name} answered {status}: {body}")]
    Refused { name: String, status: u16, body: String },
    #[error("webhook {name}: timeout {reason}")]
    InvalidTimeout { name: String, reason: String },
}

impl HookError {
    /// The outcome label of `serin_webhook_calls_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            HookError::Timeout { .. } => "timeout",
            HookError::Unreachable { .. } => "unreachable",
            HookError::Refused { .. } => "refused",
            HookError::InvalidTimeout { .. } => "invalid",
        }
    }
}

/// The payloads' `checksum`: Flagger's hash of the status's `trackedConfigs` and
/// `lastAppliedSpec` as read before the decision (the revision last applied, not the one a gate
/// is asked about), as Flagger's webhooks send it.
pub fn checksum(status: Option<&CanaryStatus>) -> String {
    serin_core::revision::webhook_checksum(
        status.and_then(|s| s.tracked_configs.as_ref()),
        status.and_then(|s| s.last_applied_spec.as_deref()).unwrap_or_default(),
    )
}

/// What the webhooks of one type answered.
#[derive(Debug, Default)]
pub struct Answers {
    /// Why each failed webhook failed.
    pub failures: Vec<String>,
    pub passed: usize,
    /// The first webhook that failed has `muteAlert`.
    pub first_failure_muted: bool,
}

/// Calls every webhook of `kind` of the Canary with Flagger's payload (`checksum` from
/// [`checksum`], `phase` the phase to report).
pub async fn call_all(
    http: &HttpClients,
    telemetry: &Telemetry,
    canary: &Canary,
    namespace: &str,
    checksum: &str,
    kind: HookType,
    phase: &str,
) -> Answers {
    let mut answers = Answers::default();
    let hooks = canary.spec.analysis().and_then(|a| a.webhooks.as_ref());
    for hook in hooks.into_iter().flatten().filter(|h| h.kind() == kind) {
        let payload = WebhookPayload {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: namespace.to_string(),
            phase: phase.to_string(),
            checksum: checksum.to_string(),
            metadata: hook.metadata.clone().unwrap_or_default(),
        };
        match call(http, telemetry, hook, &payload).await {
            Ok(()) => answers.passed += 1,
            Err(error) => {
                if answers.failures.is_empty() {
                    answers.first_failure_muted = hook.mute_alert == Some(true);
                }
                answers.failures.push(error.to_string());
            }
        }
    }
    answers
}

/// Calls `hook` with `payload`, retrying `retries` times; the error says why it failed. The
/// outcome and the time it took (retries included) go to `telemetry`.
pub async fn call(
    http: &HttpClients,
    telemetry: &Telemetry,
    hook: &CanaryWebhook,
    payload: &WebhookPayload,
) -> Result<(), HookError> {
    let started = std::time::Instant::now();
    let result = call_with_retries(http, hook, payload).await;
    let outcome = result.as_ref().err().map_or("passed", HookError::outcome);
    telemetry.webhook_called(&serin_api::wire_name(&hook.kind()), outcome, started.elapsed());
    result
}

async fn call_with_retries(
    http: &HttpClients,
    hook: &CanaryWebhook,
    payload: &WebhookPayload,
) -> Result<(), HookError> {
    let timeout = hook.timeout().map_err(|error| HookError::InvalidTimeout {
        name: hook.name.clone(),
        reason: error.to_string(),
    })?;
    let client = http.get(hook.disable_tls != Some(true));
    let attempts = 1 + hook.retries.unwrap_or(0).max(0);
    let mut result = Ok(());
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        result = call_once(client, hook, payload, timeout).await;
        if result.is_ok() {
            break;
        }
    }
    result
}

async fn call_once(
    client: &reqwest::Client,
    hook: &CanaryWebhook,
    payload: &WebhookPayload,
    timeout: Duration,
) -> Result<(), HookError> {
    let name = || hook.name.clone();
    let response = client
        .post(&hook.url)
        .timeout(timeout)
        .json(payload)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                HookError::Timeout { name: name(), timeout }
            } else {
                HookError::Unreachable {
                    name: name(),
                    url: hook.url.clone(),
                    reason: root_cause(&e),
                }
            }
        })?;
    let status = response.status().as_u16();
    if (200..=202).contains(&status) {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let mut body = body.trim().to_string();
    if body.len() > BODY_LIMIT {
        let cut = (0..=BODY_LIMIT).rev().find(|i| body.is_char_boundary(*i)).unwrap_or(0);
        body.truncate(cut);
        body.push('…');
    }
    Err(HookError::Refused {
        name: name(),
        status,
        body,
    })
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use serin_testenv::webhooks::WebhookReceiver;

    use super::*;

    fn hook(url: String, disable_tls: bool) -> CanaryWebhook {
        CanaryWebhook {
            name: "smoke".into(),
            url,
            disable_tls: Some(disable_tls),
            ..Default::default()
        }
    }

    fn telemetry() -> Telemetry {
        Telemetry::new("kubernetes", vec![kube::runtime::reflector::store::<Canary>().0])
    }

    fn payload() -> WebhookPayload {
        WebhookPayload {
            name: "web".into(),
            namespace: "test".into(),
            phase: "Progressing".into(),
            checksum: "s1-0".into(),
            metadata: Default::default(),
        }
    }

    /// A real HTTPS server whose certificate nobody trusts: refused unless disableTLS.
    #[tokio::test]
    async fn tls_is_verified_unless_disabled() {
        let receiver = WebhookReceiver::start_https().await.expect("https receiver");
        let http = HttpClients::new().expect("clients");
        let url = format!("{}/smoke", receiver.url());
        let telemetry = telemetry();
        let refused = call(&http, &telemetry, &hook(url.clone(), false), &payload())
            .await
            .expect_err("untrusted certificate");
        assert!(matches!(refused, HookError::Unreachable { .. }), "{refused}");
        assert!(receiver.calls().is_empty(), "no request got through");
        call(&http, &telemetry, &hook(url, true), &payload())
            .await
            .expect("disableTLS skips the verification");
        assert_eq!(receiver.calls().len(), 1);
        assert_eq!(receiver.calls()[0].body["phase"], serde_json::json!("Progressing"));
    }

    #[tokio::test]
    async fn refusals_carry_the_status_and_body_and_retries_retry() {
        let receiver = WebhookReceiver::start().await.expect("receiver");
        receiver.answer("/gate", 403, "closed by the release manager");
        let http = HttpClients::new().expect("clients");
        let mut gate = hook(format!("{}/gate", receiver.url()), false);
        gate.retries = Some(2);
        let error = call(&http, &telemetry(), &gate, &payload()).await.expect_err("refused");
        assert_eq!(
            error.to_string(),
            "webhook smoke answered 403: closed by the release manager"
        );
        assert_eq!(receiver.calls().len(), 3, "one call and two retries");
    }
}
