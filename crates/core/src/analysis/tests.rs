//! The state machine driven like the operator drives it: gates answered by a script, actions
//! recorded, time advanced to each requeue. Each test reads as the rollout a user would see.

use std::time::Duration;

use serde_json::json;
use serin_api::canary::{CanaryWebhook, HookType, Provider};
use serin_api::{CanarySpec, CanaryStatus, Phase};

use super::*;
use crate::session_affinity::SessionCookies;

mod properties;

const START: i64 = 1_800_000_000;

struct Sim {
    spec: CanarySpec,
    status: CanaryStatus,
    now: Timestamp,
    revision: String,
    tracked: BTreeMap<String, String>,
    provider: Provider,
    canary: Readiness,
    primary: Readiness,
    target_has_selector_label: bool,
    routes: Option<ObservedRoutes>,
    /// Answers per gate; the last answer repeats.
    answers: BTreeMap<Gate, Vec<bool>>,
    asked: Vec<Gate>,
    actions: Vec<Action>,
    trace: Vec<(Phase, i32, i32)>,
    /// The alerts of the plans carried out, in order.
    alerts: Vec<Alert>,
    /// Whether the webhooks that hold gates have `muteAlert`.
    muted: bool,
}

impl Sim {
    fn new(analysis: serde_json::Value, provider: Provider) -> Sim {
        let spec: CanarySpec = serde_json::from_value(json!({
            "targetRef": { "kind": "Deployment", "name": "app" },
            "service": { "port": 80 },
            "analysis": analysis,
        }))
        .expect("spec");
        let now = Timestamp::from_second(START).expect("time");
        let status = status::initialized(&CanaryStatus::default(), "s1-rev1", &BTreeMap::new(), "done", now)
            .expect("initialized");
        Sim {
            spec,
            status,
            now,
            revision: "s1-rev1".into(),
            tracked: BTreeMap::new(),
            provider,
            canary: Readiness::Ready,
            primary: Readiness::Ready,
            target_has_selector_label: true,
            routes: None,
            answers: BTreeMap::new(),
            asked: vec![],
            actions: vec![],
            trace: vec![],
            alerts: vec![],
            muted: false,
        }
    }

    fn answer(mut self, gate: Gate, answers: &[bool]) -> Sim {
        self.answers.insert(gate, answers.to_vec());
        self
    }

    fn hooks(mut self, kinds: &[HookType]) -> Sim {
        let analysis = self.spec.analysis.as_mut().expect("analysis");
        analysis.webhooks = Some(
            kinds
                .iter()
                .map(|kind| CanaryWebhook {
                    name: format!("{kind:?}"),
                    type_: Some(*kind),
                    url: "http://x/".into(),
                    ..Default::default()
                })
                .collect(),
        );
        self
    }

    fn phase(&self) -> Phase {
        self.status.phase.unwrap_or_default()
    }

    fn weight(&self) -> i32 {
        self.status.canary_weight.unwrap_or(0)
    }

    fn reconcile(&mut self) -> Outcome {
        self.reconcile_with(false)
    }

    /// One reconcile: decide, answering gates, until the machine acts; carries the actions out
    /// and, unless the operator `crashed` before its status write, applies the status. Every
    /// decision is taken twice and must come out the same (decisions are pure).
    fn reconcile_with(&mut self, crashed: bool) -> Outcome {
        let mut gates = Gates::default();
        loop {
            let subject = Subject {
                name: "app",
                namespace: "test",
                spec: &self.spec,
                status: &self.status,
            };
            let observation = Observation {
                now: self.now,
                revision: &self.revision,
                tracked_configs: &self.tracked,
                canary: self.canary.clone(),
                primary: self.primary.clone(),
                shifts_weights: self.provider != Provider::Kubernetes,
                routes: self.routes.clone(),
                target_has_selector_label: self.target_has_selector_label,
            };
            let decision = decide(&subject, &observation, &gates);
            assert_eq!(decision, decide(&subject, &observation, &gates), "deciding twice");
            match decision {
                Decision::Run(gate) => {
                    self.asked.push(gate);
                    let answers = self
                        .answers
                        .entry(gate)
                        .or_insert_with(|| vec![gate != Gate::RollbackRequested]);
                    let open = if answers.len() > 1 {
                        answers.remove(0)
                    } else {
                        answers[0]
                    };
                    gates.insert(
                        gate,
                        GateResult {
                            open,
                            message: format!("{gate:?} said {open}"),
                            muted: self.muted && !open,
                        },
                    );
                }
                Decision::Act(outcome) => {
                    if let Some(status) = outcome.status.as_ref().filter(|_| !crashed) {
                        self.status = status.clone();
                        self.trace
                            .push((self.phase(), self.weight(), self.status.iterations.unwrap_or(0)));
                    }
                    self.actions.extend(outcome.actions.clone());
                    if !crashed {
                        self.actions.extend(outcome.after.clone());
                        self.alerts
                            .extend(outcome.notes.iter().filter_map(|note| note.alert.clone()));
                    }
                    return *outcome;
                }
            }
        }
    }

