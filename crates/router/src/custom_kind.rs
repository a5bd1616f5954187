//! A provider's custom resource kind, written with server-side apply, whose absence from the
//! cluster is reported as the CRD to install.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use serin_api::Canary;
use serin_core::naming::FIELD_MANAGER;

use super::Error;

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
}
