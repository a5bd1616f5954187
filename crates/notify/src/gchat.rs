//! Google Chat incoming webhooks: a card whose header names the Canary, the message in the first
//! section and each fact in its own.

use serde_json::{Value, json};

use crate::{Message, Notifier, Request, Severity};

pub struct GoogleChat {
    url: reqwest::Url,
}

impl GoogleChat {
    pub fn new(url: reqwest::Url) -> GoogleChat {
        GoogleChat { url }
    }
}

impl Notifier for GoogleChat {
    fn request(&self, message: &Message) -> Request {
        // Google Chat's text paragraphs take a small HTML subset; the message is grey, or red
        // for an error.
        let color = if message.severity == Severity::Error {
            "#D32F2F"
        } else {
            "#848484"
        };
        let paragraph = |text: String| json!({ "widgets": [{ "textParagraph": { "text": text } }] });
        let mut sections: Vec<Value> = vec![paragraph(format!(
            "<font color=\"{color}\"><b>{}</b></font>",
            escape(&message.text)
        ))];
        sections.extend(message.fields.iter().map(|(name, value)| {
            paragraph(format!(
                "{}<br><font color=\"#848484\"><b>{}</b></font>",
                escape(name),
                escape(value)
            ))
        }));
        Request {
            url: self.url.clone(),
            body: json!({
                "cards": [{
                    "header": { "title": "serin", "subtitle": message.subject() },
                    "sections": sections,
                }],
            }),
            bearer: None,
        }
    }
}

/// Text as Google Chat's HTML subset shows it: a `<` in a message is a character, not a tag.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, notifier};
    use serin_api::alert_provider::AlertProviderType;

    #[test]
    fn the_message_and_each_fact_get_a_section() {
        let endpoint = Endpoint {
            address: "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t".into(),
            ..Endpoint::default()
        };
        let message = Message {
            workload: "podinfo".into(),
            namespace: "test".into(),
            text: "latency 750 > 500".into(),
            fields: vec![("Target".into(), "Deployment/podinfo.test".into())],
            severity: Severity::Error,
        };
        let body = notifier(AlertProviderType::Gchat, &endpoint)
            .expect("a notifier")
            .request(&message)
            .body;
        assert_eq!(
            body,
            json!({
                "cards": [{
                    "header": { "title": "serin", "subtitle": "podinfo.test" },
                    "sections": [
                        { "widgets": [{ "textParagraph": { "text": "<font color=\"#D32F2F\"><b>latency 750 &gt; 500</b></font>" } }] },
                        { "widgets": [{ "textParagraph": { "text": "Target<br><font color=\"#848484\"><b>Deployment/podinfo.test</b></font>" } }] },
                    ],
                }],
            })
        );
    }
}
