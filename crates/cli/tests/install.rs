//! Installing serin into a cluster: the kustomize base and the Helm chart applied to the real
//! control plane (server-side dry-run, then for real), and the chart's RBAC proven to be all the
//! operator needs: the operator runs authenticated as the chart's ServiceAccount (a token from
//! the TokenRequest API) through a rollout on every router the tests have, an alert, and a revert
//! on deletion, and the API server's audit log must show no request of it refused. The load
//! tester's chart likewise: its ServiceAccount keeps the gates in their ConfigMap, nothing more.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};
use serin_api::{Canary, Phase};
use serin_loadtester::gates::{Gate, GateStore};
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
async fn wait_for_replicas(env: &TestEnv, namespace: &str, name: &str, replicas: i32) {
    let deployments = Api::<Deployment>::namespaced(env.client(), namespace);
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
    client_as(env, INSTALL_NAMESPACE, "serin").await
}

/// A client authenticated as the ServiceAccount `namespace/name`.
async fn client_as(env: &TestEnv, namespace: &str, name: &str) -> Client {
    let token = kubectl(env, &["create", "token", name, "-n", namespace, "--duration", "1h"], "").await;
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

/// The chart as a Flagger user's values would set it: two replicas with leader election, a Slack
/// URL, and every router the tests have.
fn render_chart() -> String {
    let providers = r#"rbac.providers=["gatewayapi:v1","istio","linkerd","nginx","gloo","appmesh:v1beta2"]"#;
    helm_template(
        "serin",
        "deploy/helm/serin",
        &[
            "--namespace",
            INSTALL_NAMESPACE,
            "--include-crds",
            "--set",
            "leaderElection.enabled=true,leaderElection.replicaCount=2",
            "--set",
            "slack.url=https://hooks.slack.com/services/T/B/X",
            "--set-json",
            providers,
        ],
    )
}

/// `helm template <release> <chart> <args>` for the test cluster's Kubernetes version.
fn helm_template(release: &str, chart: &str, args: &[&str]) -> String {
    let rendered = std::process::Command::new(helm())
        .args(["template", release])
        .arg(repository().join(chart))
        .args(["--kube-version", "1.36.0"])
        .args(args)
        .output()
        .expect("helm runs");
    assert!(
        rendered.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    String::from_utf8_lossy(&rendered.stdout).into_owned()
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
    wait_for_replicas(&env, INSTALL_NAMESPACE, "serin", 1).await;

    // The chart over it, as a Flagger user's values would set it: two replicas with leader
    // election, every router the tests have.
    let rendered = render_chart();
    apply_twice(&env, &rendered).await;
    wait_for_replicas(&env, INSTALL_NAMESPACE, "serin", 2).await;
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
    for (name, _, _) in &providers {
        wait_until(&format!("{name} initialized"), Duration::from_secs(90), || async {
            phase_of(&canaries, name).await == Some(Phase::Initialized)
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
            || async { phase_of(&canaries, name).await == Some(Phase::Succeeded) },
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

    env.teardown().await;
}

/// What a Canary needs besides its target, for the permission taken away to be used.
#[derive(Clone, Copy)]
enum Needs {
    Nothing,
    DaemonSet,
    ConfigMap,
    Secret,
    Hpa,
    ScaledObject,
    /// A metric check through a MetricTemplate, read at the first analysis step.
    Template,
    Alert,
}

/// One rule of the chart's ClusterRole (an API group and a resource), the Canary that uses it,
/// and whether the Canary's status can carry the refusal (it cannot when the status itself, or
/// what is read only while analysing or alerting, is refused: then an Event does).
struct Case {
    group: &'static str,
    resource: &'static str,
    provider: &'static str,
    needs: Needs,
    in_status: bool,
}

const fn case(group: &'static str, resource: &'static str, provider: &'static str, needs: Needs) -> Case {
    Case {
        group,
        resource,
        provider,
        needs,
        in_status: true,
    }
}

/// Every rule of the chart's RBAC taken away in turn, the others in place: the Canary that needs
/// it names the verb and resource in its status and an Event; a missing Event permission loses
/// nothing; without the Canary watch `/readyz` says why, and a standby without its Lease says
/// why.
#[tokio::test(flavor = "multi_thread")]
async fn each_permission_taken_away_is_named_where_the_user_looks() {
    let env = TestEnv::start(Options { nodes: 1 }).await.expect("control plane");
    env.install_provider_crds().await.expect("routing CRDs");
    env.install_upstream_crds("keda").await.expect("KEDA CRDs");
    let namespace_manifest =
        std::fs::read_to_string(repository().join("deploy/kustomize/namespace.yaml")).expect("the namespace manifest");
    kubectl(&env, &["apply", "--server-side", "-f", "-"], &namespace_manifest).await;
    apply_twice(&env, &render_chart()).await;

    let client = service_account_client(&env).await;
    let config = serin_operator::Config {
        metrics_server: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    tokio::spawn(serin_operator::run(client.clone(), config));

    let namespace = env.namespace("denied").await.expect("namespace");
    let admin = env.client();
    let fixtures = json!({ "apiVersion": "v1", "kind": "List", "items": [
        { "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": { "name": "edge" },
          "spec": { "rules": [{ "host": "edge.example.com", "http": { "paths": [{ "path": "/", "pathType": "Prefix",
            "backend": { "service": { "name": "edge", "port": { "number": 9898 } } } }] } }] } },
        { "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider", "metadata": { "name": "chat" },
          "spec": { "type": "slack", "address": "http://127.0.0.1:9/chat" } },
        { "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": { "name": "errors" },
          "spec": { "provider": { "type": "prometheus", "address": "http://127.0.0.1:9" }, "query": "0" } },
    ] });
    kubectl(&env, &["apply", "-n", &namespace, "-f", "-"], &fixtures.to_string()).await;

    let roles = Api::<ClusterRole>::all(admin.clone());
    let original = roles.get("serin").await.expect("the chart's ClusterRole").rules;
    let canaries = Api::<Canary>::namespaced(admin.clone(), &namespace);
    let deployments = Api::<Deployment>::namespaced(admin.clone(), &namespace);
    let cases = [
        case("apps", "deployments", "kubernetes", Needs::Nothing),
        case("apps", "daemonsets", "kubernetes", Needs::DaemonSet),
        case("", "services", "kubernetes", Needs::Nothing),
        case("", "configmaps", "kubernetes", Needs::ConfigMap),
        case("", "secrets", "kubernetes", Needs::Secret),
        case("autoscaling", "horizontalpodautoscalers", "kubernetes", Needs::Hpa),
        case("keda.sh", "scaledobjects", "kubernetes", Needs::ScaledObject),
        Case {
            in_status: false,
            ..case("flagger.app", "canaries/status", "kubernetes", Needs::Nothing)
        },
        Case {
            in_status: false,
            ..case("flagger.app", "metrictemplates", "kubernetes", Needs::Template)
        },
        Case {
            in_status: false,
            ..case("flagger.app", "alertproviders", "kubernetes", Needs::Alert)
        },
        case(
            "gateway.networking.k8s.io",
            "httproutes",
            "gatewayapi:v1",
            Needs::Nothing,
        ),
        case("networking.istio.io", "destinationrules", "istio", Needs::Nothing),
        case("networking.istio.io", "virtualservices", "istio", Needs::Nothing),
        case("split.smi-spec.io", "trafficsplits", "linkerd", Needs::Nothing),
        case("networking.k8s.io", "ingresses", "nginx", Needs::Nothing),
        case("gloo.solo.io", "upstreams", "gloo", Needs::Nothing),
        case("gateway.solo.io", "routetables", "gloo", Needs::Nothing),
        case("appmesh.k8s.aws", "virtualnodes", "appmesh:v1beta2", Needs::Nothing),
        case("appmesh.k8s.aws", "virtualrouters", "appmesh:v1beta2", Needs::Nothing),
        case("appmesh.k8s.aws", "virtualservices", "appmesh:v1beta2", Needs::Nothing),
    ];
    for (index, case) in cases.iter().enumerate() {
        let name = format!("denied-{index}");
        take_away(&roles, &original, case.group, case.resource).await;
        wait_until_refused(&client, case.group, case.resource, &namespace).await;
        set_up(&env, &deployments, &canaries, &namespace, &name, case).await;
        let (verb_and_resource, name_ref) = (format!("resource \"{}\"", case.resource), name.as_str());
        let said = |message: &str| message.contains(&verb_and_resource) && message.contains("cannot ");
        if case.in_status {
            wait_until(
                &format!("{name} ({}) names {} in its status", case.provider, case.resource),
                Duration::from_secs(60),
                || async { said(&promoted_message(canaries.get_opt(name_ref).await.ok().flatten())) },
            )
            .await;
        }
        wait_until(
            &format!("{name} ({}) names {} in an Event", case.provider, case.resource),
            Duration::from_secs(60),
            || async { event_messages(&env, &namespace, name_ref).await.iter().any(|m| said(m)) },
        )
        .await;
        let _ = canaries.delete(&name, &DeleteParams::default()).await;
    }

    // No Event may be written: nothing is lost, the rollout goes on.
    take_away(&roles, &original, "events.k8s.io", "events").await;
    wait_until_refused(&client, "events.k8s.io", "events", &namespace).await;
    set_up(
        &env,
        &deployments,
        &canaries,
        &namespace,
        "quiet",
        &case("events.k8s.io", "events", "kubernetes", Needs::Nothing),
    )
    .await;
    wait_until("quiet initialized without Events", Duration::from_secs(60), || async {
        phase_of(&canaries, "quiet").await == Some(Phase::Initialized)
    })
    .await;

    // No Canary watch: a new replica is not ready, and says why.
    take_away(&roles, &original, "flagger.app", "canaries").await;
    wait_until_refused(&client, "flagger.app", "canaries", &namespace).await;
    let (address, blind) = operator_with_telemetry(&client, None);
    wait_until(
        "/readyz names the refused Canary watch",
        Duration::from_secs(60),
        || async {
            let (code, body) = readyz(address).await;
            code == Some(503) && body.contains("resource \"canaries\"")
        },
    )
    .await;
    blind.abort();

    // No Lease: a replica with leader election stands by, and says why.
    take_away(&roles, &original, "", "").await;
    let leases = Api::<Role>::namespaced(admin.clone(), INSTALL_NAMESPACE);
    let lease_rules = leases
        .get("serin-leader-election")
        .await
        .expect("the chart's leader election Role");
    let mut without = lease_rules.clone();
    without.rules = Some(Vec::new());
    leases
        .replace("serin-leader-election", &PostParams::default(), &without)
        .await
        .expect("the Lease rule taken away");
    wait_until_refused(&client, "coordination.k8s.io", "leases", INSTALL_NAMESPACE).await;
    let election = serin_operator::LeaderElection {
        namespace: INSTALL_NAMESPACE.into(),
        lease_name: serin_operator::LeaderElection::LEASE_NAME.into(),
        identity: "denied".into(),
        lease_duration: Duration::from_secs(15),
    };
    let (address, standby) = operator_with_telemetry(&client, Some(election));
    wait_until("/readyz names the refused Lease", Duration::from_secs(60), || async {
        let (code, body) = readyz(address).await;
        code == Some(200) && body.starts_with("ok: standby (") && body.contains("resource \"leases\"")
    })
    .await;
    standby.abort();
    env.teardown().await;
}

/// Puts the ClusterRole back to `original` without `resource` of `group` (nothing taken away
/// for an empty resource).
async fn take_away(
    roles: &Api<ClusterRole>,
    original: &Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>,
    group: &str,
    resource: &str,
) {
    let mut role = roles.get("serin").await.expect("the chart's ClusterRole");
    role.rules = original.clone();
    if let Some(rules) = role.rules.as_mut() {
        for rule in rules.iter_mut() {
            if rule.api_groups.as_ref().is_some_and(|g| g.iter().any(|g| g == group))
                && let Some(resources) = rule.resources.as_mut()
            {
                resources.retain(|r| r != resource);
            }
        }
        rules.retain(|rule| rule.resources.as_ref().is_some_and(|r| !r.is_empty()));
    }
    roles
        .replace("serin", &PostParams::default(), &role)
        .await
        .expect("the ClusterRole replaced");
}

/// Waits until the API server's authorizer (which learns RBAC changes from a watch) refuses
/// `resource` to serin's account.
async fn wait_until_refused(client: &Client, group: &str, resource: &str, namespace: &str) {
    let (resource, subresource) = resource.split_once('/').map_or((resource, None), |(r, s)| (r, Some(s)));
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": { "resourceAttributes": {
            "group": group, "resource": resource, "subresource": subresource,
            "verb": "get", "namespace": namespace,
        } }
    }))
    .expect("a SelfSubjectAccessReview");
    let reviews = Api::<SelfSubjectAccessReview>::all(client.clone());
    wait_until(
        &format!("{resource} refused to serin"),
        Duration::from_secs(30),
        || async {
            reviews
                .create(&PostParams::default(), &review)
                .await
                .ok()
                .and_then(|r| r.status)
                .is_some_and(|s| !s.allowed)
        },
    )
    .await;
}

/// Creates the target `name`, what `case` needs, and a Canary for them.
async fn set_up(
    env: &TestEnv,
    deployments: &Api<Deployment>,
    canaries: &Api<Canary>,
    namespace: &str,
    name: &str,
    case: &Case,
) {
    let mut extra = match case.provider {
        "nginx" => json!({ "ingressRef": { "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "edge" } }),
        "appmesh:v1beta2" => json!({ "service": { "port": 9898, "backends": ["backend.test"] } }),
        _ => json!({}),
    };
    let mut target = serde_json::to_value(deployment(name, &[("app", name)], 1)).expect("a Deployment");
    let container = &mut target["spec"]["template"]["spec"]["containers"][0];
    let objects = match case.needs {
        Needs::Nothing => vec![],
        Needs::DaemonSet => {
            extra["targetRef"] = json!({ "apiVersion": "apps/v1", "kind": "DaemonSet", "name": name });
            let mut daemon_set = target.clone();
            daemon_set["kind"] = json!("DaemonSet");
            if let Some(spec) = daemon_set["spec"].as_object_mut() {
                spec.remove("replicas");
            }
            vec![daemon_set]
        }
        Needs::ConfigMap => {
            container["envFrom"] = json!([{ "configMapRef": { "name": name } }]);
            vec![json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": { "a": "1" } })]
        }
        Needs::Secret => {
            container["envFrom"] = json!([{ "secretRef": { "name": name } }]);
            vec![
                json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name }, "stringData": { "a": "1" } }),
            ]
        }
        Needs::Hpa => {
            extra["autoscalerRef"] =
                json!({ "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": name });
            vec![
                json!({ "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": { "name": name },
                "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                    "minReplicas": 1, "maxReplicas": 2,
                    "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } } }] } }),
            ]
        }
        Needs::ScaledObject => {
            extra["autoscalerRef"] = json!({ "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": name });
            vec![
                json!({ "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": { "name": name },
                "spec": { "scaleTargetRef": { "name": name }, "minReplicaCount": 1,
                    "triggers": [{ "type": "cpu", "metricType": "Utilization", "metadata": { "value": "80" } }] } }),
            ]
        }
        Needs::Template => {
            extra["analysis"] = json!({ "interval": "1s", "threshold": 1, "iterations": 1,
                "metrics": [{ "name": "errors", "templateRef": { "name": "errors" }, "thresholdRange": { "max": 1 } }] });
            vec![]
        }
        Needs::Alert => {
            extra["analysis"] = json!({ "interval": "1s", "threshold": 1, "iterations": 1,
                "alerts": [{ "name": "team", "providerRef": { "name": "chat" } }] });
            vec![]
        }
    };
    let daemon_set = matches!(case.needs, Needs::DaemonSet);
    let items: Vec<Value> = objects.into_iter().chain((!daemon_set).then_some(target)).collect();
    if !items.is_empty() {
        let list = json!({ "apiVersion": "v1", "kind": "List", "items": items });
        kubectl(env, &["apply", "-n", namespace, "-f", "-"], &list.to_string()).await;
    }
    canaries
        .create(&PostParams::default(), &canary(name, case.provider, extra))
        .await
        .expect("Canary");
    if matches!(case.needs, Needs::Template) {
        // The template is read at the first analysis step: a new revision once initialized.
        wait_until(&format!("{name} initialized"), Duration::from_secs(60), || async {
            phase_of(canaries, name).await == Some(Phase::Initialized)
        })
        .await;
        let patch =
            json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } } } });
        deployments
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("new revision");
    }
}

