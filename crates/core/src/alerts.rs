//! Alerts: which moments of a rollout are worth a message to people (Slack, MS Teams, ...), at
//! which severity, and who subscribed to that severity. The moments and their texts are
//! Flagger's (pkg/controller/scheduler.go and scheduler_hooks.go, `c.alert(...)`), so that a
//! team's channel reads the same after switching; serin adds the failed check with its value,
//! errors outside the analysis (a missing target, an unreachable ingress) and a restart on a new
//! revision, which Flagger users asked for. The operator delivers them (serin-notify).

use serin_api::CanarySpec;
use serin_api::canary::{AlertSeverity, TargetKind};

use crate::strategy::{Steps, Strategy, strategy};

/// A message about a rollout, attached to the Event that records the same moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Info, Warn or Error; never Unset.
    pub severity: AlertSeverity,
    pub message: String,
    /// Whether the message carries the Canary's details ([`details`]): Flagger's "metadata".
    pub details: bool,
    /// What the message is about, stable across reconciles: the same cause is said once per
    /// revision (serin-notify's `Dedup`).
    pub cause: String,
}

impl Alert {
    pub fn info(cause: impl Into<String>, message: impl Into<String>) -> Alert {
        Alert::new(AlertSeverity::Info, cause, message)
    }

    pub fn warn(cause: impl Into<String>, message: impl Into<String>) -> Alert {
        Alert::new(AlertSeverity::Warn, cause, message)
    }

    pub fn error(cause: impl Into<String>, message: impl Into<String>) -> Alert {
        Alert::new(AlertSeverity::Error, cause, message)
    }

    fn new(severity: AlertSeverity, cause: impl Into<String>, message: impl Into<String>) -> Alert {
        Alert {
            severity,
            message: message.into(),
            details: false,
            cause: cause.into(),
        }
    }

    pub fn with_details(mut self) -> Alert {
        self.details = true;
        self
    }
}

/// Whether an `analysis.alerts` entry subscribed at `subscribed` receives an alert of
/// `severity`: `info` receives everything, `warn` warnings and errors, `error` errors only. An
/// entry without a severity is `info`, as Flagger's documentation says.
pub fn reaches(subscribed: AlertSeverity, severity: AlertSeverity) -> bool {
    let level = |s: AlertSeverity| match s {
        AlertSeverity::Unset | AlertSeverity::Info => 0,
        AlertSeverity::Warn => 1,
        AlertSeverity::Error => 2,
    };
    level(severity) >= level(subscribed)
}

/// The Canary's details that Flagger adds to its "new revision" and "initialization" messages:
/// the target, the failed checks threshold, the progress deadline and how traffic is routed.
pub fn details(spec: &CanarySpec, namespace: &str, shifts_weights: bool) -> Vec<(String, String)> {
    let analysis = spec.analysis().cloned().unwrap_or_default();
    let kind = match spec.target_ref.kind {
        TargetKind::Deployment => "Deployment",
        TargetKind::DaemonSet => "DaemonSet",
        TargetKind::Service => "Service",
    };
    let routing = match strategy(&analysis, shifts_weights) {
        Strategy::AbTesting { .. } => "A/B Testing".to_string(),
        Strategy::BlueGreen { .. } => "Blue/Green".to_string(),
        Strategy::Progressive {
            steps: Steps::Fixed(step),
            max_weight,
            ..
        } => format!("Weight step: {step} max: {max_weight}"),
        Strategy::Progressive {
            steps: Steps::List(steps),
            max_weight,
            ..
        } => {
            let steps: Vec<String> = steps.iter().map(i32::to_string).collect();
            format!("Weight steps: {} max: {max_weight}", steps.join(","))
        }
    };
    vec![
        (
            "Target".to_string(),
            format!("{kind}/{}.{namespace}", spec.target_ref.name),
        ),
        ("Failed checks threshold".to_string(), analysis.threshold().to_string()),
        (
            "Progress deadline".to_string(),
            format!("{}s", spec.progress_deadline_seconds()),
        ),
        ("Traffic routing".to_string(), routing),
    ]
}

