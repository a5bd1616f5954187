//! Comparing the two traces of a scenario. Timing is not compared, order and content are. A
//! difference serin makes on purpose is listed in docs/compat.md; here each has an id, the text of
//! its compat.md row (checked to be there), and a rewrite that turns Flagger's trace into what
//! serin does instead. A scenario names the differences it shows; any other difference fails.

use std::fmt::Write;

use crate::scenarios::NAME;
use crate::trace::{Step, Trace};

pub struct Difference {
    pub id: &'static str,
    /// The start of the `behaviour` cell of its row in docs/compat.md.
    pub compat_row: &'static str,
    /// Flagger's trace as serin's should be, given this difference.
    pub expect: fn(&mut Trace),
}

pub const DIFFERENCES: &[Difference] = &[
    Difference {
        id: "waiting-promotion-status",
        compat_row: "Status while confirm-promotion refuses",
        expect: keep_weight_and_iterations_until_finalising,
    },
    Difference {
        id: "skip-analysis-phases",
        compat_row: "`skipAnalysis`",
        expect: promote_in_phases,
    },
    Difference {
        id: "blue-green-switch-weight",
        compat_row: "Blue/green's last check with all traffic on the canary",
        expect: weight_100_in_the_last_check,
    },
    Difference {
        id: "revert-keeps-the-apex",
        compat_row: "`revertOnDeletion`",
        expect: keep_the_apex,
    },
];

/// Flagger leaves canaryWeight at 0 while blue/green sends all traffic to the canary for its
/// last check (the iteration after the last, through Promoting); serin says 100.
fn weight_100_in_the_last_check(trace: &mut Trace) {
    let last_check = trace
        .steps
        .iter()
        .filter(|s| s.phase == "Progressing")
        .map(|s| s.iterations)
        .max()
        .unwrap_or(0);
    let mut switched = false;
    for step in &mut trace.steps {
        switched |= step.phase == "Progressing" && step.iterations == last_check && last_check > 0;
        if switched && matches!(step.phase.as_str(), "Progressing" | "Promoting") {
            step.weight = 100;
        }
    }
}

/// On deletion with revertOnDeletion, Flagger leaves the apex Service and the HTTPRoute it created
/// to the garbage collector (its Finalize skips objects the Canary owns), so the name stops
/// resolving and the gateway stops routing; serin keeps both, the Service selecting the target's
/// pods and the HTTPRoute sending everything to it, and writes `Terminated` before letting go.
fn keep_the_apex(trace: &mut Trace) {
    if let Some(position) = trace.steps.iter().position(|s| s.phase == "Terminating") {
        let terminated = Step {
            phase: "Terminated".into(),
            ..trace.steps[position].clone()
        };
        trace.steps.insert(position + 1, terminated);
    }
    trace
        .selectors
        .insert(NAME.into(), [("app".to_string(), NAME.to_string())].into());
    if !trace.routes.is_empty() {
        trace.routes.push(serde_json::json!([{
            "backendRefs": [{ "group": "", "kind": "Service", "name": NAME, "port": 9898, "weight": 100 }],
            "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }]
        }]));
    }
}

/// Flagger sets canaryWeight to 0 and iterations to `analysis.iterations - 1` in
/// `WaitingPromotion` (its setStatusPhase), and Promoting keeps those; serin keeps the weight and
/// iterations in effect until Finalising.
fn keep_weight_and_iterations_until_finalising(trace: &mut Trace) {
    let mut in_effect: Option<(i32, i32)> = None;
    for step in &mut trace.steps {
        match step.phase.as_str() {
            "WaitingPromotion" | "Promoting" => {
                if let Some((weight, iterations)) = in_effect {
                    step.weight = weight;
                    step.iterations = iterations;
                }
            }
            _ => in_effect = Some((step.weight, step.iterations)),
        }
    }
    trace.steps.dedup();
}

/// Flagger's shouldSkipAnalysis goes from Progressing to Succeeded in one tick; serin promotes
/// through Promoting and Finalising as after an analysis.
fn promote_in_phases(trace: &mut Trace) {
    let mut steps = Vec::new();
    for step in trace.steps.drain(..) {
        if step.phase == "Succeeded"
            && let Some(previous) = steps.last().cloned().filter(|p: &Step| p.phase == "Progressing")
        {
            steps.push(Step {
                phase: "Promoting".into(),
                ..previous
            });
            steps.push(Step {
                phase: "Finalising".into(),
                weight: 0,
                iterations: 0,
                ..previous
            });
        }
        steps.push(step);
    }
    trace.steps = steps;
}

