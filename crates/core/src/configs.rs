//! ConfigMaps and Secrets a pod template uses: which they are, how the primary's copies are
//! named, and how the primary's template is rewritten to use the copies.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::naming::primary_name;

/// Annotation on a ConfigMap or Secret that keeps serin from tracking it.
pub const TRACKING_ANNOTATION: &str = "flagger.app/config-tracking";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    ConfigMap,
    Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigRef {
    pub kind: ConfigKind,
    pub name: String,
}

impl ConfigRef {
    /// The key of `status.trackedConfigs`: `configmap/<name>` or `secret/<name>`, as Flagger's
    /// `ConfigRef.GetName` (pkg/canary/config_tracker.go).
    pub fn key(&self) -> String {
        let kind = match self.kind {
            ConfigKind::ConfigMap => "configmap",
            ConfigKind::Secret => "secret",
        };
        format!("{kind}/{}", self.name)
    }
}

/// Every ConfigMap and Secret the pod spec refers to: volumes (also projected), `env` and
/// `envFrom`, of containers and init containers.
pub fn referenced(spec: &PodSpec) -> BTreeSet<ConfigRef> {
    let mut found = BTreeSet::new();
    let mut add = |kind, name: &str| {
        found.insert(ConfigRef {
            kind,
            name: name.to_string(),
        });
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.config_map.as_ref().map(|c| c.name.as_str()) {
            add(ConfigKind::ConfigMap, name);
        }
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            add(ConfigKind::Secret, name);
        }
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(name) = source.config_map.as_ref().map(|c| c.name.as_str()) {
                add(ConfigKind::ConfigMap, name);
            }
            if let Some(name) = source.secret.as_ref().map(|s| s.name.as_str()) {
                add(ConfigKind::Secret, name);
            }
        }
    }
    for container in containers(spec) {
        for env in container.env.iter().flatten() {
            let from = env.value_from.as_ref();
            if let Some(name) = from
                .and_then(|f| f.config_map_key_ref.as_ref())
                .map(|r| r.name.as_str())
            {
                add(ConfigKind::ConfigMap, name);
            }
            if let Some(name) = from.and_then(|f| f.secret_key_ref.as_ref()).map(|r| r.name.as_str()) {
                add(ConfigKind::Secret, name);
            }
        }
        for source in container.env_from.iter().flatten() {
            if let Some(name) = source.config_map_ref.as_ref().map(|r| r.name.as_str()) {
                add(ConfigKind::ConfigMap, name);
            }
            if let Some(name) = source.secret_ref.as_ref().map(|r| r.name.as_str()) {
                add(ConfigKind::Secret, name);
            }
        }
    }
    found
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers.iter().chain(spec.init_containers.iter().flatten())
}

/// `status.trackedConfigs` from each tracked config and the hash of its data.
pub fn tracked_status(tracked: &BTreeMap<ConfigRef, String>) -> BTreeMap<String, String> {
    tracked
        .iter()
        .map(|(config, hash)| (config.key(), hash.clone()))
        .collect()
}

/// Points the primary's pod spec at the `-primary` copies of the tracked configs.
pub fn use_primary_copies(spec: &mut PodSpec, tracked: &BTreeSet<ConfigRef>) {
    let rename = |kind: ConfigKind, name: &mut String| {
        if tracked.contains(&ConfigRef {
            kind,
            name: name.clone(),
        }) {
            *name = primary_name(name);
        }
    };
    for volume in spec.volumes.iter_mut().flatten() {
        if let Some(config_map) = volume.config_map.as_mut() {
            rename(ConfigKind::ConfigMap, &mut config_map.name);
        }
        if let Some(name) = volume.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
            rename(ConfigKind::Secret, name);
        }
        for source in volume.projected.iter_mut().flat_map(|p| p.sources.iter_mut().flatten()) {
            if let Some(config_map) = source.config_map.as_mut() {
                rename(ConfigKind::ConfigMap, &mut config_map.name);
            }
            if let Some(secret) = source.secret.as_mut() {
                rename(ConfigKind::Secret, &mut secret.name);
            }
        }
    }
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        for env in container.env.iter_mut().flatten() {
            if let Some(from) = env.value_from.as_mut() {
                if let Some(r) = from.config_map_key_ref.as_mut() {
                    rename(ConfigKind::ConfigMap, &mut r.name);
                }
                if let Some(r) = from.secret_key_ref.as_mut() {
                    rename(ConfigKind::Secret, &mut r.name);
                }
            }
        }
        for source in container.env_from.iter_mut().flatten() {
            if let Some(r) = source.config_map_ref.as_mut() {
                rename(ConfigKind::ConfigMap, &mut r.name);
            }
            if let Some(r) = source.secret_ref.as_mut() {
                rename(ConfigKind::Secret, &mut r.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> PodSpec {
        serde_json::from_value(json!({
            "containers": [{
                "name": "app",
                "env": [
                    { "name": "A", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "a" } } },
                    { "name": "B", "valueFrom": { "secretKeyRef": { "name": "db", "key": "password" } } },
                    { "name": "C", "value": "plain" }
                ],
                "envFrom": [{ "configMapRef": { "name": "env-config" } }]
            }],
            "initContainers": [{ "name": "init", "envFrom": [{ "secretRef": { "name": "init-secret" } }] }],
            "volumes": [
                { "name": "v1", "configMap": { "name": "files" } },
                { "name": "v2", "secret": { "secretName": "tls" } },
                { "name": "v3", "projected": { "sources": [{ "configMap": { "name": "projected-cm" } }, { "secret": { "name": "projected-secret" } }] } }
            ]
        }))
        .expect("pod spec")
    }

    fn config(kind: ConfigKind, name: &str) -> ConfigRef {
        ConfigRef {
            kind,
            name: name.into(),
        }
    }

    #[test]
    fn finds_every_reference() {
        let found = referenced(&spec());
        let expected: BTreeSet<ConfigRef> = [
            config(ConfigKind::ConfigMap, "settings"),
            config(ConfigKind::ConfigMap, "env-config"),
            config(ConfigKind::ConfigMap, "files"),
            config(ConfigKind::ConfigMap, "projected-cm"),
            config(ConfigKind::Secret, "db"),
            config(ConfigKind::Secret, "init-secret"),
            config(ConfigKind::Secret, "tls"),
            config(ConfigKind::Secret, "projected-secret"),
        ]
        .into_iter()
        .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn rewrites_tracked_references_only() {
        let mut spec = spec();
        let tracked: BTreeSet<ConfigRef> = [
            config(ConfigKind::ConfigMap, "settings"),
            config(ConfigKind::Secret, "tls"),
            config(ConfigKind::ConfigMap, "projected-cm"),
        ]
        .into_iter()
        .collect();
        use_primary_copies(&mut spec, &tracked);
        let found = referenced(&spec);
        assert!(found.contains(&config(ConfigKind::ConfigMap, "settings-primary")));
        assert!(found.contains(&config(ConfigKind::Secret, "tls-primary")));
        assert!(found.contains(&config(ConfigKind::ConfigMap, "projected-cm-primary")));
        assert!(
            found.contains(&config(ConfigKind::Secret, "db")),
            "untracked references stay"
        );
        assert!(!found.contains(&config(ConfigKind::ConfigMap, "settings")));
    }

    #[test]
    fn status_keys_name_the_kind() {
        let tracked = BTreeMap::from([(config(ConfigKind::Secret, "db"), "abc".to_string())]);
        assert_eq!(
            tracked_status(&tracked),
            BTreeMap::from([("secret/db".to_string(), "abc".to_string())])
        );
    }
}
