//! Scale-out: two shards (`-shard a`, `-shard b`), each with leader election on its own Lease
//! and shard a with a standby, divide 100 Canaries by their `serin.dev/shard` label. Every
//! Canary is initialized, and only by its own shard's leader.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::{Options, TestEnv};

const CANARIES: usize = 100;

struct Replicas(Vec<Child>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn shard_of(index: usize) -> &'static str {
    if index.is_multiple_of(2) { "a" } else { "b" }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_shards_divide_the_canaries() {
    let env = TestEnv::start(Options { nodes: 4 }).await.expect("control plane");
    env.install_crds().await.expect("serin CRDs");
    let namespace = env.namespace("shards").await.expect("namespace");
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    let canaries = Api::<Canary>::namespaced(env.client(), &namespace);
    futures::stream::iter(0..CANARIES)
        .for_each_concurrent(16, |index| {
            let (deployments, canaries) = (deployments.clone(), canaries.clone());
            async move {
                let name = format!("app-{index}");
                deployments
                    .create(&PostParams::default(), &deployment(&name, &[("app", &name)], 1))
                    .await
                    .expect("target");
                let canary: Canary = serde_json::from_value(json!({
                    "metadata": { "name": name, "labels": { serin_operator::SHARD_LABEL: shard_of(index) } },
                    "spec": {
                        "provider": "kubernetes",
                        "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                        "service": { "port": 9898 },
                        "analysis": { "interval": "10s", "threshold": 1, "iterations": 1 }
                    }
                }))
                .expect("canary");
                canaries.create(&PostParams::default(), &canary).await.expect("canary");
            }
        })
        .await;

    let start = |shard: &str, instance: &str| {
        Command::new(env!("CARGO_BIN_EXE_serin"))
            .args(["operator", "-kubeconfig"])
            .arg(env.kubeconfig())
            .args(["-namespace", &namespace, "-shard", shard, "-port", "0"])
            .args(["-enable-leader-election", "-leader-election-namespace", &namespace])
            .env("POD_NAME", instance)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serin operator starts")
    };
    let _replicas = Replicas(vec![
        start("a", "serin-a-1"),
        start("a", "serin-a-2"),
        start("b", "serin-b-1"),
    ]);

    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let list = canaries.list(&ListParams::default()).await.expect("canaries");
        let initialized = list
            .items
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.phase) == Some(Phase::Initialized))
            .count();
        if initialized == CANARIES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{initialized} of {CANARIES} Canaries initialized"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Each shard's Lease, held by one of its replicas.
    let leases = Api::<Lease>::namespaced(env.client(), &namespace);
    let mut holders = BTreeMap::new();
    for shard in ["a", "b"] {
        let lease = leases
            .get(&format!("serin-leader-election-{shard}"))
            .await
            .expect("the shard's Lease");
        let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
        assert!(
            holder.starts_with(&format!("serin-{shard}-")),
            "shard {shard}'s Lease is held by {holder}"
        );
        holders.insert(shard, holder);
    }
    // Every Event about a Canary comes from the leader of the Canary's shard.
    let events = Api::<Event>::namespaced(env.client(), &namespace)
        .list(&ListParams::default())
        .await
        .expect("events");
    let mut reported = 0;
    for event in events.items {
        let Some(name) = event.regarding.as_ref().and_then(|r| r.name.clone()) else {
            continue;
        };
        let Some(index) = name.strip_prefix("app-").and_then(|i| i.parse::<usize>().ok()) else {
            continue;
        };
        if event.regarding.as_ref().and_then(|r| r.kind.as_deref()) != Some("Canary") {
            continue;
        }
        let instance = event.reporting_instance.unwrap_or_default();
        let expected = &holders[shard_of(index)];
        assert!(
            expected.starts_with(&instance),
            "{name} (shard {}) was reported by {instance}",
            shard_of(index)
        );
        reported += 1;
    }
    assert!(reported >= CANARIES, "each Canary has Events ({reported})");
    env.teardown().await;
}

/// `-namespace a,b`: the Canaries of both namespaces are run, those of a third are not touched.
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_list_limits_the_operator() {
    let env = TestEnv::start(Options { nodes: 2 }).await.expect("control plane");
    env.install_crds().await.expect("serin CRDs");
    let mut namespaces = Vec::new();
    for prefix in ["first", "second", "other"] {
        let namespace = env.namespace(prefix).await.expect("namespace");
        let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
        deployments
            .create(&PostParams::default(), &deployment("app", &[("app", "app")], 1))
            .await
            .expect("target");
        let canary: Canary = serde_json::from_value(json!({
            "metadata": { "name": "app" },
            "spec": {
                "provider": "kubernetes",
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "app" },
                "service": { "port": 9898 }
            }
        }))
        .expect("canary");
        Api::<Canary>::namespaced(env.client(), &namespace)
            .create(&PostParams::default(), &canary)
            .await
            .expect("canary");
        namespaces.push(namespace);
    }
    let watched = format!("{},{}", namespaces[0], namespaces[1]);
    let child = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["operator", "-kubeconfig"])
        .arg(env.kubeconfig())
        .args(["-namespace", &watched, "-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serin operator starts");
    let _replicas = Replicas(vec![child]);
    let phase = |namespace: &str| {
        let canaries = Api::<Canary>::namespaced(env.client(), namespace);
        async move {
            canaries
                .get("app")
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.phase)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for namespace in &namespaces[..2] {
        while phase(namespace).await != Some(Phase::Initialized) {
            assert!(
                Instant::now() < deadline,
                "the Canary of {namespace} was not initialized"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        phase(&namespaces[2]).await,
        None,
        "the Canary of an unwatched namespace is left alone"
    );
    env.teardown().await;
}
