//! Flagger as the oracle: each scenario runs on Flagger v1.44.0 and on serin, each on a control
//! plane of its own with Flagger's CRDs, driven the same way (manifests, image change, webhook
//! answers, and the metrics of one shared Prometheus). The two traces must be the same, but for
//! the differences docs/compat.md lists on purpose (compare.rs).

mod compare;
mod scenarios;
mod sides;
mod switching;
mod trace;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use serin_testenv::auth_proxy::AuthProxy;
use serin_testenv::datadog::DatadogApi;
use serin_testenv::prometheus::Prometheus;
use serin_testenv::traffic::{Behaviour, TrafficSource};

use scenarios::{NAME, Scenario};
use sides::{MetricServices, Operator, Side};

/// Switching a live cluster. The way back (serin to Flagger) is not here: Flagger re-runs an
/// analysis of every Canary whose status holds serin's revision hashes (docs/compat.md).
const SWITCHES: [(&str, Operator, Operator); 2] = [
    ("switch-flagger-to-serin", Operator::Flagger, Operator::Serin),
    ("switch-serin-to-flagger", Operator::Serin, Operator::Flagger),
];

struct Suite {
    flagger: Side,
    serin: Side,
    traffic: TrafficSource,
    prometheus: Prometheus,
    _authenticated_prometheus: AuthProxy,
    _datadog: DatadogApi,
}

async fn start() -> Result<Suite, String> {
    let traffic = TrafficSource::start().await.map_err(|e| e.to_string())?;
    let prometheus = Prometheus::start(&[traffic.scrape_target()], Duration::from_secs(1))
        .await
        .map_err(|e| e.to_string())?;
    let authenticated_prometheus = AuthProxy::start(prometheus.url()).await.map_err(|e| e.to_string())?;
    let datadog = DatadogApi::start().await.map_err(|e| e.to_string())?;
    let (mut flagger, mut serin) = tokio::try_join!(
        Side::start(Operator::Flagger, prometheus.url()),
        Side::start(Operator::Serin, prometheus.url())
    )?;
    let services = MetricServices {
        authenticated_prometheus: format!("{}/basic", authenticated_prometheus.url()),
        datadog: datadog.url().to_string(),
    };
    flagger.metric_services = services.clone();
    serin.metric_services = services;
    Ok(Suite {
        flagger,
        serin,
        traffic,
        prometheus,
        _authenticated_prometheus: authenticated_prometheus,
        _datadog: datadog,
    })
}

async fn run(suite: Arc<Suite>, scenario: Scenario) -> Result<(), Failed> {
    suite.traffic.set(scenario.name, NAME, scenario.canary_behaviour);
    suite
        .traffic
        .set(scenario.name, &format!("{NAME}-primary"), Behaviour::healthy());
    let (flagger, serin) = tokio::join!(scenario.run(&suite.flagger), scenario.run(&suite.serin));
    let (flagger, serin) = (flagger?, serin?);
    let report = compare::report(&flagger, &serin);
    let mut expected = flagger.clone();
    for id in scenario.differences {
        let difference =
            compare::difference(id).ok_or(format!("scenario {} lists an unknown difference {id}", scenario.name))?;
        (difference.expect)(&mut expected);
    }
    let mismatches = compare::mismatches(&expected, &serin);
    if mismatches.is_empty() {
        println!(
            "{}: same as Flagger (listed differences: {:?})\n{report}",
            scenario.name, scenario.differences
        );
        Ok(())
    } else {
        Err(format!(
            "{}: serin differs from Flagger where docs/compat.md lists no difference:\n  {}\n{report}",
            scenario.name,
            mismatches.join("\n  ")
        )
        .into())
    }
}

/// Every listed difference has its row in docs/compat.md.
fn differences_are_documented() -> Result<(), Failed> {
    let compat = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/compat.md"))
        .map_err(|e| format!("docs/compat.md: {e}"))?;
    let missing: Vec<&str> = compare::DIFFERENCES
        .iter()
        .filter(|d| !compat.contains(&format!("| {}", d.compat_row)))
        .map(|d| d.id)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("differences without a row in docs/compat.md: {missing:?}").into())
    }
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    let scenarios = scenarios::all();
    // Every scenario at once: they mostly wait for Flagger's 10 s ticks.
    args.test_threads = args.test_threads.or(Some(scenarios.len() + SWITCHES.len() + 1));
    let mut trials = vec![Trial::test("differences_are_documented", differences_are_documented)];
    if args.list {
        trials.extend(scenarios.iter().map(|s| Trial::test(s.name, || Ok(()))));
        trials.extend(SWITCHES.iter().map(|(name, _, _)| Trial::test(*name, || Ok(()))));
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("could not start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let suite = match runtime.block_on(start()) {
        Ok(suite) => Arc::new(suite),
        Err(error) => {
            eprintln!("could not start Flagger and serin side by side: {error}");
            return ExitCode::FAILURE;
        }
    };
    for scenario in scenarios {
        let suite = suite.clone();
        let handle = runtime.handle().clone();
        let name = scenario.name;
        trials.push(Trial::test(name, move || handle.block_on(run(suite, scenario))));
    }
    for (name, from, to) in SWITCHES {
        let handle = runtime.handle().clone();
        let suite = suite.clone();
        trials.push(Trial::test(name, move || {
            handle
                .block_on(switching::switch(from, to, suite.prometheus.url(), &suite.traffic))
                .map_err(Failed::from)
        }));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if let Ok(suite) = Arc::try_unwrap(suite) {
        runtime.block_on(async {
            suite.flagger.env.teardown().await;
            suite.serin.env.teardown().await;
        });
    }
    conclusion.exit_code()
}
