//! The rollout state machine. Given the Canary, what the operator observed and the answers of the
//! gates asked so far, [`decide`] either asks for one more gate ([`Decision::Run`]) or says what
//! to do ([`Decision::Act`]): the next status, the actions, the Events and when to look again.
//! The operator loops: run the gate it asks for, add the answer, decide again.
//!
//! Phases follow Flagger: Initialized → (new revision) Waiting / Progressing → WaitingPromotion →
//! Promoting → Finalising → Succeeded, or → Failed. Steps are paced by `analysis.interval` from
//! `status.lastTransitionTime`, so a restart neither resets nor skips a step.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serin_api::canary::{CanaryAnalysis, HookType};
use serin_api::duration::DurationError;
use serin_api::{CanarySpec, CanaryStatus, Phase};

use crate::alerts::Alert;
pub use crate::plan::{Action, Note, ObservedRoutes, Outcome, Routes};
use crate::plan::{normal, warning};
use crate::readiness::Readiness;
use crate::revision;
use crate::session_affinity;
use crate::status;
use crate::strategy::{Strategy, next_weight, strategy};

/// Re-check of a rollout that is waiting on a workload, in case no watch event arrives.
pub const WAIT_RECHECK: Duration = Duration::from_secs(10);

/// Look again soon after setting drifted routes back, so the step that was due is not delayed.
const ROUTES_RECHECK: Duration = Duration::from_secs(1);

/// The longest a decision asks to wait before looking again; a longer interval is paced by
/// looking again this often (timers cannot hold arbitrarily long delays).
pub const MAX_REQUEUE: Duration = Duration::from_secs(3600);

/// A question the operator answers with I/O before the machine can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gate {
    /// confirm-rollout webhooks: may the new revision start?
    ConfirmRollout,
    /// pre-rollout webhooks, before any traffic reaches the canary.
    PreRollout,
    /// rollback webhooks: does one of them ask for a rollback?
    RollbackRequested,
    /// confirm-traffic-increase webhooks.
    ConfirmTrafficIncrease,
    /// rollout webhooks and metric checks of one iteration.
    Checks,
    /// confirm-promotion webhooks.
    ConfirmPromotion,
}

impl Gate {
    /// The phase the gate's webhooks are told: the current one for confirm-rollout and rollback,
    /// `Progressing` for the others (Flagger's scheduler_hooks.go).
    pub fn payload_phase(self, current: Phase) -> Phase {
        match self {
            Gate::ConfirmRollout | Gate::RollbackRequested => current,
            _ => Phase::Progressing,
        }
    }

    /// The webhook type the gate calls, if any (Checks also evaluates metrics).
    pub fn hook_type(self) -> HookType {
        match self {
            Gate::ConfirmRollout => HookType::ConfirmRollout,
            Gate::PreRollout => HookType::PreRollout,
            Gate::RollbackRequested => HookType::Rollback,
            Gate::ConfirmTrafficIncrease => HookType::ConfirmTrafficIncrease,
            Gate::Checks => HookType::Rollout,
            Gate::ConfirmPromotion => HookType::ConfirmPromotion,
        }
    }
}

/// A gate's answer. `open` means "go on", except for [`Gate::RollbackRequested`], where it means
/// that a rollback webhook asked for the rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateResult {
    pub open: bool,
    pub message: String,
    /// The first webhook that held the gate has `muteAlert`: the Event is published, the
    /// alert is not (Flagger's scheduler_hooks.go).
    pub muted: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Gates(BTreeMap<Gate, GateResult>);

impl Gates {
    pub fn insert(&mut self, gate: Gate, result: GateResult) {
        self.0.insert(gate, result);
    }

    fn get(&self, gate: Gate) -> Option<&GateResult> {
        self.0.get(&gate)
    }
}