    /// Reconciles, advancing the clock to each requeue, until `phase` or `max` reconciles.
    fn run_until(&mut self, phase: Phase, max: usize) -> Duration {
        let started = self.now;
        for _ in 0..max {
            let outcome = self.reconcile();
            if self.phase() == phase {
                break;
            }
            let wait = outcome.requeue.unwrap_or(Duration::from_secs(1));
            self.now = self.now.checked_add(wait).expect("time");
        }
        assert_eq!(self.phase(), phase, "trace {:?}", self.trace);
        Duration::try_from(self.now.duration_since(started)).expect("elapsed")
    }

    fn new_revision(&mut self, revision: &str) {
        self.revision = revision.to_string();
    }

    fn routes(&self) -> Vec<(i32, i32)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Route(r) => Some((r.primary, r.canary)),
                _ => None,
            })
            .collect()
    }
}

fn progressive() -> serde_json::Value {
    json!({ "interval": "1m", "threshold": 2, "stepWeight": 10, "maxWeight": 30 })
}

#[test]
fn nothing_happens_without_a_new_revision() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    let outcome = sim.reconcile();
    assert_eq!(outcome, Outcome::default());
    assert_eq!(sim.phase(), Phase::Initialized);
}

#[test]
fn a_progressive_canary_steps_up_then_promotes() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    // interval × maxWeight / stepWeight until the promotion starts, within one interval.
    let elapsed = sim.run_until(Phase::Promoting, 40);
    assert!(
        elapsed >= Duration::from_secs(180) && elapsed <= Duration::from_secs(240),
        "{elapsed:?}"
    );
    sim.run_until(Phase::Succeeded, 10);
    let phases: Vec<(Phase, i32)> = sim.trace.iter().map(|(p, w, _)| (*p, *w)).collect();
    assert_eq!(
        phases,
        vec![
            (Phase::Progressing, 0),
            (Phase::Progressing, 10),
            (Phase::Progressing, 20),
            (Phase::Progressing, 30),
            (Phase::Promoting, 30),
            (Phase::Finalising, 0),
            (Phase::Succeeded, 0),
        ]
    );
    assert_eq!(sim.routes(), vec![(100, 0), (90, 10), (80, 20), (70, 30), (100, 0)]);
    assert_eq!(sim.actions.first(), Some(&Action::ScaleUpTarget));
    assert!(sim.actions.contains(&Action::ApplyPrimary));
    assert_eq!(sim.actions.last(), Some(&Action::PostRollout(Phase::Succeeded)));
    assert_eq!(sim.status.last_promoted_spec.as_deref(), Some("s1-rev2"));
    // No checks at weight 0; checks at 10, 20 and 30.
    assert_eq!(sim.asked.iter().filter(|g| **g == Gate::Checks).count(), 3);
}

#[test]
fn step_weights_and_gradual_promotion() {
    let analysis = json!({ "interval": "30s", "threshold": 2, "stepWeights": [5, 25, 50], "stepWeightPromotion": 20 });
    let mut sim = Sim::new(analysis, Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 40);
    assert_eq!(
        sim.routes(),
        vec![(100, 0), (95, 5), (75, 25), (50, 50), (70, 30), (90, 10), (100, 0)]
    );
}

