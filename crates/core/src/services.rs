//! The ClusterIP Services of a Canary: `<svc>` (the apex users call), `<svc>-primary` and `<svc>-canary`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serin_api::CanarySpec;
use serin_api::service::{CustomMetadata, TrafficDistribution};

use crate::naming::{SelectorLabel, canary_service_name, primary_name};

/// Annotations that keep Flux from reverting the Services serin manages.
pub const FLUX_ANNOTATIONS: [(&str, &str); 2] = [
    ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
    ("helm.toolkit.fluxcd.io/driftDetection", "disabled"),
];

pub struct ServiceInputs<'a> {
    pub spec: &'a CanarySpec,
    pub namespace: &'a str,
    pub label: &'a SelectorLabel,
    pub owner: OwnerReference,
    /// The target's pod template, for `portDiscovery`.
    pub template: &'a PodTemplateSpec,
}

/// The apex, primary and canary Services, in that order. The apex selects the primary's pods.
pub fn services(inputs: &ServiceInputs) -> [Service; 3] {
    let name = inputs.spec.service_name();
    let service = &inputs.spec.service;
    let primary_selector = inputs.label.primary_selector();
    [
        build(
            inputs,
            name.to_string(),
            primary_selector.clone(),
            service.apex.as_ref(),
            false,
        ),
        build(
            inputs,
            primary_name(name),
            primary_selector,
            service.primary.as_ref(),
            true,
        ),
        build(
            inputs,
            canary_service_name(name),
            inputs.label.canary_selector(),
            service.canary.as_ref(),
            true,
        ),
    ]
}

/// The apex Service given back to the target when its Canary is deleted with
/// `revertOnDeletion`: it selects the target's pods and no longer belongs to the Canary.
pub fn reverted_apex(inputs: &ServiceInputs) -> Service {
    let name = inputs.spec.service_name();
    let mut apex = build(
        inputs,
        name.to_string(),
        inputs.label.canary_selector(),
        inputs.spec.service.apex.as_ref(),
        false,
    );
    apex.metadata.owner_references = Some(Vec::new());
    apex
}

fn build(
    inputs: &ServiceInputs,
    name: String,
    selector: BTreeMap<String, String>,
    custom: Option<&CustomMetadata>,
    may_be_headless: bool,
) -> Service {
    let service = &inputs.spec.service;
    let mut labels = BTreeMap::from([(inputs.label.key.clone(), name.clone())]);
    let mut annotations: BTreeMap<String, String> = FLUX_ANNOTATIONS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(custom) = custom {
        labels.extend(custom.labels.clone().unwrap_or_default());
        annotations.extend(custom.annotations.clone().unwrap_or_default());
    }
    let headless = may_be_headless && service.headless == Some(true);
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(inputs.namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![inputs.owner.clone()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: headless.then(|| "None".to_string()),
            selector: Some(selector),
            ports: Some(ports(inputs)),
            traffic_distribution: service
                .traffic_distribution
                .map(|d| traffic_distribution(d).to_string()),
            ..Default::default()
        }),
        status: None,
    }
}

fn traffic_distribution(distribution: TrafficDistribution) -> &'static str {
    match distribution {
        TrafficDistribution::PreferClose => "PreferClose",
        TrafficDistribution::PreferSameZone => "PreferSameZone",
        TrafficDistribution::PreferSameNode => "PreferSameNode",
    }
}

fn ports(inputs: &ServiceInputs) -> Vec<ServicePort> {
    let service = &inputs.spec.service;
    let target_port = service.target_port.clone().unwrap_or(IntOrString::Int(service.port));
    let mut ports = vec![ServicePort {
        name: Some(
            service
                .port_name
                .clone()
                .unwrap_or_else(|| serin_api::canary::defaults::PORT_NAME.to_string()),
        ),
        protocol: Some("TCP".into()),
        port: service.port,
        target_port: Some(target_port.clone()),
        app_protocol: service.app_protocol.clone(),
        ..Default::default()
    }];
    if service.port_discovery == Some(true) {
        ports.extend(discovered_ports(inputs.template, service.port, &target_port));
    }
    ports
}

