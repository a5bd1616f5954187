//! The body of every Canary webhook call (Flagger's `CanaryWebhookPayload`): what the operator
//! sends and what the load tester reads, one type for both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPayload {
    pub name: String,
    pub namespace: String,
    /// The Canary's phase when the hook is called.
    #[serde(default)]
    pub phase: String,
    /// Flagger's checksum of the revision under analysis.
    #[serde(default)]
    pub checksum: String,
    /// The webhook's metadata; left out when empty, as Flagger's `omitempty` does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_flaggers_payload() {
        let payload: WebhookPayload = serde_json::from_str(
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"5c9d","metadata":{"type":"cmd","cmd":"hey"}}"#,
        )
        .expect("Flagger's payload");
        assert_eq!(payload.metadata.get("type").map(String::as_str), Some("cmd"));
        let minimal: WebhookPayload =
            serde_json::from_str(r#"{"name":"podinfo","namespace":"test"}"#).expect("a minimal payload");
        assert_eq!(
            serde_json::to_string(&minimal).expect("json"),
            r#"{"name":"podinfo","namespace":"test","phase":"","checksum":""}"#
        );
    }
}
