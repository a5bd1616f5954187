//! The local control plane really runs workloads: a Deployment rolls out on kwok's fake nodes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serin_testenv::fixtures::deployment;
use serin_testenv::{Options, TestEnv, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_becomes_available_on_kwok_nodes() {
    let env = TestEnv::start(Options { nodes: 2 })
        .await
        .expect("control plane starts");
    let namespace = env.namespace("smoke").await.expect("namespace");
    let deployment = deployment("web", &[("app", "web")], 3);
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let available = wait_for(Duration::from_secs(60), "deployment web to be available", || {
        let deployments = deployments.clone();
        async move {
            let status = deployments.get("web").await.ok()?.status?;
            let available = status
                .conditions?
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            (available && status.available_replicas == Some(3)).then_some(())
        }
    })
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
