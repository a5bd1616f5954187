//! Server-side apply of the objects serin owns.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use crate::Error;

pub use serin_core::naming::FIELD_MANAGER;

/// Creates or updates an object serin owns, with server-side apply.
pub async fn apply<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&object.name_any(), &params, &Patch::Apply(object)).await?)
}
