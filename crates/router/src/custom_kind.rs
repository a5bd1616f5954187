//! A provider's custom resource kind, written with server-side apply, whose absence from the
//! cluster is reported as the CRD to install; a routing object that existed before the Canary is
//! taken over without an owner and given back.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use serin_api::Canary;
use serin_core::naming::FIELD_MANAGER;

use super::Error;

/// Where the spec an adopted object had before the Canary is kept (Flagger's annotation for the
/// VirtualServices it takes over).
pub const ORIGINAL_CONFIGURATION: &str = "flagger.kubernetes.app/original-configuration";

pub struct CustomKind {
    pub resource: ApiResource,
    /// Who publishes the CRD, for the message when it is missing.
    provider: &'static str,
}

impl CustomKind {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, provider: &'static str) -> CustomKind {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        CustomKind {
            resource: ApiResource::from_gvk_with_plural(&gvk, plural),
            provider,
        }
    }

    pub fn api(&self, client: &Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.resource)
    }

    /// A 404 on the whole kind means the CRD is not installed: said so, naming it.
    pub fn error(&self, error: kube::Error) -> Error {
        match &error {
            kube::Error::Api(response) if response.code == 404 => Error::MissingCrd {
                kind: self.resource.kind.clone(),
                crd: format!("{}.{}", self.resource.plural, self.resource.group),
                provider: self.provider,
            },
            _ => Error::Kube(error),
        }
    }

    pub async fn get(&self, client: &Client, namespace: &str, name: &str) -> Result<Option<DynamicObject>, Error> {
        self.api(client, namespace)
            .get_opt(name)
            .await
            .map_err(|e| self.error(e))
    }

    /// The object of this kind named after the Canary's apex Service, in the Canary's namespace.
    pub async fn get_apex(&self, client: &Client, canary: &Canary) -> Result<Option<DynamicObject>, Error> {
        let namespace = canary.namespace().ok_or(Error::MissingNamespace)?;
        self.get(client, &namespace, canary.spec.service_name()).await
    }

    /// Applies `object` (apiVersion and kind are this kind's), taking over the fields it sets.
    pub async fn apply(&self, client: &Client, namespace: &str, mut object: Value) -> Result<(), Error> {
        object["apiVersion"] = Value::String(self.resource.api_version.clone());
        object["kind"] = Value::String(self.resource.kind.clone());
        object["metadata"]["namespace"] = Value::String(namespace.to_string());
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let object: DynamicObject = serde_json::from_value(object).map_err(Error::Serialize)?;
        self.api(client, namespace)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Applies `object` as the Canary's routing object, owned by `owner`. One that exists without
    /// the Canary among its owners was the user's: it is taken over without an owner (deleting
    /// the Canary must not delete it) and its spec from before is kept in
    /// ORIGINAL_CONFIGURATION for `give_back`.
    pub async fn apply_routing(
        &self,
        client: &Client,
        namespace: &str,
        canary: &Canary,
        owner: &Value,
        mut object: Value,
    ) -> Result<(), Error> {
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let uid = canary.metadata.uid.as_deref();
        match self.get(client, namespace, &name).await? {
            Some(existing) if !existing.owner_references().iter().any(|o| Some(o.uid.as_str()) == uid) => {
                let original = existing
                    .annotations()
                    .get(ORIGINAL_CONFIGURATION)
                    .cloned()
                    .unwrap_or_else(|| existing.data["spec"].to_string());
                object["metadata"]["annotations"][ORIGINAL_CONFIGURATION] = json!(original);
            }
            _ => object["metadata"]["ownerReferences"] = json!([owner]),
        }
        self.apply(client, namespace, object).await
    }

    /// Puts back the spec an adopted object `name` had before the Canary, and drops what serin
    /// set on it; one serin created is owned by the Canary and goes with it.
    pub async fn give_back(&self, client: &Client, namespace: &str, name: &str) -> Result<(), Error> {
        let Some(existing) = self.get(client, namespace, name).await? else {
            return Ok(());
        };
        let Some(original) = existing
            .annotations()
            .get(ORIGINAL_CONFIGURATION)
            .and_then(|a| serde_json::from_str::<Value>(a).ok())
        else {
            return Ok(());
        };
        self.apply(
            client,
            namespace,
            json!({ "metadata": { "name": name }, "spec": original }),
        )
        .await
    }
}