#[test]
fn failed_checks_roll_back_at_the_threshold() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1).answer(Gate::Checks, &[false]);
    sim.new_revision("s1-rev2");
    let elapsed = sim.run_until(Phase::Failed, 20);
    let message = status::promoted_condition(&sim.status).and_then(|c| c.message.clone());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("2 failed checks reached the threshold 2")),
        "{message:?}"
    );
    assert_eq!(
        sim.status.failed_checks,
        Some(0),
        "reset by the rollback, as Flagger does"
    );
    assert_eq!(sim.routes(), vec![(100, 0), (90, 10), (100, 0)]);
    assert!(
        sim.actions
            .ends_with(&[Action::ScaleDownTarget, Action::PostRollout(Phase::Failed)])
    );
    assert!(!sim.actions.contains(&Action::ApplyPrimary));
    // One step to 10%, then interval × threshold.
    assert!(elapsed <= Duration::from_secs(4 * 60), "{elapsed:?}");
    // A failed canary stays failed until the next revision.
    let outcome = sim.reconcile();
    assert_eq!(outcome, Outcome::default());
}

#[test]
fn blue_green_on_kubernetes_runs_iterations_without_weights() {
    let mut sim = Sim::new(
        json!({ "interval": "1m", "threshold": 2, "iterations": 3 }),
        Provider::Kubernetes,
    );
    sim.new_revision("s1-rev2");
    let elapsed = sim.run_until(Phase::Promoting, 20);
    // The pre-rollout step, three iterations, and the extra check Flagger's runBlueGreen runs.
    assert_eq!(elapsed, Duration::from_secs(5 * 60));
    sim.run_until(Phase::Succeeded, 10);
    let iterations: Vec<i32> = sim.trace.iter().map(|(_, _, i)| *i).collect();
    assert_eq!(&iterations[..5], &[0, 1, 2, 3, 4]);
    assert_eq!(sim.asked.iter().filter(|g| **g == Gate::Checks).count(), 4);
    assert!(sim.routes().iter().all(|r| *r == (100, 0)), "{:?}", sim.routes());
}

#[test]
fn blue_green_on_a_weighted_router_switches_all_traffic_at_promotion() {
    let mut sim = Sim::new(
        json!({ "interval": "1m", "threshold": 2, "iterations": 2 }),
        Provider::GatewayApiV1,
    );
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 20);
    assert_eq!(sim.routes(), vec![(100, 0), (0, 100), (100, 0)]);
}

#[test]
fn ab_testing_routes_matching_requests_to_the_canary() {
    let analysis = json!({ "interval": "1m", "threshold": 2, "iterations": 2, "match": [{ "headers": { "x-canary": { "exact": "1" } } }] });
    let mut sim = Sim::new(analysis, Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 20);
    let first = sim.actions.iter().find_map(|a| {
        if let Action::Route(r) = a {
            Some(r.clone())
        } else {
            None
        }
    });
    assert_eq!(
        first,
        Some(Routes {
            matched_to_canary: true,
            ..Routes::all_to_primary()
        })
    );
}

#[test]
fn confirm_rollout_holds_in_waiting_then_releases() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1)
        .hooks(&[HookType::ConfirmRollout])
        .answer(Gate::ConfirmRollout, &[false, false, true]);
    sim.new_revision("s1-rev2");
    let first = sim.reconcile();
    assert_eq!(sim.phase(), Phase::Waiting);
    assert_eq!(first.notes.len(), 1);
    assert!(first.actions.is_empty(), "nothing is scaled while waiting");
    let second = sim.reconcile();
    assert_eq!(sim.phase(), Phase::Waiting);
    assert!(second.notes.is_empty(), "the Waiting event is not repeated");
    sim.reconcile();
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(sim.status.last_applied_spec.as_deref(), Some("s1-rev2"));
    assert_eq!(sim.status.failed_checks, Some(0), "refusals are not failed checks");
}

