//! The CustomResourceDefinitions serin installs, as `serin crds` prints them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{CustomResourceDefinition, JSONSchemaProps};
use kube::CustomResourceExt;

use crate::{AlertProvider, Canary, MetricTemplate};

pub const LEGACY_VERSION: &str = "v1alpha3";
pub const LEGACY_DEPRECATION_WARNING: &str =
    "flagger.app/v1alpha3 Canary is deprecated; use flagger.app/v1beta1 (rename canaryAnalysis to analysis)";

/// The three CRDs, Canary first.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![canary(), MetricTemplate::crd(), AlertProvider::crd()];
    crds.iter_mut().for_each(declare_object_meta_fields);
    crds
}

/// Declares `apiVersion`, `kind` and `metadata` in every version's schema, as Flagger's CRDs do,
/// so tools that read the schema (editors, kubeconform) know them.
fn declare_object_meta_fields(crd: &mut CustomResourceDefinition) {
    let typed = |type_: &str| JSONSchemaProps {
        type_: Some(type_.to_string()),
        ..Default::default()
    };
    for version in &mut crd.spec.versions {
        let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) else {
            continue;
        };
        let properties = schema.properties.get_or_insert_with(Default::default);
        properties
            .entry("apiVersion".to_string())
            .or_insert_with(|| typed("string"));
        properties.entry("kind".to_string()).or_insert_with(|| typed("string"));
        properties
            .entry("metadata".to_string())
            .or_insert_with(|| typed("object"));
    }
}

/// The Canary CRD, serving `v1beta1` (storage) and the deprecated `v1alpha3`. The two schemas are
/// identical (v1alpha3 manifests differ only by `canaryAnalysis`, which both accept), so the API
/// server converts between them by changing the apiVersion alone.
pub fn canary() -> CustomResourceDefinition {
    let mut crd = Canary::crd();
    let mut legacy = crd.spec.versions[0].clone();
    legacy.name = LEGACY_VERSION.to_string();
    legacy.storage = false;
    legacy.deprecated = Some(true);
    legacy.deprecation_warning = Some(LEGACY_DEPRECATION_WARNING.to_string());
    crd.spec.versions.push(legacy);
    crd
}

/// All CRDs as one multi-document YAML stream.
pub fn to_yaml() -> Result<String, serde_norway::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&crd)?);
    }
    Ok(out)
}
