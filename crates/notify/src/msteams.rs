//! Microsoft Teams. An Office 365 connector webhook takes a MessageCard (Flagger's payload); a
//! Workflows (Power Automate) webhook, which Microsoft made the replacement when it retired the
//! connectors, takes only an Adaptive Card inside a message. The address says which it is.

use serde_json::{Value, json};

use crate::{Message, Notifier, Request, Severity};

pub struct MsTeams {
    url: reqwest::Url,
}

impl MsTeams {
    pub fn new(url: reqwest::Url) -> MsTeams {
        MsTeams { url }
    }
}

impl Notifier for MsTeams {
    fn request(&self, message: &Message) -> Request {
        let body = if is_workflow(&self.url) {
            adaptive_card(message)
        } else {
            message_card(message)
        };
        Request {
            url: self.url.clone(),
            body,
            bearer: None,
        }
    }
}

/// Workflows webhooks live on Azure Logic Apps and Power Platform hosts, under
/// `/workflows/<id>/triggers/manual/paths/invoke`.
fn is_workflow(url: &reqwest::Url) -> bool {
    const WORKFLOW_HOSTS: [&str; 4] = [
        "logic.azure.com",
        "powerplatform.com",
        "powerautomate.com",
        "flow.microsoft.com",
    ];
    let host = url.host_str().unwrap_or_default();
    let on_workflow_host = WORKFLOW_HOSTS
        .iter()
        .any(|suffix| host == *suffix || host.ends_with(&format!(".{suffix}")));
    on_workflow_host || (url.path().contains("/workflows/") && url.path().contains("/triggers/"))
}

fn message_card(message: &Message) -> Value {
    let facts: Vec<Value> = message
        .fields
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": if message.severity == Severity::Error { "FF0000" } else { "0076D7" },
        "summary": message.subject(),
        "sections": [{
            "activityTitle": message.text,
            "activitySubtitle": message.subject(),
            "facts": facts,
        }],
    })
}

fn adaptive_card(message: &Message) -> Value {
    let facts: Vec<Value> = message
        .fields
        .iter()
        .map(|(title, value)| json!({ "title": title, "value": value }))
        .collect();
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": message.text,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": true,
            "color": match message.severity {
                Severity::Error => "Attention",
                Severity::Warn => "Warning",
                Severity::Info => "Default",
            },
        }),
        json!({ "type": "TextBlock", "text": message.subject(), "isSubtle": true, "wrap": true }),
    ];
    if !facts.is_empty() {
        body.push(json!({ "type": "FactSet", "facts": facts }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, notifier};
    use serin_api::alert_provider::AlertProviderType;

    fn request(address: &str, severity: Severity) -> Request {
        let endpoint = Endpoint {
            address: address.into(),
            ..Endpoint::default()
        };
        let message = Message {
            workload: "podinfo".into(),
            namespace: "test".into(),
            text: "Failed checks threshold reached 5".into(),
            fields: vec![("Cluster".into(), "prod".into())],
            severity,
        };
        notifier(AlertProviderType::Msteams, &endpoint)
            .expect("a notifier")
            .request(&message)
    }

    #[test]
    fn a_connector_webhook_gets_a_message_card() {
        let body = request("https://contoso.webhook.office.com/webhookb2/abc", Severity::Error).body;
        assert_eq!(
            body,
            json!({
                "@type": "MessageCard",
                "@context": "http://schema.org/extensions",
                "themeColor": "FF0000",
                "summary": "podinfo.test",
                "sections": [{
                    "activityTitle": "Failed checks threshold reached 5",
                    "activitySubtitle": "podinfo.test",
                    "facts": [{ "name": "Cluster", "value": "prod" }],
                }],
            })
        );
        let info = request("https://contoso.webhook.office.com/webhookb2/abc", Severity::Info).body;
        assert_eq!(info["themeColor"], "0076D7");
    }

    #[test]
    fn a_workflows_webhook_gets_an_adaptive_card() {
        for address in [
            "https://prod-12.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x",
            "https://default1234.environment.api.powerplatform.com/powerautomate/automations/direct/workflows/abc/triggers/manual/paths/invoke",
            "http://127.0.0.1:8080/workflows/abc/triggers/manual/paths/invoke",
        ] {
            let body = request(address, Severity::Error).body;
            assert_eq!(body["type"], "message", "{address}");
            let content = &body["attachments"][0]["content"];
            assert_eq!(
                body["attachments"][0]["contentType"],
                "application/vnd.microsoft.card.adaptive"
            );
            assert_eq!(content["type"], "AdaptiveCard");
            assert_eq!(content["body"][0]["text"], "Failed checks threshold reached 5");
            assert_eq!(content["body"][0]["color"], "Attention");
            assert_eq!(content["body"][1]["text"], "podinfo.test");
            assert_eq!(
                content["body"][2]["facts"],
                json!([{ "title": "Cluster", "value": "prod" }])
            );
        }
    }
}