/// Under `-no-cross-namespace-refs`: the first reference of the Canary to another namespace (a
/// MetricTemplate, an AlertProvider, a Gloo upstream), as a message saying what to change.
pub fn cross_namespace_ref(spec: &CanarySpec, namespace: &str) -> Option<String> {
    let elsewhere = |other: &Option<String>| {
        other
            .as_deref()
            .is_some_and(|other| !other.is_empty() && other != namespace)
    };
    if let Some(upstream) = &spec.upstream_ref
        && elsewhere(&upstream.namespace)
    {
        return Some(format!(
            "upstreamRef {}/{} is in another namespace and -no-cross-namespace-refs forbids it: use an upstream in namespace {namespace}",
            upstream.namespace.as_deref().unwrap_or_default(),
            upstream.name
        ));
    }
    let analysis = spec.analysis()?;
    for metric in analysis.metrics.iter().flatten() {
        if let Some(template) = &metric.template_ref
            && elsewhere(&template.namespace)
        {
            return Some(format!(
                "metric {} refers to MetricTemplate {}/{} in another namespace and -no-cross-namespace-refs forbids it: use a template in namespace {namespace}",
                metric.name,
                template.namespace.as_deref().unwrap_or_default(),
                template.name
            ));
        }
    }
    for alert in analysis.alerts.iter().flatten() {
        if elsewhere(&alert.provider_ref.namespace) {
            return Some(format!(
                "alert {} refers to AlertProvider {}/{} in another namespace and -no-cross-namespace-refs forbids it: use a provider in namespace {namespace}",
                alert.name,
                alert.provider_ref.namespace.as_deref().unwrap_or_default(),
                alert.provider_ref.name
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(analysis: serde_json::Value) -> CanarySpec {
        serde_json::from_value(json!({
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
            "service": { "port": 9898 },
            "analysis": analysis,
        }))
        .expect("a spec")
    }

    #[test]
    fn severity_routing_is_flaggers() {
        use AlertSeverity::*;
        let table = [
            (Info, [true, true, true]),
            (Unset, [true, true, true]),
            (Warn, [false, true, true]),
            (Error, [false, false, true]),
        ];
        for (subscribed, expected) in table {
            let got = [Info, Warn, Error].map(|severity| reaches(subscribed, severity));
            assert_eq!(got, expected, "{subscribed:?}");
        }
    }

    #[test]
    fn details_name_the_target_and_the_routing() {
        let progressive = spec(json!({ "interval": "1m", "threshold": 3, "stepWeight": 10, "maxWeight": 50 }));
        assert_eq!(
            details(&progressive, "test", true),
            vec![
                ("Target".to_string(), "Deployment/podinfo.test".to_string()),
                ("Failed checks threshold".to_string(), "3".to_string()),
                ("Progress deadline".to_string(), "600s".to_string()),
                ("Traffic routing".to_string(), "Weight step: 10 max: 50".to_string()),
            ]
        );
        let steps = spec(json!({ "stepWeights": [1, 10, 80] }));
        assert_eq!(details(&steps, "test", true)[3].1, "Weight steps: 1,10,80 max: 80");
        let ab = spec(json!({ "iterations": 5, "match": [{ "headers": { "x": { "exact": "1" } } }] }));
        assert_eq!(details(&ab, "test", true)[3].1, "A/B Testing");
        assert_eq!(details(&progressive, "test", false)[3].1, "Blue/Green");
    }

    #[test]
    fn references_to_other_namespaces_are_named() {
        let local = spec(json!({
            "metrics": [{ "name": "errors", "templateRef": { "name": "errors", "namespace": "test" } }],
            "alerts": [{ "name": "team", "providerRef": { "name": "slack" } }],
        }));
        assert_eq!(cross_namespace_ref(&local, "test"), None);
        let template = spec(json!({
            "metrics": [{ "name": "errors", "templateRef": { "name": "errors", "namespace": "shared" } }],
        }));
        assert!(
            cross_namespace_ref(&template, "test")
                .is_some_and(|m| m.starts_with("metric errors refers to MetricTemplate shared/errors"))
        );
        let alert =
            spec(json!({ "alerts": [{ "name": "team", "providerRef": { "name": "slack", "namespace": "flagger" } }] }));
        assert!(
            cross_namespace_ref(&alert, "test")
                .is_some_and(|m| m.starts_with("alert team refers to AlertProvider flagger/slack"))
        );
    }
}
