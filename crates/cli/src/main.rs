#[cfg(feature = "demo")]
mod demo;
mod operator;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "serin",
    version,
    about = "Progressive delivery for Kubernetes, compatible with Flagger's API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster of the kubeconfig (or the one it runs in).
    /// Flagger's flags are accepted with one dash or two.
    Operator(Box<operator::OperatorArgs>),
    /// Print the CustomResourceDefinitions serin serves (Canary, MetricTemplate, AlertProvider) as YAML.
    Crds,
    /// Start a local control plane (kwok simulates the pods), run serin on it and initialize the example Canary.
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(serin_core::flags::with_double_dashes(std::env::args_os()));
    match cli.command {
        Command::Crds => match serin_api::crd::to_yaml() {
            Ok(yaml) => match std::io::Write::write_all(&mut std::io::stdout().lock(), yaml.as_bytes()) {
                // `serin crds | head` closes the pipe early: not an error.
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: could not write the CRDs: {error}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            },
            Err(error) => {
                eprintln!("error: could not render the CRDs: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Operator(args) => operator::main(*args),
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::main(args),
    }
}