#[test]
fn confirm_promotion_holds_while_checks_keep_running() {
    let mut sim = Sim::new(
        json!({ "interval": "1m", "threshold": 2, "iterations": 1 }),
        Provider::Kubernetes,
    )
    .hooks(&[HookType::ConfirmPromotion])
    .answer(Gate::ConfirmPromotion, &[false, false, true]);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::WaitingPromotion, 10);
    let checks_before = sim.asked.iter().filter(|g| **g == Gate::Checks).count();
    sim.run_until(Phase::Succeeded, 10);
    let checks_after = sim.asked.iter().filter(|g| **g == Gate::Checks).count();
    assert!(
        checks_after >= checks_before + 2,
        "checks run while waiting for promotion"
    );
    assert_eq!(sim.status.failed_checks, Some(0));
}

#[test]
fn confirm_traffic_increase_pauses_the_weight() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1)
        .hooks(&[HookType::ConfirmTrafficIncrease])
        .answer(Gate::ConfirmTrafficIncrease, &[false, true]);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 40);
    let weights: Vec<i32> = sim.trace.iter().map(|(_, w, _)| *w).collect();
    assert_eq!(&weights[..3], &[0, 0, 10], "first increase held for one interval");
    // Asked before 10, 20 and 30 (the first refused), and once more at 30 before promoting,
    // as Flagger's scheduler does (conformance scenario `confirm-traffic-increase`).
    let asked = sim.asked.iter().filter(|g| **g == Gate::ConfirmTrafficIncrease).count();
    assert_eq!(asked, 5);
}

#[test]
fn pre_rollout_failure_is_a_failed_check() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1)
        .hooks(&[HookType::PreRollout])
        .answer(Gate::PreRollout, &[false, true]);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 40);
    assert_eq!(
        sim.asked.iter().filter(|g| **g == Gate::PreRollout).count(),
        2,
        "retried once, then never again"
    );
    assert_eq!(sim.status.failed_checks, Some(0), "reset by the promotion");
    assert!(sim.trace.contains(&(Phase::Progressing, 0, 0)));
}

#[test]
fn a_rollback_webhook_rolls_back() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1)
        .hooks(&[HookType::Rollback])
        .answer(Gate::RollbackRequested, &[false, false, true]);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Failed, 20);
    assert!(
        sim.status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.message.as_deref().is_some_and(|m| m.contains("rollback webhook")))
    );
}

#[test]
fn a_new_revision_mid_analysis_restarts_from_zero() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.now = sim.now.checked_add(Duration::from_secs(60)).expect("time");
    sim.reconcile();
    assert_eq!(sim.weight(), 10);
    sim.new_revision("s1-rev3");
    let outcome = sim.reconcile();
    assert_eq!(sim.weight(), 0);
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(sim.status.last_applied_spec.as_deref(), Some("s1-rev3"));
    assert!(outcome.actions.contains(&Action::Route(Routes::all_to_primary())));
    assert_eq!(outcome.notes[0].reason, "Restarted");
    sim.run_until(Phase::Succeeded, 40);
    assert_eq!(sim.status.last_promoted_spec.as_deref(), Some("s1-rev3"));
}

#[test]
fn reverting_to_the_promoted_revision_starts_nothing() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.status.phase = Some(Phase::Failed);
    sim.new_revision("s1-rev1");
    let outcome = sim.reconcile();
    assert_eq!(sim.phase(), Phase::Failed);
    assert_eq!(outcome.actions, vec![Action::ScaleDownTarget]);
    assert_eq!(sim.status.last_applied_spec.as_deref(), Some("s1-rev1"));
    assert_eq!(sim.reconcile(), Outcome::default());
}

#[test]
fn a_config_change_is_a_new_revision_recorded_with_its_configs() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.tracked = BTreeMap::from([("configmap/settings".to_string(), "h2".to_string())]);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(sim.status.tracked_configs, Some(sim.tracked.clone()));
}

#[test]
fn steps_wait_for_the_interval() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.now = sim.now.checked_add(Duration::from_secs(20)).expect("time");
    let early = sim.reconcile();
    assert_eq!(early.status, None);
    assert_eq!(early.requeue, Some(Duration::from_secs(40)));
    assert_eq!(sim.weight(), 0);
}

#[test]
fn an_unready_canary_waits_then_rolls_back_when_hopeless() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.canary = Readiness::Waiting("0 of 1 updated replicas are available".into());
    sim.reconcile();
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.canary = Readiness::Failed("deployment app exceeded its progress deadline".into());
    sim.reconcile();
    assert_eq!(sim.phase(), Phase::Failed);
}

