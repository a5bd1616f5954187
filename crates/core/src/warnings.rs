//! Mistakes in a Canary that Flagger's API accepts, and fields serin accepts but does not act on
//! for this Canary's provider. Each is said once, as a Warning Event, as soon as the Canary is
//! seen; the `SpecWarnings` condition remembers what was said, so a warning is repeated only
//! after it went away and came back.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serin_api::canary::Provider;
use serin_api::{CanarySpec, CanaryStatus};

use crate::strategy::KUBERNETES_DEFAULT_ITERATIONS;

/// The condition type that lists the current warnings, one per line of its message.
pub const CONDITION: &str = "SpecWarnings";

/// A metric whose `templateRef` names a MetricTemplate that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTemplate {
    pub metric: String,
    pub namespace: String,
    pub name: String,
}

/// Everything worth a warning in `spec` on `provider`. Whether the provider's router
/// `shifts_weights` and which spec fields it ignores, the router knows.
pub fn spec_warnings(
    spec: &CanarySpec,
    provider: Provider,
    shifts_weights: bool,
    ignored_fields: &[&str],
    missing_templates: &[MissingTemplate],
) -> Vec<String> {
    let mut warnings = Vec::new();
    let provider_name = serin_api::wire_name(&provider);
    if let Some(analysis) = spec.analysis() {
        if let (Some(step), Some(max), None) = (analysis.step_weight, analysis.max_weight, &analysis.step_weights)
            && step > max
        {
            warnings.push(format!(
                "analysis.stepWeight {step} is above analysis.maxWeight {max}: the canary goes straight to {max}%; lower stepWeight or raise maxWeight"
            ));
        }
        if let Some(weights) = &analysis.step_weights
            && weights.windows(2).any(|pair| pair[1] <= pair[0])
        {
            warnings.push(format!(
                "analysis.stepWeights {weights:?} must increase; steps not above the previous weight are skipped"
            ));
        }
        if !shifts_weights {
            if analysis.match_.as_ref().is_some_and(|m| !m.is_empty()) {
                warnings.push(format!(
                    "analysis.match is ignored: the {provider_name} provider cannot route a segment of users (A/B testing needs a mesh, an ingress or the Gateway API); the rollout is blue/green"
                ));
            }
            if analysis.iterations.unwrap_or(0) < 1 {
                warnings.push(format!(
                    "the {provider_name} provider cannot shift traffic progressively; running blue/green with analysis.iterations {KUBERNETES_DEFAULT_ITERATIONS} (set analysis.iterations to choose)"
                ));
            }
        }
        if analysis
            .session_affinity
            .as_ref()
            .is_some_and(|a| a.cookie_name.as_deref().is_none_or(str::is_empty))
        {
            warnings.push(
                "analysis.sessionAffinity has no cookieName, so users are not kept on the canary; name the cookie"
                    .to_string(),
            );
        }
    }
    for missing in missing_templates {
        warnings.push(format!(
            "metric {}: templateRef names MetricTemplate {}/{}, which does not exist; create it or fix the templateRef",
            missing.metric, missing.namespace, missing.name
        ));
    }
    for field in ignored_fields {
        warnings.push(format!("{field} is ignored by the {provider_name} provider"));
    }
    warnings
}

