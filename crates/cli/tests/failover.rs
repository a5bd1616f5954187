//! High availability: two `serin operator` processes with leader election drive one rollout.
//! The leader is SIGKILLed at several steps (a new replica is started each time, so two are
//! always running) and stopped with SIGTERM once; the standby takes over, within the lease
//! duration after a kill and at once after a graceful stop. At no moment do two replicas lead,
//! no step is skipped or repeated, and the once-only webhooks are called once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::prometheus::Prometheus;
use serin_testenv::traffic::{Behaviour, TrafficSource};
use serin_testenv::webhooks::WebhookReceiver;
use serin_testenv::{Options, TestEnv};

const LEASE: Duration = Duration::from_secs(6);

struct Replica {
    child: Child,
    readyz: String,
}

impl Replica {
    fn start(args: &[String]) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_serin"))
            .arg("operator")
            .args(args)
            .args(["-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serin operator starts");
        Replica {
            child,
            readyz: format!("http://127.0.0.1:{port}/readyz"),
        }
    }

    /// `leader`, `standby`, or `None` while it does not answer (a standby may say why after).
    async fn role(&self) -> Option<String> {
        let body = reqwest::get(&self.readyz).await.ok()?.text().await.ok()?;
        let role = body.strip_prefix("ok: ")?;
        Some(role.split(' ').next().unwrap_or(role).to_string())
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit.
    fn terminate(mut self) -> Duration {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM sent");
        let _ = self.child.wait();
        started.elapsed()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The index of the one leader among `replicas`; panics if two lead at once.
async fn leader_of(replicas: &[Replica]) -> Option<usize> {
    let mut leaders = Vec::new();
    for (index, replica) in replicas.iter().enumerate() {
        if replica.role().await.as_deref() == Some("leader") {
            leaders.push(index);
        }
    }
    assert!(leaders.len() <= 1, "two replicas lead at once: {leaders:?}");
    leaders.first().copied()
}

async fn wait_for_leader(replicas: &[Replica], within: Duration) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        if let Some(index) = leader_of(replicas).await {
            return (index, started.elapsed());
        }
        assert!(started.elapsed() < within, "no leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_finishes_the_rollout_when_the_leader_dies_or_stops() {
    let env = TestEnv::start(Options { nodes: 2 }).await.expect("control plane");
    env.install_crds().await.expect("serin CRDs");
    env.install_upstream_crds("gateway-api")
        .await
        .expect("Gateway API CRDs");
    let traffic = TrafficSource::start().await.expect("traffic source");
    let prometheus = Prometheus::start(&[traffic.scrape_target()], Duration::from_secs(1))
        .await
        .expect("prometheus");
    let hooks = WebhookReceiver::start().await.expect("webhook receiver");
    let namespace = env.namespace("failover").await.expect("namespace");
    let name = "steady";
    traffic.set(&namespace, name, Behaviour::healthy());
    hooks.answer("/confirm-promotion", 403, "not yet");
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    deployments
        .create(&PostParams::default(), &deployment(name, &[("app", name)], 1))
        .await
        .expect("target");
    let hook = |kind: &str| json!({ "name": kind, "type": kind, "url": format!("{}/{kind}", hooks.url()) });
    let canary: Canary = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "service": { "port": 9898 },
            "analysis": {
                "interval": "3s", "threshold": 2, "stepWeights": [20, 40, 60],
                "metrics": [{ "name": "request-success-rate", "interval": "30s", "thresholdRange": { "min": 99 } }],
                "webhooks": [hook("pre-rollout"), hook("rollout"), hook("confirm-promotion"), hook("post-rollout")]
            }
        }
    }))
    .expect("canary");
    let canaries = Api::<Canary>::namespaced(env.client(), &namespace);
    canaries.create(&PostParams::default(), &canary).await.expect("canary");

    let args: Vec<String> = [
        "-kubeconfig",
        &env.kubeconfig().display().to_string(),
        "-metrics-server",
        prometheus.url(),
        "-namespace",
        &namespace,
        "-enable-leader-election",
        "-leader-election-namespace",
        &namespace,
        "-leader-election-lease-duration",
        &format!("{}s", LEASE.as_secs()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut replicas = vec![Replica::start(&args), Replica::start(&args)];
    let (first, _) = wait_for_leader(&replicas, Duration::from_secs(30)).await;
    // The other replica answers once its caches are filled, which may be after the election.
    let started = Instant::now();
    loop {
        let role = replicas[1 - first].role().await;
        if role.as_deref() == Some("standby") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the other replica stands by; it says {role:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease = Api::<Lease>::namespaced(env.client(), &namespace)
        .get("serin-leader-election")
        .await
        .expect("the Lease");
    assert!(
        lease.spec.and_then(|s| s.holder_identity).is_some(),
        "the Lease names its holder"
    );

    let status_of = |canary: &Canary| {
        let status = canary.status.clone().unwrap_or_default();
        (status.phase.unwrap_or_default(), status.canary_weight.unwrap_or(0))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while canaries.get(name).await.ok().map(|c| status_of(&c).0) != Some(Phase::Initialized) {
        assert!(Instant::now() < deadline, "not initialized");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let patch =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "steady:2" }] } } } });
    deployments
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("new revision");

    let mut seen: Vec<(Phase, i32)> = vec![];
    let mut kills = 0;
    let mut graceful_takeover = None;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let current = status_of(&canaries.get(name).await.expect("canary"));
        leader_of(&replicas).await;
        if seen.last() != Some(&current) {
            seen.push(current);
            if matches!(current.0, Phase::Succeeded | Phase::Failed) {
                break;
            }
            match current {
                // Killed right after a step was written: the standby must take the next one.
                (Phase::Progressing, 20 | 40) => {
                    let (leader, _) = wait_for_leader(&replicas, LEASE * 3).await;
                    replicas.remove(leader).kill();
                    kills += 1;
                    replicas.push(Replica::start(&args));
                }
                // Held at confirm-promotion: the leader is stopped gracefully, then the gate opens.
                (Phase::WaitingPromotion, _) if graceful_takeover.is_none() => {
                    let (leader, _) = wait_for_leader(&replicas, LEASE * 3).await;
                    let stopping = replicas.remove(leader);
                    let stopped_in = stopping.terminate();
                    let (_, took_over) = wait_for_leader(&replicas, LEASE * 3).await;
                    graceful_takeover = Some((stopped_in, took_over));
                    replicas.push(Replica::start(&args));
                    hooks.answer("/confirm-promotion", 200, "go");
                }
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "the rollout did not finish; seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(seen.last().map(|s| s.0), Some(Phase::Succeeded), "seen {seen:?}");
    assert_eq!(kills, 2, "the leader was killed at 20 % and 40 %; seen {seen:?}");
    let (stopped_in, took_over) = graceful_takeover.expect("the leader was stopped in WaitingPromotion");
    assert!(
        stopped_in < Duration::from_secs(10),
        "SIGTERM stopped the leader in {stopped_in:?}"
    );
    assert!(
        took_over < Duration::from_secs(3),
        "a released Lease is taken over at once, not after the {LEASE:?} lease: {took_over:?}"
    );
    let mut weights: Vec<i32> = seen.iter().filter(|s| s.0 == Phase::Progressing).map(|s| s.1).collect();
    weights.dedup();
    assert_eq!(
        weights,
        vec![0, 20, 40, 60],
        "every step once, none skipped; seen {seen:?}"
    );
    // Time for a replica that wrongly repeats a once-only webhook to do it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls = |path: &str| hooks.calls_to(path).len();
    assert_eq!(calls("/pre-rollout"), 1, "pre-rollout called once");
    assert_eq!(calls("/post-rollout"), 1, "post-rollout called once");
    let primary = deployments.get(&format!("{name}-primary")).await.expect("primary");
    let image = primary
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("steady:2"));
    drop(replicas);
    env.teardown().await;
}

