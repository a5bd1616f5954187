//! Status transitions: the phase, the `Promoted` condition and the revision fields, computed from
//! the current status so that an unchanged outcome writes nothing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serin_api::canary::{CanaryCondition, PROMOTED_CONDITION};
use serin_api::{CanaryStatus, Phase};

use crate::plan::ObservedRoutes;

/// `True` once a revision is serving (Initialized, Succeeded), `False` after a rollback, `Unknown` in between.
pub fn promoted_status(phase: Phase) -> &'static str {
    match phase {
        Phase::Initialized | Phase::Succeeded => "True",
        Phase::Failed => "False",
        _ => "Unknown",
    }
}

/// The status with `phase` and a `Promoted` condition carrying `message`, or `None` when that is
/// what the status already says (so nothing needs writing).
pub fn transition(current: &CanaryStatus, phase: Phase, message: &str, now: Timestamp) -> Option<CanaryStatus> {
    let mut next = current.clone();
    apply(&mut next, phase, message, now);
    changed(current, &next).then_some(next)
}

/// The status of a Canary whose primary now runs `revision` (with `tracked_configs`), with
/// traffic all on the primary.
pub fn initialized(
    current: &CanaryStatus,
    revision: &str,
    tracked_configs: &BTreeMap<String, String>,
    message: &str,
    now: Timestamp,
) -> Option<CanaryStatus> {
    let mut next = current.clone();
    apply(&mut next, Phase::Initialized, message, now);
    next.canary_weight = Some(0);
    next.failed_checks = Some(0);
    next.iterations = Some(0);
    next.last_applied_spec = Some(revision.to_string());
    next.last_promoted_spec = Some(revision.to_string());
    next.tracked_configs = crate::revision::tracked_configs_status(tracked_configs);
    changed(current, &next).then_some(next)
}

/// A status as serin reads it. In `WaitingPromotion` and `Promoting` Flagger writes
/// `canaryWeight` 0 and `iterations` `analysis.iterations - 1` whatever the traffic (its
/// setStatusPhase), so a Canary taken over from Flagger is read with iterations at least 0 and the
/// weight the `routes` in the cluster have, when they were read (in `WaitingPromotion`; a
/// `Promoting` Canary goes on to send all traffic to the primary). serin's own status in those
/// phases already agrees with the routes. The revision fields need nothing: both operators write
/// the same hashes (see [`crate::revision`]).
pub fn adopt_flagger_status(status: &CanaryStatus, routes: Option<&ObservedRoutes>) -> CanaryStatus {
    let mut adopted = status.clone();
    if matches!(status.phase, Some(Phase::WaitingPromotion | Phase::Promoting)) {
        if let Some(routes) = routes {
            adopted.canary_weight = Some(routes.canary);
        }
        adopted.iterations = Some(status.iterations.unwrap_or(0).max(0));
    }
    adopted
}

/// Flagger's `flagger_canary_status` value for a phase: 0 while the analysis runs, 2 once it
/// failed, 1 otherwise (pkg/metrics/recorder.go `SetStatus`).
pub fn analysis_result(phase: Phase) -> i64 {
    match phase {
        Phase::Progressing => 0,
        Phase::Failed => 2,
        _ => 1,
    }
}

/// How a status write ends a rollout: `Some(true)` when it promotes (the phase becomes
/// `Succeeded`), `Some(false)` when it rolls back (`Failed`), `None` otherwise.
pub fn rollout_ended(before: &CanaryStatus, after: &CanaryStatus) -> Option<bool> {
    if before.phase == after.phase {
        return None;
    }
    match after.phase {
        Some(Phase::Succeeded) => Some(true),
        Some(Phase::Failed) => Some(false),
        _ => None,
    }
}

pub fn promoted_condition(status: &CanaryStatus) -> Option<&CanaryCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == PROMOTED_CONDITION)
}

fn apply(status: &mut CanaryStatus, phase: Phase, message: &str, now: Timestamp) {
    let now = Time(now);
    if status.phase != Some(phase) || status.last_transition_time.is_none() {
        status.last_transition_time = Some(now.clone());
    }
    status.phase = Some(phase);

    let condition_status = promoted_status(phase);
    let previous = promoted_condition(status).cloned();
    let condition_changed = previous.as_ref().is_none_or(|c| c.status != condition_status);
    let condition = CanaryCondition {
        type_: PROMOTED_CONDITION.to_string(),
        status: condition_status.to_string(),
        last_update_time: Some(now.clone()),
        last_transition_time: if condition_changed {
            Some(now)
        } else {
            previous.and_then(|c| c.last_transition_time)
        },
        reason: Some(phase.as_str().to_string()),
        message: Some(message.to_string()),
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != PROMOTED_CONDITION);
    conditions.push(condition);
}

/// Whether `after` differs from `before` in more than timestamps.
pub fn changed(before: &CanaryStatus, after: &CanaryStatus) -> bool {
    without_times(before) != without_times(after)
}

