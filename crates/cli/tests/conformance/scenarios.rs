//! The scenarios both operators run, and the script that drives one side through one of them:
//! the same manifests, the same image change, the same webhook answers, the same metrics.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use serin_api::Canary;
use serin_testenv::fixtures::deployment;
use serin_testenv::traffic::Behaviour;

use crate::sides::{SCENARIO_TIMEOUT, Side};
use crate::trace::{Recorder, Trace};

/// Every Canary of the suite is named so, in a namespace named after its scenario.
pub const NAME: &str = "app";

pub struct Scenario {
    /// Also the namespace, the same on both sides.
    pub name: &'static str,
    pub provider: &'static str,
    /// The Canary's `analysis` but its metrics and webhooks: every scenario checks the builtin
    /// metrics and calls a webhook of each type.
    pub analysis: Value,
    pub skip_analysis: bool,
    /// How the new revision's pods answer (the primary's are healthy).
    pub canary_behaviour: Behaviour,
    /// A webhook answered 403 until the Canary has sat in a phase for a while: (hook type, phase).
    pub held_gate: Option<(&'static str, &'static str)>,
    /// The phase the rollout ends in.
    pub end: &'static str,
    /// The deliberate differences (docs/compat.md) this scenario shows; see differences.rs.
    pub differences: &'static [&'static str],
}

fn hook(base: &str, kind: &str) -> Value {
    json!({ "name": kind, "type": kind, "url": format!("{base}/{kind}"), "timeout": "5s" })
}

fn builtin_metrics() -> Value {
    json!([
        { "name": "request-success-rate", "interval": "1m", "thresholdRange": { "min": 99 } },
        { "name": "request-duration", "interval": "1m", "thresholdRange": { "max": 500 } }
    ])
}

fn every_hook(base: &str) -> Value {
    json!(
        [
            "confirm-rollout",
            "pre-rollout",
            "rollout",
            "confirm-promotion",
            "post-rollout"
        ]
        .into_iter()
        .map(|kind| hook(base, kind))
        .collect::<Vec<_>>()
    )
}

const FAILING: Behaviour = Behaviour {
    requests_per_second: 20.0,
    error_ratio: 0.5,
    latency_seconds: 0.02,
};

/// A scenario that ends in `Succeeded` with a healthy canary, no gate held, no difference.
fn scenario(name: &'static str, provider: &'static str, analysis: Value) -> Scenario {
    Scenario {
        name,
        provider,
        analysis,
        skip_analysis: false,
        canary_behaviour: Behaviour::healthy(),
        held_gate: None,
        end: "Succeeded",
        differences: &[],
    }
}

pub fn all() -> Vec<Scenario> {
    vec![
        scenario(
            "blue-green",
            "kubernetes",
            json!({ "interval": "10s", "threshold": 2, "iterations": 2 }),
        ),
        scenario(
            "progressive",
            "gatewayapi:v1",
            json!({ "interval": "10s", "threshold": 2, "stepWeights": [10, 30], "stepWeightPromotion": 50 }),
        ),
        Scenario {
            canary_behaviour: FAILING,
            end: "Failed",
            ..scenario(
                "rollback",
                "kubernetes",
                json!({ "interval": "10s", "threshold": 2, "iterations": 4 }),
            )
        },
        Scenario {
            held_gate: Some(("confirm-promotion", "WaitingPromotion")),
            differences: &["waiting-promotion-status"],
            ..scenario(
                "promotion-gate",
                "gatewayapi:v1",
                json!({ "interval": "10s", "threshold": 2, "stepWeight": 50, "maxWeight": 50 }),
            )
        },
        Scenario {
            skip_analysis: true,
            differences: &["skip-analysis-phases"],
            ..scenario(
                "skip-analysis",
                "kubernetes",
                json!({ "interval": "10s", "threshold": 2, "iterations": 2 }),
            )
        },
    ]
}

impl Scenario {
    fn canary(&self, side: &Side) -> Result<Canary, String> {
        let base = format!("{}/{}", side.hooks.url(), self.name);
        let mut analysis = self.analysis.clone();
        analysis["metrics"] = builtin_metrics();
        analysis["webhooks"] = every_hook(&base);
        let mut spec = json!({
            "provider": self.provider,
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": NAME },
            "service": { "port": 9898 },
            "analysis": analysis,
            "skipAnalysis": self.skip_analysis,
        });
        if self.provider.starts_with("gatewayapi") {
            spec["service"]["gatewayRefs"] = json!([{ "name": "gateway", "namespace": "infra" }]);
        }
        serde_json::from_value(json!({ "metadata": { "name": NAME }, "spec": spec }))
            .map_err(|e| format!("{}: the Canary does not parse: {e}", self.name))
    }

    /// Runs the scenario on `side` and returns what the operator did.
    pub async fn run(&self, side: &Side) -> Result<Trace, String> {
        let namespace = self.name;
        side.namespace(namespace).await?;
        if let Some((kind, _)) = self.held_gate {
            side.hooks
                .answer(&format!("/{namespace}/{kind}"), 403, "held by the scenario");
        }
        let client = side.env.client();
        Api::create(
            &Api::namespaced(client.clone(), namespace),
            &PostParams::default(),
            &deployment(NAME, &[("app", NAME)], 1),
        )
        .await
        .map_err(|e| format!("{}: create the Deployment: {e}", side.operator))?;
        let recorder = Recorder::start(side, namespace, NAME).await?;
        Api::<Canary>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &self.canary(side)?)
            .await
            .map_err(|e| format!("{}: create the Canary: {e}", side.operator))?;
        self.wait_for(side, &recorder, "Initialized").await?;

        let patch =
            json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } } } });
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client, namespace)
            .patch(NAME, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(|e| format!("{}: set the new image: {e}", side.operator))?;

        if let Some((kind, phase)) = self.held_gate {
            self.wait_for(side, &recorder, phase).await?;
            let path = format!("/{namespace}/{kind}");
            let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
            while side.hooks.calls_to(&path).len() < 2 {
                if tokio::time::Instant::now() > deadline {
                    return Err(format!("{}: {kind} was not asked twice", side.operator));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            side.hooks.answer(&path, 200, "approved by the scenario");
        }
        self.wait_for(side, &recorder, self.end).await?;
        // The post-rollout webhooks follow the final status.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(recorder.finish(side, namespace, NAME).await)
    }

    async fn wait_for(&self, side: &Side, recorder: &Recorder, phase: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
        loop {
            if recorder.steps().iter().any(|s| s.phase == phase) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let steps: Vec<String> = recorder.steps().iter().map(|s| s.to_string()).collect();
                return Err(format!(
                    "{}: scenario {} did not reach {phase} within {SCENARIO_TIMEOUT:?}; steps {steps:?}; log {:?}",
                    side.operator,
                    self.name,
                    side.log_path()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
