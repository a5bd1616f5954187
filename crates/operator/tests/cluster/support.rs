//! What the cluster tests share: the cluster with serin running, object builders and waits.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use libtest_mimic::Failed;
use serin_api::{Canary, Phase};
use serin_testenv::{Options, TestEnv, wait_for};

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A control plane with serin's CRDs installed and the operator running in this process.
pub async fn start_cluster(options: Options) -> Result<TestEnv, serin_testenv::Error> {
    let env = TestEnv::start(options).await?;
    env.install_crds().await?;
    tokio::spawn(serin_operator::run(env.client(), serin_operator::Config::default()));
    Ok(env)
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
    wait_for(TIMEOUT, &what, || {
        let api = api.clone();
        async move {
            let canary = api.get(name).await.ok()?;
            (canary.status.as_ref()?.phase == Some(phase)).then_some(canary)
        }
    })
    .await
    .map_err(|e| e.to_string().into())
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
