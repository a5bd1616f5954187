//! Discord, through its Slack-compatible webhook: the hook address with `/slack` appended.

use crate::Endpoint;
use crate::slack::SlackCompatible;

pub fn new(mut url: reqwest::Url, endpoint: &Endpoint) -> SlackCompatible {
    if !url.path().ends_with("/slack") {
        let path = format!("{}/slack", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    SlackCompatible {
        url,
        endpoint: endpoint.clone(),
        colors: ("good", "danger"),
        // Discord's Slack-compatible hook takes its credentials in the address only.
        sends_token: false,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Endpoint, Message, Severity, notifier};
    use serin_api::alert_provider::AlertProviderType;

    fn url_for(address: &str) -> String {
        let endpoint = Endpoint {
            address: address.into(),
            token: Some("ignored".into()),
            username: "serin".into(),
            channel: None,
        };
        let message = Message {
            workload: "podinfo".into(),
            namespace: "test".into(),
            text: "hi".into(),
            fields: vec![],
            severity: Severity::Info,
        };
        let request = notifier(AlertProviderType::Discord, &endpoint)
            .expect("a notifier")
            .request(&message);
        assert_eq!(request.bearer, None);
        request.url.to_string()
    }

    #[test]
    fn the_slack_compatible_hook_is_used() {
        assert_eq!(
            url_for("https://discord.com/api/webhooks/1/abc"),
            "https://discord.com/api/webhooks/1/abc/slack"
        );
        assert_eq!(
            url_for("https://discord.com/api/webhooks/1/abc/slack"),
            "https://discord.com/api/webhooks/1/abc/slack"
        );
        assert_eq!(
            url_for("https://discord.com/api/webhooks/1/abc/?wait=true"),
            "https://discord.com/api/webhooks/1/abc/slack?wait=true"
        );
    }
}
