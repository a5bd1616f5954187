//! Manual approval gates, keyed by canary name and namespace: the confirm gate (`/gate/*`) and
//! the rollback gate (`/rollback/*`), closed until opened. Kept in a ConfigMap so a restarted
//! load tester keeps them (Flagger's keeps them in memory and silently forgets them), or in
//! memory for compatibility.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// `/gate/*`: confirm-rollout, confirm-promotion and confirm-traffic-increase hooks ask it.
    Confirm,
    /// `/rollback/*`: rollback hooks ask it.
    Rollback,
}

impl Gate {
    fn key(self, namespace: &str, name: &str) -> String {
        let kind = match self {
            Gate::Confirm => "gate",
            Gate::Rollback => "rollback",
        };
        format!("{namespace}.{name}.{kind}")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the gate store in ConfigMap {namespace}/{name} failed: {source}")]
pub struct StoreError {
    namespace: String,
    name: String,
    source: kube::Error,
}

pub enum GateStore {
    Memory {
        gates: Mutex<BTreeMap<String, bool>>,
        /// Why the gates are in memory when a ConfigMap was asked for.
        fallback: Option<String>,
    },
    /// One key per gate (`<namespace>.<name>.gate`: "open") in a ConfigMap.
    ConfigMap(Box<ConfigMapStore>),
}

pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
}

impl ConfigMapStore {
    fn error(&self, source: kube::Error) -> StoreError {
        StoreError {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    async fn get(&self, key: &str) -> Result<bool, StoreError> {
        let config_map = self.api.get_opt(&self.name).await.map_err(|e| self.error(e))?;
        Ok(config_map
            .and_then(|c| c.data)
            .and_then(|d| d.get(key).cloned())
            .as_deref()
            == Some("open"))
    }

    /// Merge-patches the one key, creating the ConfigMap on first use.
    async fn set(&self, key: String, open: bool) -> Result<(), StoreError> {
        let value = if open { "open" } else { "closed" };
        let patch = json!({ "data": { key.clone(): value } });
        match self
            .api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                let config_map = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([(key, value.to_string())])),
                    ..Default::default()
                };
                self.api
                    .create(&PostParams::default(), &config_map)
                    .await
                    .map_err(|e| self.error(e))?;
                Ok(())
            }
            Err(error) => Err(self.error(error)),
        }
    }
}

impl GateStore {
    pub fn memory() -> GateStore {
        GateStore::Memory {
            gates: Mutex::default(),
            fallback: None,
        }
    }

    /// Gates in memory, though a ConfigMap was asked for, because of `why`.
    pub fn memory_because(why: String) -> GateStore {
        tracing::warn!("gates are kept in memory and lost on restart: {why}");
        GateStore::Memory {
            gates: Mutex::default(),
            fallback: Some(why),
        }
    }

    /// The ConfigMap store, if the load tester may read that ConfigMap; in memory otherwise (as
    /// Flagger's load tester, whose install grants no ConfigMap access), saying why. Any other
    /// failure (the API server not reachable yet) keeps the ConfigMap: it is retried per call.
    pub async fn config_map_if_allowed(client: Client, namespace: &str, name: &str) -> GateStore {
        let store = ConfigMapStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            name: name.into(),
        };
        match store.api.get_opt(name).await {
            Err(kube::Error::Api(status)) if status.code == 401 || status.code == 403 => {
                GateStore::memory_because(format!(
                    "ConfigMap {namespace}/{name} may not be read ({}); grant get, create and patch on it to keep gates across restarts",
                    status.message
                ))
            }
            _ => GateStore::ConfigMap(Box::new(store)),
        }
    }

    /// Why the gates are in memory although a ConfigMap was asked for.
    pub fn fallback(&self) -> Option<&str> {
        match self {
            GateStore::Memory { fallback, .. } => fallback.as_deref(),
            GateStore::ConfigMap(_) => None,
        }
    }

    pub fn config_map(client: Client, namespace: &str, name: &str) -> GateStore {
        GateStore::ConfigMap(Box::new(ConfigMapStore {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            name: name.into(),
        }))
    }

    pub async fn is_open(&self, gate: Gate, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let key = gate.key(namespace, name);
        match self {
            GateStore::Memory { gates, .. } => Ok(gates
                .lock()
                .map(|g| g.get(&key).copied().unwrap_or(false))
                .unwrap_or(false)),
            GateStore::ConfigMap(store) => store.get(&key).await,
        }
    }

    pub async fn set(&self, gate: Gate, namespace: &str, name: &str, open: bool) -> Result<(), StoreError> {
        let key = gate.key(namespace, name);
        match self {
            GateStore::Memory { gates, .. } => {
                if let Ok(mut gates) = gates.lock() {
                    gates.insert(key, open);
                }
                Ok(())
            }
            GateStore::ConfigMap(store) => store.set(key, open).await,
        }
    }
}
