//! `serin operator`: flags (Flagger's names), logging, the client, and the controller.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serin_api::alert_provider::AlertProviderType;
use serin_api::canary::Provider;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

#[derive(Args, Debug)]
pub struct OperatorArgs {
    /// Path to a kubeconfig; in-cluster configuration or $KUBECONFIG when absent.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Address of the Kubernetes API server; overrides the kubeconfig's.
    #[arg(long)]
    master: Option<String>,
    /// Log level: debug, info, warn or error.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log as JSON lines instead of text.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Flagger's name for the log format: `json` as `-log-format json`, `console` as text.
    #[arg(long, value_parser = ["json", "console"])]
    zap_encoding: Option<String>,
    /// Flagger's switch for its global logger; serin has one logger, so it changes nothing.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", hide = true)]
    zap_replace_globals: Option<String>,
    /// Only watch Canaries in this namespace, or in these (comma-separated).
    #[arg(long)]
    namespace: Option<String>,
    /// Labels that identify a target's pods, in order of preference.
    #[arg(long, default_value = "app,name,app.kubernetes.io/name")]
    selector_labels: String,
    /// Prefixes of the labels and annotations copied to the primary; `*` copies all.
    #[arg(long, default_value = "")]
    include_label_prefix: String,
    /// Traffic provider of Canaries that do not set spec.provider.
    #[arg(long, default_value = "kubernetes", value_parser = parse_mesh_provider)]
    mesh_provider: MeshProvider,
    /// Prometheus address for the builtin metrics of Canaries without spec.metricsServer.
    #[arg(long, default_value = "http://prometheus:9090")]
    metrics_server: String,
    /// Make the ConfigMaps and Secrets the target uses part of its revision, copied for the primary.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    enable_config_tracking: bool,
    /// Also send every Event serin publishes to this webhook (Flagger's event payload).
    #[arg(long, env = "EVENT_WEBHOOK_URL")]
    event_webhook: Option<String>,
    /// Slack incoming webhook for the alerts of Canaries without analysis.alerts.
    #[arg(long, env = "SLACK_URL", hide_env_values = true)]
    slack_url: Option<String>,
    /// Slack bot token, sent as a bearer token with each message.
    #[arg(long, env = "SLACK_TOKEN", hide_env_values = true)]
    slack_token: Option<String>,
    /// HTTP(S) proxy for the Slack webhook.
    #[arg(long, env = "SLACK_PROXY_URL", hide_env_values = true)]
    slack_proxy_url: Option<String>,
    /// User name the Slack (or MS Teams) messages are posted as.
    #[arg(long, default_value = "flagger")]
    slack_user: String,
    /// Slack channel; the webhook's own channel when unset.
    #[arg(long)]
    slack_channel: Option<String>,
    /// MS Teams webhook (Office 365 connector or Workflows) instead of Slack.
    #[arg(long, env = "MSTEAMS_URL", hide_env_values = true)]
    msteams_url: Option<String>,
    /// HTTP(S) proxy for the MS Teams webhook.
    #[arg(long, env = "MSTEAMS_PROXY_URL", hide_env_values = true)]
    msteams_proxy_url: Option<String>,
    /// Cluster name, added to every alert as its first field.
    #[arg(long)]
    cluster_name: Option<String>,
    /// Refuse references to MetricTemplates, AlertProviders and Gloo upstreams in other namespaces.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    no_cross_namespace_refs: bool,
    /// Run only the Canaries labelled serin.dev/shard=<SHARD> (with leader election, on a Lease of
    /// the shard's own); without it, only the Canaries without that label.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<String>,
    /// Run as one of several replicas: only the holder of the Lease reconciles.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    enable_leader_election: bool,
    /// Namespace of the leader election Lease.
    #[arg(long, default_value = "kube-system")]
    leader_election_namespace: String,
    /// How long the leader's Lease lasts without renewal: a standby takes over a dead leader
    /// within it (a leader that stops gracefully releases it at once).
    #[arg(long, default_value = "60s", value_parser = parse_lease_duration)]
    leader_election_lease_duration: std::time::Duration,
    /// Port of the HTTP server for /metrics (Prometheus), /healthz and /readyz.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Prefix of the ingress-nginx canary annotations on the canary Ingress (provider nginx).
    #[arg(long, default_value = "nginx.ingress.kubernetes.io")]
    ingress_annotations_prefix: String,
    #[command(flatten)]
    not_yet: NotYetActedOn,
}

/// `-mesh-provider`, and whether it named SuperGloo (`supergloo` or `supergloo:<mesh>`).
#[derive(Debug, Clone)]
struct MeshProvider {
    provider: Provider,
    supergloo: bool,
}

