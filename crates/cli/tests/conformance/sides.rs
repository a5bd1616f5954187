//! The two sides of the comparison: a control plane each (with Flagger's own CRDs, as a cluster
//! that ran Flagger has them), a webhook receiver each, and the operator running as a process,
//! Flagger v1.44.0 or `serin operator`, with the same flags.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use serin_testenv::webhooks::WebhookReceiver;
use serin_testenv::{Options, TestEnv};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operator {
    Flagger,
    Serin,
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Operator::Flagger => "flagger",
            Operator::Serin => "serin",
        })
    }
}

pub struct Side {
    pub operator: Operator,
    pub env: TestEnv,
    pub hooks: WebhookReceiver,
    /// The Prometheus both sides query.
    pub metrics_server: String,
    /// The other metric services both sides query (unset when a test needs none).
    pub metric_services: MetricServices,
}

/// Metric providers behind credentials, shared by both sides.
#[derive(Debug, Clone, Default)]
pub struct MetricServices {
    /// The Prometheus behind nginx asking for basic auth, with the path prefix to use.
    pub authenticated_prometheus: String,
    /// The loopback server speaking Datadog's API.
    pub datadog: String,
}

impl Side {
    /// A control plane with Flagger's, the Gateway API's and Istio's CRDs, and `operator` running on it
    /// with `metrics_server` as its Prometheus.
    pub async fn start(operator: Operator, metrics_server: &str) -> Result<Side, String> {
        let env = TestEnv::start(Options { nodes: 2 })
            .await
            .map_err(|e| format!("{operator}'s control plane: {e}"))?;
        env.install_flagger_crds()
            .await
            .map_err(|e| format!("Flagger's CRDs: {e}"))?;
        env.install_provider_crds()
            .await
            .map_err(|e| format!("the traffic providers' CRDs: {e}"))?;
        let hooks = WebhookReceiver::start()
            .await
            .map_err(|e| format!("webhook receiver: {e}"))?;
        let mut side = Side {
            operator,
            env,
            hooks,
            metrics_server: metrics_server.to_string(),
            metric_services: MetricServices::default(),
        };
        side.start_operator(operator)?;
        Ok(side)
    }

    /// Starts `operator` on this control plane, with the same flags for both.
    pub fn start_operator(&mut self, operator: Operator) -> Result<(), String> {
        let (program, mut args) = match operator {
            Operator::Flagger => {
                let dir = serin_testenv::upstream_flagger().map_err(|e| e.to_string())?;
                (dir.join("flagger"), vec!["-log-level=info".to_string()])
            }
            Operator::Serin => (PathBuf::from(env!("CARGO_BIN_EXE_serin")), vec!["operator".to_string()]),
        };
        // Each operator's HTTP server on a port of its own: both sides run at once.
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port for {operator}'s HTTP server: {e}"))?
            .port();
        args.push(format!("-port={port}"));
        args.extend([
            format!("-kubeconfig={}", self.env.kubeconfig().display()),
            format!("-metrics-server={}", self.metrics_server),
            "-mesh-provider=kubernetes".to_string(),
        ]);
        let name = match operator {
            Operator::Flagger => "flagger",
            Operator::Serin => "serin",
        };
        self.env
            .control_plane_mut()
            .ok_or("the conformance suite needs its own control planes (not SERIN_TESTENV=existing)")?
            .start_process(name, &program, &args)
            .map_err(|e| format!("starting {operator}: {e}"))?;
        self.operator = operator;
        Ok(())
    }

    /// Stops the running operator (SIGKILL), as when switching to the other.
    pub fn stop_operator(&mut self) -> Result<(), String> {
        let name = self.operator.to_string();
        self.env
            .control_plane_mut()
            .ok_or("no control plane of its own")?
            .stop_process(&name)
            .map_err(|e| format!("stopping {name}: {e}"))
    }

    /// The operator's log, for a failure report.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.env.control_plane().map(|p| p.log_of(&self.operator.to_string()))
    }

    /// Namespace `name`, the same on both sides so the metrics both operators query are the same series.
    pub async fn namespace(&self, name: &str) -> Result<(), String> {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.env.client())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|e| format!("namespace {name}: {e}"))?;
        Ok(())
    }
}

/// How long a scenario may take on one side: Flagger paces steps at 10 s at least.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);
