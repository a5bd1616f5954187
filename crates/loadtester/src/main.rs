use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use regex::Regex;
use serin_loadtester::access::Access;
use serin_loadtester::gates::GateStore;
use serin_loadtester::runner::{DEFAULT_ALLOWED, Runner};
use serin_loadtester::shell::DEFAULT_SCRIPT_PROGRAMS;
use serin_loadtester::{Service, router};

/// Flagger's load tester flags (one dash or two), plus serin's safety flags.
#[derive(Parser)]
#[command(
    name = "serin-loadtester",
    version,
    about = "Load tests, command tasks and approval gates for Canary webhooks"
)]
struct Args {
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// Commands running longer are killed, with their process group.
    #[arg(long, default_value = "1h", value_parser = serin_loadtester::limits::flag_duration)]
    timeout: Duration,
    /// Only Canaries of matching namespaces are served (403 otherwise).
    #[arg(long)]
    namespace_regexp: Option<Regex>,
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Programs tasks may run, comma-separated (`bash` must be listed for `type: bash`).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_ALLOWED.map(String::from))]
    allowed_programs: Vec<String>,
    /// Programs shell scripts (`type: bash`, a `cmd` with pipes) may run besides
    /// -allowed-programs, comma-separated; scripts are screened unless their shell is allowed.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SCRIPT_PROGRAMS.map(String::from))]
    script_programs: Vec<String>,
    /// Tasks running at once; more get 429.
    #[arg(long, default_value_t = serin_loadtester::runner::DEFAULT_MAX_TASKS)]
    max_tasks: usize,
    /// The only directory files named by a payload (a Concord `apiKeyPath`) are read from.
    #[arg(long)]
    secrets_dir: Option<std::path::PathBuf>,
    /// Hosts the URL of a `load` task and nGrinder or Concord servers may name, comma-separated;
    /// `*.example.com` for a domain's hosts. Any host when not set.
    #[arg(long, value_delimiter = ',')]
    allowed_hosts: Option<Vec<String>>,
    /// Bearer token every endpoint but /healthz requires.
    #[arg(long, env = "LOADTESTER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where gates are kept: `configmap` (survives restarts) or `memory` (Flagger's behaviour).
    #[arg(long, default_value = "configmap", value_parser = ["configmap", "memory"])]
    gate_store: String,
    /// The ConfigMap that holds the gates, as `namespace/name`.
    #[arg(long, default_value = "default/serin-loadtester-gates")]
    gate_configmap: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse_from(serin_core::flags::with_double_dashes(std::env::args_os()));
    tracing_subscriber::fmt()
        .with_env_filter(args.log_level.as_str())
        .with_writer(std::io::stderr)
        .init();
    let gates = if args.gate_store == "memory" {
        GateStore::memory()
    } else {
        let Some((namespace, name)) = args.gate_configmap.split_once('/') else {
            eprintln!(
                "error: -gate-configmap must be namespace/name, not {:?}",
                args.gate_configmap
            );
            return ExitCode::FAILURE;
        };
        match kube::Client::try_default().await {
            Ok(client) => GateStore::config_map_if_allowed(client, namespace, name).await,
            Err(error) => GateStore::memory_because(format!("no Kubernetes client ({error})")),
        }
    };
    let service = Service::new(
        Runner::new(args.allowed_programs, args.timeout)
            .with_limit(args.max_tasks)
            .with_script_programs(args.script_programs)
            .with_access(Access::new(args.secrets_dir, args.allowed_hosts)),
        gates,
        args.token,
        args.namespace_regexp,
    );
    let address = SocketAddr::from(([0, 0, 0, 0], args.port));
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {address}: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%address, "serin-loadtester listening");
    match axum::serve(listener, router(Arc::new(service))).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
