//! Comparing the two traces of a scenario. Timing is not compared, order and content are. A
//! difference serin makes on purpose is listed in docs/compat.md; here each has an id, the text of
//! its compat.md row (checked to be there), and a rewrite that turns Flagger's trace into what
//! serin does instead. A scenario names the differences it shows; any other difference fails.

use std::fmt::Write;

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
];

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
    let fields: [(&str, View); 6] = [
        ("status steps", |t| {
            t.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" → ")
        }),
        ("webhook calls", |t| t.hooks.join(" ")),
        ("HTTPRoute weights", |t| format!("{:?}", t.routes)),
        ("primary image", |t| format!("{:?}", t.primary_image)),
        ("Service selectors", |t| format!("{:?}", t.selectors)),
        ("HTTPRoute rules", |t| {
            t.route_rules.clone().unwrap_or_default().to_string()
        }),
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
            let _ = writeln!(out, "    routes {:?}", trace.routes);
        }
        for event in &trace.events {
            let _ = writeln!(out, "    event  {event}");
        }
    }
    out
}
