//! The end of a Canary's life: `revertOnDeletion` gives the target back its traffic and replicas.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, ResourceExt};
use libtest_mimic::Failed;
use serde_json::json;
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::wait_for;

use crate::support::{
    Cluster, TIMEOUT, canary_manifest, create_canary, create_deployment, ensure, merge_patch, replicas_of, set_image,
    trace_until, wait_for_event, wait_for_message, wait_for_phase,
};

pub async fn revert_on_deletion_gives_the_target_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("revert").await?;
    let name = "keep";
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 2)).await?;
    create_canary(&cluster, &namespace, {
        let mut manifest = canary_manifest(
            name,
            "Deployment",
            json!({ "interval": "2s", "threshold": 1, "iterations": 1 }),
        );
        manifest["spec"]["revertOnDeletion"] = json!(true);
        manifest
    })
    .await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let canaries = Api::<Canary>::namespaced(cluster.client(), &namespace);
    let with_finalizer = wait_for(TIMEOUT, "the finalizer", || {
        let canaries = canaries.clone();
        async move {
            let canary = canaries.get(name).await.ok()?;
            canary
                .metadata
                .finalizers?
                .contains(&"finalizer.flagger.app".to_string())
                .then_some(())
        }
    })
    .await;
    with_finalizer.map_err(|e| e.to_string())?;
    ensure(
        replicas_of(&cluster, &namespace, name).await? == Some(0),
        "the target is at 0 while the Canary lives",
    )?;

    canaries
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let gone = wait_for(TIMEOUT, "the Canary to be deleted", || {
        let canaries = canaries.clone();
        async move { canaries.get_opt(name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    gone.map_err(|e| e.to_string())?;
    wait_for_event(&cluster, &namespace, name, "Terminated").await?;
    ensure(
        replicas_of(&cluster, &namespace, name).await? == Some(2),
        "the target has its replicas back",
    )?;
    let apex = Api::<Service>::namespaced(cluster.client(), &namespace)
        .get(name)
        .await
        .map_err(|e| format!("apex Service: {e}"))?;
    let selector = apex.spec.and_then(|s| s.selector).unwrap_or_default();
    ensure(
        selector.get("app").map(String::as_str) == Some(name),
        format!("the apex selects the target's pods: {selector:?}"),
    )?;
    ensure(
        apex.metadata.owner_references.unwrap_or_default().is_empty(),
        "the apex Service no longer belongs to the Canary",
    )?;
    let deployments = Api::<Deployment>::namespaced(cluster.client(), &namespace);
    let collected = wait_for(TIMEOUT, "the garbage collector to delete the primary", || {
        let deployments = deployments.clone();
        async move { deployments.get_opt("keep-primary").await.ok()?.is_none().then_some(()) }
    })
    .await;
    collected.map_err(|e| e.to_string())?;
    Ok(())
}

fn canary_with_autoscaler(name: &str, hpa: &str) -> serde_json::Value {
    json!({
        "metadata": { "name": name },
        "spec": {
            "provider": "kubernetes",
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            // Retired API version, read as autoscaling/v2.
            "autoscalerRef": { "apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler", "name": hpa },
            "service": { "port": 9898 },
            "analysis": { "interval": "2s", "threshold": 1, "iterations": 1 }
        }
    })
}

pub async fn an_hpa_is_copied_for_the_primary_and_kept_in_sync(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("hpa").await?;
    let name = "scaled";
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 2)).await?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(cluster.client(), &namespace);
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "minReplicas": 2, "maxReplicas": 4,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } } }]
        }
    }))?;
    hpas.create(&PostParams::default(), &hpa)
        .await
        .map_err(|e| e.to_string())?;
    create_canary(&cluster, &namespace, canary_with_autoscaler(name, name)).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;

    let primary = hpas
        .get("scaled-primary")
        .await
        .map_err(|e| format!("primary HPA: {e}"))?;
    ensure(
        primary.spec.scale_target_ref.name == "scaled-primary",
        format!("targets {:?}", primary.spec.scale_target_ref),
    )?;
    ensure(
        (primary.spec.min_replicas, primary.spec.max_replicas) == (Some(2), 4),
        format!("bounds {:?}", primary.spec),
    )?;
    ensure(
        primary
            .metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "Canary"),
        "owned by the Canary",
    )?;

    merge_patch(&hpas, name, json!({ "spec": { "maxReplicas": 6 } })).await?;
    set_image(&cluster, &namespace, name, "scaled:2").await?;
    let promoted = wait_for(TIMEOUT, "the promotion", || {
        let canaries = Api::<Canary>::namespaced(cluster.client(), &namespace);
        async move {
            let status = canaries.get(name).await.ok()?.status?;
            (status.phase == Some(Phase::Succeeded)).then_some(())
        }
    })
    .await;
    promoted.map_err(|e| e.to_string())?;
    let primary = hpas.get("scaled-primary").await.map_err(|e| e.to_string())?;
    ensure(primary.spec.max_replicas == 6, "the promotion synced the primary HPA")
}

pub async fn a_missing_autoscaler_is_reported(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("nohpa").await?;
    let name = "unscaled";
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 1)).await?;
    create_canary(&cluster, &namespace, canary_with_autoscaler(name, "missing")).await?;
    let expected = format!("autoscalerRef names HorizontalPodAutoscaler {namespace}/missing, which does not exist");
    wait_for_message(&cluster, &namespace, name, &expected).await?;
    wait_for_event(&cluster, &namespace, name, "AutoscalerNotFound").await?;
    Ok(())
}

