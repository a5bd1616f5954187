//! The workloads a Canary manages: its target and the primary copy.

pub mod autoscaler;
pub mod configs;
pub mod deployment;
pub mod primary;
