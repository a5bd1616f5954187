//! The primary copy of a target Deployment: the revision that serves production traffic.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::configs::{ConfigRef, use_primary_copies};
use crate::naming::{SelectorLabel, primary_name};

/// Annotations that belong to the object they are on and must never be copied to another.
const OBJECT_OWN_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
];

pub struct PrimaryInputs<'a> {
    pub target: &'a Deployment,
    pub label: &'a SelectorLabel,
    /// `-include-label-prefix`: labels and annotations whose key starts with one of these are copied; `*` copies all.
    pub include_label_prefixes: &'a [String],
    pub owner: OwnerReference,
    /// Replicas of the primary as it is now, kept when the target has already been scaled to 0.
    pub current_primary_replicas: Option<i32>,
    /// An autoscaler manages the primary's replicas: once the primary exists, they are left alone.
    pub autoscaled: bool,
    /// Configs copied for the primary as `<name>-primary`; the primary's template uses the copies.
    pub tracked: &'a BTreeSet<ConfigRef>,
}

/// The primary Deployment: the target's pod template, with the selector label's value suffixed
/// `-primary` so the primary's pods are told apart from the canary's.
pub fn primary_deployment(inputs: &PrimaryInputs) -> Deployment {
    let target = inputs.target;
    let target_spec = target.spec.clone().unwrap_or_default();
    let label = inputs.label;

    let mut labels = copied(target.metadata.labels.as_ref(), inputs.include_label_prefixes);
    labels.insert(label.key.clone(), label.primary_value());
    let annotations = copied(target.metadata.annotations.as_ref(), inputs.include_label_prefixes);

    let template = primary_template(&target_spec.template, label, inputs.tracked);

    let target_replicas = target_spec.replicas.unwrap_or(1);
    let replicas = match (target_replicas, inputs.current_primary_replicas) {
        (_, Some(current)) if inputs.autoscaled => current,
        (0, Some(current)) if current > 0 => current,
        (0, _) => 1,
        (n, _) => n,
    };

    Deployment {
        metadata: ObjectMeta {
            name: Some(primary_name(target.metadata.name.as_deref().unwrap_or_default())),
            namespace: target.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![inputs.owner.clone()]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(label.primary_selector()),
                match_expressions: None,
            },
            template,
            paused: None,
            ..target_spec
        }),
        status: None,
    }
}

/// The primary's pod template: the target's, with the selector label's value suffixed
/// `-primary` and the tracked configs replaced by their `-primary` copies.
pub fn primary_template(
    template: &PodTemplateSpec,
    label: &SelectorLabel,
    tracked: &BTreeSet<ConfigRef>,
) -> PodTemplateSpec {
    let mut template = without_scale_to_zero(template);
    if let Some(spec) = template.spec.as_mut() {
        use_primary_copies(spec, tracked);
    }
    let metadata = template.metadata.get_or_insert_with(Default::default);
    metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(label.key.clone(), label.primary_value());
    template
}

/// The node selector that "scales a DaemonSet to zero": no node carries it, so no pod runs.
pub const SCALE_TO_ZERO: (&str, &str) = ("flagger.app/scale-to-zero", "true");

/// The template without serin's scale-to-zero node selector (what the user wrote).
pub fn without_scale_to_zero(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(spec) = template.spec.as_mut() {
        if let Some(selector) = spec.node_selector.as_mut() {
            selector.remove(SCALE_TO_ZERO.0);
        }
        if spec.node_selector.as_ref().is_some_and(|s| s.is_empty()) {
            spec.node_selector = None;
        }
    }
    template
}

/// The primary DaemonSet: as [`primary_deployment`], for a DaemonSet target.
pub fn primary_daemon_set(
    target: &DaemonSet,
    label: &SelectorLabel,
    include_label_prefixes: &[String],
    owner: OwnerReference,
    tracked: &BTreeSet<ConfigRef>,
) -> DaemonSet {
    let target_spec = target.spec.clone().unwrap_or_default();
    let mut labels = copied(target.metadata.labels.as_ref(), include_label_prefixes);
    labels.insert(label.key.clone(), label.primary_value());
    let annotations = copied(target.metadata.annotations.as_ref(), include_label_prefixes);
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(primary_name(target.metadata.name.as_deref().unwrap_or_default())),
            namespace: target.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(label.primary_selector()),
                match_expressions: None,
            },
            template: primary_template(&target_spec.template, label, tracked),
            ..target_spec
        }),
        status: None,
    }
}

