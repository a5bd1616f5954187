//! Revision hashes: what `status.lastAppliedSpec` and `lastPromotedSpec` hold.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

/// Prefix that marks a hash as serin's, so a status written by Flagger (plain hashes) is recognised.
pub const HASH_PREFIX: &str = "s1-";

/// A stable hash of a pod template: 16 hex digits of the SHA-256 of its JSON form, prefixed `s1-`.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let digest = Sha256::digest(&json);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{HASH_PREFIX}{hex}")
}

pub fn is_serin_hash(hash: &str) -> bool {
    hash.strip_prefix(HASH_PREFIX)
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
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

    #[test]
    fn same_template_same_hash_different_template_different_hash() {
        assert_eq!(pod_template_hash(&template("a:1")), pod_template_hash(&template("a:1")));
        assert_ne!(pod_template_hash(&template("a:1")), pod_template_hash(&template("a:2")));
    }

    #[test]
    fn recognises_its_own_format() {
        assert!(is_serin_hash(&pod_template_hash(&template("a:1"))));
        assert!(!is_serin_hash("5d8f7b9c8"));
        assert!(!is_serin_hash("s1-xyz"));
    }
}