fn without_times(status: &CanaryStatus) -> CanaryStatus {
    let mut status = status.clone();
    status.last_transition_time = None;
    for condition in status.conditions.iter_mut().flatten() {
        condition.last_update_time = None;
        condition.last_transition_time = None;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_of_phases_and_endings() {
        assert_eq!(analysis_result(Phase::Progressing), 0);
        assert_eq!(analysis_result(Phase::Failed), 2);
        assert_eq!(analysis_result(Phase::WaitingPromotion), 1);
        let with = |phase| CanaryStatus {
            phase: Some(phase),
            ..Default::default()
        };
        assert_eq!(
            rollout_ended(&with(Phase::Finalising), &with(Phase::Succeeded)),
            Some(true)
        );
        assert_eq!(
            rollout_ended(&with(Phase::Progressing), &with(Phase::Failed)),
            Some(false)
        );
        assert_eq!(rollout_ended(&with(Phase::Failed), &with(Phase::Failed)), None);
        assert_eq!(
            rollout_ended(&with(Phase::Initializing), &with(Phase::Initialized)),
            None
        );
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid timestamp")
    }

    #[test]
    fn condition_follows_the_phase() {
        let cases = [
            (Phase::Initializing, "Unknown"),
            (Phase::Initialized, "True"),
            (Phase::Progressing, "Unknown"),
            (Phase::Succeeded, "True"),
            (Phase::Failed, "False"),
        ];
        for (phase, expected) in cases {
            let next = transition(&CanaryStatus::default(), phase, "m", at(10)).expect("a change");
            let condition = promoted_condition(&next).expect("Promoted condition");
            assert_eq!(condition.status, expected, "{phase:?}");
            assert_eq!(condition.reason.as_deref(), Some(phase.as_str()));
            assert_eq!(next.phase, Some(phase));
        }
    }

    #[test]
    fn an_unchanged_outcome_writes_nothing() {
        let first = transition(&CanaryStatus::default(), Phase::Initializing, "waiting", at(10)).expect("a change");
        assert_eq!(transition(&first, Phase::Initializing, "waiting", at(20)), None);
        let second = transition(&first, Phase::Initializing, "other message", at(20)).expect("message changed");
        assert_eq!(
            second.last_transition_time,
            Some(Time(at(10))),
            "same phase keeps its transition time"
        );
    }

    /// Flagger writes weight 0 and iterations -1 in WaitingPromotion while the routes keep
    /// sending traffic to the canary (conformance scenario switch-flagger-to-serin).
    #[test]
    fn flaggers_waiting_promotion_is_read_with_the_weight_in_the_routes() {
        let flaggers = CanaryStatus {
            phase: Some(Phase::WaitingPromotion),
            canary_weight: Some(0),
            iterations: Some(-1),
            last_applied_spec: Some("6c9d8f7b5".into()),
            last_promoted_spec: Some("5d8f7b9c8".into()),
            ..Default::default()
        };
        let routes = ObservedRoutes {
            primary: 50,
            canary: 50,
            refused: None,
        };
        let adopted = adopt_flagger_status(&flaggers, Some(&routes));
        assert_eq!(adopted.canary_weight, Some(50));
        assert_eq!(adopted.iterations, Some(0));
        assert_eq!(adopted.last_applied_spec, flaggers.last_applied_spec);
        assert_eq!(adopt_flagger_status(&flaggers, None).canary_weight, Some(0));
    }

    #[test]
    fn other_phases_are_read_as_written() {
        for phase in [Phase::Progressing, Phase::Succeeded, Phase::Failed, Phase::Waiting] {
            let status = CanaryStatus {
                phase: Some(phase),
                canary_weight: Some(40),
                iterations: Some(-1),
                ..Default::default()
            };
            let routes = ObservedRoutes {
                primary: 50,
                canary: 50,
                refused: None,
            };
            assert_eq!(adopt_flagger_status(&status, Some(&routes)), status, "{phase:?}");
        }
    }

    #[test]
    fn initialized_records_the_revision_and_keeps_condition_history() {
        let waiting = transition(&CanaryStatus::default(), Phase::Initializing, "waiting", at(10)).expect("a change");
        let done = initialized(&waiting, "s1-abc", &BTreeMap::new(), "done", at(30)).expect("a change");
        assert_eq!(done.phase, Some(Phase::Initialized));
        assert_eq!(done.last_applied_spec.as_deref(), Some("s1-abc"));
        assert_eq!(done.last_promoted_spec.as_deref(), Some("s1-abc"));
        assert_eq!(
            (done.canary_weight, done.failed_checks, done.iterations),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(done.last_transition_time, Some(Time(at(30))));
        let condition = promoted_condition(&done).expect("Promoted condition");
        assert_eq!(condition.last_transition_time, Some(Time(at(30))));
        assert_eq!(done.conditions.as_ref().map(Vec::len), Some(1));
        assert_eq!(initialized(&done, "s1-abc", &BTreeMap::new(), "done", at(40)), None);
    }
}
