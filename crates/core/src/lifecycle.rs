//! The lifecycle around the analysis: which stage a Canary is in, its initialization, its revert
//! on deletion (`revertOnDeletion`), and user errors. Each is a pure decision over what the
//! operator observed, returning a [`Outcome`] plan; the analysis itself is [`crate::analysis`].

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serin_api::{CanarySpec, CanaryStatus, Phase};

use crate::alerts::Alert;
use crate::plan::{Action, Outcome, Routes, normal, warning};
use crate::readiness::Readiness;
use crate::status;

/// Re-check of a primary still rolling out at initialization, in case no watch event arrives.
pub const INITIALIZATION_RECHECK: Duration = Duration::from_secs(10);
/// Re-check of a target being given back on deletion.
pub const REVERT_RECHECK: Duration = Duration::from_secs(2);
/// Re-check of a Canary with a mistake in it, in case the fix is elsewhere (e.g. a missing
/// autoscaler being created).
pub const USER_ERROR_RECHECK: Duration = Duration::from_secs(30);

/// What a reconcile does with a Canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Deleted with the finalizer: give the target back, then let it go.
    Revert,
    /// Deleted without the finalizer: nothing to do.
    Gone,
    Initialize,
    Analyse,
}

pub fn stage(deleting: bool, has_finalizer: bool, status: &CanaryStatus) -> Stage {
    match (deleting, has_finalizer, status.phase.unwrap_or_default()) {
        (true, true, _) => Stage::Revert,
        (true, false, _) => Stage::Gone,
        (false, _, Phase::Unset | Phase::Initializing) => Stage::Initialize,
        (false, _, _) => Stage::Analyse,
    }
}

/// Something the user must fix: said in the `Promoted` condition's message (a Canary not yet
/// initialized is `Initializing`; otherwise the phase stays) and, when the message is new, in a
/// Warning Event with `reason`. Looked at again after [`USER_ERROR_RECHECK`].
pub fn problem(current: &CanaryStatus, reason: &'static str, message: &str, now: Timestamp) -> Outcome {
    let phase = match current.phase.unwrap_or_default() {
        Phase::Unset => Phase::Initializing,
        phase => phase,
    };
    problem_in(current, phase, reason, message, now, Some(USER_ERROR_RECHECK))
}

fn problem_in(
    current: &CanaryStatus,
    phase: Phase,
    reason: &'static str,
    message: &str,
    now: Timestamp,
    requeue: Option<Duration>,
) -> Outcome {
    let next = status::transition(current, phase, message, now);
    Outcome {
        notes: next
            .is_some()
            .then(|| warning(reason, message.to_string()).alerting(Alert::error(format!("problem: {reason}"), message)))
            .into_iter()
            .collect(),
        status: next,
        requeue,
        ..Outcome::default()
    }
}

/// The target as initialization sees it.
#[derive(Debug, Clone)]
pub struct InitTarget<'a> {
    /// Whether its selector has one of the `-selector-labels`.
    pub has_selector_label: bool,
    pub revision: &'a str,
    pub tracked_configs: &'a BTreeMap<String, String>,
}

/// The primary as initialization sees it.
#[derive(Debug, Clone)]
pub enum InitPrimary {
    Missing,
    /// It exists and another Canary (named) controls it.
    TakenBy(String),
    Present {
        readiness: Readiness,
        /// Whether it already runs the target's template.
        runs_target: bool,
    },
}

#[derive(Debug, Clone)]
pub struct InitObservation<'a> {
    pub now: Timestamp,
    pub spec: &'a CanarySpec,
    pub name: &'a str,
    pub namespace: &'a str,
    pub target_name: &'a str,
    /// `targetRef.kind`.
    pub target_kind: &'a str,
    /// `false` for a `targetRef.kind` serin cannot run (a Service).
    pub target_kind_supported: bool,
    /// `None` when the target does not exist.
    pub target: Option<InitTarget<'a>>,
    pub primary: InitPrimary,
    /// Another Canary that controls the apex Service.
    pub apex_taken_by: Option<String>,
    pub selector_labels: &'a [String],
    pub service_name: &'a str,
    /// The router must set its routes before the primary's pods start (App Mesh's VirtualNodes).
    pub routes_before_primary: bool,
}

