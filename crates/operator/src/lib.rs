//! serin's controller. It watches Canaries and the Deployments they target through shared caches,
//! asks `serin-core` what to do, and carries it out against the API server.

mod alerts;
mod analyse;
mod apply;
mod config;
mod context;
mod controller;
mod error;
mod finalize;
mod hooks;
mod initialize;
mod interpret;
mod leader;
mod observe;
mod report;
mod telemetry;
mod workload;

pub use alerts::{AlertSettings, GlobalNotifier};
pub use config::{Config, SHARD_LABEL};
pub use controller::run;
pub use error::Error;
pub use leader::LeaderElection;
pub use serin_notify::{Endpoint as AlertEndpoint, Policy as AlertPolicy};
pub use serin_router::Settings as RouterSettings;
