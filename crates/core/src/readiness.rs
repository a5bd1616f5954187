//! When a workload counts as rolled out, and when waiting for it is hopeless.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::jiff::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Still rolling out; the message says what is awaited.
    Waiting(String),
    /// Will not become ready without a change: the rollout must be abandoned.
    Failed(String),
}

/// Readiness of a Deployment whose available replicas must reach `threshold_percent` of the
/// updated ones, given up after `deadline_seconds` of unavailability.
pub fn deployment(deployment: &Deployment, threshold_percent: i32, deadline_seconds: i32, now: Timestamp) -> Readiness {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let Some(spec) = deployment.spec.as_ref() else {
        return Readiness::Waiting(format!("deployment {name} has no spec yet"));
    };
    let status = deployment.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();

    let progress_deadline_exceeded = conditions
        .iter()
        .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    if progress_deadline_exceeded {
        return Readiness::Failed(format!("deployment {name} exceeded its progress deadline"));
    }
    let unavailable_too_long = conditions.iter().any(|c| {
        c.type_ == "Available"
            && c.status == "False"
            && c.reason.as_deref() == Some("MinimumReplicasUnavailable")
            && c.last_transition_time
                .as_ref()
                .is_some_and(|since| now.as_second() - since.0.as_second() > i64::from(deadline_seconds))
    });
    if unavailable_too_long {
        return Readiness::Failed(format!(
            "deployment {name} has had too few available replicas for more than {deadline_seconds}s"
        ));
    }

    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Readiness::Waiting(format!("waiting for deployment {name} spec update to be observed"));
    }
    let desired = spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        return Readiness::Waiting(format!(
            "waiting for deployment {name}: {updated} of {desired} replicas are updated"
        ));
    }
    if total > updated {
        return Readiness::Waiting(format!(
            "waiting for deployment {name}: {} old replicas are pending termination",
            total - updated
        ));
    }
    let needed = (i64::from(updated) * i64::from(threshold_percent.clamp(0, 100)) + 99) / 100;
    if i64::from(available) < needed {
        return Readiness::Waiting(format!(
            "waiting for deployment {name}: {available} of {updated} updated replicas are available"
        ));
    }
    Readiness::Ready
}

/// Readiness of a DaemonSet: all its scheduled pods updated and at least `threshold_percent`
/// of them available.
pub fn daemon_set(daemon_set: &DaemonSet, threshold_percent: i32) -> Readiness {
    let name = daemon_set.metadata.name.as_deref().unwrap_or_default();
    let status = daemon_set.status.clone().unwrap_or_default();
    let generation = daemon_set.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Readiness::Waiting(format!("waiting for daemon set {name} spec update to be observed"));
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < desired {
        return Readiness::Waiting(format!(
            "waiting for daemon set {name}: {updated} of {desired} pods are updated"
        ));
    }
    let needed = (i64::from(desired) * i64::from(threshold_percent.clamp(0, 100)) + 99) / 100;
    if i64::from(available) < needed {
        return Readiness::Waiting(format!(
            "waiting for daemon set {name}: {available} of {desired} updated pods are available"
        ));
    }
    Readiness::Ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const NOW: i64 = 1_800_000_000;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid timestamp")
    }

    struct Case {
        replicas: i32,
        generation: i64,
        observed: i64,
        updated: i32,
        total: i32,
        available: i32,
        conditions: Vec<DeploymentCondition>,
        threshold: i32,
    }

    fn healthy() -> Case {
        Case {
            replicas: 5,
            generation: 2,
            observed: 2,
            updated: 5,
            total: 5,
            available: 5,
            conditions: vec![],
            threshold: 100,
        }
    }

    fn check(case: Case) -> Readiness {
        let d = Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(case.generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(case.replicas),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(case.observed),
                updated_replicas: Some(case.updated),
                replicas: Some(case.total),
                available_replicas: Some(case.available),
                conditions: Some(case.conditions),
                ..Default::default()
            }),
        };
        deployment(&d, case.threshold, 600, at(NOW))
    }

    fn condition(type_: &str, status: &str, reason: &str, since: i64) -> DeploymentCondition {
        DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            last_transition_time: Some(Time(at(since))),
            ..Default::default()
        }
    }

    #[test]
    fn ready_when_all_updated_replicas_are_available() {
        assert_eq!(check(healthy()), Readiness::Ready);
    }

    #[test]
    fn waits_with_a_message_naming_what_is_missing() {
        let cases = [
            (
                Case {
                    observed: 1,
                    ..healthy()
                },
                "waiting for deployment web spec update to be observed",
            ),
            (
                Case {
                    updated: 3,
                    ..healthy()
                },
                "waiting for deployment web: 3 of 5 replicas are updated",
            ),
            (
                Case { total: 7, ..healthy() },
                "waiting for deployment web: 2 old replicas are pending termination",
            ),
            (
                Case {
                    available: 3,
                    ..healthy()
                },
                "waiting for deployment web: 3 of 5 updated replicas are available",
            ),
        ];
        for (case, message) in cases {
            assert_eq!(check(case), Readiness::Waiting(message.into()));
        }
    }

    #[test]
    fn threshold_lowers_the_available_replicas_needed() {
        assert_eq!(
            check(Case {
                available: 3,
                threshold: 60,
                ..healthy()
            }),
            Readiness::Ready
        );
        assert!(matches!(
            check(Case {
                available: 2,
                threshold: 60,
                ..healthy()
            }),
            Readiness::Waiting(_)
        ));
    }

    #[test]
    fn fails_on_deadline() {
        let exceeded = condition("Progressing", "False", "ProgressDeadlineExceeded", NOW - 10);
        assert!(matches!(
            check(Case {
                conditions: vec![exceeded],
                ..healthy()
            }),
            Readiness::Failed(_)
        ));
        let long = condition("Available", "False", "MinimumReplicasUnavailable", NOW - 601);
        assert!(matches!(
            check(Case {
                available: 0,
                conditions: vec![long],
                ..healthy()
            }),
            Readiness::Failed(_)
        ));
        let recent = condition("Available", "False", "MinimumReplicasUnavailable", NOW - 60);
        assert!(matches!(
            check(Case {
                available: 0,
                conditions: vec![recent],
                ..healthy()
            }),
            Readiness::Waiting(_)
        ));
    }

    #[test]
    fn daemon_sets_are_ready_when_every_scheduled_pod_is_updated_and_available() {
        use k8s_openapi::api::apps::v1::DaemonSetStatus;
        let ds = |updated: i32, available: i32| DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: None,
            status: Some(DaemonSetStatus {
                observed_generation: Some(1),
                desired_number_scheduled: 3,
                updated_number_scheduled: Some(updated),
                number_available: Some(available),
                ..Default::default()
            }),
        };
        assert_eq!(daemon_set(&ds(3, 3), 100), Readiness::Ready);
        assert_eq!(
            daemon_set(&ds(2, 3), 100),
            Readiness::Waiting("waiting for daemon set agent: 2 of 3 pods are updated".into())
        );
        assert_eq!(
            daemon_set(&ds(3, 2), 100),
            Readiness::Waiting("waiting for daemon set agent: 2 of 3 updated pods are available".into())
        );
        assert_eq!(daemon_set(&ds(3, 2), 60), Readiness::Ready);
    }
}
