//! Slack incoming webhooks (and `chat.postMessage` with a bot token): a message attachment
//! coloured by severity, the Canary as its author, the facts as fields. Discord and Rocket.Chat
//! take the same payload through their Slack-compatible hooks.

use serde_json::{Value, json};

use crate::{Endpoint, Message, Notifier, Request, Severity};

/// A Slack-style hook: Slack itself, and the Slack-compatible hooks of Discord and Rocket.Chat,
/// which differ in colours and in whether the token is sent.
pub struct SlackCompatible {
    pub url: reqwest::Url,
    pub endpoint: Endpoint,
    /// The attachment colour for info and warn messages, and for errors.
    pub colors: (&'static str, &'static str),
    /// Whether `endpoint.token` goes in an `Authorization: Bearer` header.
    pub sends_token: bool,
}

pub fn new(url: reqwest::Url, endpoint: &Endpoint) -> SlackCompatible {
    SlackCompatible {
        url,
        endpoint: endpoint.clone(),
        colors: ("good", "danger"),
        sends_token: true,
    }
}

impl Notifier for SlackCompatible {
    fn request(&self, message: &Message) -> Request {
        let color = match message.severity {
            Severity::Error => self.colors.1,
            Severity::Info | Severity::Warn => self.colors.0,
        };
        let fields: Vec<Value> = message
            .fields
            .iter()
            .map(|(title, value)| json!({ "title": title, "value": value, "short": false }))
            .collect();
        let mut body = json!({
            "username": self.endpoint.username,
            "icon_emoji": ":rocket:",
            "attachments": [{
                "color": color,
                "author_name": message.subject(),
                "text": message.text,
                "mrkdwn_in": ["text"],
                "fields": fields,
            }],
        });
        if let Some(channel) = &self.endpoint.channel {
            body["channel"] = json!(channel);
        }
        Request {
            url: self.url.clone(),
            body,
            bearer: self.endpoint.token.clone().filter(|_| self.sends_token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier;
    use serin_api::alert_provider::AlertProviderType;

    #[test]
    fn errors_are_red_and_the_rest_green() {
        let endpoint = Endpoint {
            address: "https://hooks.slack.com/services/T/B/X".into(),
            token: None,
            username: "serin".into(),
            channel: Some("deploys".into()),
        };
        let slack = notifier(AlertProviderType::Slack, &endpoint).expect("a notifier");
        let mut message = Message {
            workload: "podinfo".into(),
            namespace: "test".into(),
            text: "Canary is waiting for approval.".into(),
            fields: vec![("Cluster".into(), "prod".into())],
            severity: Severity::Warn,
        };
        let request = slack.request(&message);
        assert_eq!(
            request.body,
            json!({
                "channel": "deploys",
                "username": "serin",
                "icon_emoji": ":rocket:",
                "attachments": [{
                    "color": "good",
                    "author_name": "podinfo.test",
                    "text": "Canary is waiting for approval.",
                    "mrkdwn_in": ["text"],
                    "fields": [{ "title": "Cluster", "value": "prod", "short": false }],
                }],
            })
        );
        assert_eq!(request.bearer, None);
        message.severity = Severity::Error;
        assert_eq!(slack.request(&message).body["attachments"][0]["color"], "danger");
    }
}
