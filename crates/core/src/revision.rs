//! Revision hashes: what `status.lastAppliedSpec` and `lastPromotedSpec` hold.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

use crate::configs::ConfigRef;

/// Prefix that marks a hash as serin's, so a status written by Flagger (plain hashes) is recognised.
pub const HASH_PREFIX: &str = "s1-";

/// The revision of a target: 16 hex digits of the SHA-256 of its pod template's JSON form and
/// of the hashes of the configs it tracks, prefixed `s1-`.
pub fn revision(template: &PodTemplateSpec, tracked: &BTreeMap<ConfigRef, String>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(template).unwrap_or_default());
    for (config, hash) in tracked {
        hasher.update(config.key().as_bytes());
        hasher.update(hash.as_bytes());
    }
    format!("{HASH_PREFIX}{}", hex16(&hasher.finalize()))
}

/// A hash of a ConfigMap's or Secret's data (maps with sorted keys).
pub fn data_hash<D: serde::Serialize>(data: &D) -> String {
    hex16(&Sha256::digest(serde_json::to_vec(data).unwrap_or_default()))
}

fn hex16(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub fn is_serin_hash(hash: &str) -> bool {
    hash.strip_prefix(HASH_PREFIX)
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configs::ConfigKind;
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

    fn tracked(hash: &str) -> BTreeMap<ConfigRef, String> {
        BTreeMap::from([(
            ConfigRef {
                kind: ConfigKind::ConfigMap,
                name: "settings".into(),
            },
            hash.to_string(),
        )])
    }

    #[test]
    fn the_template_and_the_configs_make_the_revision() {
        let none = BTreeMap::new();
        assert_eq!(revision(&template("a:1"), &none), revision(&template("a:1"), &none));
        assert_ne!(revision(&template("a:1"), &none), revision(&template("a:2"), &none));
        assert_ne!(
            revision(&template("a:1"), &tracked("x")),
            revision(&template("a:1"), &tracked("y"))
        );
        assert_ne!(
            revision(&template("a:1"), &none),
            revision(&template("a:1"), &tracked("x"))
        );
    }

    #[test]
    fn data_hashes_follow_the_data() {
        let data = |v: &str| BTreeMap::from([("key".to_string(), v.to_string())]);
        assert_eq!(data_hash(&data("a")), data_hash(&data("a")));
        assert_ne!(data_hash(&data("a")), data_hash(&data("b")));
    }

    #[test]
    fn recognises_its_own_format() {
        assert!(is_serin_hash(&revision(&template("a:1"), &BTreeMap::new())));
        assert!(!is_serin_hash("5d8f7b9c8"));
        assert!(!is_serin_hash("s1-xyz"));
    }
}