/// Whether the primary runs the target's template, apart from the selector label's value, the
/// `-primary` copies of the tracked configs, and what Flagger changes in its primaries: the
/// `flagger-id` pod annotation and the dropped `*toolkit.fluxcd.io*` annotations (Flagger's
/// `makeAnnotations`, pkg/canary/util.go), so a primary Flagger made is recognised.
pub fn same_template(
    primary: &PodTemplateSpec,
    target: &PodTemplateSpec,
    label: &SelectorLabel,
    tracked: &BTreeSet<ConfigRef>,
) -> bool {
    let comparable = |template: &PodTemplateSpec| {
        let mut template = template.clone();
        if let Some(metadata) = template.metadata.as_mut() {
            if let Some(labels) = metadata.labels.as_mut() {
                labels.remove(&label.key);
            }
            if let Some(annotations) = metadata.annotations.as_mut() {
                annotations.retain(|key, _| key != FLAGGER_ID_ANNOTATION && !key.contains("toolkit.fluxcd.io"));
            }
            metadata.labels = metadata.labels.take().filter(|l| !l.is_empty());
            metadata.annotations = metadata.annotations.take().filter(|a| !a.is_empty());
        }
        template
    };
    let mut target_template = comparable(target);
    if let Some(spec) = target_template.spec.as_mut() {
        use_primary_copies(spec, tracked);
    }
    comparable(primary) == target_template
}

/// The pod annotation Flagger sets on its primaries to force a rolling update at promotion.
pub const FLAGGER_ID_ANNOTATION: &str = "flagger-id";