#[test]
fn skip_analysis_promotes_a_ready_canary() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.spec.skip_analysis = Some(true);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 10);
    assert!(!sim.asked.contains(&Gate::Checks));
    assert!(sim.actions.contains(&Action::ApplyPrimary));
}

#[test]
fn a_suspended_canary_is_left_alone() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.spec.suspend = Some(true);
    sim.new_revision("s1-rev2");
    assert_eq!(sim.reconcile(), Outcome::default());
    assert_eq!(sim.phase(), Phase::Initialized);
}

#[test]
fn blue_green_runs_one_more_check_than_iterations_with_all_traffic_on_the_canary() {
    let mut sim = Sim::new(
        json!({ "interval": "1m", "threshold": 2, "iterations": 2 }),
        Provider::GatewayApiV1,
    );
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Promoting, 20);
    // Flagger's runBlueGreen: checks at iterations 1 and 2, then all traffic to the canary and
    // a third check before the promotion.
    assert_eq!(sim.asked.iter().filter(|g| **g == Gate::Checks).count(), 3);
    assert_eq!(sim.routes(), vec![(100, 0), (0, 100)]);
    assert_eq!(sim.status.iterations, Some(3));
}

/// Flagger's runBlueGreen asks confirm-promotion before switching the traffic for the last
/// check, and again after it, before promoting (conformance scenario `blue-green`).
#[test]
fn blue_green_asks_confirm_promotion_before_and_after_the_last_check() {
    let mut sim = Sim::new(
        json!({ "interval": "1m", "threshold": 2, "iterations": 2 }),
        Provider::Kubernetes,
    )
    .hooks(&[HookType::ConfirmPromotion]);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 20);
    let gates: Vec<Gate> = sim
        .asked
        .iter()
        .copied()
        .filter(|g| matches!(g, Gate::Checks | Gate::ConfirmPromotion))
        .collect();
    assert_eq!(
        gates,
        vec![
            Gate::Checks,
            Gate::Checks,
            Gate::ConfirmPromotion,
            Gate::Checks,
            Gate::ConfirmPromotion
        ]
    );
    assert_eq!(
        sim.trace.iter().rev().nth(1).map(|(p, _, i)| (*p, *i)),
        Some((Phase::Finalising, 0)),
        "Finalising sets iterations back to 0, as Flagger's setStatusPhase"
    );
}

#[test]
fn the_first_step_runs_pre_rollout_hooks_and_no_checks() {
    let mut sim = Sim::new(
        json!({ "interval": "1m", "threshold": 2, "iterations": 2, "match": [{ "headers": { "x": { "exact": "1" } } }] }),
        Provider::GatewayApiV1,
    )
    .hooks(&[HookType::PreRollout]);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.now = sim.now.checked_add(Duration::from_secs(60)).expect("time");
    sim.reconcile();
    assert_eq!(sim.asked, vec![Gate::PreRollout]);
    assert_eq!(sim.status.iterations, Some(1));
    sim.run_until(Phase::Promoting, 20);
    assert_eq!(
        sim.asked.iter().filter(|g| **g == Gate::Checks).count(),
        2,
        "A/B: one check per iteration"
    );
}

#[test]
fn kubernetes_provider_without_iterations_runs_ten_iterations() {
    let mut sim = Sim::new(progressive(), Provider::Kubernetes);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Promoting, 40);
    assert_eq!(sim.status.iterations, Some(11), "ten iterations and the last check");
    assert!(sim.routes().iter().all(|r| *r == (100, 0)));
}

#[test]
fn rollback_webhooks_are_asked_before_the_failed_checks_threshold() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1)
        .hooks(&[HookType::Rollback])
        .answer(Gate::Checks, &[false])
        .answer(Gate::RollbackRequested, &[false, false, false, true]);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Failed, 20);
    let message = status::promoted_condition(&sim.status).and_then(|c| c.message.clone());
    assert!(
        message.as_deref().is_some_and(|m| m.contains("rollback webhook")),
        "the webhook is asked before the threshold rolls back: {message:?}"
    );
}

