//! Restart safety: the `serin operator` process is killed (SIGKILL) at every step of a rollout,
//! in every phase (the gates hold it in Waiting and WaitingPromotion for a while), and started
//! again, and once more while it waits for the answer of a post-rollout webhook. The rollout
//! must end as it would have: every weight step taken once, nothing skipped, one promotion, the
//! pre- and post-rollout webhooks called once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::prometheus::Prometheus;
use serin_testenv::traffic::{Behaviour, TrafficSource};
use serin_testenv::webhooks::WebhookReceiver;
use serin_testenv::{Options, TestEnv};

struct Operator {
    child: Option<Child>,
    args: Vec<String>,
    kills: usize,
    /// Where the processes' logs go (appended), if anywhere.
    log: Option<std::path::PathBuf>,
}

impl Operator {
    fn start(args: Vec<String>) -> Operator {
        Operator::start_logging(args, None)
    }

    fn start_logging(args: Vec<String>, log: Option<std::path::PathBuf>) -> Operator {
        let mut operator = Operator {
            child: None,
            args,
            kills: 0,
            log,
        };
        operator.spawn();
        operator
    }

    fn spawn(&mut self) {
        let output = || match &self.log {
            Some(path) => std::fs::File::options()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .expect("the operator's log file"),
            None => Stdio::null(),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_serin"))
            .arg("operator")
            .args(&self.args)
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("serin operator starts");
        self.child = Some(child);
    }

    /// SIGKILL, then a new process.
    fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            self.kills += 1;
        }
        self.spawn();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_survives_the_operator_being_killed_at_every_step() {
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
    let namespace = env.namespace("restart").await.expect("namespace");
    let name = "sturdy";
    traffic.set(&namespace, name, Behaviour::healthy());
    hooks.answer("/confirm-rollout", 403, "not yet");
    hooks.answer("/confirm-promotion", 403, "not yet");
    // The post-rollout call is held, so the operator is killed between the call and its answer.
    hooks.hold("/post-rollout", Duration::from_secs(2));

    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    deployments
        .create(&PostParams::default(), &deployment(name, &[("app", name)], 2))
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
                "webhooks": [hook("confirm-rollout"), hook("pre-rollout"), hook("rollout"), hook("confirm-promotion"), hook("post-rollout")]
            }
        }
    }))
    .expect("canary");
    let canaries = Api::<Canary>::namespaced(env.client(), &namespace);
    canaries.create(&PostParams::default(), &canary).await.expect("canary");

    let args = vec![
        "-kubeconfig".to_string(),
        env.kubeconfig().display().to_string(),
        "-metrics-server".to_string(),
        prometheus.url().to_string(),
        "-namespace".to_string(),
        namespace.clone(),
    ];
    let mut operator = Operator::start(args);
    let state = |canary: &Canary| {
        let status = canary.status.clone().unwrap_or_default();
        (
            status.phase.unwrap_or_default(),
            status.canary_weight.unwrap_or(0),
            status.failed_checks.unwrap_or(0),
        )
    };
    // Kill it during initialization too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    operator.kill_and_restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while canaries.get(name).await.ok().map(|c| state(&c).0) != Some(Phase::Initialized) {
        assert!(Instant::now() < deadline, "not initialized after restarts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let patch =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "sturdy:2" }] } } } });
    deployments
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("new revision");
    let mut seen = vec![];
    let mut killed_in_post_rollout = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if !killed_in_post_rollout && !hooks.calls_to("/post-rollout").is_empty() {
            operator.kill_and_restart();
            killed_in_post_rollout = true;
        }
        let current = state(&canaries.get(name).await.expect("canary"));
        if seen.last() != Some(&current) {
            seen.push(current);
            if current.0 == Phase::Succeeded || current.0 == Phase::Failed {
                break;
            }
            // Every new state was just written: kill the operator right there. Not in
            // Finalising: it lasts one reconcile, whose Succeeded write the post-rollout call
            // follows at once, and a kill between the two loses that call by design (at most
            // once, as Flagger); the kill during the post-rollout call is below.
            if current.0 != Phase::Finalising {
                operator.kill_and_restart();
            }
            // Open each gate only once the operator has been killed while it held the rollout.
            match current.0 {
                Phase::Waiting => hooks.answer("/confirm-rollout", 200, "go"),
                Phase::WaitingPromotion => hooks.answer("/confirm-promotion", 200, "go"),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "the rollout did not finish; seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(seen.last().map(|s| s.0), Some(Phase::Succeeded), "seen {seen:?}");
    // The post-rollout call may still be in flight when Succeeded is seen: wait for it, kill
    // the operator during it, and give the new one time to call again if it were to.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !killed_in_post_rollout {
        assert!(Instant::now() < deadline, "post-rollout was never called");
        if !hooks.calls_to("/post-rollout").is_empty() {
            operator.kill_and_restart();
            killed_in_post_rollout = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut phases: Vec<Phase> = seen.iter().map(|s| s.0).collect();
    phases.dedup();
    for phase in [
        Phase::Waiting,
        Phase::Progressing,
        Phase::WaitingPromotion,
        Phase::Promoting,
    ] {
        assert!(phases.contains(&phase), "killed in {phase:?} too; phases {phases:?}");
    }
    assert!(operator.kills >= 6, "killed only {} times", operator.kills);
    let mut weights: Vec<i32> = seen.iter().filter(|s| s.0 == Phase::Progressing).map(|s| s.1).collect();
    weights.dedup();
    assert_eq!(
        weights,
        vec![0, 20, 40, 60],
        "every step once, none skipped; seen {seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.2 == 0),
        "no failed check from a restart; seen {seen:?}"
    );

    let primary = deployments.get("sturdy-primary").await.expect("primary");
    let image = primary
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers[0].image.clone());
    assert_eq!(image.as_deref(), Some("sturdy:2"));
    let replica_sets = Api::<ReplicaSet>::namespaced(env.client(), &namespace)
        .list(&ListParams::default().labels("app=sturdy-primary"))
        .await
        .expect("replica sets");
    assert_eq!(
        replica_sets.items.len(),
        2,
        "the primary rolled out once for v2 (plus its v1 ReplicaSet)"
    );
    let calls = |path: &str| hooks.calls_to(path).len();
    assert_eq!(calls("/post-rollout"), 1, "post-rollout called once");
    assert_eq!(calls("/pre-rollout"), 1, "pre-rollout called once");
    assert!(
        calls("/rollout") >= 3,
        "a rollout check per weight step (20, 40, 60), more while promotion waits"
    );
    drop(operator);
    env.teardown().await;
}

/// The API server goes away mid-rollout and comes back (same etcd): the operator's watches
/// recover, the rollout in progress finishes with every step once, and a revision made after
/// the restart is seen (no watch left dead).
#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_survives_an_api_server_restart() {
    let mut env = TestEnv::start(Options { nodes: 2 }).await.expect("control plane");
    env.install_crds().await.expect("serin CRDs");
    env.install_upstream_crds("gateway-api")
        .await
        .expect("Gateway API CRDs");
    let namespace = env.namespace("apiserver").await.expect("namespace");
    let deployments = Api::<Deployment>::namespaced(env.client(), &namespace);
    let canaries = Api::<Canary>::namespaced(env.client(), &namespace);
    for name in ["steady", "later"] {
        deployments
            .create(&PostParams::default(), &deployment(name, &[("app", name)], 1))
            .await
            .expect("target");
        let canary: Canary = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": {
                "provider": "gatewayapi:v1",
                "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "service": { "port": 9898 },
                "analysis": { "interval": "3s", "threshold": 1, "stepWeights": [20, 40, 60] }
            }
        }))
        .expect("canary");
        canaries.create(&PostParams::default(), &canary).await.expect("canary");
    }
    let logs = tempfile::tempdir().expect("a directory");
    let log = logs.path().join("operator.log");
    let operator = Operator::start_logging(
        vec![
            "-kubeconfig".to_string(),
            env.kubeconfig().display().to_string(),
            "-namespace".to_string(),
            namespace.clone(),
        ],
        Some(log.clone()),
    );
    let state = |canary: &Canary| {
        let status = canary.status.clone().unwrap_or_default();
        (status.phase.unwrap_or_default(), status.canary_weight.unwrap_or(0))
    };
    let phase_of = |name: &'static str| {
        let canaries = canaries.clone();
        async move { canaries.get(name).await.ok().map(|c| state(&c)) }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in ["steady", "later"] {
        while phase_of(name).await.map(|s| s.0) != Some(Phase::Initialized) {
            assert!(Instant::now() < deadline, "{name} not initialized");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let new_revision = |name: &'static str| {
        let deployments = deployments.clone();
        async move {
            let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": format!("{name}:2") }] } } } });
            deployments
                .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .expect("new revision");
        }
    };
    new_revision("steady").await;
    let mut seen = vec![];
    let mut restarted = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // While the API server is down the read fails: nothing to record then.
        if let Some(current) = phase_of("steady").await
            && seen.last() != Some(&current)
        {
            seen.push(current);
            if matches!(current.0, Phase::Succeeded | Phase::Failed) {
                break;
            }
            if current == (Phase::Progressing, 20) && !restarted {
                env.control_plane_mut()
                    .expect("a control plane")
                    .restart_apiserver(Duration::from_secs(3))
                    .await
                    .expect("the API server back");
                restarted = true;
                new_revision("later").await;
            }
        }
        assert!(Instant::now() < deadline, "the rollout did not finish; seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(restarted, "the API server was restarted mid-rollout; seen {seen:?}");
    assert_eq!(seen.last().map(|s| s.0), Some(Phase::Succeeded), "seen {seen:?}");
    let mut weights: Vec<i32> = seen.iter().filter(|s| s.0 == Phase::Progressing).map(|s| s.1).collect();
    weights.dedup();
    assert_eq!(weights, vec![0, 20, 40, 60], "every step once; seen {seen:?}");
    // The revision made once the API server was back is rolled out too: the watches recovered.
    let deadline = Instant::now() + Duration::from_secs(60);
    while phase_of("later").await.map(|s| s.0) != Some(Phase::Succeeded) {
        assert!(
            Instant::now() < deadline,
            "the revision made after the restart was not rolled out: {:?}",
            phase_of("later").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(operator);
    // The watches resumed from where they were, which the new API server no longer had: each
    // was told 410 Gone and listed again, and nothing was missed (the rollouts above).
    let log = std::fs::read_to_string(&log).expect("the operator's log");
    assert!(
        log.contains("too old resource version") && log.contains("Expired"),
        "no watch was told 410 Gone:\n{log}"
    );
    env.teardown().await;
}
