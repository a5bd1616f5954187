//! Installing serin into a cluster: the kustomize base and the Helm chart applied to the real
//! control plane (server-side dry-run, then for real), and the chart's RBAC proven to be all the
//! operator needs: the operator runs authenticated as the chart's ServiceAccount (a token from
//! the TokenRequest API) through a rollout on every router the tests have, an alert, and a revert
//! on deletion, and the API server's audit log must show no request of it refused.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::webhooks::WebhookReceiver;
use serin_testenv::{INSTALL_NAMESPACE, Options, TestEnv};
use tokio::io::AsyncWriteExt;

fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn helm() -> PathBuf {
    let helm = std::env::var_os("SERIN_HELM")
        .map(PathBuf::from)
        .expect("SERIN_HELM is not set: it names the helm binary hack/upstream/helm.sh builds (hack/test.sh sets it)");
    assert!(helm.is_file(), "SERIN_HELM={} is not a file", helm.display());
    helm
}

/// `kubectl <args>` with `input` on stdin; panics with kubectl's message if it fails.
async fn kubectl(env: &TestEnv, args: &[&str], input: &str) -> String {
    let mut child = env
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("manifests written");
    drop(stdin);
    let output = child.wait_with_output().await.expect("kubectl ends");
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Applies `manifests` with a server-side dry run first, then for real.
async fn apply_twice(env: &TestEnv, manifests: &str) {
    for dry_run in ["--dry-run=server", "--dry-run=none"] {
        kubectl(
            env,
            &["apply", "--server-side", "--force-conflicts", dry_run, "-f", "-"],
            manifests,
        )
        .await;
    }
}

async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Deployment of the install has all its replicas ready (kwok runs the pods).
async fn wait_for_replicas(env: &TestEnv, name: &str, replicas: i32) {
    let deployments = Api::<Deployment>::namespaced(env.client(), INSTALL_NAMESPACE);
    wait_until(
        &format!("{replicas} ready replicas of {name}"),
        Duration::from_secs(60),
        || {
            let deployments = deployments.clone();
            async move {
                deployments
                    .get(name)
                    .await
                    .ok()
                    .and_then(|d| d.status)
                    .and_then(|s| s.ready_replicas)
                    == Some(replicas)
            }
        },
    )
    .await;
}

/// A client authenticated as the chart's ServiceAccount, with a token from the TokenRequest API.
async fn service_account_client(env: &TestEnv) -> Client {
    let token = kubectl(
        env,
        &["create", "token", "serin", "-n", INSTALL_NAMESPACE, "--duration", "1h"],
        "",
    )
    .await;
    let kubeconfig = Kubeconfig::read_from(env.kubeconfig()).expect("the test kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.trim().to_string().into()),
        ..Default::default()
    };
    Client::try_from(config).expect("a client")
}

fn canary(name: &str, provider: &str, extra: Value) -> Canary {
    let mut spec = json!({
        "provider": provider,
        "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
        "service": { "port": 9898 },
        "analysis": { "interval": "1s", "threshold": 1, "stepWeight": 50, "maxWeight": 50 },
    });
    if provider == "kubernetes" {
        spec["analysis"] = json!({ "interval": "1s", "threshold": 1, "iterations": 1 });
    }
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            spec.insert(key.clone(), value.clone());
        }
    }
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).expect("a Canary")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installs_and_its_rbac_is_all_the_operator_needs() {
    let helm = helm();
    let env = TestEnv::start(Options { nodes: 2 }).await.expect("control plane");
    env.install_provider_crds().await.expect("routing CRDs");
    env.install_upstream_crds("keda").await.expect("KEDA CRDs");

    // The kustomize base (CRDs included), as `kubectl apply -k` would.
    let kustomized = kubectl(
        &env,
        &[
            "kustomize",
            &repository().join("deploy/kustomize").display().to_string(),
        ],
        "",
    )
    .await;
    // A server-side dry run cannot create the namespace the rest goes into: it comes first.
    let namespace_manifest =
        std::fs::read_to_string(repository().join("deploy/kustomize/namespace.yaml")).expect("the namespace manifest");
    kubectl(&env, &["apply", "--server-side", "-f", "-"], &namespace_manifest).await;
    apply_twice(&env, &kustomized).await;
    wait_for_replicas(&env, "serin", 1).await;

    // The chart over it, as a Flagger user's values would set it: two replicas with leader
    // election, every router the tests have.
    let providers = r#"rbac.providers=["gatewayapi:v1","istio","linkerd","nginx","gloo","appmesh:v1beta2"]"#;
    let rendered = std::process::Command::new(&helm)
        .args(["template", "serin"])
        .arg(repository().join("deploy/helm/serin"))
        .args([
            "--namespace",
            INSTALL_NAMESPACE,
            "--kube-version",
            "1.36.0",
            "--include-crds",
        ])
        .args(["--set", "leaderElection.enabled=true,leaderElection.replicaCount=2"])
        .args(["--set", "slack.url=https://hooks.slack.com/services/T/B/X"])
        .args(["--set-json", providers])
        .output()
        .expect("helm runs");
    assert!(
        rendered.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8_lossy(&rendered.stdout).into_owned();
    apply_twice(&env, &rendered).await;
    wait_for_replicas(&env, "serin", 2).await;
    for kind in [
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    ] {
        assert!(
            rendered.contains(&format!("kind: {kind}\n")),
            "the chart renders a {kind}"
        );
    }

    // The operator as the chart's ServiceAccount (in this process: the image cannot be built
    // here), with the chart's leader election.
    let client = service_account_client(&env).await;
    let hooks = WebhookReceiver::start().await.expect("webhook receiver");
    let config = serin_operator::Config {
        metrics_server: "http://127.0.0.1:9".into(),
        leader_election: Some(serin_operator::LeaderElection {
            namespace: INSTALL_NAMESPACE.into(),
            lease_name: serin_operator::LeaderElection::LEASE_NAME.into(),
            identity: "install-test".into(),
            lease_duration: Duration::from_secs(15),
        }),
        ..Default::default()
    };
    tokio::spawn(serin_operator::run(client, config));

    let namespace = env.namespace("install").await.expect("namespace");
    let admin = env.client();
    let providers = [
        ("plain", "kubernetes", json!({})),
        ("gateway", "gatewayapi:v1", json!({ "revertOnDeletion": true })),
        ("mesh", "istio", json!({})),
        ("split", "linkerd", json!({})),
        (
            "edge",
            "nginx",
            json!({ "ingressRef": { "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "edge" } }),
        ),
        ("glooed", "gloo", json!({})),
        (
            "meshed",
            "appmesh:v1beta2",
            json!({ "service": { "port": 9898, "backends": ["backend.test"] } }),
        ),
    ];
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": { "name": "edge" },
        "spec": { "rules": [{ "host": "edge.example.com", "http": { "paths": [{ "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": "edge", "port": { "number": 9898 } } } }] } }] },
    }))
    .expect("an Ingress");
    Api::<Ingress>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &ingress)
        .await
        .expect("Ingress");
    // An alert through an AlertProvider whose address is in a Secret.
    kubectl(
        &env,
        &["apply", "-n", &namespace, "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: chat\nstringData:\n  address: {}/chat\n---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: chat\nspec:\n  type: slack\n  secretRef:\n    name: chat\n",
            hooks.url()
        ),
    )
    .await;
    let deployments = Api::<Deployment>::namespaced(admin.clone(), &namespace);
    let canaries = Api::<Canary>::namespaced(admin.clone(), &namespace);
    for (name, provider, extra) in &providers {
        deployments
            .create(&PostParams::default(), &deployment(name, &[("app", name)], 1))
            .await
            .expect("target");
        let mut extra = extra.clone();
        if *name == "plain" {
            extra["analysis"] = json!({ "interval": "1s", "threshold": 1, "iterations": 1,
                "alerts": [{ "name": "team", "providerRef": { "name": "chat" } }] });
        }
        canaries
            .create(&PostParams::default(), &canary(name, provider, extra))
            .await
            .expect("Canary");
    }
    let phase = |name: &'static str| {
        let canaries = canaries.clone();
        async move {
            canaries
                .get(name)
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.phase)
        }
    };
    for (name, _, _) in &providers {
        wait_until(&format!("{name} initialized"), Duration::from_secs(90), || async {
            phase(name).await == Some(Phase::Initialized)
        })
        .await;
        let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": format!("{name}:2") }] } } } });
        deployments
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("new revision");
    }
    for (name, provider, _) in &providers {
        wait_until(
            &format!("{name} ({provider}) promoted"),
            Duration::from_secs(90),
            || async { phase(name).await == Some(Phase::Succeeded) },
        )
        .await;
    }
    wait_until("the alert delivered", Duration::from_secs(30), || async {
        !hooks.calls_to("/chat").is_empty()
    })
    .await;
    canaries
        .delete("gateway", &DeleteParams::default())
        .await
        .expect("delete a Canary with revertOnDeletion");
    wait_until("the revert on deletion done", Duration::from_secs(60), || async {
        canaries.get_opt("gateway").await.ok().flatten().is_none()
    })
    .await;

    let requests = env
        .control_plane()
        .expect("a control plane")
        .install_requests()
        .expect("the audit log");
    let refused: Vec<String> = requests
        .iter()
        .filter(|r| r["responseStatus"]["code"] == 403)
        .map(|r| {
            format!(
                "{} {}/{} {}",
                r["verb"].as_str().unwrap_or_default(),
                r["objectRef"]["apiGroup"].as_str().unwrap_or_default(),
                r["objectRef"]["resource"].as_str().unwrap_or_default(),
                r["objectRef"]["subresource"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        requests.len() > 100,
        "the operator ran as the ServiceAccount ({} requests)",
        requests.len()
    );
    assert!(refused.is_empty(), "requests the chart's RBAC refused: {refused:#?}");

    // One rule taken away at a time: the Canary that needs it says which permission is missing.
    let roles = Api::<ClusterRole>::all(admin.clone());
    for (resource, name, provider) in [
        ("virtualservices", "mesh-denied", "istio"),
        ("services", "plain-denied", "kubernetes"),
    ] {
        let mut role = roles.get("serin").await.expect("the chart's ClusterRole");
        if let Some(rules) = role.rules.as_mut() {
            for rule in rules.iter_mut() {
                if let Some(resources) = rule.resources.as_mut() {
                    resources.retain(|r| r != resource);
                }
            }
            rules.retain(|rule| rule.resources.as_ref().is_some_and(|r| !r.is_empty()));
        }
        roles
            .replace("serin", &PostParams::default(), &role)
            .await
            .expect("a rule taken away");
        deployments
            .create(&PostParams::default(), &deployment(name, &[("app", name)], 1))
            .await
            .expect("target");
        canaries
            .create(&PostParams::default(), &canary(name, provider, json!({})))
            .await
            .expect("Canary");
        let message = |canary: Option<Canary>| {
            canary
                .and_then(|c| c.status)
                .as_ref()
                .and_then(serin_core::status::promoted_condition)
                .and_then(|c| c.message.clone())
                .unwrap_or_default()
        };
        wait_until(
            &format!("{name} says it may not touch {resource}"),
            Duration::from_secs(60),
            || async {
                let said = message(canaries.get_opt(name).await.ok().flatten());
                said.contains("the API server refused a request")
                    && said.contains(&format!("\"{resource}\""))
                    && said.contains("grant serin's ServiceAccount")
            },
        )
        .await;
        let events = kubectl(
            &env,
            &[
                "get",
                "events",
                "-n",
                &namespace,
                "--field-selector",
                &format!("involvedObject.name={name},reason=Forbidden"),
                "-o",
                "name",
            ],
            "",
        )
        .await;
        assert!(!events.trim().is_empty(), "a Warning Event Forbidden for {name}");
    }
    env.teardown().await;
}
