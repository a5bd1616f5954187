//! Switching a live cluster from one operator to the other, both ways: the first brings Canaries
//! into every state a cluster can be in (promoted, only initialized, failed, in the middle of an
//! analysis, held at confirm-promotion, held at confirm-rollout) and is stopped; the second's CRDs
//! are applied over the first's and it starts on the same control plane. Nothing may roll out that
//! the first would not have rolled out, and what was under way goes on from where it was.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use serin_api::{Canary, CanaryStatus};
use serin_testenv::traffic::{Behaviour, TrafficSource};

use crate::scenarios::{NAME, Scenario, held, scenario, weighted};
use crate::sides::{Operator, SCENARIO_TIMEOUT, Side};
use crate::trace::{Recorder, http_routes};

/// Where a Canary is when the operators are switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before {
    Initialized,
    /// A new revision released and ended in this phase.
    Released(&'static str),
    /// A new revision in its analysis, at this canary weight at least.
    Analysing(i32),
    /// A new revision held by a gate (the scenario's answers) in this phase.
    Held(&'static str),
}

struct Case {
    scenario: Scenario,
    before: Before,
}

fn cases() -> Vec<Case> {
    let case = |scenario, before| Case { scenario, before };
    vec![
        case(
            scenario("switch-promoted", "gatewayapi:v1", weighted()),
            Before::Released("Succeeded"),
        ),
        case(
            scenario("switch-initialized", "gatewayapi:v1", weighted()),
            Before::Initialized,
        ),
        case(
            Scenario {
                canary_behaviour: Behaviour::failing(),
                ..scenario("switch-failed", "gatewayapi:v1", weighted())
            },
            Before::Released("Failed"),
        ),
        case(
            scenario(
                "switch-analysing",
                "gatewayapi:v1",
                json!({ "interval": "10s", "threshold": 2, "stepWeights": [10, 20, 30, 40, 50, 60, 70, 80] }),
            ),
            Before::Analysing(20),
        ),
        case(
            Scenario {
                answers: held("confirm-promotion", "WaitingPromotion"),
                ..scenario("switch-gated", "gatewayapi:v1", weighted())
            },
            Before::Held("WaitingPromotion"),
        ),
        case(
            Scenario {
                answers: held("confirm-rollout", "Waiting"),
                ..scenario("switch-waiting", "gatewayapi:v1", weighted())
            },
            Before::Held("Waiting"),
        ),
    ]
}

/// What must not change across the switch for a Canary that was at rest.
#[derive(Debug, PartialEq)]
struct AtRest {
    phase: Option<serin_api::Phase>,
    last_applied_spec: Option<String>,
    last_promoted_spec: Option<String>,
    /// resourceVersions of the primary, the Services and the HTTPRoute.
    versions: BTreeMap<String, Option<String>>,
    calls: usize,
}

async fn at_rest(side: &Side, namespace: &str) -> AtRest {
    let client = side.env.client();
    let status: CanaryStatus = Api::<Canary>::namespaced(client.clone(), namespace)
        .get(NAME)
        .await
        .ok()
        .and_then(|c| c.status)
        .unwrap_or_default();
    let mut versions = BTreeMap::new();
    let primary = Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_opt(&format!("{NAME}-primary"))
        .await
        .ok()
        .flatten();
    versions.insert(
        "Deployment/app-primary".to_string(),
        primary.and_then(|d| d.metadata.resource_version),
    );
    for name in [NAME.to_string(), format!("{NAME}-primary"), format!("{NAME}-canary")] {
        let service = Api::<Service>::namespaced(client.clone(), namespace)
            .get_opt(&name)
            .await
            .ok()
            .flatten();
        versions.insert(
            format!("Service/{name}"),
            service.and_then(|s| s.metadata.resource_version),
        );
    }
    let route = http_routes(side, namespace).get_opt(NAME).await.ok().flatten();
    versions.insert(
        "HTTPRoute/app".to_string(),
        route.and_then(|r| r.metadata.resource_version),
    );
    AtRest {
        phase: status.phase,
        last_applied_spec: status.last_applied_spec,
        last_promoted_spec: status.last_promoted_spec,
        versions,
        calls: side.hooks.calls_to(&format!("/{namespace}/")).len(),
    }
}

/// Brings the case's Canary where `before` says, with `side`'s operator.
async fn prepare(side: &Side, case: &Case) -> Result<Recorder, String> {
    let scenario = &case.scenario;
    let recorder = scenario.create(side).await?;
    scenario.wait_for(side, &recorder, "Initialized").await?;
    if case.before == Before::Initialized {
        return Ok(recorder);
    }
    scenario.make_change(side).await?;
    match case.before {
        Before::Released(phase) | Before::Held(phase) => scenario.wait_for(side, &recorder, phase).await?,
        Before::Analysing(weight) => {
            let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
            while !recorder
                .steps()
                .iter()
                .any(|s| s.phase == "Progressing" && s.weight >= weight)
            {
                if tokio::time::Instant::now() > deadline {
                    return Err(format!("{}: never reached weight {weight}", scenario.name));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Before::Initialized => {}
    }
    if let Some(answers) = scenario.answers {
        let path = format!("/{}/{}", scenario.name, answers.hook);
        wait_for_calls(side, &path, answers.calls).await?;
    }
    Ok(recorder)
}

async fn wait_for_calls(side: &Side, path: &str, count: usize) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
    while side.hooks.calls_to(path).len() < count {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{path} was not called {count} times"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn ensure(ok: bool, what: String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what) }
}

/// The switch from `from` to `to`.
pub async fn switch(from: Operator, to: Operator, metrics_server: &str, traffic: &TrafficSource) -> Result<(), String> {
    let cases = cases();
    for case in &cases {
        traffic.set(case.scenario.name, NAME, case.scenario.canary_behaviour);
        traffic.set(case.scenario.name, &format!("{NAME}-primary"), Behaviour::healthy());
    }
    let mut side = Side::start(from, metrics_server).await?;
    if from == Operator::Serin {
        install_crds_of(&side, Operator::Serin).await?;
    }
    let recorders = try_join_all(cases.iter().map(|case| prepare(&side, case))).await?;
    let before: Vec<AtRest> = futures::future::join_all(cases.iter().map(|c| at_rest(&side, c.scenario.name))).await;

    side.stop_operator()?;
    // The new operator's CRDs applied over the old one's, as the switch-over guide says
    // (docs/operations.md).
    install_crds_of(&side, to).await?;
    side.start_operator(to)?;
    // Two analysis intervals under the new operator.
    tokio::time::sleep(Duration::from_secs(25)).await;

    let mut failures = Vec::new();
    for ((case, recorder), before) in cases.iter().zip(&recorders).zip(&before) {
        let name = case.scenario.name;
        let now = at_rest(&side, name).await;
        let new_calls: Vec<String> = side.hooks.calls_to(&format!("/{name}/"))[before.calls..]
            .iter()
            .map(|c| c.path.rsplit('/').next().unwrap_or_default().to_string())
            .collect();
        let steps: Vec<String> = recorder.steps().iter().map(|s| s.to_string()).collect();
        let result = match case.before {
            Before::Initialized | Before::Released(_) => ensure(
                now == *before,
                format!("{name}: changed by the switch: before {before:?}, after {now:?}"),
            ),
            Before::Held(phase) => {
                let allowed = ["confirm-rollout", "confirm-promotion", "rollout"];
                ensure(
                    now.phase.map(|p| serin_api::wire_name(&p)).as_deref() == Some(phase)
                        && new_calls.iter().all(|c| allowed.contains(&c.as_str()))
                        && now.versions.get("Deployment/app-primary") == before.versions.get("Deployment/app-primary"),
                    format!(
                        "{name}: still held in {phase}, the primary untouched; calls since the switch {new_calls:?}; steps {steps:?}"
                    ),
                )
            }
            Before::Analysing(_) => {
                let weights: Vec<i32> = recorder
                    .steps()
                    .iter()
                    .filter(|s| s.phase == "Progressing")
                    .map(|s| s.weight)
                    .collect();
                ensure(
                    weights.windows(2).all(|w| w[1] >= w[0])
                        && !new_calls.iter().any(|c| c == "pre-rollout" || c == "confirm-rollout"),
                    format!(
                        "{name}: the analysis goes on from its step: steps {steps:?}; calls since the switch {new_calls:?}"
                    ),
                )
            }
        };
        if let Err(failure) = result {
            failures.push(failure);
        }
    }
    if !failures.is_empty() {
        return Err(format!("after the switch to {to}:\n  {}", failures.join("\n  ")));
    }

    // The gates open, the analysis ends, and the next release rolls out under the new operator.
    for case in &cases {
        if let Some(answers) = case.scenario.answers {
            side.hooks
                .answer(&format!("/{}/{}", case.scenario.name, answers.hook), 200, "approved");
        }
    }
    let ends = cases
        .iter()
        .zip(&recorders)
        .filter_map(|(case, recorder)| match case.before {
            Before::Analysing(_) | Before::Held(_) => Some(case.scenario.wait_for(&side, recorder, "Succeeded")),
            _ => None,
        });
    try_join_all(ends).await?;
    release_again(&side, &cases[0].scenario, &recorders[0]).await
}

async fn install_crds_of(side: &Side, operator: Operator) -> Result<(), String> {
    let installed = match operator {
        Operator::Serin => side.env.install_crds().await,
        Operator::Flagger => side.env.install_flagger_crds().await,
    };
    installed.map_err(|e| format!("{operator}'s CRDs over the other's: {e}"))
}

/// A new image for `scenario`'s target, rolled out to `Succeeded` a second time.
async fn release_again(side: &Side, scenario: &Scenario, recorder: &Recorder) -> Result<(), String> {
    let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:3" }] } } } });
    Api::<Deployment>::namespaced(side.env.client(), scenario.name)
        .patch(NAME, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|e| format!("release app:3: {e}"))?;
    let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
    while recorder.steps().iter().filter(|s| s.phase == "Succeeded").count() < 2 {
        if tokio::time::Instant::now() > deadline {
            let steps: Vec<String> = recorder.steps().iter().map(|s| s.to_string()).collect();
            return Err(format!(
                "the next release did not succeed after the switch: steps {steps:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
