//! Alerts: where a message about a rollout goes (Slack, MS Teams, Discord, Rocket.Chat, Google
//! Chat) and how it gets there. Each AlertProvider type is one file implementing [`Notifier`],
//! which only turns a [`Message`] into the service's documented payload; adding one is adding a
//! file and a line in [`notifier`]. Delivery (rate limit, retries, a queue per destination that
//! never blocks the caller) is [`Dispatcher`]; one message per cause per revision is [`Dedup`].

mod dedup;
mod delivery;
mod discord;
mod gchat;
mod msteams;
mod rocket;
mod slack;

use std::fmt;

use serin_api::alert_provider::AlertProviderType;

pub use dedup::Dedup;
pub use delivery::{DeliveryObserver, Dispatcher, Policy};

/// How bad the news is; providers colour their cards by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// A message about one Canary's workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The Canary's name (Flagger calls it the workload).
    pub workload: String,
    pub namespace: String,
    pub text: String,
    /// Name/value facts shown under the text, in order.
    pub fields: Vec<(String, String)>,
    pub severity: Severity,
}

impl Message {
    /// `<workload>.<namespace>`, how every provider names the Canary.
    fn subject(&self) -> String {
        format!("{}.{}", self.workload, self.namespace)
    }
}

/// Where a provider posts, as an AlertProvider (or the `-slack-*` / `-msteams-*` flags) says.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The webhook address; a secret (it carries the credentials), so never logged.
    pub address: String,
    /// Sent as `Authorization: Bearer` (Slack's bot token); a secret.
    pub token: Option<String>,
    pub username: String,
    pub channel: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("channel", &self.channel)
            .finish()
    }
}

/// One HTTP POST of a JSON payload.
#[derive(Clone, PartialEq)]
pub struct Request {
    pub url: reqwest::Url,
    pub body: serde_json::Value,
    pub bearer: Option<String>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("url", &"<redacted>")
            .field("body", &self.body)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// An alert provider: builds the request that posts a message to it.
pub trait Notifier: Send + Sync {
    fn request(&self, message: &Message) -> Request;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The address is not an absolute http(s) URL. The address itself is not repeated: it is a secret.
    #[error("the {kind} address is not an absolute http(s) URL")]
    InvalidAddress { kind: &'static str },
    #[error("the proxy address is not a valid URL")]
    InvalidProxy,
    #[error("the alert queue of {destination} is full; the message was dropped")]
    QueueFull { destination: String },
}

/// The notifier of an AlertProvider `kind` posting to `endpoint`.
pub fn notifier(kind: AlertProviderType, endpoint: &Endpoint) -> Result<Box<dyn Notifier>, Error> {
    let name = kind_name(kind);
    let url = parse_address(&endpoint.address, name)?;
    Ok(match kind {
        AlertProviderType::Slack => Box::new(slack::new(url, endpoint)),
        AlertProviderType::Discord => Box::new(discord::new(url, endpoint)),
        AlertProviderType::Rocket => Box::new(rocket::new(url, endpoint)),
        AlertProviderType::Msteams => Box::new(msteams::MsTeams::new(url)),
        AlertProviderType::Gchat => Box::new(gchat::GoogleChat::new(url)),
    })
}

/// The AlertProvider `type` as written in manifests.
pub fn kind_name(kind: AlertProviderType) -> &'static str {
    match kind {
        AlertProviderType::Slack => "slack",
        AlertProviderType::Msteams => "msteams",
        AlertProviderType::Discord => "discord",
        AlertProviderType::Rocket => "rocket",
        AlertProviderType::Gchat => "gchat",
    }
}

fn parse_address(address: &str, kind: &'static str) -> Result<reqwest::Url, Error> {
    reqwest::Url::parse(address.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or(Error::InvalidAddress { kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str) -> Endpoint {
        Endpoint {
            address: address.into(),
            token: Some("xoxb-secret".into()),
            username: "serin".into(),
            channel: Some("general".into()),
        }
    }

    #[test]
    fn an_address_that_is_not_an_http_url_is_refused_without_repeating_it() {
        for address in ["", "hooks.slack.com/services/T/B/secret", "ftp://x/secret", "http://"] {
            let error = notifier(AlertProviderType::Slack, &endpoint(address))
                .err()
                .expect("refused");
            assert_eq!(error, Error::InvalidAddress { kind: "slack" });
            assert!(!error.to_string().contains("secret"));
        }
        assert!(
            notifier(
                AlertProviderType::Gchat,
                &endpoint("https://chat.googleapis.com/v1/spaces/x")
            )
            .is_ok()
        );
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let shown = format!("{:?}", endpoint("https://hooks.slack.com/services/T/B/secret"));
        assert!(!shown.contains("secret"), "{shown}");
        let request = notifier(
            AlertProviderType::Slack,
            &endpoint("https://hooks.slack.com/services/T/B/secret"),
        )
        .expect("a notifier")
        .request(&Message {
            workload: "podinfo".into(),
            namespace: "test".into(),
            text: "hello".into(),
            fields: vec![],
            severity: Severity::Info,
        });
        let shown = format!("{request:?}");
        assert!(!shown.contains("secret") && !shown.contains("xoxb"), "{shown}");
    }
}