/// The status with the `SpecWarnings` condition listing `warnings` (removed when there are
/// none), and the warnings not said before; `None` when the condition already says this.
pub fn record(status: &CanaryStatus, warnings: &[String], now: Timestamp) -> Option<(CanaryStatus, Vec<String>)> {
    let previous = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION)
        .and_then(|c| c.message.clone());
    let message = warnings.join("\n");
    if previous.as_deref().unwrap_or_default() == message {
        return None;
    }
    let said: Vec<&str> = previous.as_deref().map(|m| m.lines().collect()).unwrap_or_default();
    let new = warnings
        .iter()
        .filter(|w| !said.contains(&w.as_str()))
        .cloned()
        .collect();
    let mut next = status.clone();
    let conditions = next.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != CONDITION);
    if !warnings.is_empty() {
        conditions.push(serin_api::canary::CanaryCondition {
            type_: CONDITION.to_string(),
            status: "True".to_string(),
            last_update_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
            reason: Some("SpecWarnings".to_string()),
            message: Some(message),
        });
    }
    Some((next, new))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(analysis: serde_json::Value) -> CanarySpec {
        serde_json::from_value(json!({
            "targetRef": { "kind": "Deployment", "name": "app" },
            "service": { "port": 80 },
            "analysis": analysis,
        }))
        .expect("spec")
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("time")
    }

    #[test]
    fn mistakes_flagger_accepts_are_named() {
        let above = spec(json!({ "interval": "1m", "threshold": 1, "stepWeight": 60, "maxWeight": 50 }));
        let warnings = spec_warnings(&above, Provider::GatewayApiV1, true, &[], &[]);
        assert_eq!(
            warnings,
            vec![
                "analysis.stepWeight 60 is above analysis.maxWeight 50: the canary goes straight to 50%; lower stepWeight or raise maxWeight"
            ]
        );
        let unordered = spec(json!({ "interval": "1m", "threshold": 1, "stepWeights": [10, 5, 20] }));
        assert_eq!(
            spec_warnings(&unordered, Provider::GatewayApiV1, true, &[], &[]),
            vec!["analysis.stepWeights [10, 5, 20] must increase; steps not above the previous weight are skipped"]
        );
        let unnamed =
            spec(json!({ "interval": "1m", "threshold": 1, "stepWeight": 10, "sessionAffinity": { "maxAge": 60 } }));
        assert_eq!(
            spec_warnings(&unnamed, Provider::GatewayApiV1, true, &[], &[]),
            vec!["analysis.sessionAffinity has no cookieName, so users are not kept on the canary; name the cookie"]
        );
        let fine = spec(json!({ "interval": "1m", "threshold": 1, "stepWeight": 10, "maxWeight": 50 }));
        assert!(spec_warnings(&fine, Provider::GatewayApiV1, true, &[], &[]).is_empty());
    }

    #[test]
    fn kubernetes_provider_without_iterations_runs_ten_and_drops_the_match() {
        let progressive = spec(json!({
            "interval": "1m", "threshold": 1, "stepWeight": 10,
            "match": [{ "headers": { "x-canary": { "exact": "1" } } }]
        }));
        let warnings = spec_warnings(&progressive, Provider::Kubernetes, false, &[], &[]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("analysis.match is ignored: the kubernetes provider"));
        assert!(warnings[1].contains("running blue/green with analysis.iterations 10"));
    }

    #[test]
    fn fields_the_router_ignores_and_missing_templates_are_named() {
        let with_alerts = spec(json!({
            "interval": "1m", "threshold": 1, "iterations": 2,
            "alerts": [{ "name": "team", "severity": "info", "providerRef": { "name": "slack" } }]
        }));
        let missing = MissingTemplate {
            metric: "errors".into(),
            namespace: "shop".into(),
            name: "error-rate".into(),
        };
        let warnings = spec_warnings(
            &with_alerts,
            Provider::GatewayApiV1,
            true,
            &["service.corsPolicy"],
            &[missing],
        );
        assert_eq!(
            warnings,
            vec![
                "metric errors: templateRef names MetricTemplate shop/error-rate, which does not exist; create it or fix the templateRef",
                "service.corsPolicy is ignored by the gatewayapi:v1 provider",
            ]
        );
    }

    #[test]
    fn each_warning_is_said_once_until_it_goes_away() {
        let first = vec!["a".to_string()];
        let (status, new) = record(&CanaryStatus::default(), &first, at(10)).expect("a change");
        assert_eq!(new, first);
        assert_eq!(record(&status, &first, at(20)), None, "said already");
        let both = vec!["a".to_string(), "b".to_string()];
        let (status, new) = record(&status, &both, at(30)).expect("a change");
        assert_eq!(new, vec!["b".to_string()], "only the new one");
        let (status, new) = record(&status, &[], at(40)).expect("cleared");
        assert!(new.is_empty());
        assert!(status.conditions.iter().flatten().all(|c| c.type_ != CONDITION));
        assert_eq!(record(&status, &[], at(50)), None);
        let (_, new) = record(&status, &first, at(60)).expect("back again");
        assert_eq!(new, first, "said again after it went away");
    }
}