#[test]
fn rollback_webhooks_are_asked_while_waiting() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1)
        .hooks(&[HookType::ConfirmRollout, HookType::Rollback])
        .answer(Gate::ConfirmRollout, &[false])
        .answer(Gate::RollbackRequested, &[true]);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    assert_eq!(sim.phase(), Phase::Waiting);
    assert!(
        !sim.asked.contains(&Gate::RollbackRequested),
        "asked once Waiting, not before"
    );
    sim.reconcile();
    assert_eq!(sim.phase(), Phase::Failed);
    assert_eq!(sim.status.last_applied_spec.as_deref(), Some("s1-rev2"), "not retried");
    assert!(
        sim.actions
            .ends_with(&[Action::ScaleDownTarget, Action::PostRollout(Phase::Failed)])
    );
    assert_eq!(
        sim.reconcile(),
        Outcome::default(),
        "stays failed until the next revision"
    );
}

#[test]
fn a_target_that_lost_its_selector_label_at_promotion_is_rolled_back() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Progressing, 5);
    sim.target_has_selector_label = false;
    sim.run_until(Phase::Failed, 20);
    assert!(!sim.actions.contains(&Action::ApplyPrimary));
    assert_eq!(sim.routes().last(), Some(&(100, 0)), "traffic back on the primary");
    assert_eq!(sim.status.canary_weight, Some(0));
}

#[test]
fn steps_are_never_early() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.now = sim.now.checked_add(Duration::from_millis(900)).expect("time");
    sim.reconcile();
    sim.now = sim.now.checked_add(Duration::from_millis(59_500)).expect("time");
    let early = sim.reconcile();
    assert_eq!(early.status, None, "half a second early");
    assert_eq!(early.requeue, Some(Duration::from_millis(500)));
    sim.now = sim.now.checked_add(Duration::from_millis(500)).expect("time");
    sim.reconcile();
    assert_eq!(sim.weight(), 10);
}

#[test]
fn an_interval_that_does_not_parse_is_a_user_error() {
    let mut sim = Sim::new(
        json!({ "interval": "10sabc", "threshold": 1, "stepWeight": 10 }),
        Provider::GatewayApiV1,
    );
    sim.new_revision("s1-rev2");
    let outcome = sim.reconcile();
    assert!(outcome.actions.is_empty(), "nothing starts");
    assert_eq!(outcome.notes.len(), 1);
    assert_eq!(outcome.notes[0].reason, "InvalidInterval");
    assert!(
        outcome.notes[0].message.contains("\"10sabc\" is not a duration"),
        "{}",
        outcome.notes[0].message
    );
    assert_eq!(sim.phase(), Phase::Initialized);
    assert!(sim.reconcile().notes.is_empty(), "said once");
    sim.spec.analysis.as_mut().expect("analysis").interval = Some("-1s".into());
    let negative = sim.reconcile();
    assert!(
        negative.notes[0].message.contains("not a positive duration"),
        "{:?}",
        negative.notes
    );
}

#[test]
fn a_huge_interval_still_paces_steps() {
    let mut sim = Sim::new(
        json!({ "interval": "2562047h", "threshold": 1, "stepWeight": 10 }),
        Provider::GatewayApiV1,
    );
    sim.new_revision("s1-rev2");
    sim.reconcile();
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.now = sim.now.checked_add(Duration::from_secs(86_400)).expect("time");
    let outcome = sim.reconcile();
    assert_eq!(outcome.status, None, "a day later the first step is still not due");
    assert_eq!(outcome.requeue, Some(MAX_REQUEUE));
}

#[test]
fn counters_never_overflow() {
    let mut sim = Sim::new(
        json!({ "interval": "1m", "threshold": i32::MAX, "iterations": i32::MAX }),
        Provider::GatewayApiV1,
    )
    .answer(Gate::Checks, &[false]);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.status.iterations = Some(i32::MAX);
    sim.status.failed_checks = Some(i32::MAX - 1);
    sim.now = sim.now.checked_add(Duration::from_secs(60)).expect("time");
    sim.reconcile();
    assert_eq!(sim.status.failed_checks, Some(i32::MAX));
    sim.now = sim.now.checked_add(Duration::from_secs(60)).expect("time");
    sim.reconcile();
    assert_eq!(sim.phase(), Phase::Failed);
}

