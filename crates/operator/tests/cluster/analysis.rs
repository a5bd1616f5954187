//! Whole rollouts on the real control plane: new revisions analysed with real webhooks on
//! loopback and real Prometheus queries over the traffic source, then promoted or rolled back.

use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use libtest_mimic::Failed;
use serde_json::{Value, json};
use serin_api::{Canary, Phase};
use serin_testenv::fixtures::deployment;
use serin_testenv::traffic::Behaviour;
use serin_testenv::wait_for;

use crate::support::{
    Cluster, TIMEOUT, create_canary, create_deployment, ensure, events_for, image_of, replicas_of, set_image,
    status_of, trace_until, wait_for_calls, wait_for_event, wait_for_phase,
};

const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

pub fn hook(cluster: &Cluster, namespace: &str, kind: &str) -> Value {
    json!({ "name": format!("{kind}-hook"), "type": kind, "url": format!("{}/{namespace}/{kind}", cluster.hooks.url()), "timeout": "5s" })
}

pub fn builtin_metrics() -> Value {
    json!([
        { "name": "request-success-rate", "interval": "30s", "thresholdRange": { "min": 99 } },
        { "name": "request-duration", "interval": "30s", "thresholdRange": { "max": 500 } }
    ])
}

/// Deployment `name` (selector `app: name`) and its Canary on `provider`, initialized.
pub async fn release(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    replicas: i32,
    provider: &str,
    analysis: Value,
) -> Result<(), Failed> {
    create_deployment(cluster, namespace, &deployment(name, &[("app", name)], replicas)).await?;
    let canary = json!({
        "metadata": { "name": name },
        "spec": {
            "provider": provider,
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "service": { "port": 9898 },
            "analysis": analysis,
        }
    });
    create_canary(cluster, namespace, canary).await?;
    wait_for_phase(cluster, namespace, name, Phase::Initialized).await?;
    Ok(())
}

/// The path's last segment of each call to this namespace's hooks, without the rollback polls,
/// consecutive repeats folded.
fn hook_sequence(cluster: &Cluster, namespace: &str) -> Vec<String> {
    let mut kinds: Vec<String> = cluster
        .hooks
        .calls_to(&format!("/{namespace}/"))
        .iter()
        .map(|c| c.path.rsplit('/').next().unwrap_or_default().to_string())
        .filter(|kind| kind != "rollback")
        .collect();
    kinds.dedup();
    kinds
}

pub async fn blue_green_on_kubernetes_calls_every_webhook_in_order(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("bluegreen").await?;
    let name = "bg";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    cluster
        .hooks
        .answer(&format!("/{namespace}/rollback"), 403, "keep going");
    let mut rollout_hook = hook(&cluster, &namespace, "rollout");
    rollout_hook["metadata"] = json!({ "type": "cmd", "cmd": "hey -z 1m -q 10 -c 2 http://bg-canary/" });
    let analysis = json!({
        "interval": "2s", "threshold": 2, "iterations": 2,
        "metrics": builtin_metrics(),
        "webhooks": [
            hook(&cluster, &namespace, "confirm-rollout"),
            hook(&cluster, &namespace, "pre-rollout"),
            rollout_hook,
            hook(&cluster, &namespace, "confirm-promotion"),
            hook(&cluster, &namespace, "post-rollout"),
            hook(&cluster, &namespace, "rollback"),
        ]
    });
    release(&cluster, &namespace, name, 2, "kubernetes", analysis).await?;
    let initialized = status_of(&cluster, &namespace, name).await?;

    set_image(&cluster, &namespace, name, "bg:2").await?;
    let trace = trace_until(&cluster, &namespace, name, Phase::Succeeded, ROLLOUT_TIMEOUT).await?;
    let progressing: Vec<i32> = trace
        .iter()
        .filter(|s| s.phase == Phase::Progressing)
        .map(|s| s.iterations)
        .collect();
    // The pre-rollout step, two iterations, and the last check Flagger's runBlueGreen adds.
    ensure(
        progressing == vec![0, 1, 2, 3],
        format!("iterations while progressing {progressing:?}; trace {trace:?}"),
    )?;
    ensure(
        trace.iter().all(|s| s.weight == 0 && s.failed_checks == 0),
        format!("trace {trace:?}"),
    )?;

    // Post-rollout hooks are called once Succeeded is written.
    wait_for_calls(&cluster, &format!("/{namespace}/post-rollout"), 1).await?;
    let sequence = hook_sequence(&cluster, &namespace);
    // Flagger's runBlueGreen asks confirm-promotion after the last iteration, then checks once
    // more (rollout hooks) and asks confirm-promotion again before promoting.
    let expected = [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-promotion",
        "rollout",
        "confirm-promotion",
        "post-rollout",
    ];
    ensure(
        sequence == expected,
        format!("webhooks called in order {sequence:?}, expected {expected:?}"),
    )?;
    let calls = cluster.hooks.calls_to(&format!("/{namespace}/"));
    let rollout_calls = calls.iter().filter(|c| c.path.ends_with("/rollout")).count();
    ensure(
        rollout_calls == 3,
        format!("{rollout_calls} rollout calls, one per iteration and the last check expected"),
    )?;
    let canary = wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    // Flagger's checksum of the status as read when the hook is called: confirm-rollout is asked
    // before the new revision is recorded.
    let checksum_of = |status: &serin_api::CanaryStatus| {
        serin_core::revision::webhook_checksum(
            status.tracked_configs.as_ref(),
            status.last_applied_spec.as_deref().unwrap_or_default(),
        )
    };
    let (before, after) = (
        checksum_of(&initialized),
        checksum_of(&canary.status.unwrap_or_default()),
    );
    ensure(before != after, "the new revision has another checksum")?;
    for call in &calls {
        let kind = call.path.rsplit('/').next().unwrap_or_default();
        let (phase, checksum) = match kind {
            "confirm-rollout" => ("Initialized", &before),
            "post-rollout" => ("Succeeded", &after),
            _ => ("Progressing", &after),
        };
        let body = &call.body;
        ensure(
            body["name"] == json!(name)
                && body["namespace"] == json!(namespace)
                && body["phase"] == json!(phase)
                && body["checksum"] == json!(checksum),
            format!("{kind} payload {body}"),
        )?;
        if kind == "rollout" {
            ensure(
                body["metadata"]["cmd"] == json!("hey -z 1m -q 10 -c 2 http://bg-canary/"),
                format!("rollout metadata {body}"),
            )?;
        }
    }
    ensure_settled(
        &cluster,
        &namespace,
        name,
        "bg:2",
        "MetricPassed",
        "request-success-rate 100.00 is at least 99",
    )
    .await?;
    Ok(())
}

