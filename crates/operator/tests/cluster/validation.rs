//! The API server itself rejects a bad Canary, MetricTemplate or AlertProvider at `kubectl apply`,
//! with a message that says what to fix (OpenAPI and CEL rules in serin's CRDs).

use std::sync::Arc;

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use libtest_mimic::Failed;
use serde_json::{Value, json};
use serin_api::{AlertProvider, Canary, MetricTemplate};
use serin_testenv::TestEnv;

use crate::support::Cluster;
use crate::support::ensure;

fn canary(spec: Value) -> Value {
    json!({ "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": { "name": "bad" }, "spec": spec })
}

/// A valid spec with `analysis` replaced.
fn with_analysis(analysis: Value) -> Value {
    canary(
        json!({ "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "app" }, "service": { "port": 80 }, "analysis": analysis }),
    )
}

fn progressive(extra: Value) -> Value {
    let mut analysis = json!({ "interval": "1m", "threshold": 5, "stepWeight": 10 });
    if let (Some(base), Some(extra)) = (analysis.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    with_analysis(analysis)
}

async fn create(env: &TestEnv, namespace: &str, resource: &ApiResource, object: &Value) -> Result<(), String> {
    let object: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let api = Api::<DynamicObject>::namespaced_with(env.client(), namespace, resource);
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &object,
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

pub async fn invalid_canaries_are_rejected_with_a_message(env: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = env.namespace("validation").await?;
    let canaries = ApiResource::erase::<Canary>(&());
    let templates = ApiResource::erase::<MetricTemplate>(&());
    let alerts = ApiResource::erase::<AlertProvider>(&());
    let metric = |m: Value| progressive(json!({ "metrics": [m] }));
    let webhook = |w: Value| progressive(json!({ "webhooks": [w] }));
    let cases: Vec<(&str, &ApiResource, Value, &str)> = vec![
        (
            "missing targetRef",
            &canaries,
            canary(json!({ "service": { "port": 80 } })),
            "spec.targetRef: Required value",
        ),
        (
            "missing service",
            &canaries,
            canary(json!({ "targetRef": { "kind": "Deployment", "name": "app" } })),
            "spec.service: Required value",
        ),
        (
            "no interval",
            &canaries,
            with_analysis(json!({ "threshold": 5, "iterations": 10 })),
            "analysis needs both interval",
        ),
        (
            "no threshold",
            &canaries,
            with_analysis(json!({ "interval": "1m", "iterations": 10 })),
            "analysis needs both interval",
        ),
        (
            "no strategy",
            &canaries,
            with_analysis(json!({ "interval": "1m", "threshold": 5 })),
            "analysis needs iterations (blue/green or A/B), stepWeight or stepWeights",
        ),
        (
            "stepWeight over 100",
            &canaries,
            progressive(json!({ "stepWeight": 150 })),
            "should be less than or equal to 100",
        ),
        (
            "maxWeight negative",
            &canaries,
            progressive(json!({ "maxWeight": -1 })),
            "should be greater than or equal to 0",
        ),
        (
            "stepWeights item over 100",
            &canaries,
            progressive(json!({ "stepWeights": [10, 120] })),
            "should be less than or equal to 100",
        ),
        (
            "stepWeights decreasing",
            &canaries,
            progressive(json!({ "stepWeights": [10, 50, 20] })),
            "stepWeights must be strictly increasing",
        ),
        (
            "stepWeights repeated",
            &canaries,
            progressive(json!({ "stepWeights": [10, 10, 20] })),
            "stepWeights must be strictly increasing",
        ),
        (
            "empty thresholdRange",
            &canaries,
            metric(json!({ "name": "request-success-rate", "thresholdRange": {} })),
            "thresholdRange needs min, max or both",
        ),
        (
            "custom metric without template",
            &canaries,
            metric(json!({ "name": "error-rate", "thresholdRange": { "max": 1 } })),
            "metric error-rate needs a templateRef",
        ),
        (
            "unknown provider",
            &canaries,
            canary(
                json!({ "provider": "mesh9", "targetRef": { "kind": "Deployment", "name": "app" }, "service": { "port": 80 } }),
            ),
            "Unsupported value: \"mesh9\"",
        ),
        (
            "unknown target kind",
            &canaries,
            canary(json!({ "targetRef": { "kind": "StatefulSet", "name": "app" }, "service": { "port": 80 } })),
            "Unsupported value: \"StatefulSet\"",
        ),
        (
            "unknown webhook type",
            &canaries,
            webhook(json!({ "name": "w", "type": "pre-flight", "url": "http://x/" })),
            "Unsupported value: \"pre-flight\"",
        ),
        (
            "unknown alert severity",
            &canaries,
            progressive(
                json!({ "alerts": [{ "name": "a", "severity": "fatal", "providerRef": { "name": "slack" } }] }),
            ),
            "Unsupported value: \"fatal\"",
        ),
        (
            "bad interval",
            &canaries,
            progressive(json!({ "interval": "1 minute" })),
            "interval must be a duration such as 30s, 1m or 1m30s",
        ),
        (
            "bad metric interval",
            &canaries,
            metric(json!({ "name": "request-duration", "interval": "5x", "thresholdRange": { "max": 500 } })),
            "metric interval must be a duration",
        ),
        (
            "bad webhook timeout",
            &canaries,
            webhook(json!({ "name": "w", "url": "http://x/", "timeout": "10sec" })),
            "webhook timeout must be a duration",
        ),
        (
            "unknown metric provider",
            &templates,
            json!({ "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": { "name": "bad" }, "spec": { "provider": { "type": "graphana" }, "query": "up" } }),
            "Unsupported value: \"graphana\"",
        ),
        (
            "unknown alert provider",
            &alerts,
            json!({ "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider", "metadata": { "name": "bad" }, "spec": { "type": "pager", "address": "http://x/" } }),
            "Unsupported value: \"pager\"",
        ),
        (
            "alert provider without address",
            &alerts,
            json!({ "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider", "metadata": { "name": "bad" }, "spec": { "type": "slack" } }),
            "needs an address or a secretRef",
        ),
    ];
    let mut failures = Vec::new();
    for (what, resource, object, expected) in &cases {
        match create(&env, &namespace, resource, object).await {
            Ok(()) => failures.push(format!("{what}: accepted, expected a rejection saying {expected:?}")),
            Err(message) if !message.contains(expected) => failures.push(format!(
                "{what}: rejected with {message:?}, expected it to say {expected:?}"
            )),
            Err(_) => {}
        }
    }
    ensure(failures.is_empty(), failures.join("\n"))
}

pub async fn a_complete_canary_is_accepted(env: Arc<Cluster>) -> Result<(), Failed> {
    let namespace = env.namespace("validation").await?;
    let canaries = ApiResource::erase::<Canary>(&());
    let full = progressive(json!({
        "interval": "1m30s",
        "stepWeights": [1, 5, 10, 50],
        "maxWeight": 50,
        "stepWeightPromotion": 100,
        "primaryReadyThreshold": 80,
        "canaryReadyThreshold": 80,
        "match": [{ "headers": { "x-canary": { "exact": "insider" } } }],
        "metrics": [
            { "name": "request-success-rate", "thresholdRange": { "min": 99 }, "interval": "1m" },
            { "name": "latency", "templateRef": { "name": "latency", "namespace": "istio-system" }, "thresholdRange": { "max": 0.5 }, "templateVariables": { "q": "0.99" } },
            { "name": "legacy", "threshold": 2, "query": "sum(up)" }
        ],
        "webhooks": [
            { "name": "gate", "type": "confirm-rollout", "url": "http://loadtester/gate/check" },
            { "name": "load", "url": "http://loadtester/", "timeout": "5s", "metadata": { "cmd": "hey -z 1m http://podinfo-canary/" } }
        ],
        "alerts": [{ "name": "on-call", "severity": "error", "providerRef": { "name": "slack", "namespace": "flagger" } }],
        "sessionAffinity": { "cookieName": "canary", "maxAge": 3600 }
    }));
    create(&env, &namespace, &canaries, &full)
        .await
        .map_err(|e| format!("a valid canary was rejected: {e}"))?;
    Ok(())
}
