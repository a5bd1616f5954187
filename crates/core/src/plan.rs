//! The plan a decision returns: the next status, typed actions for the operator to carry out in
//! order, Events, and when to look again. Every phase (initialization, analysis, promotion,
//! revert on deletion) decides in these terms; the operator only interprets them.
//!
//! The operator carries the actions out first, then writes the status, then carries out the
//! actions that must follow the status write (`after`), then publishes the Events. A crash before the
//! status write leaves a status from which the same decision is taken again (every action is
//! idempotent). What must not run twice (the post-rollout webhooks, releasing the finalizer) is
//! in `after`: once the status says the rollout ended, no decision asks for it again, so a crash
//! after the write can lose such an action but never repeats it.

use std::time::Duration;

use serin_api::{CanaryStatus, Phase};

use crate::alerts::Alert;
use crate::session_affinity::SessionCookies;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// The new status, or `None` when it is unchanged.
    pub status: Option<CanaryStatus>,
    pub actions: Vec<Action>,
    pub notes: Vec<Note>,
    /// When to look again if nothing else happens.
    pub requeue: Option<Duration>,
    /// Actions carried out once the status is written.
    pub after: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Copy the target's template (and configs, and autoscaler) to the primary: at
    /// initialization and at promotion.
    ApplyPrimary,
    /// Create or update the apex, `-primary` and `-canary` Services.
    ApplyServices,
    /// Give the target replicas again (it was scaled to 0 between rollouts) and resume its
    /// autoscaler.
    ScaleUpTarget,
    /// Scale the target to 0 and pause its autoscaler.
    ScaleDownTarget,
    Route(Routes),
    /// Hand the provider's routing objects back to the apex Service (revert on deletion).
    RevertRoutes,
    /// Point the apex Service at the target's pods and release it (revert on deletion).
    RevertApexService,
    /// Call the post-rollout webhooks with this phase (failures are only logged).
    PostRollout(Phase),
    /// Remove the finalizer: the Canary may go.
    ReleaseFinalizer,
    /// Ask each metric provider the Canary's checks use whether it answers; a Warning Event for
    /// each that does not (nothing else changes).
    CheckMetricProviders,
}

/// The routes a router found in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRoutes {
    pub primary: i32,
    pub canary: i32,
    /// Why the provider refused the routing object (the Gateway API's `Accepted=False` at the
    /// route's current generation); `None` when it did not.
    pub refused: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub primary: i32,
    pub canary: i32,
    /// A/B testing: requests matching `analysis.match` go to the canary.
    pub matched_to_canary: bool,
    pub mirror: bool,
    /// Session affinity's cookies (`analysis.sessionAffinity`), for routers that carry them.
    pub cookies: Option<SessionCookies>,
}

impl Routes {
    pub fn weights(primary: i32, canary: i32) -> Routes {
        Routes {
            primary,
            canary,
            matched_to_canary: false,
            mirror: false,
            cookies: None,
        }
    }

    pub fn all_to_primary() -> Routes {
        Routes::weights(100, 0)
    }
}

/// An Event to publish, and the alert that goes with it, if the moment is worth one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    pub alert: Option<Alert>,
}

impl Note {
    pub(crate) fn alerting(mut self, alert: Alert) -> Note {
        self.alert = Some(alert);
        self
    }
}

pub(crate) fn normal(reason: &'static str, message: String) -> Note {
    Note {
        warning: false,
        reason,
        message,
        alert: None,
    }
}

pub(crate) fn warning(reason: &'static str, message: String) -> Note {
    Note {
        warning: true,
        reason,
        message,
        alert: None,
    }
}