pub async fn failed_checks_roll_back_after_the_threshold(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("rollback").await?;
    let name = "flaky";
    cluster.traffic.set(
        &namespace,
        name,
        Behaviour {
            error_ratio: 0.3,
            ..Behaviour::healthy()
        },
    );
    let analysis = json!({
        "interval": "2s", "threshold": 2, "iterations": 5, "metrics": builtin_metrics(),
        "webhooks": [hook(&cluster, &namespace, "post-rollout")]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "flaky:2").await?;
    let trace = trace_until(&cluster, &namespace, name, Phase::Failed, ROLLOUT_TIMEOUT).await?;
    let failed: Vec<i32> = trace.iter().map(|s| s.failed_checks).collect();
    ensure(
        failed.contains(&1) && failed.contains(&2),
        format!("failed checks counted up to the threshold: {trace:?}"),
    )?;
    ensure(
        trace.iter().all(|s| s.iterations <= 1),
        format!("no checked iteration passed (the first step only runs pre-rollout hooks): {trace:?}"),
    )?;
    ensure_settled(
        &cluster,
        &namespace,
        name,
        "flaky:1",
        "MetricFailed",
        "request-success-rate 70.00 is below the minimum 99",
    )
    .await?;
    wait_for_calls(&cluster, &format!("/{namespace}/post-rollout"), 1).await?;
    let post = cluster.hooks.calls_to(&format!("/{namespace}/post-rollout"));
    ensure(
        post.len() == 1 && post[0].body["phase"] == json!("Failed"),
        format!("post-rollout calls {post:?}"),
    )?;
    Ok(())
}

/// After a rollout: the primary runs `primary_image`, the target is back at 0 replicas, and an
/// Event `reason` says `message` (the measured value of a check).
pub async fn ensure_settled(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    primary_image: &str,
    reason: &str,
    message: &str,
) -> Result<(), Failed> {
    let image = image_of(cluster, namespace, &format!("{name}-primary")).await?;
    ensure(
        image.as_deref() == Some(primary_image),
        format!("the primary runs {image:?}, expected {primary_image}"),
    )?;
    ensure(
        replicas_of(cluster, namespace, name).await? == Some(0),
        "the target is scaled back to 0",
    )?;
    let events = events_for(cluster, namespace, name).await?;
    let found = events
        .iter()
        .any(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref().is_some_and(|m| m.starts_with(message)));
    let messages: Vec<String> = events.iter().filter_map(|e| e.message.clone()).collect();
    ensure(
        found,
        format!("no {reason} Event saying {message:?}; events: {messages:?}"),
    )
}

fn http_routes(cluster: &Cluster, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(
        cluster.client(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    )
}

/// The weights of the HTTPRoute's default rule (primary, canary) and whether a match rule sends
/// requests to the canary.
pub async fn route_of(cluster: &Cluster, namespace: &str, name: &str) -> Option<(i64, i64, bool)> {
    let route = http_routes(cluster, namespace).get(name).await.ok()?;
    let rules = route.data["spec"]["rules"].as_array()?.clone();
    let default = rules.last()?;
    // A/B testing's default rule has the primary alone.
    let weight = |i: usize| default["backendRefs"][i]["weight"].as_i64().unwrap_or(0);
    let matched = rules.len() > 1 && rules[0]["backendRefs"][1]["weight"].as_i64() == Some(100);
    Some((weight(0), weight(1), matched))
}

/// Records each distinct (phase, canary weight, route) until the Canary reaches `last`.
async fn trace_routes(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    last: Phase,
) -> Result<Vec<(Phase, i32, Option<(i64, i64, bool)>)>, Failed> {
    let api = Api::<Canary>::namespaced(cluster.client(), namespace);
    let deadline = tokio::time::Instant::now() + ROLLOUT_TIMEOUT;
    let mut trace = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let status = api.get(name).await.ok().and_then(|c| c.status).unwrap_or_default();
        let seen = (
            status.phase.unwrap_or_default(),
            status.canary_weight.unwrap_or(0),
            route_of(cluster, namespace, name).await,
        );
        if trace.last() != Some(&seen) {
            trace.push(seen);
        }
        if seen.0 == last {
            return Ok(trace);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("canary {namespace}/{name} did not reach {last:?}; seen {trace:?}").into())
}

pub async fn progressive_canary_on_gateway_api_steps_through_weights(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("progressive").await?;
    let name = "shop";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis = json!({
        "interval": "3s", "threshold": 2, "stepWeights": [20, 50], "stepWeightPromotion": 25,
        "metrics": builtin_metrics(),
    });
    release(&cluster, &namespace, name, 2, "gatewayapi:v1", analysis).await?;
    let initial = route_of(&cluster, &namespace, name).await;
    ensure(
        initial == Some((100, 0, false)),
        format!("HTTPRoute after initialization {initial:?}"),
    )?;

    set_image(&cluster, &namespace, name, "shop:2").await?;
    let trace = trace_routes(&cluster, &namespace, name, Phase::Succeeded).await?;
    let steps: Vec<(Phase, i32)> = trace.iter().map(|(p, w, _)| (*p, *w)).collect::<Vec<_>>();
    let mut weights: Vec<i32> = steps.iter().map(|(_, w)| *w).collect();
    weights.dedup();
    ensure(
        weights == vec![0, 20, 50, 25, 0],
        format!("canary weights {weights:?}; trace {trace:?}"),
    )?;
    let mut routes: Vec<(i64, i64)> = trace.iter().filter_map(|(_, _, r)| r.map(|(p, c, _)| (p, c))).collect();
    routes.dedup();
    ensure(
        routes == vec![(100, 0), (80, 20), (50, 50), (75, 25), (100, 0)],
        format!("HTTPRoute weights {routes:?}"),
    )?;
    ensure(
        steps.iter().any(|(p, w)| *p == Phase::Promoting && *w == 25),
        format!("gradual promotion: {steps:?}"),
    )?;
    ensure_settled(&cluster, &namespace, name, "shop:2", "MetricPassed", "request-duration").await
}

pub async fn ab_testing_sends_matching_requests_to_the_canary(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("abtest").await?;
    let name = "store";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis = json!({
        "interval": "2s", "threshold": 2, "iterations": 2,
        "match": [{ "headers": { "x-canary": { "exact": "insider" } } }],
        "metrics": builtin_metrics(),
    });
    release(&cluster, &namespace, name, 1, "gatewayapi:v1", analysis).await?;
    set_image(&cluster, &namespace, name, "store:2").await?;
    let trace = trace_routes(&cluster, &namespace, name, Phase::Succeeded).await?;
    let progressing: Vec<Option<(i64, i64, bool)>> = trace
        .iter()
        .filter(|(p, _, _)| *p == Phase::Progressing)
        .map(|(_, _, r)| *r)
        .collect();
    ensure(
        progressing.iter().skip(1).all(|r| *r == Some((100, 0, true))),
        format!("while progressing, matching requests go to the canary and the rest to the primary: {trace:?}"),
    )?;
    ensure(
        trace.last().and_then(|t| t.2) == Some((100, 0, false)),
        format!("after promotion {trace:?}"),
    )?;
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    ensure(
        trace.iter().any(|(_, _, r)| r.is_some_and(|r| r.2)),
        format!("a match rule was seen: {trace:?} ({gvk:?})"),
    )?;
    ensure_settled(
        &cluster,
        &namespace,
        name,
        "store:2",
        "MetricPassed",
        "request-success-rate",
    )
    .await
}

pub async fn event_webhooks_receive_every_event(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("events").await?;
    let name = "chatty";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let analysis = json!({
        "interval": "2s", "threshold": 1, "iterations": 1,
        "webhooks": [hook(&cluster, &namespace, "event")]
    });
    release(&cluster, &namespace, name, 1, "kubernetes", analysis).await?;
    set_image(&cluster, &namespace, name, "chatty:2").await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    let received = serin_testenv::wait_for(Duration::from_secs(10), "the completion event", || async {
        let calls = cluster.hooks.calls_to(&format!("/{namespace}/event"));
        calls
            .iter()
            .any(|c| {
                c.body["metadata"]["eventMessage"]
                    .as_str()
                    .is_some_and(|m| m.contains("promotion completed"))
            })
            .then_some(calls)
    })
    .await
    .map_err(|e| e.to_string())?;
    for call in &received {
        let metadata = &call.body["metadata"];
        ensure(
            call.body["name"] == json!(name)
                && metadata["eventType"]
                    .as_str()
                    .is_some_and(|t| t == "Normal" || t == "Warning")
                && metadata["timestamp"]
                    .as_str()
                    .is_some_and(|t| t.parse::<i64>().is_ok_and(|ms| ms > 1_700_000_000_000)),
            format!("event payload {}", call.body),
        )?;
    }
    let flag = cluster.hooks.calls_to("/event-webhook-flag");
    ensure(
        flag.iter().any(|c| c.body["namespace"] == json!(namespace)),
        "-event-webhook received this Canary's events too",
    )
}

/// The HTTPRoute carries the service's match, headers, rewrite and timeouts (the API server's
/// Gateway API schema accepts them), and weights changed behind serin's back are set back.
pub async fn http_route_fields_are_applied_and_drifted_weights_set_back(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("drift").await?;
    let name = "drift";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    create_deployment(&cluster, &namespace, &deployment(name, &[("app", name)], 1)).await?;
    let canary = json!({
        "metadata": { "name": name },
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "service": {
                "port": 9898,
                "match": [{ "uri": { "prefix": "/api" } }],
                "headers": { "request": { "set": { "x-env": "test" } } },
                "rewrite": { "uri": "/" },
                "timeout": "15s"
            },
            "analysis": { "interval": "5s", "threshold": 1, "stepWeight": 50, "maxWeight": 50 }
        }
    });
    create_canary(&cluster, &namespace, canary).await?;
    wait_for_phase(&cluster, &namespace, name, Phase::Initialized).await?;
    let routes = http_routes(&cluster, &namespace);
    let route = routes.get(name).await.map_err(|e| e.to_string())?;
    let rule = &route.data["spec"]["rules"][0];
    ensure(
        rule["matches"] == json!([{ "path": { "type": "PathPrefix", "value": "/api" } }])
            && rule["timeouts"]["request"] == json!("15s")
            && rule["filters"][0]["requestHeaderModifier"]["set"] == json!([{ "name": "x-env", "value": "test" }])
            && rule["filters"][1]["urlRewrite"]["path"]["replaceFullPath"] == json!("/"),
        format!("the service's routing in the HTTPRoute: {rule}"),
    )?;

    set_image(&cluster, &namespace, name, "drift:2").await?;
    let api = Api::<Canary>::namespaced(cluster.client(), &namespace);
    wait_for(TIMEOUT, "the canary at 50%", || {
        let api = api.clone();
        async move { (api.get(name).await.ok()?.status?.canary_weight? == 50).then_some(()) }
    })
    .await
    .map_err(|e| e.to_string())?;
    // Someone sends everything back to the primary behind serin's back.
    let mut rules = routes.get(name).await.map_err(|e| e.to_string())?.data["spec"]["rules"].clone();
    rules[0]["backendRefs"][0]["weight"] = json!(100);
    rules[0]["backendRefs"][1]["weight"] = json!(0);
    routes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "rules": rules } })),
        )
        .await
        .map_err(|e| e.to_string())?;
    let repaired = wait_for_event(&cluster, &namespace, name, "RoutesRepaired").await?;
    ensure(
        repaired
            .message
            .as_deref()
            .is_some_and(|m| m.contains("sent 100% to the primary and 0% to the canary; set back to 50% and 50%")),
        format!("the repair names the weights: {:?}", repaired.message),
    )?;
    wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    Ok(())
}

