//! The primary's HorizontalPodAutoscaler: a copy of the target's, scaling the primary.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
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
}
