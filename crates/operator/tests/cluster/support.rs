//! What the cluster tests share: the cluster with serin running, object builders and waits.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use libtest_mimic::Failed;
use serin_api::{Canary, Phase};
use serin_testenv::prometheus::{Prometheus, ScrapeTarget};
use serin_testenv::traffic::TrafficSource;
use serin_testenv::webhooks::WebhookReceiver;
use serin_testenv::{Options, TestEnv, wait_for};

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The control plane, with serin's CRDs installed and the operator running in this process; a
/// real Prometheus scraping the traffic source every second; a webhook receiver.
pub struct Cluster {
    pub env: TestEnv,
    pub traffic: TrafficSource,
    pub hooks: WebhookReceiver,
    /// For the operator's metric checks; it also scrapes the operator's own `/metrics`.
    pub prometheus: Prometheus,
    /// The operator's HTTP server (`-port`): `/metrics`, `/healthz`, `/readyz`.
    pub telemetry_url: String,
}

impl std::ops::Deref for Cluster {
    type Target = TestEnv;

    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

pub async fn start_cluster(options: Options) -> Result<Cluster, serin_testenv::Error> {
    let env = TestEnv::start(options).await?;
    env.install_crds().await?;
    env.install_upstream_crds("keda").await?;
    env.install_provider_crds().await?;
    let traffic = TrafficSource::start().await?;
    // A port for the operator's HTTP server, free now; nothing else in the tests binds a fixed one.
    let telemetry_address = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?;
    let operator = ScrapeTarget {
        job: "serin".into(),
        address: telemetry_address.to_string(),
        scheme: "http",
        metrics_path: "/metrics".into(),
        tls: None,
    };
    let prometheus = Prometheus::start(&[traffic.scrape_target(), operator], Duration::from_secs(1)).await?;
    let hooks = WebhookReceiver::start().await?;
    let config = serin_operator::Config {
        metrics_server: prometheus.url().to_string(),
        event_webhook: Some(format!("{}/event-webhook-flag", hooks.url())),
        telemetry_address: Some(telemetry_address),
        alerts: serin_operator::AlertSettings {
            global: Some(serin_operator::GlobalNotifier {
                kind: serin_api::alert_provider::AlertProviderType::Slack,
                endpoint: serin_operator::AlertEndpoint {
                    address: format!("{}{}", hooks.url(), crate::alerts::GLOBAL_SLACK_PATH),
                    token: None,
                    username: "flagger".into(),
                    channel: None,
                },
                proxy: None,
            }),
            cluster_name: Some(crate::alerts::CLUSTER_NAME.into()),
            policy: serin_operator::AlertPolicy {
                min_interval: Duration::from_millis(20),
                backoff: Duration::from_millis(200),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    tokio::spawn(serin_operator::run(env.client(), config));
    Ok(Cluster {
        env,
        traffic,
        hooks,
        prometheus,
        telemetry_url: format!("http://{telemetry_address}"),
    })
}

pub fn example(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")).join(path)
}

pub async fn create_deployment(env: &TestEnv, namespace: &str, deployment: &Deployment) -> Result<(), Failed> {
    Api::<Deployment>::namespaced(env.client(), namespace)
        .create(&PostParams::default(), deployment)
        .await
        .map_err(|e| format!("create deployment: {e}"))?;
    Ok(())
}

pub async fn create_canary(env: &TestEnv, namespace: &str, canary: serde_json::Value) -> Result<(), Failed> {
    let canary: Canary = serde_json::from_value(canary).map_err(|e| format!("canary JSON: {e}"))?;
    Api::<Canary>::namespaced(env.client(), namespace)
        .create(&PostParams::default(), &canary)
        .await
        .map_err(|e| format!("create canary: {e}"))?;
    Ok(())
}

/// Waits until the Canary reaches `phase` and returns it.
pub async fn wait_for_phase(env: &TestEnv, namespace: &str, name: &str, phase: Phase) -> Result<Canary, Failed> {
    let api = Api::<Canary>::namespaced(env.client(), namespace);
    let what = format!("canary {namespace}/{name} to reach {phase:?}");
    let reached = wait_for(TIMEOUT, &what, || {
        let api = api.clone();
        async move {
            let canary = api.get(name).await.ok()?;
            (canary.status.as_ref()?.phase == Some(phase)).then_some(canary)
        }
    })
    .await;
    match reached {
        Ok(canary) => Ok(canary),
        Err(error) => {
            // Say where the Canary is instead, and what serin said about it.
            let status = api.get(name).await.ok().and_then(|c| c.status);
            let message = status
                .as_ref()
                .and_then(serin_core::status::promoted_condition)
                .and_then(|c| c.message.clone());
            let mut events = events_for(env, namespace, name).await.unwrap_or_default();
            events.sort_by_key(|e| e.last_timestamp.clone());
            let recent = events.len().saturating_sub(10);
            let events: Vec<String> = events
                .into_iter()
                .skip(recent)
                .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
                .collect();
            Err(format!(
                "{error}; it is {:?} ({message:?}); events: {events:?}",
                status.and_then(|s| s.phase)
            )
            .into())
        }
    }
}

/// Waits until the Canary's Promoted condition says something containing `text`.
pub async fn wait_for_message(env: &TestEnv, namespace: &str, name: &str, text: &str) -> Result<Canary, Failed> {
    let api = Api::<Canary>::namespaced(env.client(), namespace);
    let what = format!("canary {namespace}/{name} to report {text:?}");
    wait_for(TIMEOUT, &what, || {
        let api = api.clone();
        async move {
            let canary = api.get(name).await.ok()?;
            let message = serin_core::status::promoted_condition(canary.status.as_ref()?)?
                .message
                .clone()?;
            message.contains(text).then_some(canary)
        }
    })
    .await
    .map_err(|e| e.to_string().into())
}

/// Events about the object `name` in `namespace`.
pub async fn events_for(env: &TestEnv, namespace: &str, name: &str) -> Result<Vec<Event>, Failed> {
    let events = Api::<Event>::namespaced(env.client(), namespace)
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .map_err(|e| format!("list events: {e}"))?;
    Ok(events.items)
}

/// The messages of the Events about `name` in `namespace`.
pub async fn event_messages(env: &TestEnv, namespace: &str, name: &str) -> Result<Vec<String>, Failed> {
    Ok(events_for(env, namespace, name)
        .await?
        .into_iter()
        .filter_map(|e| e.message)
        .collect())
}

pub async fn wait_for_event(env: &TestEnv, namespace: &str, name: &str, reason: &str) -> Result<Event, Failed> {
    let what = format!("an Event {reason} for {namespace}/{name}");
    wait_for(TIMEOUT, &what, || async move {
        events_for(env, namespace, name)
            .await
            .ok()?
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason))
    })
    .await
    .map_err(|e| e.to_string().into())
}

/// Runs kubectl against the test cluster; returns (success, stdout, stderr).
pub async fn kubectl(env: &TestEnv, args: &[&str]) -> Result<(bool, String, String), Failed> {
    let output = env
        .kubectl()
        .args(args)
        .output()
        .await
        .map_err(|e| format!("run kubectl: {e}"))?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

pub fn ensure(condition: bool, message: impl Into<String>) -> Result<(), Failed> {
    if condition { Ok(()) } else { Err(message.into().into()) }
}

/// Sets the image of the target's first container: a new revision.
pub async fn set_image(env: &TestEnv, namespace: &str, name: &str, image: &str) -> Result<(), Failed> {
    let patch = serde_json::json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": image }] } } } });
    Api::<Deployment>::namespaced(env.client(), namespace)
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .map_err(|e| format!("set image of {name}: {e}"))?;
    Ok(())
}

/// One distinct state of a Canary as a watcher would see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub phase: Phase,
    pub weight: i32,
    pub iterations: i32,
    pub failed_checks: i32,
}

/// Polls the Canary every 100 ms, recording each distinct state, until it reaches `last`.
pub async fn trace_until(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    last: Phase,
    timeout: Duration,
) -> Result<Vec<Seen>, Failed> {
    let api = Api::<Canary>::namespaced(env.client(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut trace: Vec<Seen> = Vec::new();
    loop {
        if let Ok(canary) = api.get(name).await {
            let status = canary.status.unwrap_or_default();
            let seen = Seen {
                phase: status.phase.unwrap_or_default(),
                weight: status.canary_weight.unwrap_or(0),
                iterations: status.iterations.unwrap_or(0),
                failed_checks: status.failed_checks.unwrap_or(0),
            };
            if trace.last() != Some(&seen) {
                trace.push(seen.clone());
            }
            if seen.phase == last {
                return Ok(trace);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(
                format!("canary {namespace}/{name} did not reach {last:?} within {timeout:?}; seen {trace:?}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn image_of(env: &TestEnv, namespace: &str, name: &str) -> Result<Option<String>, Failed> {
    let deployment = Api::<Deployment>::namespaced(env.client(), namespace)
        .get(name)
        .await
        .map_err(|e| format!("get {name}: {e}"))?;
    Ok(deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().and_then(|c| c.image.clone())))
}

pub async fn replicas_of(env: &TestEnv, namespace: &str, name: &str) -> Result<Option<i32>, Failed> {
    let deployment = Api::<Deployment>::namespaced(env.client(), namespace)
        .get(name)
        .await
        .map_err(|e| format!("get {name}: {e}"))?;
    Ok(deployment.spec.and_then(|s| s.replicas))
}

/// Applies a JSON merge patch to `name`.
pub async fn merge_patch<K>(api: &Api<K>, name: &str, patch: serde_json::Value) -> Result<(), Failed>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map_err(|e| format!("patch {name}: {e}"))?;
    Ok(())
}

pub async fn status_of(env: &TestEnv, namespace: &str, name: &str) -> Result<serin_api::CanaryStatus, Failed> {
    let canary = Api::<Canary>::namespaced(env.client(), namespace)
        .get(name)
        .await
        .map_err(|e| format!("get canary {name}: {e}"))?;
    Ok(canary.status.unwrap_or_default())
}

/// A Canary on the kubernetes provider for the workload `name` of `kind`.
pub fn canary_manifest(name: &str, kind: &str, analysis: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "provider": "kubernetes",
            "targetRef": { "apiVersion": "apps/v1", "kind": kind, "name": name },
            "service": { "port": 9898 },
            "analysis": analysis,
        }
    })
}

/// Waits until the object `name` no longer exists.
pub async fn wait_for_gone<K>(env: &TestEnv, namespace: &str, name: &str) -> Result<(), Failed>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(env.client(), namespace);
    let what = format!("{namespace}/{name} to be deleted");
    wait_for(TIMEOUT, &what, || {
        let api = api.clone();
        async move { api.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await
    .map_err(|e| e.to_string().into())
}

/// Waits until the webhook receiver has `count` calls to `path` (calls that follow a status
/// write, like post-rollout, can arrive just after the status is seen).
pub async fn wait_for_calls(cluster: &Cluster, path: &str, count: usize) -> Result<(), Failed> {
    let what = format!("{count} calls to {path}");
    wait_for(TIMEOUT, &what, || async move {
        (cluster.hooks.calls_to(path).len() >= count).then_some(())
    })
    .await
    .map_err(|e| e.to_string().into())
}

/// Each distinct (primary, canary) weight the routing object holds (as `weights` reads it)
/// until the Canary is in `end`.
pub async fn weights_until<F, Fut>(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    end: Phase,
    weights: F,
) -> Result<Vec<(i64, i64)>, Failed>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<(i64, i64)>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    let api = Api::<Canary>::namespaced(env.client(), namespace);
    loop {
        if let Some(route) = weights().await
            && seen.last() != Some(&route)
        {
            seen.push(route);
        }
        let phase = api.get(name).await.ok().and_then(|c| c.status).and_then(|s| s.phase);
        if phase == Some(end) && seen.len() > 1 {
            // The routes are set before the status is written.
            return Ok(seen);
        }
        ensure(
            tokio::time::Instant::now() < deadline,
            format!("not {end:?} within 90 s; weights seen {seen:?}"),
        )?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A canary whose pods answer half of the requests with errors: its new revision (`image`) gets
/// weight, fails its checks and is rolled back, all traffic on the primary again.
pub async fn ensure_rolled_back<F, Fut>(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    image: &str,
    weights: F,
) -> Result<(), Failed>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<(i64, i64)>>,
{
    cluster
        .traffic
        .set(namespace, name, serin_testenv::traffic::Behaviour::failing());
    set_image(cluster, namespace, name, image).await?;
    let seen = weights_until(cluster, namespace, name, Phase::Failed, weights).await?;
    ensure(
        seen.first() == Some(&(100, 0)) && seen.contains(&(70, 30)) && seen.last() == Some(&(100, 0)),
        format!("weights {seen:?}: 30 % on the canary, then all back on the primary"),
    )
}

/// Both builtin checks of the Canary passed (an Event `MetricPassed` each).
pub async fn ensure_builtin_checks_passed(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    series: &str,
) -> Result<(), Failed> {
    let events = events_for(env, namespace, name).await?;
    ensure(
        ["request-success-rate", "request-duration"].iter().all(|metric| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some("MetricPassed")
                    && e.message.as_deref().is_some_and(|m| m.starts_with(metric))
            })
        }),
        format!("both builtin checks passed on {series}"),
    )
}

/// The objects of a custom kind (a provider's routing objects) in `namespace`.
pub fn custom_api(
    env: &TestEnv,
    namespace: &str,
    (group, version, kind, plural): (&str, &str, &str, &str),
) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        env.client(),
        namespace,
        &kube::api::ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// A new revision (`image`) of a healthy canary is promoted through 30 % and 60 %: the weights the
/// routing object holds (as `weights` reads it) at every step.
pub async fn ensure_promoted_in_steps<F, Fut>(
    env: &TestEnv,
    namespace: &str,
    name: &str,
    image: &str,
    weights: F,
) -> Result<(), Failed>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<(i64, i64)>>,
{
    set_image(env, namespace, name, image).await?;
    let seen = weights_until(env, namespace, name, Phase::Succeeded, weights).await?;
    ensure(
        seen == vec![(100, 0), (70, 30), (40, 60), (100, 0)],
        format!("weights {seen:?}, expected 100/0 → 70/30 → 40/60 → 100/0"),
    )
}

/// Applies the podinfo Deployment and HPA and Flagger's tutorial manifests `files` (under
/// examples/) to `namespace`, unchanged but for the namespace (`NAMESPACE` in a file) and, for
/// a tutorial whose Flagger install sets `-mesh-provider`, that provider on the Canary.
pub async fn apply_tutorial(
    env: &TestEnv,
    namespace: &str,
    files: &[&str],
    provider: Option<&str>,
) -> Result<(), Failed> {
    let mut paths = vec![example("podinfo/deployment.yaml"), example("podinfo/hpa.yaml")];
    let mut written = Vec::new();
    for file in files {
        let mut text = std::fs::read_to_string(example(file))
            .map_err(|e| format!("examples/{file}: {e}"))?
            .replace("NAMESPACE", namespace);
        if let Some(provider) = provider {
            text = text.replace(
                "kind: Canary\nmetadata:\n  name: podinfo\nspec:\n",
                &format!("kind: Canary\nmetadata:\n  name: podinfo\nspec:\n  provider: {provider}\n"),
            );
        }
        let path = std::env::temp_dir().join(format!("serin-{namespace}-{}", file.replace('/', "-")));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path.clone());
        paths.push(path);
    }
    let mut result = Ok(());
    for path in &paths {
        let path = path.display().to_string();
        let (ok, _, stderr) = kubectl(env, &["apply", "-n", namespace, "-f", &path]).await?;
        if !ok {
            result = Err(format!("kubectl apply {path}: {stderr}").into());
            break;
        }
    }
    for path in written {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// A routing object `name` the user created before the Canary (`original` spec) is taken over
/// without an owner with its spec kept, routes to the primary once initialized, and has its
/// spec back (and still exists) after the Canary is deleted with `revertOnDeletion`. The Canary
/// is `canary` (its `revertOnDeletion` set here); `primary_weight` reads the object's weight.
pub async fn ensure_adopted_and_given_back<F, Fut>(
    cluster: &Cluster,
    namespace: &str,
    api: &Api<kube::api::DynamicObject>,
    object: serde_json::Value,
    mut canary: serde_json::Value,
    primary_weight: F,
) -> Result<(), Failed>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<i64>>,
{
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let original = object["spec"].clone();
    let existing: kube::api::DynamicObject =
        serde_json::from_value(object).map_err(|e| format!("the user's object: {e}"))?;
    api.create(&PostParams::default(), &existing)
        .await
        .map_err(|e| format!("create the user's {name}: {e}"))?;
    let canary_name = canary["metadata"]["name"].as_str().unwrap_or_default().to_string();
    canary["spec"]["revertOnDeletion"] = serde_json::json!(true);
    create_canary(cluster, namespace, canary).await?;
    wait_for_phase(cluster, namespace, &canary_name, Phase::Initialized).await?;
    let adopted = api.get(&name).await.map_err(|e| e.to_string())?;
    let kept = adopted
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("flagger.kubernetes.app/original-configuration"))
        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok());
    ensure(
        adopted.metadata.owner_references.as_ref().is_none_or(Vec::is_empty) && kept.as_ref() == Some(&original),
        format!(
            "{name} adopted without an owner, its spec kept: {:?} {kept:?}",
            adopted.metadata.owner_references
        ),
    )?;
    ensure(
        primary_weight().await == Some(100),
        format!("{name} routes to the primary once adopted"),
    )?;
    Api::<Canary>::namespaced(cluster.client(), namespace)
        .delete(&canary_name, &kube::api::DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    wait_for_gone::<Canary>(cluster, namespace, &canary_name).await?;
    let given_back = api
        .get(&name)
        .await
        .map_err(|e| format!("{name} after the Canary: {e}"))?;
    let annotations = given_back.metadata.annotations.unwrap_or_default();
    ensure(
        given_back.data["spec"] == original
            && !annotations.contains_key("flagger.kubernetes.app/original-configuration"),
        format!("{name} has its spec back: {} {annotations:?}", given_back.data["spec"]),
    )
}