/// Initialization: the primary and the Services are created (or brought up to date) at every
/// look; once the primary runs the target's template and is ready, the target is scaled to 0
/// and the Canary is `Initialized`.
pub fn initialize(current: &CanaryStatus, observation: &InitObservation) -> Outcome {
    let o = observation;
    let now = o.now;
    if !o.target_kind_supported {
        return problem(
            current,
            "UnsupportedTarget",
            "targetRef.kind Service is not supported by this serin version; target a Deployment or a DaemonSet",
            now,
        );
    }
    let Some(target) = &o.target else {
        return target_not_found(current, o.target_kind, o.namespace, o.target_name, now);
    };
    if !target.has_selector_label {
        return problem_in(
            current,
            Phase::Initializing,
            "SelectorLabelMissing",
            &format!(
                "{} {}/{} has none of the labels {} in spec.selector.matchLabels: add one, or list yours with -selector-labels",
                o.target_kind,
                o.namespace,
                o.target_name,
                o.selector_labels.join(", ")
            ),
            now,
            None,
        );
    }
    if let InitPrimary::TakenBy(owner) = &o.primary {
        return problem(
            current,
            "TargetTaken",
            &target_taken(o.target_kind, o.target_name, owner),
            now,
        );
    }
    if let Some(owner) = &o.apex_taken_by {
        return problem(
            current,
            "ServiceTaken",
            &format!(
                "Service {} belongs to Canary {owner}; set spec.service.name to a name no other Canary uses",
                o.service_name
            ),
            now,
        );
    }
    let mut actions = if o.routes_before_primary {
        // As Flagger's scheduler: the Services, App Mesh's VirtualNodes, then the primary.
        vec![
            Action::ApplyServices,
            Action::Route(Routes::all_to_primary()),
            Action::ApplyPrimary,
        ]
    } else {
        vec![
            Action::ApplyPrimary,
            Action::ApplyServices,
            Action::Route(Routes::all_to_primary()),
        ]
    };
    let waiting = match &o.primary {
        InitPrimary::Missing => Some(format!("creating {} {}-primary", o.target_kind, o.target_name)),
        InitPrimary::Present {
            readiness: Readiness::Failed(why),
            ..
        } => {
            let message = format!("primary is not ready: {why}; fix the target's pod template or resources");
            let mut outcome = problem_in(
                current,
                Phase::Initializing,
                "PrimaryNotReady",
                &message,
                now,
                Some(INITIALIZATION_RECHECK),
            );
            outcome.actions = actions;
            return outcome;
        }
        InitPrimary::Present {
            readiness: Readiness::Waiting(why),
            ..
        } => Some(why.clone()),
        InitPrimary::Present { runs_target: false, .. } => Some(format!(
            "updating {} {}-primary to the target's template",
            o.target_kind, o.target_name
        )),
        InitPrimary::Present { .. } | InitPrimary::TakenBy(_) => None,
    };
    if let Some(message) = waiting {
        let first = current.phase != Some(Phase::Initializing);
        return Outcome {
            status: status::transition(current, Phase::Initializing, &message, now),
            actions,
            notes: first
                .then(|| {
                    normal(
                        "Initializing",
                        format!("initializing {}/{}: {message}", o.namespace, o.name),
                    )
                })
                .into_iter()
                .collect(),
            requeue: Some(INITIALIZATION_RECHECK),
            after: vec![],
        };
    }
    actions.push(Action::ScaleDownTarget);
    // As Flagger at initialization: an unreachable metric provider is said early (Event only).
    let checks_metrics = o.spec.skip_analysis != Some(true)
        && o.spec
            .analysis()
            .and_then(|a| a.metrics.as_ref())
            .is_some_and(|m| !m.is_empty());
    Outcome {
        status: status::initialized(
            current,
            target.revision,
            target.tracked_configs,
            &format!("{} initialization completed.", o.target_kind),
            now,
        ),
        actions,
        notes: vec![
            normal(
                "Initialized",
                format!("Initialization done! {}.{}", o.name, o.namespace),
            )
            .alerting(
                Alert::info(
                    "initialized",
                    format!("New {} detected, initialization completed.", o.target_kind),
                )
                .with_details(),
            ),
        ],
        requeue: None,
        after: if checks_metrics {
            vec![Action::CheckMetricProviders]
        } else {
            vec![]
        },
    }
}

/// The target does not exist: said in the status and an Event; the phase is kept (a rollout
/// goes on once the target is back), and the Canary waits for a change.
pub fn target_not_found(current: &CanaryStatus, kind: &str, namespace: &str, name: &str, now: Timestamp) -> Outcome {
    let (phase, verb) = match current.phase.unwrap_or_default() {
        Phase::Unset | Phase::Initializing => (Phase::Initializing, "create"),
        phase => (phase, "recreate"),
    };
    let message = format!("target {kind} {namespace}/{name} not found: {verb} it or fix spec.targetRef.name");
    problem_in(current, phase, "TargetNotFound", &message, now, None)
}