#[test]
fn a_primary_that_fails_during_promotion_leaves_traffic_on_the_canary() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Promoting, 40);
    sim.primary = Readiness::Failed("deployment app-primary exceeded its progress deadline".into());
    let outcome = sim.reconcile();
    assert_eq!(sim.phase(), Phase::Failed);
    assert_eq!(sim.status.canary_weight, Some(100));
    assert_eq!(
        outcome.actions,
        vec![Action::Route(Routes::weights(0, 100))],
        "the canary keeps serving: it is not scaled down"
    );
    assert_eq!(
        outcome.after,
        vec![Action::PostRollout(Phase::Failed)],
        "post-rollout once, after the status says Failed"
    );
    assert_eq!(outcome.notes[0].reason, "PromotionFailed");
}

#[test]
fn routes_changed_behind_serins_back_are_set_back() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.now = sim.now.checked_add(Duration::from_secs(60)).expect("time");
    sim.reconcile();
    assert_eq!(sim.weight(), 10);
    sim.routes = Some(ObservedRoutes {
        primary: 50,
        canary: 50,
        refused: None,
    });
    let outcome = sim.reconcile();
    assert_eq!(outcome.actions, vec![Action::Route(Routes::weights(90, 10))]);
    assert_eq!(outcome.notes[0].reason, "RoutesRepaired");
    assert_eq!(outcome.status, None, "no step is taken meanwhile");
}

#[test]
fn refused_routes_hold_the_analysis() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.routes = Some(ObservedRoutes {
        primary: 100,
        canary: 0,
        refused: Some("gw refused it (NotAllowedByListeners): no listener".into()),
    });
    sim.now = sim.now.checked_add(Duration::from_secs(60)).expect("time");
    let outcome = sim.reconcile();
    assert_eq!(outcome.notes[0].reason, "RoutesRefused");
    assert_eq!(sim.weight(), 0, "no traffic is shifted to a route nobody serves");
    assert!(sim.reconcile().notes.is_empty(), "said once");
    assert!(!sim.asked.contains(&Gate::Checks));
    sim.routes = None;
    sim.reconcile();
    assert_eq!(sim.weight(), 10, "goes on once accepted");
}

/// Flagger's gateway_api.go getSessionAffinityRouteRules: the canary cookie lives while the
/// canary has weight, then becomes the previous cookie; a new run gets a new cookie.
#[test]
fn session_affinity_cookies_follow_the_canary_weight() {
    let mut analysis = progressive();
    analysis["sessionAffinity"] = json!({ "cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie" });
    let mut sim = Sim::new(analysis, Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 20);
    let routed: Vec<(i32, Option<SessionCookies>)> = sim
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Route(r) => Some((r.canary, r.cookies.clone())),
            _ => None,
        })
        .collect();
    let first_cookies = routed
        .iter()
        .find(|(weight, _)| *weight > 0)
        .and_then(|(_, cookies)| cookies.clone())
        .expect("cookies with the first weight");
    let canary_cookie = first_cookies.canary.clone().expect("canary cookie");
    assert!(canary_cookie.starts_with("flagger-cookie="));
    assert!(
        first_cookies
            .primary
            .as_deref()
            .is_some_and(|c| c.starts_with("primary-cookie="))
    );
    for (weight, cookies) in &routed {
        let cookies = cookies.clone().expect("every route carries the cookies");
        if *weight > 0 {
            assert_eq!(cookies, first_cookies, "one cookie for the whole run");
        } else {
            assert_eq!(cookies.canary, None);
        }
    }
    let (last_weight, last) = routed.last().cloned().expect("routes");
    assert_eq!(last_weight, 0);
    assert_eq!(
        last.and_then(|c| c.previous),
        Some(canary_cookie.clone()),
        "the old cookie is expired"
    );
    assert_eq!(sim.status.session_affinity_cookie, None);
    assert_eq!(sim.status.previous_session_affinity_cookie, Some(canary_cookie.clone()));
    assert_eq!(sim.status.primary_session_affinity_cookie, first_cookies.primary);

    sim.actions.clear();
    sim.new_revision("s1-rev3");
    sim.run_until(Phase::Succeeded, 20);
    let next_run = sim
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Route(r) if r.canary > 0 => r.cookies.clone(),
            _ => None,
        })
        .expect("cookies");
    assert_ne!(next_run.canary, Some(canary_cookie), "a new run, a new cookie");
    assert_eq!(next_run.primary, first_cookies.primary, "the primary cookie stays");
}

