//! One call to a hosted provider's HTTP API, with the answers told apart the same way for all of
//! them: the body on 200; credentials refused (401, 403); rate limited (429: a `Retry-After` of
//! up to [`LONGEST_RETRY_AFTER`] is waited out once); any other status with the start of its body.

use std::time::Duration;

use crate::ProviderError;

/// The longest `Retry-After` waited for within a check; a longer one fails the check, saying so.
pub const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(10);
/// How much of an error answer a message quotes.
const QUOTED: usize = 300;

/// Sends the request `build` makes (again after a short `Retry-After`), within `timeout`.
pub async fn call(build: impl Fn() -> reqwest::RequestBuilder, timeout: Duration) -> Result<String, ProviderError> {
    let mut retried = false;
    loop {
        let response = build()
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| send_error(&e, timeout))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await.unwrap_or_default();
        let quoted = || body.chars().take(QUOTED).collect::<String>();
        match status {
            200 => return Ok(body),
            429 => match retry_after {
                Some(wait) if !retried && wait <= LONGEST_RETRY_AFTER => {
                    tokio::time::sleep(wait).await;
                    retried = true;
                }
                _ => return Err(ProviderError::RateLimited { retry_after }),
            },
            401 | 403 => return Err(ProviderError::Refused { status, body: quoted() }),
            _ => return Err(ProviderError::Http { status, body: quoted() }),
        }
    }
}

/// A request that got no answer: timed out, or could not be sent.
pub fn send_error(error: &reqwest::Error, timeout: Duration) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Timeout { after: timeout }
    } else {
        ProviderError::Unreachable {
            reason: error_chain(error),
        }
    }
}

/// An error with its sources: reqwest's own message only says the request failed, its source
/// says why (connection refused, certificate not trusted).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The Secret's value under `key`, trimmed; an error says which key is missing and what the
/// provider needs (`needs`, e.g. "datadog needs datadog_api_key and datadog_application_key").
pub fn required_key(
    credentials: &std::collections::BTreeMap<String, String>,
    key: &str,
    needs: &str,
) -> Result<String, String> {
    credentials
        .get(key)
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
        .ok_or_else(|| format!("the secretRef's Secret has no {key}: {needs}"))
}