/// The primary of an initialized Canary is gone: initialize again.
pub fn primary_missing(current: &CanaryStatus, kind: &str, namespace: &str, target: &str, now: Timestamp) -> Outcome {
    let message = format!("primary {kind} {namespace}/{target}-primary is missing; initializing again");
    problem_in(current, Phase::Initializing, "PrimaryMissing", &message, now, None)
}

/// The message of a Canary refused because another one manages its target.
pub fn target_taken(kind: &str, target: &str, owner: &str) -> String {
    format!(
        "{kind} {target} already has a Canary: {target}-primary belongs to Canary {owner}; a target can have only one Canary, so delete this one or target another workload"
    )
}

/// The target as the revert on deletion sees it.
#[derive(Debug, Clone)]
pub struct RevertTarget {
    /// Whether it has replicas again (a DaemonSet: back on its nodes).
    pub scaled_up: bool,
    pub readiness: Readiness,
    pub has_selector_label: bool,
}

#[derive(Debug, Clone)]
pub struct RevertObservation<'a> {
    pub now: Timestamp,
    pub name: &'a str,
    pub namespace: &'a str,
    pub target_name: &'a str,
    /// `None` when the target is gone.
    pub target: Option<RevertTarget>,
    /// Another Canary manages the target: this one took nothing and gives nothing back.
    pub taken_by_other: bool,
}

