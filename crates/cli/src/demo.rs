//! `serin demo`: real releases on a local control plane. etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler are the upstream programs and Prometheus is
//! Debian's; kwok plays the kubelet, so pods are simulated (no container runs), and a traffic
//! source stands in for the app's requests: it follows the weights serin writes into the
//! HTTPRoute and serves the metrics Prometheus scrapes. serin runs in this process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serin_api::{Canary, Phase};
use serin_testenv::prometheus::Prometheus;
use serin_testenv::traffic::{Behaviour, TrafficSource};
use serin_testenv::{Options, TestEnv};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo");
const RELEASE_TIMEOUT: Duration = Duration::from_secs(180);
const REQUESTS_PER_SECOND: f64 = 50.0;

/// The versions the demo releases, and how their pods answer.
const RELEASES: [(&str, &str, Behaviour); 2] = [
    (
        "ghcr.io/stefanprodan/podinfo:6.7.1",
        "v2, healthy",
        Behaviour {
            requests_per_second: 0.0,
            error_ratio: 0.0,
            latency_seconds: 0.02,
        },
    ),
    (
        "ghcr.io/stefanprodan/podinfo:6.8.0",
        "v3, 15% of requests fail",
        Behaviour {
            requests_per_second: 0.0,
            error_ratio: 0.15,
            latency_seconds: 0.02,
        },
    ),
];

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the control plane running at the end (until Ctrl-C) to explore it with kubectl.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("{0}")]
    TestEnv(#[from] serin_testenv::Error),
    #[error("could not run kubectl: {0}")]
    Kubectl(std::io::Error),
    #[error("kubectl {args} failed: {stderr}")]
    KubectlFailed { args: String, stderr: String },
    #[error("the Canary did not settle within {RELEASE_TIMEOUT:?}; its last state: {last}")]
    Timeout { last: String },
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("could not start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

pub fn main(args: DemoArgs) -> ExitCode {
    // The API server is expected to refuse connections while it starts and stops.
    // serin's own warnings are in the live view.
    crate::operator::init_logging("warn,serin_operator=error,kube_client=off,kube_runtime=off", "text");
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\ndemo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

struct Summary {
    version: &'static str,
    outcome: Phase,
    seconds: f64,
    weights: Vec<i32>,
    failed_checks: i32,
}

fn run(args: DemoArgs) -> Result<(), DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let started = Instant::now();
        step("starting a local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok");
        println!("   kwok simulates the kubelet: pods are scheduled and reported Ready, but no container runs;");
        println!("   a traffic source plays the app's requests, split by the weights serin writes into the HTTPRoute");
        let env = TestEnv::start(Options { nodes: 3 }).await?;
        println!(
            "   ready after {:.1}s; KUBECONFIG={}",
            started.elapsed().as_secs_f64(),
            env.kubeconfig().display()
        );

        step("installing serin's CRDs and the Gateway API CRDs; starting Prometheus and serin");
        env.install_crds().await?;
        env.install_upstream_crds("gateway-api").await?;
        let traffic = Arc::new(TrafficSource::start().await?);
        let prometheus = Prometheus::start(&[traffic.scrape_target()], Duration::from_secs(1)).await?;
        let config = serin_operator::Config {
            metrics_server: prometheus.url().to_string(),
            ..Default::default()
        };
        let operator = tokio::spawn(serin_operator::run(env.client(), config));

        let namespace = env.namespace("demo").await?;
        step(&format!("deploying podinfo and its Canary into namespace {namespace}"));
        for file in ["deployment.yaml", "canary.yaml"] {
            let path = PathBuf::from(EXAMPLES).join(file).display().to_string();
            kubectl(&env, &["apply", "-n", &namespace, "-f", &path]).await?;
        }
        let follower = tokio::spawn(follow_routes(env.client(), namespace.clone(), traffic.clone()));
        watch(&env, &namespace, None).await?;

        let mut summaries = Vec::new();
        for (image, version, _) in RELEASES {
            step(&format!("releasing {image} ({version})"));
            set_image(&env, &namespace, image).await?;
            summaries.push(watch(&env, &namespace, Some(version)).await?);
        }

        step("summary");
        println!(
            "   {:<28} {:<10} {:>8}  {:<18} failed checks",
            "release", "outcome", "took", "canary weights"
        );
        for s in &summaries {
            let weights = s.weights.iter().map(|w| format!("{w}")).collect::<Vec<_>>().join("→");
            println!(
                "   {:<28} {:<10} {:>7.1}s  {:<18} {}",
                s.version,
                s.outcome.as_str(),
                s.seconds,
                weights,
                s.failed_checks
            );
        }
        kubectl(
            &env,
            &["get", "-n", &namespace, "canaries,deployments,services,httproutes"],
        )
        .await?;
        println!("\nthe demo ran for {:.0}s", started.elapsed().as_secs_f64());

        if args.keep {
            println!(
                "\nthe control plane keeps running; try: KUBECONFIG={} kubectl get canaries -A",
                env.kubeconfig().display()
            );
            println!("press Ctrl-C to stop");
            let _ = tokio::signal::ctrl_c().await;
        }
        follower.abort();
        operator.abort();
        drop(prometheus);
        env.teardown().await;
        Ok(())
    })
}