pub fn difference(id: &str) -> Option<&'static Difference> {
    DIFFERENCES.iter().find(|d| d.id == id)
}

/// One compared field of a trace, as text.
type View = fn(&Trace) -> String;

/// The fields in which `serin` differs from `expected`, each with both values.
pub fn mismatches(expected: &Trace, serin: &Trace) -> Vec<String> {
    let fields: [(&str, View); 10] = [
        ("status steps", |t| {
            t.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" → ")
        }),
        ("webhook calls", |t| t.hooks.join(" ")),
        ("webhook payloads", |t| format!("{:?}", t.payloads)),
        (
            "routing object (HTTPRoute, VirtualService, canary Ingress), each change",
            |t| {
                t.routes
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("\n      then ")
            },
        ),
        (
            "revisions (lastAppliedSpec lastPromotedSpec trackedConfigs), each change",
            |t| t.revisions.join(" → "),
        ),
        ("primary container", |t| format!("{:?}", t.primary_container)),
        ("Service selectors", |t| format!("{:?}", t.selectors)),
        ("Deployment replicas", |t| format!("{:?}", t.deployments)),
        ("ConfigMaps and Secrets", |t| format!("{:?}", t.configs)),
        ("autoscalers", |t| format!("{:?}", t.autoscalers)),
    ];
    fields
        .into_iter()
        .filter_map(|(name, view)| {
            let (flagger, serin) = (view(expected), view(serin));
            (flagger != serin).then(|| format!("{name}:\n    flagger {flagger}\n    serin   {serin}"))
        })
        .collect()
}

/// Both traces side by side, Events included, for the report.
pub fn report(flagger: &Trace, serin: &Trace) -> String {
    let mut out = String::new();
    for (who, trace) in [("flagger", flagger), ("serin", serin)] {
        let steps: Vec<String> = trace.steps.iter().map(|s| s.to_string()).collect();
        let _ = writeln!(out, "  {who}:");
        let _ = writeln!(out, "    steps  {}", steps.join(" → "));
        let _ = writeln!(out, "    hooks  {}", trace.hooks.join(" "));
        if !trace.routes.is_empty() {
            let weights: Vec<String> = trace.routes.iter().map(weights).collect();
            let _ = writeln!(out, "    routes {}", weights.join(" → "));
        }
        for event in &trace.events {
            let _ = writeln!(out, "    event  {event}");
        }
    }
    out
}

/// The weights of each rule's backends (an HTTPRoute's `backendRefs`, a VirtualService route's
/// `route`, a RouteTable route's destinations, a VirtualRouter route's targets), e.g. `[0/100 50/50]`, or a canary Ingress's `canary-weight` (`w30`, `w0+match` in
/// A/B testing).
fn weights(rules: &serde_json::Value) -> String {
    if let Some(annotations) = rules.get("annotations") {
        let weight = annotations["nginx.ingress.kubernetes.io/canary-weight"]
            .as_str()
            .unwrap_or("-");
        let matched = annotations
            .get("nginx.ingress.kubernetes.io/canary-by-header")
            .is_some()
            || annotations
                .get("nginx.ingress.kubernetes.io/canary-by-cookie")
                .is_some();
        return format!("w{weight}{}", if matched { "+match" } else { "" });
    }
    if let Some(backends) = rules.get("backends") {
        // A TrafficSplit: canary/primary.
        let weights: Vec<String> = backends
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| b["weight"].to_string().replace('"', ""))
            .collect();
        return weights.join("/");
    }
    let rules: Vec<String> = rules
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            let backends = if rule.get("backendRefs").is_some() {
                &rule["backendRefs"]
            } else if rule.get("routeAction").is_some() {
                &rule["routeAction"]["multi"]["destinations"]
            } else if rule.get("httpRoute").is_some() {
                &rule["httpRoute"]["action"]["weightedTargets"]
            } else {
                &rule["route"]
            };
            let weights: Vec<String> = backends
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| b["weight"].as_i64().map_or("-".to_string(), |w| w.to_string()))
                .collect();
            weights.join("/")
        })
        .collect();
    format!("[{}]", rules.join(" "))
}