async fn phase_of(canaries: &Api<Canary>, name: &str) -> Option<Phase> {
    canaries
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.status)
        .and_then(|s| s.phase)
}

fn promoted_message(canary: Option<Canary>) -> String {
    canary
        .and_then(|c| c.status)
        .as_ref()
        .and_then(serin_core::status::promoted_condition)
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// The messages of the Events about the object `name`.
async fn event_messages(env: &TestEnv, namespace: &str, name: &str) -> Vec<String> {
    let events = kubectl(
        env,
        &[
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "json",
        ],
        "",
    )
    .await;
    let events: Value = serde_json::from_str(&events).unwrap_or_default();
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect()
}

/// Another operator as serin's ServiceAccount, serving `/readyz` on a free port.
fn operator_with_telemetry(
    client: &Client,
    leader_election: Option<serin_operator::LeaderElection>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let config = serin_operator::Config {
        metrics_server: "http://127.0.0.1:9".into(),
        telemetry_address: Some(address),
        leader_election,
        ..Default::default()
    };
    (address, tokio::spawn(serin_operator::run(client.clone(), config)))
}

/// `/readyz`'s status code and body (no code while it does not answer).
async fn readyz(address: std::net::SocketAddr) -> (Option<u16>, String) {
    match reqwest::get(format!("http://{address}/readyz")).await {
        Ok(response) => {
            let code = response.status().as_u16();
            (Some(code), response.text().await.unwrap_or_default())
        }
        Err(_) => (None, String::new()),
    }
}

/// The load tester's chart, installed as Flagger's tutorials install Flagger's load tester
/// (release `flagger-loadtester` in the Canaries' namespace): it runs, and its ServiceAccount
/// may keep the gates in their ConfigMap and nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn the_load_tester_chart_keeps_gates_with_its_own_permissions() {
    let env = TestEnv::start(Options { nodes: 1 }).await.expect("control plane");
    let namespace = env.namespace("test").await.expect("namespace");
    let rendered = helm_template(
        "flagger-loadtester",
        "deploy/helm/serin-loadtester",
        &["--namespace", &namespace],
    );
    apply_twice(&env, &rendered).await;
    wait_for_replicas(&env, &namespace, "flagger-loadtester", 1).await;

    let client = client_as(&env, &namespace, "flagger-loadtester").await;
    let gates = "flagger-loadtester-gates";
    let store = GateStore::config_map_if_allowed(client.clone(), &namespace, gates).await;
    assert_eq!(
        store.fallback(),
        None,
        "the chart grants what the ConfigMap store needs"
    );
    store
        .set(Gate::Confirm, &namespace, "podinfo", true)
        .await
        .expect("a gate opened with the chart's permissions");
    let restarted = GateStore::config_map_if_allowed(client.clone(), &namespace, gates).await;
    assert!(
        restarted
            .is_open(Gate::Confirm, &namespace, "podinfo")
            .await
            .expect("the gate read back"),
        "the gate is kept in the ConfigMap"
    );
    let other = Api::<ConfigMap>::namespaced(client, &namespace)
        .get_opt("kube-root-ca.crt")
        .await;
    assert!(
        matches!(other, Err(kube::Error::Api(ref status)) if status.code == 403),
        "no other ConfigMap may be read: {other:?}"
    );
    env.teardown().await;
}
