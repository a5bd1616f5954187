//! The local control plane really runs workloads: a Deployment rolls out on kwok's fake nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams, PostParams};
use serin_testenv::{Options, TestEnv, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_becomes_available_on_kwok_nodes() {
    let env = TestEnv::start(Options { nodes: 2 })
        .await
        .expect("control plane starts");
    let namespace = env.namespace("smoke").await.expect("namespace");
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(3),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".into(),
                        image: Some("web:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    };
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let available = wait_for(
        Duration::from_secs(60),
        "deployment web to be available",
        || {
            let deployments = deployments.clone();
            async move {
                let status = deployments.get("web").await.ok()?.status?;
                let available = status
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status == "True");
                (available && status.available_replicas == Some(3)).then_some(())
            }
        },
    )
    .await;
    available.expect("deployment becomes available");

    let pods = Api::<Pod>::namespaced(env.client(), &namespace)
        .list(&ListParams::default())
        .await
        .expect("list pods");
    assert_eq!(pods.items.len(), 3);
    for pod in &pods.items {
        let status = pod.status.clone().unwrap_or_default();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| n.starts_with("kwok-node-"))
        );
    }
    env.teardown().await;
}
