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
    next.tracked_configs = (!tracked_configs.is_empty()).then(|| tracked_configs.clone());
    changed(current, &next).then_some(next)
}

/// Taking over a Canary from Flagger: its status holds Flagger's hashes, which never equal a
/// serin revision, so the revision is inferred from the phase Flagger left:
/// - the target runs what the primary runs: the revision Flagger promoted, recorded as applied
///   and promoted; no rollout starts;
/// - in an analysis (`Progressing`, `WaitingPromotion`, `Promoting`, `Finalising`) or `Failed`,
///   the target is the revision Flagger was analysing or failed (a template changed while no
///   operator ran cannot be told apart): recorded as applied, so the analysis goes on from its
///   step, and a failed revision is not retried;
/// - otherwise (`Initialized`, `Succeeded` with a target that differs from the primary, or
///   `Waiting` for confirm-rollout) the target is a new revision, rolled out.
///
/// In `WaitingPromotion` and `Promoting` Flagger writes `canaryWeight` 0 and `iterations`
/// `analysis.iterations - 1` whatever the traffic (its setStatusPhase): iterations are taken as
/// at least 0, and the weight from the `routes` in the cluster when they were read (in
/// `WaitingPromotion`; a `Promoting` Canary goes on to send all traffic to the primary).
pub fn adopt_flagger_status(
    status: &CanaryStatus,
    revision: &str,
    target_matches_primary: bool,
    routes: Option<&ObservedRoutes>,
) -> CanaryStatus {
    let flaggers = status
        .last_applied_spec
        .as_deref()
        .is_some_and(|hash| !crate::revision::is_serin_hash(hash));
    if !flaggers {
        return status.clone();
    }
    let mut adopted = status.clone();
    let phase = status.phase.unwrap_or_default();
    if target_matches_primary {
        adopted.last_applied_spec = Some(revision.to_string());
        adopted.last_promoted_spec = Some(revision.to_string());
    } else if matches!(
        phase,
        Phase::Progressing | Phase::WaitingPromotion | Phase::Promoting | Phase::Finalising | Phase::Failed
    ) {
        adopted.last_applied_spec = Some(revision.to_string());
    }
    if matches!(phase, Phase::WaitingPromotion | Phase::Promoting) {
        if let Some(routes) = routes {
            adopted.canary_weight = Some(routes.canary);
        }
        adopted.iterations = Some(status.iterations.unwrap_or(0).max(0));
    }
    adopted
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

    #[test]
    fn a_status_flagger_wrote_is_taken_over_without_a_rollout() {
        let flaggers = CanaryStatus {
            phase: Some(Phase::Succeeded),
            last_applied_spec: Some("5d8f7b9c8".into()),
            last_promoted_spec: Some("5d8f7b9c8".into()),
            ..Default::default()
        };
        let revision = "s1-0123456789abcdef";
        let adopted = adopt_flagger_status(&flaggers, revision, true, None);
        assert_eq!(adopted.last_applied_spec.as_deref(), Some(revision));
        assert_eq!(adopted.last_promoted_spec.as_deref(), Some(revision));
        assert_eq!(adopted.phase, Some(Phase::Succeeded));
        assert_eq!(
            adopt_flagger_status(&flaggers, revision, false, None),
            flaggers,
            "a target that differs from the primary is a new revision"
        );
        let serins = CanaryStatus {
            last_applied_spec: Some("s1-fedcba9876543210".into()),
            ..flaggers.clone()
        };
        assert_eq!(adopt_flagger_status(&serins, revision, true, None), serins);

        for phase in [Phase::Progressing, Phase::Finalising, Phase::Failed] {
            let analysing = CanaryStatus {
                phase: Some(phase),
                canary_weight: Some(40),
                ..flaggers.clone()
            };
            let adopted = adopt_flagger_status(&analysing, revision, false, None);
            assert_eq!(
                adopted.last_applied_spec.as_deref(),
                Some(revision),
                "{phase:?}: the revision Flagger was at"
            );
            assert_eq!(adopted.last_promoted_spec, flaggers.last_promoted_spec);
            assert_eq!(adopted.canary_weight, Some(40));
        }
        let waiting = CanaryStatus {
            phase: Some(Phase::Waiting),
            ..flaggers.clone()
        };
        assert_eq!(
            adopt_flagger_status(&waiting, revision, false, None),
            waiting,
            "waiting for confirm-rollout: the new revision has not started"
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
        let adopted = adopt_flagger_status(&flaggers, "s1-0123456789abcdef", false, Some(&routes));
        assert_eq!(adopted.canary_weight, Some(50));
        assert_eq!(adopted.iterations, Some(0));
        assert_eq!(adopted.last_applied_spec.as_deref(), Some("s1-0123456789abcdef"));
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
