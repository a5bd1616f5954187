//! `serin demo`: a real rollout target on a local control plane. etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler are the upstream programs; kwok plays the kubelet,
//! so pods are simulated (no containers run). serin runs in this process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use kube::Api;
use serin_api::{Canary, Phase};
use serin_testenv::{Options, TestEnv};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/podinfo");
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

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
    #[error("the Canary did not reach {phase:?} within {PHASE_TIMEOUT:?}; its last status: {last}")]
    PhaseTimeout { phase: Phase, last: String },
    #[error("could not start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

pub fn main(args: DemoArgs) -> ExitCode {
    // The API server is expected to refuse connections while it starts and stops.
    crate::operator::init_logging("warn,kube_client=off,kube_runtime=off", "text");
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\ndemo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: DemoArgs) -> Result<(), DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let started = Instant::now();
        step("starting a local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok");
        println!("   (kwok simulates the kubelet: pods are scheduled and reported Running, but no container runs)");
        let env = TestEnv::start(Options { nodes: 3 }).await?;
        println!(
            "   ready after {:.1}s; KUBECONFIG={}",
            started.elapsed().as_secs_f64(),
            env.kubeconfig().display()
        );

        step("installing serin's CRDs (Canary, MetricTemplate, AlertProvider)");
        env.install_crds().await?;

        step("starting the serin operator");
        let operator = tokio::spawn(serin_operator::run(env.client(), serin_operator::Config::default()));

        let namespace = env.namespace("demo").await?;
        step(&format!("deploying podinfo and its Canary into namespace {namespace}"));
        for file in ["deployment.yaml", "canary.yaml"] {
            let path = PathBuf::from(EXAMPLES).join(file).display().to_string();
            kubectl(&env, &["apply", "-n", &namespace, "-f", &path]).await?;
        }

        step("watching the Canary");
        watch_until(&env, &namespace, "podinfo", Phase::Initialized).await?;

        step("what serin created");
        kubectl(
            &env,
            &[
                "get",
                "-n",
                &namespace,
                "canaries,deployments,services,pods",
                "-o",
                "wide",
            ],
        )
        .await?;
        println!(
            "\nsummary: podinfo initialized in {:.1}s: the primary podinfo-primary serves through Service podinfo,",
            started.elapsed().as_secs_f64()
        );
        println!("         the target podinfo is scaled to 0 until its next revision.");

        if args.keep {
            println!(
                "\nthe control plane keeps running; try: KUBECONFIG={} kubectl get canaries -A",
                env.kubeconfig().display()
            );
            println!("press Ctrl-C to stop");
            let _ = tokio::signal::ctrl_c().await;
        }
        operator.abort();
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

/// Prints each new phase and status message of the Canary until it reaches `phase`.
async fn watch_until(env: &TestEnv, namespace: &str, name: &str, phase: Phase) -> Result<(), DemoError> {
    let api = Api::<Canary>::namespaced(env.client(), namespace);
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < PHASE_TIMEOUT {
        if let Ok(canary) = api.get(name).await {
            let status = canary.status.unwrap_or_default();
            let message = serin_core::status::promoted_condition(&status)
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            let line = format!(
                "{:<14} weight {:>3}  {message}",
                status.phase.unwrap_or_default().as_str(),
                status.canary_weight.unwrap_or(0)
            );
            if line != last {
                println!("   {:>5.1}s  {line}", started.elapsed().as_secs_f64());
                last = line;
            }
            if status.phase == Some(phase) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(DemoError::PhaseTimeout { phase, last })
}