/// The alerts' severities and messages, in order.
fn said(sim: &Sim) -> Vec<(AlertSeverity, &str)> {
    sim.alerts.iter().map(|a| (a.severity, a.message.as_str())).collect()
}

use serin_api::canary::AlertSeverity;
use serin_api::canary::AlertSeverity::{Error as Err_, Info, Warn};

#[test]
fn a_successful_rollout_alerts_at_its_start_and_its_end_as_flagger() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Succeeded, 50);
    assert_eq!(
        said(&sim),
        [
            (Info, "New revision detected, progressing canary analysis."),
            (Info, "Canary analysis completed successfully, promotion finished."),
        ]
    );
    assert!(sim.alerts[0].details, "the start carries the Canary's details");
    assert!(!sim.alerts[1].details);
}

#[test]
fn a_failing_rollout_alerts_each_failed_check_and_the_rollback() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1).answer(Gate::Checks, &[false]);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Failed, 50);
    let said = said(&sim);
    assert_eq!(said.len(), 4, "{said:?}");
    assert_eq!(said[0], (Info, "New revision detected, progressing canary analysis."));
    assert!(
        said[1]
            .1
            .starts_with("Canary check failed (1 of 2 allowed): Checks said false")
    );
    assert_eq!(said[1].0, Warn);
    assert_eq!(
        sim.alerts[1].cause, sim.alerts[2].cause,
        "one cause: said once per revision"
    );
    assert_eq!(said[3], (Err_, "Failed checks threshold reached 2"));
}

#[test]
fn approvals_are_alerted_once_per_wait_unless_the_webhook_mutes_them() {
    let run = |muted: bool| {
        let mut sim = Sim::new(progressive(), Provider::GatewayApiV1)
            .hooks(&[HookType::ConfirmTrafficIncrease, HookType::ConfirmPromotion])
            .answer(Gate::ConfirmTrafficIncrease, &[false, false, true, false, true])
            .answer(Gate::ConfirmPromotion, &[false, false, true]);
        sim.muted = muted;
        sim.new_revision("s1-rev2");
        sim.run_until(Phase::Succeeded, 80);
        sim
    };
    let sim = run(false);
    let waits: Vec<_> = sim
        .alerts
        .iter()
        .filter(|a| a.severity == Warn)
        .map(|a| (a.cause.as_str(), a.message.as_str()))
        .collect();
    assert_eq!(
        waits,
        [
            (
                "confirm-traffic-increase at 0%",
                "Canary traffic increase is waiting for approval."
            ),
            (
                "confirm-traffic-increase at 10%",
                "Canary traffic increase is waiting for approval."
            ),
            ("confirm-promotion", "Canary promotion is waiting for approval."),
        ]
    );
    let muted = run(true);
    assert!(muted.alerts.iter().all(|a| a.severity == Info), "{:?}", said(&muted));
}

#[test]
fn a_rollback_webhook_and_a_stuck_canary_say_why_they_rolled_back() {
    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1)
        .hooks(&[HookType::Rollback])
        .answer(Gate::RollbackRequested, &[false, true]);
    sim.new_revision("s1-rev2");
    sim.run_until(Phase::Failed, 50);
    assert_eq!(said(&sim).last(), Some(&(Warn, "Rolling back manual webhook invoked")));

    let mut sim = Sim::new(progressive(), Provider::GatewayApiV1);
    sim.new_revision("s1-rev2");
    sim.reconcile();
    sim.canary = Readiness::Failed("progress deadline exceeded".into());
    sim.run_until(Phase::Failed, 5);
    assert_eq!(
        said(&sim).last(),
        Some(&(Err_, "Progress deadline exceeded progress deadline exceeded"))
    );
}
