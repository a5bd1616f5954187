//! Rocket.Chat incoming webhooks, which take Slack's attachment payload; colours as hex codes.

use crate::Endpoint;
use crate::slack::SlackCompatible;

pub fn new(url: reqwest::Url, endpoint: &Endpoint) -> SlackCompatible {
    SlackCompatible {
        url,
        endpoint: endpoint.clone(),
        colors: ("#0076D7", "#FF0000"),
        sends_token: false,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Endpoint, Message, Severity, notifier};
    use serin_api::alert_provider::AlertProviderType;

    #[test]
    fn colours_are_hex_codes() {
        let endpoint = Endpoint {
            address: "https://rocket.example.com/hooks/abc".into(),
            token: None,
            username: "serin".into(),
            channel: Some("general".into()),
        };
        let rocket = notifier(AlertProviderType::Rocket, &endpoint).expect("a notifier");
        let mut message = Message {
            workload: "podinfo".into(),
            namespace: "test".into(),
            text: "hi".into(),
            fields: vec![],
            severity: Severity::Info,
        };
        assert_eq!(rocket.request(&message).body["attachments"][0]["color"], "#0076D7");
        message.severity = Severity::Error;
        let body = rocket.request(&message).body;
        assert_eq!(body["attachments"][0]["color"], "#FF0000");
        assert_eq!(body["channel"], "general");
    }
}