pub async fn a_daemon_set_is_rolled_out_like_a_deployment(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("daemonset").await?;
    let name = "agent";
    let daemon_sets = Api::<DaemonSet>::namespaced(cluster.client(), &namespace);
    let target: DaemonSet = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "agent:1" }] }
            }
        }
    }))?;
    daemon_sets
        .create(&PostParams::default(), &target)
        .await
        .map_err(|e| e.to_string())?;
    create_canary(
        &cluster,
        &namespace,
        canary_manifest(
            name,
            "DaemonSet",
            json!({ "interval": "2s", "threshold": 1, "iterations": 1 }),
        ),
    )
    .await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let scheduled = |ds: DaemonSet| {
        ds.status
            .map(|s| (s.desired_number_scheduled, s.number_available.unwrap_or(0)))
    };
    let primary = daemon_sets
        .get("agent-primary")
        .await
        .map_err(|e| format!("primary DaemonSet: {e}"))?;
    ensure(scheduled(primary) == Some((3, 3)), "the primary runs on the 3 nodes")?;
    let parked = wait_for(TIMEOUT, "the target to run on no node", || {
        let daemon_sets = daemon_sets.clone();
        async move { (daemon_sets.get(name).await.ok()?.status?.desired_number_scheduled == 0).then_some(()) }
    })
    .await;
    parked.map_err(|e| e.to_string())?;

    let patch =
        json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "agent:2" }] } } } });
    daemon_sets
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .map_err(|e| e.to_string())?;
    let trace = trace_until(&cluster, &namespace, name, Phase::Succeeded, TIMEOUT).await?;
    ensure(
        trace.iter().any(|s| s.phase == Phase::Progressing && s.iterations == 1),
        format!("analysed: {trace:?}"),
    )?;
    let primary = daemon_sets.get("agent-primary").await.map_err(|e| e.to_string())?;
    let image = primary
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers[0].image.clone());
    ensure(
        image.as_deref() == Some("agent:2"),
        format!("the primary runs {image:?}"),
    )?;
    let target = daemon_sets.get(name).await.map_err(|e| e.to_string())?;
    let selector = target
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.node_selector)
        .unwrap_or_default();
    ensure(
        selector.get("flagger.app/scale-to-zero").map(String::as_str) == Some("true"),
        "the target is parked again",
    )
}

fn scaled_objects(cluster: &Cluster, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    Api::namespaced_with(
        cluster.client(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "scaledobjects"),
    )
}

async fn paused(cluster: &Cluster, namespace: &str, name: &str) -> Result<bool, Failed> {
    let scaled_object = scaled_objects(cluster, namespace)
        .get(name)
        .await
        .map_err(|e| e.to_string())?;
    Ok(scaled_object
        .annotations()
        .get("autoscaling.keda.sh/paused-replicas")
        .map(String::as_str)
        == Some("0"))
}

pub async fn a_keda_scaled_object_is_copied_and_the_targets_is_paused_between_rollouts(
    cluster: Arc<Cluster>,
) -> Result<(), Failed> {
    let namespace = cluster.namespace("keda").await?;
    let name = "worker";
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 1)).await?;
    let scaled_object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": { "name": "worker-so", "namespace": namespace },
        "spec": {
            "scaleTargetRef": { "name": name },
            "minReplicaCount": 1,
            "triggers": [{ "type": "prometheus", "name": "queue", "metadata": { "serverAddress": "http://prometheus:9090", "query": "sum(queue{app=\"worker\"})", "threshold": "5" } }]
        }
    }))?;
    scaled_objects(&cluster, &namespace)
        .create(&PostParams::default(), &scaled_object)
        .await
        .map_err(|e| e.to_string())?;
    let mut manifest = canary_manifest(
        name,
        "Deployment",
        json!({ "interval": "2s", "threshold": 1, "iterations": 1 }),
    );
    manifest["spec"]["autoscalerRef"] = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "worker-so",
        "primaryScalerQueries": { "queue": "sum(queue{app=\"worker-primary\"})" }
    });
    create_canary(&cluster, &namespace, manifest).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;

    let primary = scaled_objects(&cluster, &namespace)
        .get("worker-so-primary")
        .await
        .map_err(|e| format!("primary ScaledObject: {e}"))?;
    ensure(
        primary.data["spec"]["scaleTargetRef"]["name"] == json!("worker-primary"),
        format!("{}", primary.data["spec"]),
    )?;
    ensure(
        primary.data["spec"]["triggers"][0]["metadata"]["query"] == json!("sum(queue{app=\"worker-primary\"})"),
        "the primary's trigger runs primaryScalerQueries",
    )?;
    ensure(
        paused(&cluster, &namespace, "worker-so").await?,
        "the target's ScaledObject is paused while the target is at 0",
    )?;

    set_image(&cluster, &namespace, name, "worker:2").await?;
    let resumed = wait_for(
        TIMEOUT,
        "the target's ScaledObject to resume during the analysis",
        || async { (!paused(&cluster, &namespace, "worker-so").await.ok()?).then_some(()) },
    )
    .await;
    resumed.map_err(|e| e.to_string())?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    ensure(
        paused(&cluster, &namespace, "worker-so").await?,
        "paused again after the promotion",
    )
}