/// With no API server to talk to (the address refuses connections), the operator says which
/// address it cannot reach and why, and SIGTERM still stops it promptly.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_operator_while_the_api_server_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = closed.local_addr().expect("address");
    drop(closed);
    let directory = tempfile::tempdir().expect("a directory");
    let kubeconfig = directory.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: https://{address}\n    insecure-skip-tls-verify: true\nusers:\n- name: someone\n  user:\n    token: t\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: someone\ncurrent-context: gone\n"
        ),
    )
    .expect("kubeconfig");
    let log = directory.path().join("operator.log");
    let child = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["operator", "-kubeconfig"])
        .arg(&kubeconfig)
        .args(["-enable-leader-election", "-port", "0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("serin operator starts");
    let mut replica = Replica {
        child,
        readyz: String::new(),
    };
    // Past the MetricTemplate listing's 10 s: the controller and the election are running too.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        replica.child.try_wait().expect("status").is_none(),
        "the operator keeps trying rather than exiting"
    );
    let stopped_in = Command::new("kill")
        .args(["-TERM", &replica.child.id().to_string()])
        .status()
        .map(|_| {
            let started = Instant::now();
            let _ = replica.child.wait();
            started.elapsed()
        })
        .expect("SIGTERM sent");
    assert!(
        stopped_in < Duration::from_secs(5),
        "stopped {stopped_in:?} after SIGTERM"
    );
    let text = std::fs::read_to_string(&log).expect("the log");
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&address.to_string()) && l.contains("error="))
        .collect();
    assert!(
        !failures.is_empty()
            && failures
                .iter()
                .all(|l| l.contains("Connection refused") || l.contains("connect")),
        "the unreachable API server is named with the cause:\n{text}"
    );
    assert!(
        failures.len() < 40,
        "logged once per backoff step, not in a busy loop ({} lines in 12 s):\n{text}",
        failures.len()
    );
    for what in [
        "MetricTemplate watch",
        "a watch of the controller",
        "the lease could not be set up",
    ] {
        assert!(
            failures.iter().any(|l| l.contains(what)),
            "{what} failing is logged:\n{text}"
        );
    }
    assert!(text.contains("serin operator stopped"), "a clean stop:\n{text}");
}