fn copied(from: Option<&BTreeMap<String, String>>, prefixes: &[String]) -> BTreeMap<String, String> {
    let included = |key: &str| {
        !OBJECT_OWN_ANNOTATIONS.contains(&key)
            && prefixes
                .iter()
                .any(|prefix| prefix == "*" || (!prefix.is_empty() && key.starts_with(prefix.as_str())))
    };
    from.into_iter()
        .flatten()
        .filter(|(k, _)| included(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn target(replicas: Option<i32>) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("podinfo".into()),
                namespace: Some("test".into()),
                labels: Some(map(&[
                    ("app", "podinfo"),
                    ("team.example.com/owner", "web"),
                    ("tier", "front"),
                ])),
                annotations: Some(map(&[("kubectl.kubernetes.io/last-applied-configuration", "{}")])),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas,
                selector: LabelSelector {
                    match_labels: Some(map(&[("app", "podinfo")])),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(map(&[("app", "podinfo"), ("v", "1")])),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "app".into(),
                            image: Some("podinfo:1".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                paused: Some(true),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn build(target: &Deployment, prefixes: &[&str], current: Option<i32>) -> Deployment {
        let prefixes: Vec<String> = prefixes.iter().map(|s| s.to_string()).collect();
        primary_deployment(&PrimaryInputs {
            target,
            label: &SelectorLabel {
                key: "app".into(),
                value: "podinfo".into(),
            },
            include_label_prefixes: &prefixes,
            owner: OwnerReference {
                name: "podinfo".into(),
                ..Default::default()
            },
            current_primary_replicas: current,
            autoscaled: false,
            tracked: &BTreeSet::new(),
        })
    }

    #[test]
    fn copies_the_template_and_relabels_the_selector() {
        let primary = build(&target(Some(3)), &[], None);
        assert_eq!(primary.metadata.name.as_deref(), Some("podinfo-primary"));
        assert_eq!(primary.metadata.namespace.as_deref(), Some("test"));
        assert_eq!(primary.metadata.labels, Some(map(&[("app", "podinfo-primary")])));
        assert_eq!(primary.metadata.annotations, None);
        let spec = primary.spec.expect("spec");
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.paused, None);
        assert_eq!(spec.selector.match_labels, Some(map(&[("app", "podinfo-primary")])));
        let template_labels = spec.template.metadata.and_then(|m| m.labels);
        assert_eq!(template_labels, Some(map(&[("app", "podinfo-primary"), ("v", "1")])));
        let image = spec.template.spec.and_then(|s| s.containers[0].image.clone());
        assert_eq!(image.as_deref(), Some("podinfo:1"));
    }

    #[test]
    fn a_daemon_set_primary_never_inherits_the_scale_to_zero_selector() {
        let mut target: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "agent", "namespace": "test", "labels": { "app": "agent" } },
            "spec": {
                "selector": { "matchLabels": { "app": "agent" } },
                "template": {
                    "metadata": { "labels": { "app": "agent" } },
                    "spec": { "containers": [{ "name": "agent", "image": "agent:1" }], "nodeSelector": { "flagger.app/scale-to-zero": "true" } }
                }
            }
        }))
        .expect("daemon set");
        let label = SelectorLabel {
            key: "app".into(),
            value: "agent".into(),
        };
        let primary = primary_daemon_set(&target, &label, &[], OwnerReference::default(), &BTreeSet::new());
        assert_eq!(primary.metadata.name.as_deref(), Some("agent-primary"));
        let spec = primary.spec.expect("spec");
        assert_eq!(spec.selector.match_labels, Some(map(&[("app", "agent-primary")])));
        assert_eq!(spec.template.spec.and_then(|s| s.node_selector), None);
        if let Some(pod) = target.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            pod.node_selector = Some(map(&[("disk", "ssd"), ("flagger.app/scale-to-zero", "true")]));
        }
        let template = without_scale_to_zero(&target.spec.expect("spec").template);
        assert_eq!(
            template.spec.and_then(|s| s.node_selector),
            Some(map(&[("disk", "ssd")]))
        );
    }

    #[test]
    fn copies_labels_by_prefix() {
        let only_team = build(&target(None), &["team.example.com/"], None);
        assert_eq!(
            only_team.metadata.labels,
            Some(map(&[("app", "podinfo-primary"), ("team.example.com/owner", "web")]))
        );
        let all = build(&target(None), &["*"], None);
        assert_eq!(
            all.metadata.labels,
            Some(map(&[
                ("app", "podinfo-primary"),
                ("team.example.com/owner", "web"),
                ("tier", "front")
            ]))
        );
        assert_eq!(
            all.metadata.annotations, None,
            "last-applied-configuration is never copied"
        );
    }

    #[test]
    fn the_primary_runs_the_target_template_until_the_target_changes() {
        let target = target(Some(2));
        let primary = build(&target, &[], None);
        let label = SelectorLabel {
            key: "app".into(),
            value: "podinfo".into(),
        };
        let template = |d: &Deployment| d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        assert!(same_template(
            &template(&primary),
            &template(&target),
            &label,
            &BTreeSet::new()
        ));
        let mut changed = target.clone();
        if let Some(spec) = changed.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            spec.containers[0].image = Some("podinfo:2".into());
        }
        assert!(!same_template(
            &template(&primary),
            &template(&changed),
            &label,
            &BTreeSet::new()
        ));
    }

    #[test]
    fn a_primary_flagger_made_is_recognised() {
        let mut target = target(Some(2));
        let primary = build(&target, &[], None);
        let label = SelectorLabel {
            key: "app".into(),
            value: "podinfo".into(),
        };
        let mut flaggers = primary.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        flaggers.metadata.get_or_insert_with(Default::default).annotations =
            Some(map(&[(FLAGGER_ID_ANNOTATION, "1b6c9a52-7a0e-4d35-9a5e-0c3d8f1e2a4b")]));
        let spec = target.spec.as_mut().expect("spec");
        spec.template.metadata.get_or_insert_with(Default::default).annotations =
            Some(map(&[("kustomize.toolkit.fluxcd.io/reconcile", "disabled")]));
        assert!(same_template(&flaggers, &spec.template, &label, &BTreeSet::new()));
    }

    #[test]
    fn replicas_survive_a_target_already_scaled_to_zero() {
        let cases = [
            (Some(3), None, 3),
            (None, None, 1),
            (Some(0), Some(4), 4),
            (Some(0), None, 1),
            (Some(2), Some(4), 2),
        ];
        for (target_replicas, current, expected) in cases {
            let primary = build(&target(target_replicas), &[], current);
            assert_eq!(
                primary.spec.and_then(|s| s.replicas),
                Some(expected),
                "{target_replicas:?} {current:?}"
            );
        }
    }

    #[test]
    fn an_autoscaled_primary_keeps_the_replicas_the_autoscaler_chose() {
        let target = target(Some(2));
        let build_autoscaled = |current| {
            primary_deployment(&PrimaryInputs {
                target: &target,
                label: &SelectorLabel {
                    key: "app".into(),
                    value: "podinfo".into(),
                },
                include_label_prefixes: &[],
                owner: OwnerReference::default(),
                current_primary_replicas: current,
                autoscaled: true,
                tracked: &BTreeSet::new(),
            })
        };
        assert_eq!(build_autoscaled(Some(7)).spec.and_then(|s| s.replicas), Some(7));
        assert_eq!(
            build_autoscaled(None).spec.and_then(|s| s.replicas),
            Some(2),
            "created from the target"
        );
    }
}
