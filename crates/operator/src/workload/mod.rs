//! The workloads a Canary manages: its target and the primary copy.

pub mod configs;
pub mod deployment;
pub mod primary;