fn parse_mesh_provider(text: &str) -> Result<MeshProvider, String> {
    if text == "supergloo" || text.starts_with("supergloo:") {
        return Ok(MeshProvider {
            provider: Provider::Gloo,
            supergloo: true,
        });
    }
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map(|provider| MeshProvider {
            provider,
            supergloo: false,
        })
        .map_err(|_| format!("unknown provider {text:?}; see spec.provider in the Canary CRD for the accepted names"))
}

const SUPERGLOO_DEPRECATED: &str = "-mesh-provider=supergloo is deprecated (Flagger no longer supports SuperGloo): serin routes this Canary with the gloo router (a Gloo RouteTable and Upstreams); set -mesh-provider=gloo or spec.provider: gloo";

/// Flagger flags that serin accepts so existing deployments start unchanged, but does not act on
/// yet; setting one logs a warning that names it.
#[derive(Args, Debug)]
struct NotYetActedOn {
    #[arg(long)]
    kubeconfig_qps: Option<String>,
    #[arg(long)]
    kubeconfig_burst: Option<String>,
    #[arg(long)]
    control_loop_interval: Option<String>,
    #[arg(long)]
    threadiness: Option<String>,
    #[arg(long)]
    ingress_class: Option<String>,
    #[arg(long)]
    kubeconfig_service_mesh: Option<String>,
}

impl NotYetActedOn {
    fn set_flags(&self) -> Vec<&'static str> {
        let optional = [
            ("kubeconfig-qps", &self.kubeconfig_qps),
            ("kubeconfig-burst", &self.kubeconfig_burst),
            ("control-loop-interval", &self.control_loop_interval),
            ("threadiness", &self.threadiness),
            ("ingress-class", &self.ingress_class),
            ("kubeconfig-service-mesh", &self.kubeconfig_service_mesh),
        ];
        optional
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(name, _)| *name)
            .collect()
    }
}

/// This replica's name in the Lease: the pod's (or host's) name and the process id.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()))
        .unwrap_or_else(|_| "serin".to_string());
    format!("{host}_{}", std::process::id())
}

/// A shard's name: a label value that also fits in a Lease name.
fn parse_shard(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 40
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    valid
        .then(|| text.to_string())
        .ok_or_else(|| format!("shard {text:?}: use up to 40 lowercase letters, digits and dashes, not at either end"))
}

fn parse_lease_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration = serin_api::duration::parse_positive(text).map_err(|e| e.to_string())?;
    if duration < std::time::Duration::from_secs(2) {
        return Err("a lease shorter than 2s would be lost between renewals".to_string());
    }
    Ok(duration)
}