/// Every other TCP container port of the target, exposed under its own number.
fn discovered_ports(template: &PodTemplateSpec, main_port: i32, main_target: &IntOrString) -> Vec<ServicePort> {
    let containers = template.spec.iter().flat_map(|spec| spec.containers.iter());
    let mut seen = vec![main_port];
    let mut ports = Vec::new();
    for port in containers.flat_map(|c| c.ports.iter().flatten()) {
        let is_main = match main_target {
            IntOrString::Int(n) => port.container_port == *n,
            IntOrString::String(name) => port.name.as_deref() == Some(name.as_str()),
        };
        let tcp = port.protocol.as_deref().unwrap_or("TCP") == "TCP";
        if is_main || !tcp || seen.contains(&port.container_port) {
            continue;
        }
        seen.push(port.container_port);
        ports.push(ServicePort {
            name: Some(
                port.name
                    .clone()
                    .unwrap_or_else(|| format!("tcp-{}", port.container_port)),
            ),
            protocol: Some("TCP".into()),
            port: port.container_port,
            target_port: Some(IntOrString::Int(port.container_port)),
            ..Default::default()
        });
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
    use serin_api::canary::TargetRef;
    use serin_api::service::CanaryService;

    fn spec(service: CanaryService) -> CanarySpec {
        CanarySpec {
            provider: None,
            metrics_server: None,
            target_ref: TargetRef {
                name: "podinfo".into(),
                ..Default::default()
            },
            autoscaler_ref: None,
            ingress_ref: None,
            route_ref: None,
            upstream_ref: None,
            service,
            analysis: None,
            canary_analysis: None,
            progress_deadline_seconds: None,
            skip_analysis: None,
            suspend: None,
            revert_on_deletion: None,
        }
    }

    fn template() -> PodTemplateSpec {
        let port = |name: Option<&str>, n: i32| ContainerPort {
            name: name.map(String::from),
            container_port: n,
            ..Default::default()
        };
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    ports: Some(vec![
                        port(Some("http"), 9898),
                        port(Some("grpc"), 9999),
                        port(None, 8080),
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn build(spec: &CanarySpec) -> [Service; 3] {
        services(&ServiceInputs {
            spec,
            namespace: "test",
            label: &SelectorLabel {
                key: "app".into(),
                value: "podinfo".into(),
            },
            owner: OwnerReference::default(),
            template: &template(),
        })
    }

    fn selector(s: &Service) -> BTreeMap<String, String> {
        s.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default()
    }

    #[test]
    fn apex_and_primary_select_the_primary_canary_the_target() {
        let spec = spec(CanaryService {
            port: 9898,
            ..Default::default()
        });
        let [apex, primary, canary] = build(&spec);
        assert_eq!(apex.metadata.name.as_deref(), Some("podinfo"));
        assert_eq!(primary.metadata.name.as_deref(), Some("podinfo-primary"));
        assert_eq!(canary.metadata.name.as_deref(), Some("podinfo-canary"));
        let primary_pods = BTreeMap::from([("app".to_string(), "podinfo-primary".to_string())]);
        assert_eq!(selector(&apex), primary_pods);
        assert_eq!(selector(&primary), primary_pods);
        assert_eq!(
            selector(&canary),
            BTreeMap::from([("app".to_string(), "podinfo".to_string())])
        );
        for service in [&apex, &primary, &canary] {
            let annotations = service.metadata.annotations.clone().unwrap_or_default();
            assert_eq!(
                annotations
                    .get("kustomize.toolkit.fluxcd.io/reconcile")
                    .map(String::as_str),
                Some("disabled")
            );
            assert_eq!(
                annotations
                    .get("helm.toolkit.fluxcd.io/driftDetection")
                    .map(String::as_str),
                Some("disabled")
            );
            let port = &service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default()[0];
            assert_eq!((port.name.as_deref(), port.port), (Some("http"), 9898));
            assert_eq!(port.target_port, Some(IntOrString::Int(9898)));
        }
    }

    #[test]
    fn the_reverted_apex_selects_the_target_and_has_no_owner() {
        let spec = spec(CanaryService {
            port: 9898,
            ..Default::default()
        });
        let apex = reverted_apex(&ServiceInputs {
            spec: &spec,
            namespace: "test",
            label: &SelectorLabel {
                key: "app".into(),
                value: "podinfo".into(),
            },
            owner: OwnerReference {
                name: "podinfo".into(),
                ..Default::default()
            },
            template: &template(),
        });
        assert_eq!(apex.metadata.name.as_deref(), Some("podinfo"));
        assert_eq!(
            selector(&apex),
            BTreeMap::from([("app".to_string(), "podinfo".to_string())])
        );
        assert_eq!(apex.metadata.owner_references, Some(vec![]));
    }

    #[test]
    fn custom_name_port_and_metadata() {
        let spec = spec(CanaryService {
            name: Some("web".into()),
            port: 80,
            port_name: Some("web".into()),
            target_port: Some(IntOrString::String("http".into())),
            apex: Some(CustomMetadata {
                labels: Some(BTreeMap::from([("x".into(), "y".into())])),
                annotations: None,
            }),
            headless: Some(true),
            ..Default::default()
        });
        let [apex, primary, canary] = build(&spec);
        assert_eq!(apex.metadata.name.as_deref(), Some("web"));
        assert_eq!(canary.metadata.name.as_deref(), Some("web-canary"));
        assert_eq!(
            apex.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("x"))
                .map(String::as_str),
            Some("y")
        );
        assert_eq!(
            apex.spec.as_ref().and_then(|s| s.cluster_ip.clone()),
            None,
            "the apex is never headless"
        );
        assert_eq!(
            primary.spec.as_ref().and_then(|s| s.cluster_ip.clone()).as_deref(),
            Some("None")
        );
        let port = &apex.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("web"), 80));
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
    }

    #[test]
    fn port_discovery_adds_the_other_container_ports() {
        let spec = spec(CanaryService {
            port: 9898,
            port_discovery: Some(true),
            ..Default::default()
        });
        let [apex, ..] = build(&spec);
        let ports: Vec<(Option<String>, i32)> = apex
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name, p.port))
            .collect();
        assert_eq!(
            ports,
            vec![
                (Some("http".into()), 9898),
                (Some("grpc".into()), 9999),
                (Some("tcp-8080".into()), 8080)
            ]
        );
    }
}
