//! Revisions: what `status.lastAppliedSpec`, `lastPromotedSpec` and `trackedConfigs` hold, the
//! same values Flagger writes, so that either operator takes over the other's Canaries without a
//! new rollout.

mod flagger_hash;
mod quantity;

pub use flagger_hash::webhook_checksum;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serin_api::CanaryStatus;
use sha2::{Digest, Sha256};

/// Prefix of serin's own hash, used for the rare template Flagger's hash is not reproduced for.
pub const HASH_PREFIX: &str = "s1-";

/// The revision of a target's pod template: Flagger's hash of it ([`flagger_hash`]), or, for a
/// template holding what that reproduction does not cover (a timestamp, managed fields), 16 hex
/// digits of the SHA-256 of its JSON form prefixed `s1-`. The configs the template uses are
/// tracked beside it (`status.trackedConfigs`), as Flagger does.
pub fn revision(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_value(template).unwrap_or_default();
    flagger_hash::template_hash(&json).unwrap_or_else(|| {
        let digest = Sha256::digest(serde_json::to_vec(&json).unwrap_or_default());
        format!("{HASH_PREFIX}{}", hex16(&digest))
    })
}

/// Whether the target is not the revision `status` last applied: its template (Flagger's
/// `HasTargetChanged`) or the configs it uses (`HaveDependenciesChanged`, an absent
/// `trackedConfigs` being none).
pub fn differs_from_applied(status: &CanaryStatus, revision: &str, tracked: &BTreeMap<String, String>) -> bool {
    status.last_applied_spec.as_deref() != Some(revision) || configs_differ(status, tracked)
}

/// Whether the target went back to the promoted template while its configs stayed as last
/// applied (a manual rollback: nothing to roll out, as Flagger's `hasSpecChanged`).
pub fn is_promoted(status: &CanaryStatus, revision: &str, tracked: &BTreeMap<String, String>) -> bool {
    status.last_promoted_spec.as_deref() == Some(revision) && !configs_differ(status, tracked)
}

fn configs_differ(status: &CanaryStatus, tracked: &BTreeMap<String, String>) -> bool {
    status.tracked_configs.as_ref().unwrap_or(&BTreeMap::new()) != tracked
}

/// `status.trackedConfigs` for the configs a template uses: a map even when empty, as Flagger
/// writes it (the webhooks' checksum tells an empty map from none).
pub fn tracked_configs_status(tracked: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    Some(tracked.clone())
}

/// Flagger's checksum of a ConfigMap's `data` or a Secret's `data` (its `checksum` in
/// pkg/canary/config_tracker.go): 16 hex digits of the SHA-256 of Go's JSON encoding of the map,
/// `null` when there is none. A ConfigMap's `binaryData`, which Flagger does not look at, is
/// appended when there is some, so that a change to it is a new revision too.
pub fn config_checksum(
    data: Option<&BTreeMap<String, String>>,
    binary_data: Option<&BTreeMap<String, String>>,
) -> String {
    let mut json = go_json_map(data);
    if let Some(binary) = binary_data.filter(|b| !b.is_empty()) {
        json.push_str(&go_json_map(Some(binary)));
    }
    hex16(&Sha256::digest(json.as_bytes()))
}

/// `json.Marshal` of a `map[string]string`: keys sorted, HTML characters escaped as Go does.
fn go_json_map(map: Option<&BTreeMap<String, String>>) -> String {
    let Some(map) = map else {
        return "null".to_string();
    };
    let mut json = String::from("{");
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        go_json_string(&mut json, key);
        json.push(':');
        go_json_string(&mut json, value);
    }
    json.push('}');
    json
}

fn go_json_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if u32::from(c) < 0x20 => {
                let byte = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[byte >> 4]));
                out.push(char::from(HEX[byte & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn hex16(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn status(applied: &str, promoted: &str, tracked: Option<&BTreeMap<String, String>>) -> CanaryStatus {
        CanaryStatus {
            last_applied_spec: Some(applied.into()),
            last_promoted_spec: Some(promoted.into()),
            tracked_configs: tracked.cloned(),
            ..Default::default()
        }
    }

    #[test]
    fn the_template_makes_the_revision() {
        assert_eq!(revision(&template("a:1")), revision(&template("a:1")));
        assert_ne!(revision(&template("a:1")), revision(&template("a:2")));
        assert!(!revision(&template("a:1")).starts_with(HASH_PREFIX));
    }

    #[test]
    fn a_template_flaggers_hash_does_not_cover_gets_serins() {
        let mut stamped = template("a:1");
        stamped.metadata = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            )),
            ..Default::default()
        });
        let hash = revision(&stamped);
        assert!(
            hash.starts_with(HASH_PREFIX) && hash.len() == HASH_PREFIX.len() + 16,
            "{hash}"
        );
    }

    #[test]
    fn a_new_template_or_new_configs_differ_from_the_applied_revision() {
        let configs = BTreeMap::from([("configmap/settings".to_string(), "1".to_string())]);
        let changed = BTreeMap::from([("configmap/settings".to_string(), "2".to_string())]);
        let none = BTreeMap::new();
        let applied = status("rev1", "rev0", Some(&configs));
        assert!(!differs_from_applied(&applied, "rev1", &configs));
        assert!(differs_from_applied(&applied, "rev2", &configs));
        assert!(differs_from_applied(&applied, "rev1", &changed));
        assert!(differs_from_applied(&applied, "rev1", &none));
        // No trackedConfigs is no configs, as Flagger's HasConfigChanged reads it.
        assert!(!differs_from_applied(&status("rev1", "rev0", None), "rev1", &none));
        assert!(differs_from_applied(&status("rev1", "rev0", None), "rev1", &configs));
    }

    #[test]
    fn back_at_the_promoted_template_with_the_same_configs_is_promoted() {
        let configs = BTreeMap::from([("configmap/settings".to_string(), "1".to_string())]);
        let changed = BTreeMap::from([("configmap/settings".to_string(), "2".to_string())]);
        let applied = status("rev1", "rev0", Some(&configs));
        assert!(is_promoted(&applied, "rev0", &configs));
        assert!(!is_promoted(&applied, "rev0", &changed));
        assert!(!is_promoted(&applied, "rev1", &configs));
    }

    /// Reference values: Flagger's `checksum` (Go's `json.Marshal`, then SHA-256) of the same maps.
    #[test]
    fn config_checksums_are_flaggers() {
        assert_eq!(config_checksum(None, None), "74234e98afe7498f");
        assert_eq!(config_checksum(Some(&BTreeMap::new()), None), "44136fa355b3678a");
        let data = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "<x & y>\n\t\"q\"\\ \u{2028} \u{1} é".to_string()),
        ]);
        assert_eq!(config_checksum(Some(&data), None), "1e851569c8aaaad5");
        // A Secret's data, base64 as its JSON form has it.
        let secret = BTreeMap::from([("token".to_string(), "c2VjcmV0".to_string())]);
        assert_eq!(config_checksum(Some(&secret), None), "011c264bcd8b7f69");
    }

    #[test]
    fn binary_data_changes_the_checksum_only_when_there_is_some() {
        let data = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let binary = |v: &str| BTreeMap::from([("b".to_string(), v.to_string())]);
        assert_eq!(
            config_checksum(Some(&data), Some(&BTreeMap::new())),
            config_checksum(Some(&data), None)
        );
        assert_ne!(
            config_checksum(Some(&data), Some(&binary("AA=="))),
            config_checksum(Some(&data), Some(&binary("AQ==")))
        );
    }
}
