//! Names and labels of the objects serin generates for a Canary.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The field manager of everything serin writes with server-side apply, and of its patches.
pub const FIELD_MANAGER: &str = "serin";

/// Labels looked up, in order, in the target's selector when `-selector-labels` is not given.
pub const DEFAULT_SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

pub fn primary_name(target: &str) -> String {
    format!("{target}-primary")
}

pub fn canary_service_name(service: &str) -> String {
    format!("{service}-canary")
}

/// The label that tells the primary's pods from the canary's: its key and the target's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorLabel {
    pub key: String,
    pub value: String,
}

impl SelectorLabel {
    /// The value the primary's pods carry.
    pub fn primary_value(&self) -> String {
        primary_name(&self.value)
    }

    pub fn primary_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(self.key.clone(), self.primary_value())])
    }

    pub fn canary_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(self.key.clone(), self.value.clone())])
    }
}

/// The first of `candidates` present in the target's selector.
pub fn selector_label(match_labels: &BTreeMap<String, String>, candidates: &[String]) -> Option<SelectorLabel> {
    candidates.iter().find_map(|key| {
        match_labels.get(key).map(|value| SelectorLabel {
            key: key.clone(),
            value: value.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn defaults() -> Vec<String> {
        DEFAULT_SELECTOR_LABELS.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_the_first_candidate_present() {
        let cases = [
            (labels(&[("app", "podinfo")]), Some(("app", "podinfo"))),
            (
                labels(&[("name", "n"), ("app.kubernetes.io/name", "k")]),
                Some(("name", "n")),
            ),
            (
                labels(&[("app.kubernetes.io/name", "k"), ("tier", "web")]),
                Some(("app.kubernetes.io/name", "k")),
            ),
            (labels(&[("tier", "web")]), None),
        ];
        for (match_labels, expected) in cases {
            let got = selector_label(&match_labels, &defaults());
            let expected = expected.map(|(k, v)| SelectorLabel {
                key: k.into(),
                value: v.into(),
            });
            assert_eq!(got, expected, "for {match_labels:?}");
        }
    }

    #[test]
    fn primary_and_canary_select_different_pods() {
        let label = SelectorLabel {
            key: "app".into(),
            value: "podinfo".into(),
        };
        assert_eq!(label.primary_selector(), labels(&[("app", "podinfo-primary")]));
        assert_eq!(label.canary_selector(), labels(&[("app", "podinfo")]));
    }
}

/// The Canary other than the one with `canary_uid` that controls an object, by name: a target
/// can have only one Canary, and serin never takes an object another Canary controls.
pub fn controlled_by_other_canary(owners: &[OwnerReference], canary_uid: &str) -> Option<String> {
    owners
        .iter()
        .find(|owner| {
            owner.controller == Some(true)
                && owner.kind == "Canary"
                && owner.api_version.starts_with("flagger.app/")
                && owner.uid != canary_uid
        })
        .map(|owner| owner.name.clone())
}

#[cfg(test)]
mod ownership_tests {
    use super::*;

    fn owner(kind: &str, uid: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: "flagger.app/v1beta1".into(),
            kind: kind.into(),
            name: format!("{kind}-{uid}"),
            uid: uid.into(),
            controller: Some(controller),
            ..Default::default()
        }
    }

    #[test]
    fn another_canarys_objects_are_recognised() {
        assert_eq!(controlled_by_other_canary(&[], "a"), None);
        assert_eq!(controlled_by_other_canary(&[owner("Canary", "a", true)], "a"), None);
        assert_eq!(
            controlled_by_other_canary(&[owner("Canary", "b", true)], "a"),
            Some("Canary-b".into())
        );
        assert_eq!(controlled_by_other_canary(&[owner("Canary", "b", false)], "a"), None);
        assert_eq!(controlled_by_other_canary(&[owner("ReplicaSet", "b", true)], "a"), None);
    }
}
