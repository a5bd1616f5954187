//! serin's controller. It watches Canaries and the Deployments they target through shared caches,
//! asks `serin-core` what to do, and carries it out against the API server.

mod apply;
mod config;
mod controller;
mod error;
mod initialize;
mod report;
mod workload;

pub use config::Config;
pub use controller::run;
pub use error::Error;