fn step(text: &str) {
    println!("\n==> {text}");
}

async fn kubectl(env: &TestEnv, args: &[&str]) -> Result<(), DemoError> {
    println!("$ kubectl {}", args.join(" "));
    let output = env.kubectl().args(args).output().await.map_err(DemoError::Kubectl)?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        return Err(DemoError::KubectlFailed {
            args: args.join(" "),
            stderr,
        });
    }
    Ok(())
}

async fn set_image(env: &TestEnv, namespace: &str, image: &str) -> Result<(), DemoError> {
    let patch = serde_json::json!({ "spec": { "template": { "spec": { "containers": [{ "name": "podinfod", "image": image }] } } } });
    Api::<Deployment>::namespaced(env.client(), namespace)
        .patch("podinfo", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    println!("$ kubectl set image deployment/podinfo podinfod={image}");
    Ok(())
}

/// Every half second: the HTTPRoute's weights and the target's image decide how many requests
/// the canary's and the primary's pods serve, and how the canary answers.
async fn follow_routes(client: Client, namespace: String, traffic: Arc<TrafficSource>) {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let routes = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    );
    let deployments = Api::<Deployment>::namespaced(client, &namespace);
    loop {
        let canary_weight = match routes.get("podinfo").await {
            Ok(route) => route.data["spec"]["rules"][0]["backendRefs"][1]["weight"]
                .as_f64()
                .unwrap_or(0.0),
            Err(_) => 0.0,
        };
        let image = deployments
            .get("podinfo")
            .await
            .ok()
            .and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone());
        let behaviour = RELEASES
            .iter()
            .find(|(i, _, _)| Some(*i) == image.as_deref())
            .map(|(_, _, b)| *b)
            .unwrap_or(RELEASES[0].2);
        let canary_rps = REQUESTS_PER_SECOND * canary_weight / 100.0;
        traffic.set(
            &namespace,
            "podinfo",
            Behaviour {
                requests_per_second: canary_rps,
                ..behaviour
            },
        );
        traffic.set(
            &namespace,
            "podinfo-primary",
            Behaviour {
                requests_per_second: REQUESTS_PER_SECOND - canary_rps,
                ..RELEASES[0].2
            },
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints each change of phase, weight, failed checks and measured values until the Canary
/// settles (Initialized, Succeeded or Failed after having progressed).
async fn watch(env: &TestEnv, namespace: &str, version: Option<&'static str>) -> Result<Summary, DemoError> {
    let canaries = Api::<Canary>::namespaced(env.client(), namespace);
    let events = Api::<Event>::namespaced(env.client(), namespace);
    let started = Instant::now();
    let mut last = String::new();
    let mut progressed = version.is_none();
    let mut weights = vec![0];
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let earlier = events
        .list(&ListParams::default().fields("involvedObject.name=podinfo"))
        .await?;
    let earlier: Vec<Option<String>> = earlier.items.into_iter().map(|e| e.metadata.uid).collect();
    while started.elapsed() < RELEASE_TIMEOUT {
        let canary = canaries.get("podinfo").await?;
        let status = canary.status.unwrap_or_default();
        let phase = status.phase.unwrap_or_default();
        let weight = status.canary_weight.unwrap_or(0);
        if weights.last() != Some(&weight) {
            weights.push(weight);
        }
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=podinfo"))
            .await?;
        for event in list.items.into_iter().filter(|e| !earlier.contains(&e.metadata.uid)) {
            if let (Some("MetricPassed" | "MetricFailed"), Some(message)) = (event.reason.as_deref(), event.message) {
                let metric = message.split(' ').next().unwrap_or_default().to_string();
                values.insert(metric, message);
            }
        }
        let message = serin_core::status::promoted_condition(&status)
            .and_then(|c| c.message.clone())
            .unwrap_or_default();
        let line = format!(
            "{:<16} weight {:>3}%  failed checks {}  {}",
            phase.as_str(),
            weight,
            status.failed_checks.unwrap_or(0),
            if values.is_empty() {
                message
            } else {
                values.values().cloned().collect::<Vec<_>>().join("; ")
            }
        );
        if line != last {
            println!("   {:>5.1}s  {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        progressed |= matches!(phase, Phase::Progressing | Phase::Promoting | Phase::Finalising);
        let settled = match version {
            None => phase == Phase::Initialized,
            Some(_) => progressed && matches!(phase, Phase::Succeeded | Phase::Failed),
        };
        if settled {
            return Ok(Summary {
                version: version.unwrap_or("v1"),
                outcome: phase,
                seconds: started.elapsed().as_secs_f64(),
                weights,
                failed_checks: status.failed_checks.unwrap_or(0),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(DemoError::Timeout { last })
}
