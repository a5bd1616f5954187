//! The primary's HorizontalPodAutoscaler: a copy of the target's, scaling the primary.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Value, json};
use serin_api::canary::ScalerReplicas;

use crate::naming::primary_name;

/// `<hpa>-primary`: the target's HPA spec aimed at `<target>-primary`, with the replica bounds
/// of `autoscalerRef.primaryScalerReplicas` where set.
pub fn primary_hpa(
    hpa: &HorizontalPodAutoscaler,
    target: &str,
    overrides: Option<&ScalerReplicas>,
    owner: OwnerReference,
) -> HorizontalPodAutoscaler {
    let mut spec = hpa.spec.clone();
    spec.scale_target_ref.name = primary_name(target);
    if let Some(min) = overrides.and_then(|o| o.min_replicas) {
        spec.min_replicas = Some(min);
    }
    if let Some(max) = overrides.and_then(|o| o.max_replicas) {
        spec.max_replicas = max;
    }
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(primary_name(hpa.metadata.name.as_deref().unwrap_or(target))),
            namespace: hpa.metadata.namespace.clone(),
            labels: hpa.metadata.labels.clone(),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// KEDA's annotation that pauses a ScaledObject at a replica count.
pub const KEDA_PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

/// `<scaledobject>-primary`: the target's KEDA ScaledObject aimed at `<target>-primary`, its
/// triggers' queries replaced by `autoscalerRef.primaryScalerQueries` (by trigger name), and
/// without the pause annotation serin puts on the target's.
pub fn primary_scaled_object(
    scaled_object: &Value,
    target: &str,
    queries: Option<&BTreeMap<String, String>>,
    owner: &OwnerReference,
) -> Value {
    let name = scaled_object["metadata"]["name"].as_str().unwrap_or(target);
    let mut spec = scaled_object["spec"].clone();
    spec["scaleTargetRef"]["name"] = json!(primary_name(target));
    if let (Some(queries), Some(triggers)) = (queries, spec["triggers"].as_array_mut()) {
        for trigger in triggers {
            let replacement = trigger["name"].as_str().and_then(|n| queries.get(n)).cloned();
            if let Some(query) = replacement {
                trigger["metadata"]["query"] = json!(query);
            }
        }
    }
    let mut metadata = json!({
        "name": primary_name(name),
        "namespace": scaled_object["metadata"]["namespace"],
        "ownerReferences": [owner],
    });
    if let Some(labels) = scaled_object["metadata"].get("labels") {
        metadata["labels"] = labels.clone();
    }
    json!({ "apiVersion": scaled_object["apiVersion"], "kind": "ScaledObject", "metadata": metadata, "spec": spec })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn copies_the_spec_for_the_primary() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "test" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
                "minReplicas": 2, "maxReplicas": 4,
                "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } } }]
            }
        }))
        .expect("hpa");
        let primary = primary_hpa(&hpa, "web", None, OwnerReference::default());
        assert_eq!(primary.metadata.name.as_deref(), Some("web-primary"));
        let spec = primary.spec.clone();
        assert_eq!(spec.scale_target_ref.name, "web-primary");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 4));
        assert_eq!(spec.metrics, hpa.spec.metrics);

        let overrides = ScalerReplicas {
            min_replicas: Some(1),
            max_replicas: Some(10),
        };
        let primary = primary_hpa(&primary, "web", Some(&overrides), OwnerReference::default());
        let spec = primary.spec;
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 10));
    }

    #[test]
    fn copies_a_scaled_object_for_the_primary_with_its_own_queries() {
        let scaled_object = json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": { "name": "web-so", "namespace": "test", "annotations": { "autoscaling.keda.sh/paused-replicas": "0" } },
            "spec": {
                "scaleTargetRef": { "name": "web" },
                "minReplicaCount": 1,
                "triggers": [
                    { "type": "prometheus", "name": "requests", "metadata": { "query": "sum(rate(x{deployment=\"web\"}[1m]))", "threshold": "10" } },
                    { "type": "cpu", "metadata": { "value": "80" } }
                ]
            }
        });
        let queries = BTreeMap::from([(
            "requests".to_string(),
            "sum(rate(x{deployment=\"web-primary\"}[1m]))".to_string(),
        )]);
        let primary = primary_scaled_object(&scaled_object, "web", Some(&queries), &OwnerReference::default());
        assert_eq!(primary["metadata"]["name"], json!("web-so-primary"));
        assert_eq!(
            primary["metadata"].get("annotations"),
            None,
            "the pause stays on the target's"
        );
        assert_eq!(primary["spec"]["scaleTargetRef"]["name"], json!("web-primary"));
        assert_eq!(
            primary["spec"]["triggers"][0]["metadata"]["query"],
            json!("sum(rate(x{deployment=\"web-primary\"}[1m]))")
        );
        assert_eq!(primary["spec"]["triggers"][0]["metadata"]["threshold"], json!("10"));
        assert_eq!(primary["spec"]["triggers"][1], scaled_object["spec"]["triggers"][1]);
        assert_eq!(primary["spec"]["minReplicaCount"], json!(1));
    }
}
