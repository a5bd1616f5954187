//! The ConfigMaps and Secrets a target uses: observed (their data hashed into the revision) and
//! copied for the primary as `<name>-primary`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Resource};
use serin_api::Canary;
use serin_core::configs::{ConfigKind, ConfigRef, TRACKING_ANNOTATION, referenced, tracked_status};
use serin_core::naming::primary_name;
use serin_core::revision::config_checksum;

use crate::Error;
use crate::apply::apply;
use crate::context::Context;

enum Object {
    ConfigMap(ConfigMap),
    Secret(Secret),
}

struct TrackedConfig {
    reference: ConfigRef,
    hash: String,
    object: Object,
}

/// The configs of one revision of a target.
#[derive(Default)]
pub struct Tracked(Vec<TrackedConfig>);

impl Tracked {
    pub fn references(&self) -> BTreeSet<ConfigRef> {
        self.0.iter().map(|c| c.reference.clone()).collect()
    }

    /// `status.trackedConfigs`.
    pub fn status(&self) -> BTreeMap<String, String> {
        tracked_status(&self.0.iter().map(|c| (c.reference.clone(), c.hash.clone())).collect())
    }
}

/// Reads the configs `template` refers to. Missing ones (optional references) and those
/// annotated `flagger.app/config-tracking: disabled` are not tracked, nor any when tracking is off.
pub async fn observe(context: &Context, namespace: &str, template: &PodTemplateSpec) -> Result<Tracked, Error> {
    if !context.config.config_tracking {
        return Ok(Tracked::default());
    }
    let Some(spec) = template.spec.as_ref() else {
        return Ok(Tracked::default());
    };
    let config_maps = Api::<ConfigMap>::namespaced(context.client.clone(), namespace);
    let secrets = Api::<Secret>::namespaced(context.client.clone(), namespace);
    let mut tracked = Vec::new();
    for reference in referenced(spec) {
        let found = match reference.kind {
            ConfigKind::ConfigMap => config_maps.get_opt(&reference.name).await?.map(|config_map| {
                let binary_data = config_map.binary_data.as_ref().map(base64_values);
                let hash = config_checksum(config_map.data.as_ref(), binary_data.as_ref());
                (hash, Object::ConfigMap(config_map))
            }),
            ConfigKind::Secret => secrets.get_opt(&reference.name).await?.map(|secret| {
                let data = secret.data.as_ref().map(base64_values);
                (config_checksum(data.as_ref(), None), Object::Secret(secret))
            }),
        };
        let Some((hash, object)) = found else { continue };
        let opted_out = match &object {
            Object::ConfigMap(c) => tracking_disabled(&c.metadata),
            Object::Secret(s) => tracking_disabled(&s.metadata),
        };
        if !opted_out {
            tracked.push(TrackedConfig {
                reference,
                hash,
                object,
            });
        }
    }
    Ok(Tracked(tracked))
}

fn tracking_disabled(metadata: &ObjectMeta) -> bool {
    metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TRACKING_ANNOTATION))
        .is_some_and(|v| v == "disabled")
}

/// Creates or updates `<name>-primary` copies of the tracked configs, owned by the Canary.
pub async fn copy_to_primary(
    context: &Context,
    canary: &Canary,
    namespace: &str,
    tracked: &Tracked,
) -> Result<(), Error> {
    let owner = canary.controller_owner_ref(&()).ok_or(Error::MissingUid)?;
    let metadata = |original: &ObjectMeta| ObjectMeta {
        name: Some(primary_name(original.name.as_deref().unwrap_or_default())),
        namespace: Some(namespace.to_string()),
        labels: original.labels.clone(),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    };
    for config in &tracked.0 {
        match &config.object {
            Object::ConfigMap(original) => {
                let copy = ConfigMap {
                    metadata: metadata(&original.metadata),
                    data: original.data.clone(),
                    binary_data: original.binary_data.clone(),
                    immutable: None,
                };
                apply(&Api::<ConfigMap>::namespaced(context.client.clone(), namespace), &copy).await?;
            }
            Object::Secret(original) => {
                let copy = Secret {
                    metadata: metadata(&original.metadata),
                    data: original.data.clone(),
                    type_: original.type_.clone(),
                    ..Default::default()
                };
                apply(&Api::<Secret>::namespaced(context.client.clone(), namespace), &copy).await?;
            }
        }
    }
    Ok(())
}

/// Binary values as their JSON form has them (standard base64), which Flagger's checksum hashes.
fn base64_values(data: &BTreeMap<String, ByteString>) -> BTreeMap<String, String> {
    data.iter()
        .map(|(key, value)| {
            let encoded = serde_json::to_value(value)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (key.clone(), encoded)
        })
        .collect()
}
