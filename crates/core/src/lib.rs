//! Everything serin decides without I/O. The operator observes the cluster, asks this crate what
//! to do, and carries it out; every function here is a plain transformation with table tests.

pub mod alerts;
pub mod analysis;
pub mod autoscaler;
pub mod checks;
pub mod configs;
pub mod flags;
pub mod lifecycle;
pub mod naming;
pub mod plan;
pub mod primary;
pub mod query_template;
pub mod readiness;
pub mod revision;
pub mod services;
pub mod session_affinity;
pub mod status;
pub mod strategy;
pub mod warnings;