/// `revertOnDeletion`: give the target its replicas, point the apex Service and the routes at
/// it, and let the Canary go once it serves (`Terminating`, then `Terminated`).
pub fn revert(current: &CanaryStatus, observation: &RevertObservation) -> Outcome {
    let o = observation;
    let released = |message: &str, note: Option<String>| Outcome {
        status: status::transition(current, Phase::Terminated, message, o.now),
        notes: note.map(|n| normal("Terminated", n)).into_iter().collect(),
        after: vec![Action::ReleaseFinalizer],
        ..Outcome::default()
    };
    if o.taken_by_other {
        return released(
            "released: another Canary manages the target, so nothing is given back",
            None,
        );
    }
    let Some(target) = &o.target else {
        return released(
            "released: the target no longer exists",
            Some(format!(
                "{}.{}: released; the target no longer exists",
                o.name, o.namespace
            )),
        );
    };
    let mut actions = vec![Action::ScaleUpTarget];
    if target.has_selector_label {
        actions.push(Action::RevertApexService);
    }
    actions.push(Action::RevertRoutes);
    let waiting = match (&target.readiness, target.scaled_up) {
        (_, false) => Some("scaling the target up".to_string()),
        (Readiness::Waiting(why) | Readiness::Failed(why), true) => Some(why.clone()),
        (Readiness::Ready, true) => None,
    };
    match waiting {
        Some(why) => Outcome {
            status: status::transition(
                current,
                Phase::Terminating,
                &format!("reverting to the target: {why}"),
                o.now,
            ),
            actions,
            notes: (current.phase != Some(Phase::Terminating))
                .then(|| {
                    normal(
                        "Terminating",
                        format!(
                            "{}.{}: deleted with revertOnDeletion; giving traffic back to {}",
                            o.name, o.namespace, o.target_name
                        ),
                    )
                })
                .into_iter()
                .collect(),
            requeue: Some(REVERT_RECHECK),
            after: vec![],
        },
        None => Outcome {
            actions,
            ..released(
                "the target serves again; the Canary is released",
                Some(format!(
                    "{}.{}: reverted; {} serves through its Service again",
                    o.name, o.namespace, o.target_name
                )),
            )
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_api::canary::AlertSeverity;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("time")
    }

    const LABELS: [&str; 1] = ["app"];

    fn spec() -> &'static CanarySpec {
        static SPEC: std::sync::OnceLock<CanarySpec> = std::sync::OnceLock::new();
        SPEC.get_or_init(|| {
            serde_json::from_value(serde_json::json!({
                "targetRef": { "kind": "Deployment", "name": "web" },
                "service": { "port": 80 },
                "analysis": { "interval": "1m", "threshold": 1, "iterations": 1,
                              "metrics": [{ "name": "request-success-rate", "thresholdRange": { "min": 99 } }] }
            }))
            .expect("spec")
        })
    }

    fn observation<'a>(
        target: Option<InitTarget<'a>>,
        primary: InitPrimary,
        labels: &'a [String],
    ) -> InitObservation<'a> {
        InitObservation {
            now: at(100),
            spec: spec(),
            name: "web",
            namespace: "shop",
            target_name: "web",
            target_kind: "Deployment",
            target_kind_supported: true,
            target,
            primary,
            apex_taken_by: None,
            selector_labels: labels,
            service_name: "web",
            routes_before_primary: false,
        }
    }

    fn target(configs: &BTreeMap<String, String>) -> InitTarget<'_> {
        InitTarget {
            has_selector_label: true,
            revision: "s1-0000000000000001",
            tracked_configs: configs,
        }
    }

    fn ready(runs_target: bool) -> InitPrimary {
        InitPrimary::Present {
            readiness: Readiness::Ready,
            runs_target,
        }
    }

    #[test]
    fn stages() {
        let phase = |p: Phase| CanaryStatus {
            phase: Some(p),
            ..Default::default()
        };
        let cases = [
            (true, true, phase(Phase::Progressing), Stage::Revert),
            (true, false, phase(Phase::Progressing), Stage::Gone),
            (false, true, CanaryStatus::default(), Stage::Initialize),
            (false, false, phase(Phase::Initializing), Stage::Initialize),
            (false, false, phase(Phase::Initialized), Stage::Analyse),
            (false, false, phase(Phase::Failed), Stage::Analyse),
        ];
        for (deleting, finalizer, status, expected) in cases {
            assert_eq!(stage(deleting, finalizer, &status), expected, "{status:?}");
        }
    }

    /// (what is observed, expected phase, actions, Event reason)
    #[test]
    fn initialization_decisions() {
        let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
        let configs = BTreeMap::new();
        let full = vec![
            Action::ApplyPrimary,
            Action::ApplyServices,
            Action::Route(Routes::all_to_primary()),
        ];
        let mut scaled = full.clone();
        scaled.push(Action::ScaleDownTarget);
        let unlabelled = InitTarget {
            has_selector_label: false,
            ..target(&configs)
        };
        let cases: Vec<(InitObservation, Phase, Vec<Action>, Option<&str>)> = vec![
            (
                observation(None, InitPrimary::Missing, &labels),
                Phase::Initializing,
                vec![],
                Some("TargetNotFound"),
            ),
            (
                observation(Some(unlabelled), InitPrimary::Missing, &labels),
                Phase::Initializing,
                vec![],
                Some("SelectorLabelMissing"),
            ),
            (
                observation(Some(target(&configs)), InitPrimary::TakenBy("other".into()), &labels),
                Phase::Initializing,
                vec![],
                Some("TargetTaken"),
            ),
            (
                observation(Some(target(&configs)), InitPrimary::Missing, &labels),
                Phase::Initializing,
                full.clone(),
                Some("Initializing"),
            ),
            (
                observation(
                    Some(target(&configs)),
                    InitPrimary::Present {
                        readiness: Readiness::Waiting("0 of 1 available".into()),
                        runs_target: true,
                    },
                    &labels,
                ),
                Phase::Initializing,
                full.clone(),
                Some("Initializing"),
            ),
            (
                observation(
                    Some(target(&configs)),
                    InitPrimary::Present {
                        readiness: Readiness::Failed("deadline exceeded".into()),
                        runs_target: true,
                    },
                    &labels,
                ),
                Phase::Initializing,
                full.clone(),
                Some("PrimaryNotReady"),
            ),
            (
                observation(Some(target(&configs)), ready(false), &labels),
                Phase::Initializing,
                full.clone(),
                Some("Initializing"),
            ),
            (
                observation(Some(target(&configs)), ready(true), &labels),
                Phase::Initialized,
                scaled,
                Some("Initialized"),
            ),
        ];
        for (observation, phase, actions, reason) in cases {
            let outcome = initialize(&CanaryStatus::default(), &observation);
            let status = outcome.status.clone().expect("a status");
            assert_eq!(status.phase, Some(phase), "{observation:?}");
            assert_eq!(outcome.actions, actions, "{observation:?}");
            assert_eq!(outcome.notes.first().map(|n| n.reason), reason, "{observation:?}");
            // Problems alert at error; initialization alerts when done, as Flagger.
            let alert = outcome.notes.first().and_then(|n| n.alert.as_ref());
            let expected = match reason {
                Some("Initializing") => None,
                Some("Initialized") => Some((
                    AlertSeverity::Info,
                    "New Deployment detected, initialization completed.".to_string(),
                )),
                Some(_) => Some((AlertSeverity::Error, outcome.notes[0].message.clone())),
                None => None,
            };
            assert_eq!(
                alert.map(|a| (a.severity, a.message.clone())),
                expected,
                "{observation:?}"
            );
            let checks_providers = phase == Phase::Initialized;
            assert_eq!(
                outcome.after,
                if checks_providers {
                    vec![Action::CheckMetricProviders]
                } else {
                    vec![]
                },
                "{observation:?}"
            );
        }
        let mut app_mesh = observation(Some(target(&configs)), InitPrimary::Missing, &labels);
        app_mesh.routes_before_primary = true;
        assert_eq!(
            initialize(&CanaryStatus::default(), &app_mesh).actions,
            vec![
                Action::ApplyServices,
                Action::Route(Routes::all_to_primary()),
                Action::ApplyPrimary
            ],
            "App Mesh's VirtualNodes exist before the primary's pods start"
        );
        let mut unsupported = observation(Some(target(&configs)), ready(true), &labels);
        unsupported.target_kind_supported = false;
        let outcome = initialize(&CanaryStatus::default(), &unsupported);
        assert_eq!(outcome.notes[0].reason, "UnsupportedTarget");
        assert!(outcome.actions.is_empty());
        let mut shared_service = observation(Some(target(&configs)), ready(true), &labels);
        shared_service.apex_taken_by = Some("other".into());
        assert_eq!(
            initialize(&CanaryStatus::default(), &shared_service).notes[0].reason,
            "ServiceTaken"
        );
    }

    #[test]
    fn initialized_records_the_revision_once() {
        let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
        let configs = BTreeMap::from([("configmap/settings".to_string(), "h1".to_string())]);
        let o = observation(Some(target(&configs)), ready(true), &labels);
        let done = initialize(&CanaryStatus::default(), &o).status.expect("status");
        assert_eq!(done.last_applied_spec.as_deref(), Some("s1-0000000000000001"));
        assert_eq!(done.last_promoted_spec.as_deref(), Some("s1-0000000000000001"));
        assert_eq!(done.tracked_configs, Some(configs.clone()));
        let again = initialize(&done, &o);
        assert_eq!(again.status, None, "nothing new to write");
    }

    #[test]
    fn a_problem_is_said_once_and_maps_unset_to_initializing() {
        let first = problem(&CanaryStatus::default(), "AutoscalerNotFound", "create it", at(1));
        let status = first.status.expect("status");
        assert_eq!(status.phase, Some(Phase::Initializing));
        assert_eq!(first.notes.len(), 1);
        assert_eq!(first.requeue, Some(USER_ERROR_RECHECK));
        let again = problem(&status, "AutoscalerNotFound", "create it", at(2));
        assert!(again.status.is_none() && again.notes.is_empty(), "not repeated");
        let progressing = CanaryStatus {
            phase: Some(Phase::Progressing),
            ..Default::default()
        };
        let kept = problem(&progressing, "UnsupportedProvider", "use another", at(3));
        assert_eq!(kept.status.and_then(|s| s.phase), Some(Phase::Progressing));
    }

    #[test]
    fn revert_decisions() {
        let o = |target: Option<RevertTarget>, taken_by_other: bool| RevertObservation {
            now: at(100),
            name: "web",
            namespace: "shop",
            target_name: "web",
            target,
            taken_by_other,
        };
        let t = |scaled_up: bool, readiness: Readiness| RevertTarget {
            scaled_up,
            readiness,
            has_selector_label: true,
        };
        let all = vec![Action::ScaleUpTarget, Action::RevertApexService, Action::RevertRoutes];
        let cases = [
            (o(None, false), Phase::Terminated, vec![], true),
            (
                o(Some(t(true, Readiness::Ready)), true),
                Phase::Terminated,
                vec![],
                true,
            ),
            (
                o(Some(t(false, Readiness::Ready)), false),
                Phase::Terminating,
                all.clone(),
                false,
            ),
            (
                o(Some(t(true, Readiness::Waiting("1 of 2".into()))), false),
                Phase::Terminating,
                all.clone(),
                false,
            ),
            (
                o(Some(t(true, Readiness::Ready)), false),
                Phase::Terminated,
                all.clone(),
                true,
            ),
        ];
        for (observation, phase, actions, released) in cases {
            let outcome = revert(&CanaryStatus::default(), &observation);
            assert_eq!(outcome.status.and_then(|s| s.phase), Some(phase), "{observation:?}");
            assert_eq!(outcome.actions, actions, "{observation:?}");
            assert_eq!(
                outcome.after.contains(&Action::ReleaseFinalizer),
                released,
                "{observation:?}"
            );
        }
        let unlabelled = RevertTarget {
            has_selector_label: false,
            ..t(false, Readiness::Ready)
        };
        assert_eq!(
            revert(&CanaryStatus::default(), &o(Some(unlabelled), false)).actions,
            vec![Action::ScaleUpTarget, Action::RevertRoutes],
            "no apex Service to point at pods it cannot select"
        );
    }
}