/// Session affinity on the Gateway API (Flagger's getSessionAffinityRouteRules): while the canary
/// has weight, sticky rules send requests carrying the run's cookies to their side and the
/// weighted backends set them; once promoted, the run's cookie is expired. The API server's
/// Gateway API schema accepts every rule.
pub async fn session_affinity_keeps_users_on_their_side(cluster: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = cluster.namespace("sticky").await?;
    let name = "sticky";
    cluster.traffic.set(&namespace, name, Behaviour::healthy());
    let promotion = format!("/{namespace}/confirm-promotion");
    cluster.hooks.answer(&promotion, 403, "hold at the last weight");
    let analysis = json!({
        "interval": "2s", "threshold": 2, "stepWeight": 50, "maxWeight": 50,
        "sessionAffinity": { "cookieName": "canary-session", "primaryCookieName": "primary-session", "maxAge": 600 },
        "webhooks": [hook(&cluster, &namespace, "confirm-promotion")],
    });
    release(&cluster, &namespace, name, 1, "gatewayapi:v1", analysis).await?;
    set_image(&cluster, &namespace, name, "sticky:2").await?;
    let held = wait_for_phase(&cluster, &namespace, name, Phase::WaitingPromotion).await?;
    let status = held.status.unwrap_or_default();
    let canary_cookie = status
        .session_affinity_cookie
        .clone()
        .ok_or("no canary cookie in the status")?;
    let primary_cookie = status
        .primary_session_affinity_cookie
        .clone()
        .ok_or("no primary cookie in the status")?;
    let (canary_name, canary_value) = canary_cookie.split_once('=').ok_or("cookie is not name=value")?;
    let (_, primary_value) = primary_cookie.split_once('=').ok_or("cookie is not name=value")?;
    ensure(
        canary_name == "canary-session" && primary_cookie.starts_with("primary-session="),
        format!("cookies {canary_cookie} {primary_cookie}"),
    )?;
    let rules_of = || async {
        let route = http_routes(&cluster, &namespace)
            .get(name)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, Failed>(route.data["spec"]["rules"].as_array().cloned().unwrap_or_default())
    };
    let rules = rules_of().await?;
    let cookie_regex = |rule: &Value| rule["matches"][0]["headers"][0]["value"].as_str().map(String::from);
    let weights = |rule: &Value| {
        (
            rule["backendRefs"][0]["weight"].as_i64(),
            rule["backendRefs"][1]["weight"].as_i64(),
        )
    };
    let set_cookie = |backend: &Value| {
        backend["filters"][0]["responseHeaderModifier"]["add"][0]["value"]
            .as_str()
            .map(String::from)
    };
    ensure(
        rules.len() == 3
            && cookie_regex(&rules[0]) == Some(format!(".*canary-session.*{canary_value}.*"))
            && weights(&rules[0]) == (Some(0), Some(100))
            && cookie_regex(&rules[1]) == Some(format!(".*primary-session.*{primary_value}.*"))
            && weights(&rules[1]) == (Some(100), Some(0))
            && weights(&rules[2]) == (Some(50), Some(50))
            && set_cookie(&rules[2]["backendRefs"][1]) == Some(format!("{canary_cookie}; Max-Age=600"))
            && set_cookie(&rules[2]["backendRefs"][0]) == Some(format!("{primary_cookie}; Max-Age=2")),
        format!("sticky rules while the canary has weight: {rules:?}"),
    )?;

    cluster.hooks.answer(&promotion, 200, "go");
    let done = wait_for_phase(&cluster, &namespace, name, Phase::Succeeded).await?;
    let status = done.status.unwrap_or_default();
    ensure(
        status.session_affinity_cookie.is_none()
            && status.previous_session_affinity_cookie.as_deref() == Some(canary_cookie.as_str()),
        format!("after promotion the run's cookie is the previous one: {status:?}"),
    )?;
    let rules = rules_of().await?;
    ensure(
        rules.len() == 2
            && cookie_regex(&rules[0]) == Some(format!(".*canary-session.*{canary_value}.*"))
            && rules[0]["filters"][0]["responseHeaderModifier"]["add"][0]["value"]
                == json!(format!("{canary_cookie}; Max-Age=-1"))
            && weights(&rules[0]) == (Some(100), Some(0))
            && weights(&rules[1]) == (Some(100), Some(0)),
        format!("after promotion the old cookie is expired and all traffic is on the primary: {rules:?}"),
    )
}