/// What the operator saw of the cluster.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub now: Timestamp,
    /// The target's current revision (pod template and the configs it uses).
    pub revision: &'a str,
    /// `status.trackedConfigs` for that revision.
    pub tracked_configs: &'a BTreeMap<String, String>,
    /// Readiness of the target (the canary workload).
    pub canary: Readiness,
    pub primary: Readiness,
    /// Whether the Canary's router can split traffic by weight.
    pub shifts_weights: bool,
    /// The routes the router found in the cluster (`None`: it keeps none, or none yet).
    pub routes: Option<ObservedRoutes>,
    /// Whether the target's selector still has one of the selector labels (needed to promote).
    pub target_has_selector_label: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Run(Gate),
    Act(Box<Outcome>),
}

fn act(outcome: Outcome) -> Decision {
    Decision::Act(Box::new(outcome))
}

/// The Canary being decided on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub spec: &'a CanarySpec,
    pub status: &'a CanaryStatus,
}

/// Whether a decision on a Canary with `status` looks at the routes in the cluster
/// ([`Observation::routes`]): only while the analysis runs, so idle Canaries cost no read.
pub fn compares_routes(status: &CanaryStatus) -> bool {
    matches!(
        status.phase.unwrap_or_default(),
        Phase::Progressing | Phase::WaitingPromotion
    )
}

pub fn decide(subject: &Subject, observation: &Observation, gates: &Gates) -> Decision {
    match Machine::new(subject, observation, gates).decide() {
        Decision::Act(mut outcome) => {
            outcome.requeue = outcome.requeue.map(|wait| wait.min(MAX_REQUEUE));
            session_affinity::add_cookies(
                subject.spec.analysis().and_then(|a| a.session_affinity.as_ref()),
                &format!("{}/{}", subject.namespace, subject.name),
                observation.revision,
                subject.status,
                &mut outcome,
            );
            Decision::Act(outcome)
        }
        run => run,
    }
}

struct Machine<'a> {
    name: String,
    spec: &'a CanarySpec,
    status: &'a CanaryStatus,
    observation: &'a Observation<'a>,
    gates: &'a Gates,
    analysis: CanaryAnalysis,
    strategy: Strategy,
    /// `analysis.interval`, or why it cannot be used.
    interval: Result<Duration, DurationError>,
}