/// The notifier `-slack-url` or `-msteams-url` describes (MS Teams when both are set, as Flagger).
fn global_notifier(args: &OperatorArgs) -> Result<Option<serin_operator::GlobalNotifier>, StartError> {
    let set = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
    let (kind, address, proxy, flag) = match (set(&args.msteams_url), set(&args.slack_url)) {
        (Some(address), _) => (
            AlertProviderType::Msteams,
            address,
            set(&args.msteams_proxy_url),
            "msteams-url",
        ),
        (None, Some(address)) => (
            AlertProviderType::Slack,
            address,
            set(&args.slack_proxy_url),
            "slack-url",
        ),
        (None, None) => return Ok(None),
    };
    let endpoint = serin_operator::AlertEndpoint {
        address,
        token: set(&args.slack_token).filter(|_| kind == AlertProviderType::Slack),
        username: args.slack_user.clone(),
        channel: set(&args.slack_channel),
    };
    let notifier = serin_operator::GlobalNotifier::new(kind, endpoint, proxy).map_err(|error| StartError::Alerts {
        flag,
        error: error.to_string(),
    })?;
    tracing::info!(flag, "alerts of Canaries without analysis.alerts go to -{flag}");
    Ok(Some(notifier))
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("could not read the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("could not connect to Kubernetes: {0}")]
    Client(#[from] kube::Error),
    #[error("--master {0:?} is not a URL")]
    Master(String),
    #[error("-{flag}: {error}")]
    Alerts { flag: &'static str, error: String },
    #[error("could not start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

pub fn main(args: OperatorArgs) -> ExitCode {
    let log_format = match args.zap_encoding.as_deref() {
        Some("json") => "json",
        Some(_) => "text",
        None => args.log_format.as_str(),
    };
    // kube-client logs every failed request at ERROR without its cause; serin logs the failure
    // where it matters, with the causes and the API server's address.
    init_logging(
        &format!("{},kube=warn,kube_client::client::builder=off", args.log_level),
        log_format,
    );
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "serin operator stopped");
            ExitCode::FAILURE
        }
    }
}

fn run(args: OperatorArgs) -> Result<(), StartError> {
    for flag in args.not_yet.set_flags() {
        tracing::warn!(
            flag,
            "-{flag} is accepted for compatibility with Flagger but this serin version does not act on it yet"
        );
    }
    let split = |list: &str| {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    if args.zap_replace_globals.is_some() {
        tracing::info!(
            "-zap-replace-globals is accepted for compatibility with Flagger and changes nothing: serin has one logger"
        );
    }
    if args.mesh_provider.supergloo {
        tracing::warn!("{SUPERGLOO_DEPRECATED}");
    }
    let alerts = serin_operator::AlertSettings {
        global: global_notifier(&args)?,
        cluster_name: args.cluster_name.clone().filter(|c| !c.is_empty()),
        no_cross_namespace_refs: args.no_cross_namespace_refs,
        ..Default::default()
    };
    let config = serin_operator::Config {
        namespaces: args.namespace.as_deref().map(split).unwrap_or_default(),
        selector_labels: split(&args.selector_labels),
        include_label_prefixes: split(&args.include_label_prefix),
        mesh_provider: args.mesh_provider.provider,
        mesh_provider_warning: args.mesh_provider.supergloo.then(|| SUPERGLOO_DEPRECATED.to_string()),
        metrics_server: args.metrics_server.clone(),
        config_tracking: args.enable_config_tracking,
        event_webhook: args.event_webhook.clone(),
        telemetry_address: Some(std::net::SocketAddr::from(([0, 0, 0, 0], args.port))),
        routers: serin_operator::RouterSettings {
            ingress_annotations_prefix: args.ingress_annotations_prefix.clone(),
        },
        alerts,
        shard: args.shard.clone(),
        leader_election: args.enable_leader_election.then(|| serin_operator::LeaderElection {
            namespace: args.leader_election_namespace.clone(),
            lease_name: match &args.shard {
                Some(shard) => format!("{}-{shard}", serin_operator::LeaderElection::LEASE_NAME),
                None => serin_operator::LeaderElection::LEASE_NAME.to_string(),
            },
            identity: identity(),
            lease_duration: args.leader_election_lease_duration,
        }),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let (client, api_server) = client(&args).await?;
        // Every line says which API server it is about, so an unreachable one is named.
        let span = tracing::info_span!("operator", api_server = %api_server);
        tracing::info!(parent: &span, version = env!("CARGO_PKG_VERSION"), namespaces = ?config.namespaces, "serin operator starting");
        serin_operator::run(client, config).instrument(span).await;
        Ok(())
    })
}

/// The client, and the API server's address.
async fn client(args: &OperatorArgs) -> Result<(Client, String), StartError> {
    let mut config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| StartError::Kubeconfig(e.to_string()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| StartError::Kubeconfig(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| StartError::Kubeconfig(e.to_string()))?,
    };
    if let Some(master) = &args.master {
        config.cluster_url = master.parse().map_err(|_| StartError::Master(master.clone()))?;
    }
    let address = config.cluster_url.to_string();
    Ok((Client::try_from(config)?, address))
}

/// Logs to stderr with `directives` (an EnvFilter such as `info,kube=warn`) unless RUST_LOG is set.
pub fn init_logging(directives: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    // Colours only on a terminal: a log collected from a pod or a file stays plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaggers_log_flags_are_accepted() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            operator: OperatorArgs,
        }
        use clap::Parser;
        let cli = Cli::try_parse_from(["serin", "--zap-encoding=json", "--zap-replace-globals"])
            .expect("Flagger's log flags parse");
        assert_eq!(cli.operator.zap_encoding.as_deref(), Some("json"));
    }

    #[test]
    fn shard_names_fit_a_label_and_a_lease() {
        assert_eq!(parse_shard("eu-1").as_deref(), Ok("eu-1"));
        for bad in ["", "EU", "a_b", "-a", "a-", &"x".repeat(41)] {
            assert!(parse_shard(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn supergloo_is_served_by_the_gloo_router() {
        for text in ["supergloo", "supergloo:istio"] {
            let parsed = parse_mesh_provider(text).expect("accepted");
            assert_eq!(parsed.provider, Provider::Gloo);
            assert!(parsed.supergloo);
        }
        let gloo = parse_mesh_provider("gloo").expect("accepted");
        assert!(!gloo.supergloo);
        assert!(parse_mesh_provider("superglue").is_err());
    }
}
