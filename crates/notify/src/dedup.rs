//! One message per cause per revision: a rollout that waits, flaps or is looked at again after a
//! restart does not say the same thing twice about the same revision.

use std::collections::{HashMap, HashSet};

/// The causes already alerted on, per Canary, for its current revision only.
#[derive(Debug)]
pub struct Dedup {
    canaries: HashMap<String, Said>,
    capacity: usize,
    clock: u64,
}

#[derive(Debug)]
struct Said {
    revision: String,
    causes: HashSet<String>,
    /// When the Canary was last alerted on, in calls to [`Dedup::first`]; the least recent is
    /// forgotten first when `capacity` Canaries are remembered.
    used: u64,
}

impl Dedup {
    /// Remembers up to `capacity` Canaries (Canaries deleted long ago are forgotten first).
    pub fn new(capacity: usize) -> Dedup {
        Dedup {
            canaries: HashMap::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    /// Whether `cause` is new for `canary` at `revision`; it is remembered either way. A new
    /// revision forgets the causes of the previous one.
    pub fn first(&mut self, canary: &str, revision: &str, cause: &str) -> bool {
        self.clock += 1;
        if !self.canaries.contains_key(canary) && self.canaries.len() >= self.capacity {
            self.forget_least_recent();
        }
        let said = self.canaries.entry(canary.to_string()).or_insert_with(|| Said {
            revision: revision.to_string(),
            causes: HashSet::new(),
            used: 0,
        });
        said.used = self.clock;
        if said.revision != revision {
            said.revision = revision.to_string();
            said.causes.clear();
        }
        said.causes.insert(cause.to_string())
    }

    fn forget_least_recent(&mut self) {
        let oldest = self
            .canaries
            .iter()
            .min_by_key(|(_, said)| said.used)
            .map(|(canary, _)| canary.clone());
        if let Some(canary) = oldest {
            self.canaries.remove(&canary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_said_once_per_revision() {
        let mut dedup = Dedup::new(10);
        assert!(dedup.first("test/podinfo", "r1", "waiting-approval"));
        assert!(!dedup.first("test/podinfo", "r1", "waiting-approval"));
        assert!(dedup.first("test/podinfo", "r1", "check-failed"));
        assert!(dedup.first("test/other", "r1", "waiting-approval"));
        assert!(dedup.first("test/podinfo", "r2", "waiting-approval"));
        assert!(dedup.first("test/podinfo", "r2", "check-failed"));
    }

    #[test]
    fn the_least_recently_alerted_canary_is_forgotten_at_capacity() {
        let mut dedup = Dedup::new(2);
        assert!(dedup.first("a", "r", "x"));
        assert!(dedup.first("b", "r", "x"));
        assert!(!dedup.first("a", "r", "x"));
        assert!(dedup.first("c", "r", "x"));
        assert_eq!(dedup.canaries.len(), 2);
        assert!(!dedup.first("a", "r", "x"), "a was used more recently than b");
        assert!(dedup.first("b", "r", "x"), "b was forgotten");
    }
}