impl<'a> Machine<'a> {
    fn new(subject: &'a Subject, observation: &'a Observation, gates: &'a Gates) -> Machine<'a> {
        let analysis = subject.spec.analysis().cloned().unwrap_or_default();
        let strategy = strategy(&analysis, observation.shifts_weights);
        let interval = analysis.interval();
        Machine {
            name: format!("{}.{}", subject.name, subject.namespace),
            spec: subject.spec,
            status: subject.status,
            observation,
            gates,
            analysis,
            strategy,
            interval,
        }
    }

    fn decide(&self) -> Decision {
        if self.spec.suspend == Some(true) {
            return act(Outcome::default());
        }
        let phase = self.status.phase.unwrap_or_default();
        if matches!(
            phase,
            Phase::Unset | Phase::Initializing | Phase::Terminating | Phase::Terminated
        ) {
            return act(Outcome::default());
        }
        if let Err(error) = &self.interval {
            return act(self.invalid_interval(phase, error));
        }
        let (revision, configs) = (self.observation.revision, self.observation.tracked_configs);
        let revision_changed = revision::differs_from_applied(self.status, revision, configs);
        match phase {
            Phase::Unset | Phase::Initializing | Phase::Terminating | Phase::Terminated => act(Outcome::default()),
            Phase::Initialized | Phase::Succeeded | Phase::Failed | Phase::Waiting => {
                if !revision_changed {
                    return act(Outcome::default());
                }
                if revision::is_promoted(self.status, revision, configs) {
                    return act(self.reverted(phase));
                }
                if phase == Phase::Waiting {
                    match self.gate(Gate::RollbackRequested) {
                        Err(gate) => return Decision::Run(gate),
                        Ok(Some(result)) if result.open => {
                            return act(self.rollback(
                                &format!(
                                    "a rollback webhook asked for it while waiting for approval: {}",
                                    result.message
                                ),
                                manual_rollback(),
                            ));
                        }
                        Ok(_) => {}
                    }
                }
                self.start_or_wait(phase)
            }
            Phase::Progressing | Phase::WaitingPromotion if revision_changed => self.start_or_wait(phase),
            Phase::Progressing | Phase::WaitingPromotion => self.analyse(phase),
            Phase::Promoting => self.promote(),
            Phase::Finalising => match &self.observation.primary {
                Readiness::Failed(why) => act(self.failed_promotion(why)),
                Readiness::Waiting(why) => self.wait(phase, &format!("finalising waits for the primary: {why}")),
                Readiness::Ready => act(self.finalise()),
            },
        }
    }

    fn has_hooks(&self, kind: HookType) -> bool {
        self.analysis.webhooks.iter().flatten().any(|hook| hook.kind() == kind)
    }

    /// `Ok(None)` when the gate has no hooks, its answer if asked already, `Err(gate)` when it must be asked.
    fn gate(&self, gate: Gate) -> Result<Option<&GateResult>, Gate> {
        if gate != Gate::Checks && !self.has_hooks(gate.hook_type()) {
            return Ok(None);
        }
        self.gates.get(gate).map(Some).ok_or(gate)
    }

    fn now(&self) -> Timestamp {
        self.observation.now
    }

    /// `analysis.interval`; only called once `decide` has checked that it is usable.
    fn interval(&self) -> Duration {
        self.interval.clone().unwrap_or(serin_api::canary::defaults::INTERVAL)
    }

    fn invalid_interval(&self, phase: Phase, error: &DurationError) -> Outcome {
        let message = format!("analysis.interval: {error}; nothing advances until it is fixed");
        let already_said = status::promoted_condition(self.status).and_then(|c| c.message.as_deref()) == Some(&message);
        Outcome {
            status: self.status_with(phase, &message, false, |_| {}),
            actions: vec![],
            notes: if already_said {
                vec![]
            } else {
                vec![
                    warning("InvalidInterval", format!("{}: {message}", self.name))
                        .alerting(Alert::error("InvalidInterval", message.clone())),
                ]
            },
            requeue: None,
            after: vec![],
        }
    }

    /// The status in `phase` with `message`, changed further by `edit`; `None` if nothing but times changed.
    fn status_with(
        &self,
        phase: Phase,
        message: &str,
        step: bool,
        edit: impl FnOnce(&mut CanaryStatus),
    ) -> Option<CanaryStatus> {
        let mut next =
            status::transition(self.status, phase, message, self.now()).unwrap_or_else(|| self.status.clone());
        edit(&mut next);
        if step {
            next.last_transition_time = Some(Time(self.now()));
        }
        status::changed(self.status, &next).then_some(next)
    }

    /// How long until the next step is due; `None` when it is due now. A step is never early:
    /// `lastTransitionTime` keeps milliseconds, and an interval too long to add is never due.
    fn until_next_step(&self) -> Option<Duration> {
        let last = self.status.last_transition_time.as_ref()?.0;
        let Ok(due) = last.checked_add(self.interval()) else {
            return Some(MAX_REQUEUE);
        };
        let remaining = due.duration_since(self.now());
        remaining
            .is_positive()
            .then(|| Duration::try_from(remaining).unwrap_or(MAX_REQUEUE))
    }

    fn reverted(&self, phase: Phase) -> Outcome {
        let phase = if phase == Phase::Waiting {
            Phase::Succeeded
        } else {
            phase
        };
        let message = "the target is back at the promoted revision; nothing to roll out";
        Outcome {
            status: self.status_with(phase, message, false, |s| self.record_revision(s)),
            actions: vec![Action::ScaleDownTarget],
            notes: vec![normal("Reverted", format!("{}: {message}", self.name))],
            requeue: None,
            after: vec![],
        }
    }

    fn start_or_wait(&self, phase: Phase) -> Decision {
        match self.gate(Gate::ConfirmRollout) {
            Err(gate) => return Decision::Run(gate),
            Ok(Some(result)) if !result.open => {
                let message = format!("waiting for confirm-rollout approval: {}", result.message);
                let notes = if phase == Phase::Waiting {
                    vec![]
                } else {
                    let note = normal(
                        "Waiting",
                        format!("{}: new revision waiting for approval: {}", self.name, result.message),
                    );
                    vec![alert_unless_muted(
                        note,
                        result,
                        Alert::warn("confirm-rollout", "Canary is waiting for approval."),
                    )]
                };
                return act(Outcome {
                    status: self.status_with(Phase::Waiting, &message, false, |_| {}),
                    actions: vec![],
                    notes,
                    requeue: Some(self.interval()),
                    after: vec![],
                });
            }
            Ok(_) => {}
        }
        let restart = matches!(phase, Phase::Progressing | Phase::WaitingPromotion);
        let message = format!(
            "new revision {}; analysis starts ({})",
            self.observation.revision,
            self.strategy.name()
        );
        let note = if restart {
            normal(
                "Restarted",
                format!(
                    "{}: new revision {} during the analysis; starting over with all traffic on the primary",
                    self.name, self.observation.revision
                ),
            )
            .alerting(Alert::info("new-revision", "New revision detected, restarting canary analysis.").with_details())
        } else {
            normal(
                "Progressing",
                format!(
                    "{}: new revision {} detected; scaling up the canary",
                    self.name, self.observation.revision
                ),
            )
            .alerting(Alert::info("new-revision", "New revision detected, progressing canary analysis.").with_details())
        };
        act(Outcome {
            status: self.status_with(Phase::Progressing, &message, true, |s| {
                self.record_revision(s);
                s.canary_weight = Some(0);
                s.iterations = Some(0);
                s.failed_checks = Some(0);
            }),
            actions: vec![Action::ScaleUpTarget, Action::Route(self.initial_routes())],
            notes: vec![note],
            requeue: Some(WAIT_RECHECK),
            after: vec![],
        })
    }

    /// The routes the status says are in place during the analysis.
    fn current_routes(&self) -> Routes {
        let weight = self.status.canary_weight.unwrap_or(0);
        if weight == 0 {
            return self.initial_routes();
        }
        Routes {
            matched_to_canary: matches!(self.strategy, Strategy::AbTesting { .. }),
            ..Routes::weights(100 - weight, weight)
        }
    }

    /// Routes while the analysis runs, before any weight step.
    fn initial_routes(&self) -> Routes {
        match self.strategy {
            Strategy::AbTesting { .. } => Routes {
                matched_to_canary: true,
                ..Routes::all_to_primary()
            },
            Strategy::BlueGreen { mirror, .. } => Routes {
                mirror,
                ..Routes::all_to_primary()
            },
            Strategy::Progressive { .. } => Routes::all_to_primary(),
        }
    }

    fn wait(&self, phase: Phase, message: &str) -> Decision {
        act(Outcome {
            status: self.status_with(phase, message, false, |_| {}),
            actions: vec![],
            notes: vec![],
            requeue: Some(WAIT_RECHECK),
            after: vec![],
        })
    }

    fn analyse(&self, phase: Phase) -> Decision {
        match &self.observation.canary {
            Readiness::Failed(why) => {
                return act(self.rollback(
                    &format!("canary is not ready: {why}"),
                    Alert::error("rolled-back", format!("Progress deadline exceeded {why}")),
                ));
            }
            Readiness::Waiting(why) => return self.wait(phase, why),
            Readiness::Ready => {}
        }
        if let Readiness::Waiting(why) | Readiness::Failed(why) = &self.observation.primary {
            return self.wait(phase, &format!("primary is not ready: {why}"));
        }
        if let Some(routes) = &self.observation.routes {
            if let Some(why) = &routes.refused {
                // Measuring a canary that receives no traffic would judge nothing.
                let message = format!("the routes are not accepted, so the analysis waits: {why}");
                let said = status::promoted_condition(self.status).and_then(|c| c.message.as_deref()) == Some(&message);
                return act(Outcome {
                    status: self.status_with(phase, &message, false, |_| {}),
                    notes: if said {
                        vec![]
                    } else {
                        vec![
                            warning("RoutesRefused", format!("{}: {message}", self.name))
                                .alerting(Alert::warn("RoutesRefused", message.clone())),
                        ]
                    },
                    requeue: Some(WAIT_RECHECK),
                    ..Outcome::default()
                });
            }
            let expected = self.current_routes();
            if (routes.primary, routes.canary) != (expected.primary, expected.canary) {
                let message = format!(
                    "{}: the routes sent {}% to the primary and {}% to the canary; set back to {}% and {}% as the analysis requires",
                    self.name, routes.primary, routes.canary, expected.primary, expected.canary
                );
                return act(Outcome {
                    actions: vec![Action::Route(expected)],
                    notes: vec![warning("RoutesRepaired", message)],
                    requeue: Some(ROUTES_RECHECK),
                    ..Outcome::default()
                });
            }
        }
        if self.spec.skip_analysis == Some(true) {
            return act(self.start_promotion("analysis skipped (skipAnalysis)"));
        }
        if let Some(remaining) = self.until_next_step() {
            return act(Outcome {
                requeue: Some(remaining),
                after: vec![],
                ..Outcome::default()
            });
        }
        // Rollback webhooks first, then the failed-checks threshold, as Flagger's scheduler.go.
        match self.gate(Gate::RollbackRequested) {
            Err(gate) => return Decision::Run(gate),
            Ok(Some(result)) if result.open => {
                return act(self.rollback(
                    &format!("a rollback webhook asked for it: {}", result.message),
                    manual_rollback(),
                ));
            }
            Ok(_) => {}
        }
        let failed = self.status.failed_checks.unwrap_or(0);
        if failed >= self.analysis.threshold() {
            return act(self.rollback(
                &format!(
                    "{failed} failed checks reached the threshold {}",
                    self.analysis.threshold()
                ),
                Alert::error("rolled-back", format!("Failed checks threshold reached {failed}")),
            ));
        }
        let weight = self.status.canary_weight.unwrap_or(0);
        let iterations = self.status.iterations.unwrap_or(0);
        // The first step only runs the pre-rollout hooks: no traffic has reached the canary yet,
        // so there is nothing to measure (Flagger's "skip check if no traffic is routed").
        if weight == 0 && iterations == 0 {
            match self.gate(Gate::PreRollout) {
                Err(gate) => return Decision::Run(gate),
                Ok(Some(result)) if !result.open => {
                    return act(self.failed_check(phase, &format!("pre-rollout check failed: {}", result.message)));
                }
                Ok(_) => {}
            }
        } else if let Some(decision) = self.checks(phase) {
            return decision;
        }
        match &self.strategy {
            Strategy::Progressive { steps, max_weight, .. } => {
                // Flagger asks confirm-traffic-increase at every step while Progressing, the one
                // at the last weight (before confirm-promotion) included (scheduler.go).
                if phase == Phase::Progressing
                    && let Some(decision) = self.traffic_increase_held(phase)
                {
                    return decision;
                }
                match next_weight(steps, *max_weight, weight) {
                    Some(next) => act(self.increase_weight(next)),
                    None => self.confirm_promotion(|| self.start_promotion("analysis passed")),
                }
            }
            Strategy::AbTesting { iterations: planned } if iterations < *planned => {
                self.next_iteration(iterations, *planned)
            }
            Strategy::AbTesting { .. } => self.confirm_promotion(|| self.start_promotion("analysis passed")),
            Strategy::BlueGreen {
                iterations: planned, ..
            } => match iterations.cmp(planned) {
                std::cmp::Ordering::Less => self.next_iteration(iterations, *planned),
                std::cmp::Ordering::Equal => self.confirm_promotion(|| self.switch_to_canary(phase, iterations)),
                // Flagger's runBlueGreen asks confirm-promotion again after the last check.
                std::cmp::Ordering::Greater => self.confirm_promotion(|| self.start_promotion("analysis passed")),
            },
        }
    }

    fn next_iteration(&self, iterations: i32, planned: i32) -> Decision {
        let done = iterations.saturating_add(1);
        act(Outcome {
            status: self.status_with(Phase::Progressing, &format!("iteration {done}/{planned}"), true, |s| {
                s.iterations = Some(done);
            }),
            actions: vec![],
            notes: vec![normal(
                "Progressing",
                format!("{}: advancing to iteration {done}/{planned}", self.name),
            )],
            requeue: Some(self.interval()),
            after: vec![],
        })
    }

    /// Blue/green after its last iteration: all traffic goes to the canary (on a router that
    /// can shift it) for one more check before the promotion, as Flagger's `runBlueGreen` does.
    fn switch_to_canary(&self, phase: Phase, iterations: i32) -> Outcome {
        let weighted = self.observation.shifts_weights;
        let done = iterations.saturating_add(1);
        let message = if weighted {
            "all traffic routed to the canary for a last check before the promotion"
        } else {
            "a last check before the promotion"
        };
        Outcome {
            status: self.status_with(phase, message, true, |s| {
                s.iterations = Some(done);
                if weighted {
                    s.canary_weight = Some(100);
                }
            }),
            actions: if weighted {
                vec![Action::Route(Routes::weights(0, 100))]
            } else {
                vec![]
            },
            notes: vec![normal("Progressing", format!("{}: {message}", self.name))],
            requeue: Some(self.interval()),
            after: vec![],
        }
    }

    /// `Some(decision)` when the iteration's checks must run or failed.
    fn checks(&self, phase: Phase) -> Option<Decision> {
        match self.gate(Gate::Checks) {
            Err(gate) => Some(Decision::Run(gate)),
            Ok(Some(result)) if !result.open => Some(act(self.failed_check(phase, &result.message))),
            Ok(_) => None,
        }
    }

    fn failed_check(&self, phase: Phase, why: &str) -> Outcome {
        let failed = self.status.failed_checks.unwrap_or(0).saturating_add(1);
        let threshold = self.analysis.threshold();
        Outcome {
            status: self.status_with(
                phase,
                &format!("check failed ({failed}/{threshold}): {why}"),
                true,
                |s| {
                    s.failed_checks = Some(failed);
                },
            ),
            actions: vec![],
            notes: vec![
                warning(
                    "CheckFailed",
                    format!("{}: check failed ({failed} of {threshold} allowed): {why}", self.name),
                )
                .alerting(Alert::warn(
                    "check-failed",
                    format!("Canary check failed ({failed} of {threshold} allowed): {why}"),
                )),
            ],
            requeue: Some(self.interval()),
            after: vec![],
        }
    }

    /// `Some(decision)` while the confirm-traffic-increase webhooks must be asked or refuse.
    fn traffic_increase_held(&self, phase: Phase) -> Option<Decision> {
        match self.gate(Gate::ConfirmTrafficIncrease) {
            Err(gate) => Some(Decision::Run(gate)),
            Ok(Some(result)) if !result.open => {
                let prefix = "waiting for confirm-traffic-increase approval";
                let message = format!("{prefix}: {}", result.message);
                let waiting_already = status::promoted_condition(self.status)
                    .and_then(|c| c.message.as_deref())
                    .is_some_and(|m| m.starts_with(prefix));
                let weight = self.status.canary_weight.unwrap_or(0);
                let notes = if waiting_already {
                    vec![]
                } else {
                    let note = normal(
                        "Waiting",
                        format!(
                            "{}: traffic increase from {weight}% waits for approval: {}",
                            self.name, result.message
                        ),
                    );
                    vec![alert_unless_muted(
                        note,
                        result,
                        Alert::warn(
                            format!("confirm-traffic-increase at {weight}%"),
                            "Canary traffic increase is waiting for approval.",
                        ),
                    )]
                };
                Some(act(Outcome {
                    status: self.status_with(phase, &message, false, |_| {}),
                    actions: vec![],
                    notes,
                    requeue: Some(self.interval()),
                    after: vec![],
                }))
            }
            Ok(_) => None,
        }
    }

    fn increase_weight(&self, next: i32) -> Outcome {
        Outcome {
            status: self.status_with(Phase::Progressing, &format!("canary weight {next}%"), true, |s| {
                s.canary_weight = Some(next);
            }),
            actions: vec![Action::Route(Routes::weights(100 - next, next))],
            notes: vec![normal(
                "Progressing",
                format!("{}: advancing canary weight to {next}%", self.name),
            )],
            requeue: Some(self.interval()),
            after: vec![],
        }
    }

    fn confirm_promotion(&self, confirmed: impl FnOnce() -> Outcome) -> Decision {
        match self.gate(Gate::ConfirmPromotion) {
            Err(gate) => Decision::Run(gate),
            Ok(Some(result)) if !result.open => {
                let waiting_already = self.status.phase == Some(Phase::WaitingPromotion);
                act(Outcome {
                    status: self.status_with(
                        Phase::WaitingPromotion,
                        &format!("waiting for confirm-promotion approval: {}", result.message),
                        true,
                        |_| {},
                    ),
                    actions: vec![],
                    notes: if waiting_already {
                        vec![]
                    } else {
                        let note = normal(
                            "WaitingPromotion",
                            format!(
                                "{}: analysis passed; promotion waits for approval: {}",
                                self.name, result.message
                            ),
                        );
                        vec![alert_unless_muted(
                            note,
                            result,
                            Alert::warn("confirm-promotion", "Canary promotion is waiting for approval."),
                        )]
                    },
                    requeue: Some(self.interval()),
                    after: vec![],
                })
            }
            Ok(_) => act(confirmed()),
        }
    }

    fn start_promotion(&self, why: &str) -> Outcome {
        if !self.observation.target_has_selector_label {
            let why = "the target lost its selector label, so it cannot be copied to the primary; restore the label and release again";
            return self.rollback(why, Alert::error("rolled-back", format!("Rolled back: {why}")));
        }
        Outcome {
            status: self.status_with(
                Phase::Promoting,
                &format!("{why}; promoting the canary to primary"),
                true,
                |_| {},
            ),
            actions: vec![Action::ApplyPrimary],
            notes: vec![normal(
                "Promoting",
                format!("{}: {why}; copying the canary's template to the primary", self.name),
            )],
            requeue: Some(WAIT_RECHECK),
            after: vec![],
        }
    }

    fn promote(&self) -> Decision {
        match &self.observation.primary {
            Readiness::Waiting(why) => {
                return self.wait(Phase::Promoting, &format!("promotion waits for the primary: {why}"));
            }
            Readiness::Failed(why) => return act(self.failed_promotion(why)),
            Readiness::Ready => {}
        }
        let weight = self.status.canary_weight.unwrap_or(0);
        if let Strategy::Progressive {
            promotion_step: Some(step),
            ..
        } = self.strategy
            && weight > 0
        {
            if let Some(remaining) = self.until_next_step() {
                return act(Outcome {
                    requeue: Some(remaining),
                    after: vec![],
                    ..Outcome::default()
                });
            }
            let next = (weight - step).max(0);
            let phase = if next == 0 { Phase::Finalising } else { Phase::Promoting };
            return act(Outcome {
                status: self.status_with(phase, &format!("promotion: canary weight {next}%"), true, |s| {
                    s.canary_weight = Some(next);
                    if phase == Phase::Finalising {
                        s.iterations = Some(0);
                    }
                }),
                actions: vec![Action::Route(Routes::weights(100 - next, next))],
                notes: vec![normal(
                    "Promoting",
                    format!(
                        "{}: shifting traffic back to the primary, canary weight {next}%",
                        self.name
                    ),
                )],
                requeue: Some(if next == 0 { Duration::ZERO } else { self.interval() }),
                after: vec![],
            });
        }
        act(Outcome {
            status: self.status_with(
                Phase::Finalising,
                "all traffic routed to the promoted primary",
                true,
                // Flagger's setStatusPhase(Finalising) sets weight and iterations to 0.
                |s| {
                    s.canary_weight = Some(0);
                    s.iterations = Some(0);
                },
            ),
            actions: vec![Action::Route(Routes::all_to_primary())],
            notes: vec![normal(
                "Finalising",
                format!("{}: routing all traffic to the primary", self.name),
            )],
            requeue: Some(Duration::ZERO),
            after: vec![],
        })
    }

    fn finalise(&self) -> Outcome {
        Outcome {
            status: self.status_with(Phase::Succeeded, "promotion completed", true, |s| {
                s.canary_weight = Some(0);
                s.iterations = Some(0);
                s.failed_checks = Some(0);
                s.last_promoted_spec = s.last_applied_spec.clone();
            }),
            actions: vec![Action::ScaleDownTarget],
            notes: vec![
                normal(
                    "Succeeded",
                    format!("{}: promotion completed; canary scaled down", self.name),
                )
                .alerting(Alert::info(
                    "succeeded",
                    if self.spec.skip_analysis == Some(true) {
                        "Canary analysis was skipped, promotion finished."
                    } else {
                        "Canary analysis completed successfully, promotion finished."
                    },
                )),
            ],
            requeue: None,
            after: vec![Action::PostRollout(Phase::Succeeded)],
        }
    }

    /// The primary cannot run the promoted revision: the canary is the only healthy copy, so
    /// all traffic goes to it and it keeps running (Flagger's `handleFailedPromotion`,
    /// pkg/controller/scheduler.go), rather than back to a primary that does not serve.
    fn failed_promotion(&self, why: &str) -> Outcome {
        let message = format!("promotion failed, the primary is not ready: {why}; all traffic is on the canary");
        Outcome {
            status: self.status_with(Phase::Failed, &message, true, |s| {
                s.canary_weight = Some(100);
            }),
            actions: vec![Action::Route(Routes::weights(0, 100))],
            notes: vec![
                warning("PromotionFailed", format!("{}: {message}", self.name)).alerting(Alert::error(
                    "promotion-failed",
                    format!("Promotion failed, primary not ready: {why}"),
                )),
            ],
            requeue: None,
            after: vec![Action::PostRollout(Phase::Failed)],
        }
    }

    /// The target's revision as the one applied: its template hash and the configs it uses.
    fn record_revision(&self, status: &mut CanaryStatus) {
        status.last_applied_spec = Some(self.observation.revision.to_string());
        status.tracked_configs = revision::tracked_configs_status(self.observation.tracked_configs);
    }

    /// Rolls back because of `why`, telling people with `alert`.
    fn rollback(&self, why: &str, alert: Alert) -> Outcome {
        Outcome {
            // As Flagger's rollback (scheduler.go): weight, iterations and failed checks back to 0.
            status: self.status_with(Phase::Failed, &format!("rolled back: {why}"), true, |s| {
                s.canary_weight = Some(0);
                s.iterations = Some(0);
                s.failed_checks = Some(0);
                // A revision refused while Waiting is not retried until the next one.
                self.record_revision(s);
            }),
            actions: vec![Action::Route(Routes::all_to_primary()), Action::ScaleDownTarget],
            notes: vec![
                warning(
                    "RolledBack",
                    format!(
                        "{}: rolled back, traffic returned to the primary and the canary scaled down: {why}",
                        self.name
                    ),
                )
                .alerting(alert),
            ],
            requeue: None,
            after: vec![Action::PostRollout(Phase::Failed)],
        }
    }
}

/// Flagger's alert when a rollback webhook asks for the rollback.
fn manual_rollback() -> Alert {
    Alert::warn("rolled-back", "Rolling back manual webhook invoked")
}

/// `note` with `alert`, unless the webhook that held the gate mutes alerts.
fn alert_unless_muted(note: Note, result: &GateResult, alert: Alert) -> Note {
    if result.muted { note } else { note.alerting(alert) }
}

#[cfg(test)]
mod tests;
