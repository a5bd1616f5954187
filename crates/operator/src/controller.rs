//! The watch loop: Canaries, and the Deployments they target or own, through shared caches.
//! A change to either reconciles the Canaries concerned at once; nothing polls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, Shared as SharedFuture};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher::ExponentialBackoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serin_api::{Canary, MetricTemplate};
use serin_core::lifecycle::{self, Stage};
use serin_core::naming::primary_name;
use tokio::sync::watch;
use tracing::Instrument;

use crate::alerts::Alerting;
use crate::context::Context;
use crate::error::with_causes;
use crate::leader::Leadership;
use crate::telemetry::{self, Telemetry};
use crate::{Config, Error, analyse, finalize, initialize, interpret, report};
use serin_metrics::HttpClients;

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
const TEMPLATE_LISTING: Duration = Duration::from_secs(10);

/// Runs the operator until the process is asked to stop (SIGTERM or Ctrl-C): then the
/// reconciles in progress finish (for at most `shutdown_grace`, as the API server may be
/// unreachable) and the Lease is released.
pub async fn run(client: Client, config: Config) {
    let stop = stop_signal();
    // Polled at once, so the signal handlers are in place from the start.
    tokio::spawn(stop.clone().in_current_span());
    let reporter = Reporter {
        controller: config.controller_name.clone(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let http = match HttpClients::new() {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "could not create the HTTP client for webhooks and metrics");
            return;
        }
    };
    // One controller per watched namespace (or one for all of them), so that the permissions
    // can be a Role in each namespace.
    let scopes = config.scopes();
    let controllers: Vec<Controller<Canary>> = scopes
        .iter()
        .map(|scope| Controller::new(scoped(&client, scope), watch_config().labels(&config.canary_selector())))
        .collect();
    let stores: Vec<Store<Canary>> = controllers.iter().map(Controller::store).collect();
    let telemetry = Arc::new(Telemetry::new(
        &serin_api::wire_name(&config.mesh_provider),
        stores.clone(),
    ));
    let mut template_stores = Vec::new();
    for scope in &scopes {
        let (templates, writer) = reflector::store();
        let template_names: Api<PartialObjectMeta<MetricTemplate>> = scoped(&client, scope);
        let template_watch = reflector::reflector(writer, watcher(template_names, watch_config()))
            .backoff(watch_backoff())
            .touched_objects()
            .for_each({
                let telemetry = telemetry.clone();
                move |event| {
                    if let Err(error) = event {
                        let error = with_causes(&error);
                        telemetry.watch_restarted("metrictemplates", &error);
                        tracing::warn!(%error, "the MetricTemplate watch failed; it restarts after a backoff");
                    }
                    futures::future::ready(())
                }
            });
        tokio::spawn(template_watch.in_current_span());
        template_stores.push(templates);
    }
    // Without a listing (the CRD missing, or no permission to list them) a warning about a
    // templateRef naming no MetricTemplate would be a guess: those warnings are left out.
    let listed = tokio::select! {
        listed = tokio::time::timeout(
            TEMPLATE_LISTING,
            futures::future::try_join_all(template_stores.iter().map(Store::wait_until_ready)),
        ) => listed,
        _ = stop.clone() => {
            tracing::info!("serin operator stopped");
            return;
        }
    };
    let templates = match listed {
        Ok(Ok(_)) => Some(template_stores),
        _ => {
            tracing::warn!(
                "MetricTemplates could not be listed within {TEMPLATE_LISTING:?}; templateRefs naming no MetricTemplate are not warned about"
            );
            None
        }
    };
    if let Some(address) = config.telemetry_address {
        tokio::spawn(telemetry::serve(address, telemetry.clone()));
    }
    let readiness = (stores.clone(), telemetry.clone());
    tokio::spawn(async move {
        // A store's readiness is a one-shot channel that wakes only its last waiter, and the
        // controller waits on it too: look again every second rather than wait once.
        loop {
            let all = futures::future::try_join_all(readiness.0.iter().map(Store::wait_until_ready));
            match tokio::time::timeout(Duration::from_secs(1), all).await {
                Ok(Ok(_)) => break readiness.1.set_ready(),
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
        }
    });
    let leadership = config
        .leader_election
        .as_ref()
        .map(|settings| Leadership::start(client.clone(), settings));
    if let Some(leadership) = &leadership {
        telemetry.set_leader(false);
        let (mut changes, roles) = (leadership.changes(), telemetry.clone());
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let leading = *changes.borrow_and_update();
                roles.set_leader(leading);
            }
        });
        let (mut problems, lease_problems) = (leadership.problems(), telemetry.clone());
        tokio::spawn(async move {
            while problems.changed().await.is_ok() {
                let problem = problems.borrow_and_update().clone();
                lease_problems.set_lease_problem(problem);
            }
        });
    }
    let alerting = Arc::new(Alerting::new(config.alerts.policy.clone(), telemetry.clone()));
    let config_tracking = config.config_tracking;
    let context = Context {
        reporter,
        client: client.clone(),
        config,
        http,
        metric_environment: serin_metrics::ProviderEnvironment::from_process(),
        templates,
        telemetry,
        alerting,
        repeats: Default::default(),
    };
    let shutdown_grace = context.config.shutdown_grace;
    let shared = Arc::new(Shared {
        context,
        failures: Mutex::default(),
        canaries: stores,
        leader: leadership.as_ref().map(Leadership::changes),
        in_flight: AtomicUsize::new(0),
    });
    let runs = controllers.into_iter().zip(&scopes).map(|(controller, scope)| {
        // Only metadata for the workloads and configs: a change of any of them re-checks the
        // Canaries concerned, which read what they use themselves. This keeps the caches small.
        let deployments: Api<PartialObjectMeta<Deployment>> = scoped(&client, scope);
        let daemon_sets: Api<PartialObjectMeta<DaemonSet>> = scoped(&client, scope);
        let store = controller.store();
        let (by_target, by_daemon_set, by_config_map, by_secret) = (store.clone(), store.clone(), store.clone(), store);
        let mut controller = controller
            .watches(deployments, watch_config(), move |deployment| {
                canaries_of(&by_target, &deployment)
            })
            .watches(daemon_sets, watch_config(), move |daemon_set| {
                canaries_of(&by_daemon_set, &daemon_set)
            });
        if config_tracking {
            let config_maps: Api<PartialObjectMeta<ConfigMap>> = scoped(&client, scope);
            let secrets: Api<PartialObjectMeta<Secret>> = scoped(&client, scope);
            controller = controller
                .watches(config_maps, watch_config(), move |c| {
                    canaries_in(&by_config_map, c.namespace())
                })
                .watches(secrets, watch_config(), move |s| canaries_in(&by_secret, s.namespace()));
        }
        if let Some(leadership) = &leadership {
            // A standby skipped every reconcile: once elected, it looks at every Canary.
            controller = controller.reconcile_all_on(elected(leadership.changes()));
        }
        let shared = shared.clone();
        controller
            .trigger_backoff(watch_backoff())
            .graceful_shutdown_on(stop.clone())
            .run(reconcile, error_policy, shared.clone())
            .for_each(move |result| {
                if let Err(error) = result {
                    if let kube::runtime::controller::Error::QueueError(error) = &error {
                        let error = with_causes(error);
                        shared.context.telemetry.watch_restarted("canaries", &error);
                        tracing::warn!(%error, "a watch of the controller failed; it restarts after a backoff");
                    } else {
                        tracing::debug!(%error, "reconcile did not complete");
                    }
                }
                futures::future::ready(())
            })
    });
    let running = futures::future::join_all(runs);
    // kube's controller ends its stream only once its watches do, which a failing API server
    // delays: stop as soon as no reconcile is in progress.
    tokio::select! {
        _ = running => {}
        _ = async { stop.await; settle(&shared.in_flight, shutdown_grace).await } => {}
    }
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    tracing::info!("serin operator stopped");
}

/// Waits until no reconcile is in progress, for at most `grace`.
async fn settle(in_flight: &AtomicUsize, grace: Duration) {
    let started = tokio::time::Instant::now();
    while in_flight.load(Ordering::SeqCst) > 0 {
        if started.elapsed() >= grace {
            tracing::warn!("the reconciles in progress did not finish within {grace:?}; stopping anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How every watch lists: the most recent state (a consistent read). A list served from the
/// API server's cache (`resourceVersion=0`) can be older than what a freshly restarted API server
/// lets a watch resume from, and the watch then fails with "too old resource version" at every
/// retry, so a restarted API server would leave serin blind (test `a_rollout_survives_an_api_server_restart`).
fn watch_config() -> watcher::Config {
    watcher::Config::default()
}

/// Pauses between attempts of a failing watch: from 250 ms, doubling, at most 5 s, reset after
/// 30 s without errors. kube's default (up to 30 s, reset after 2 min) is shared by all the
/// controller's watches, so after an API server restart, when each watch fails a few times (the
/// connection refused, then "too old resource version" until the new cache is ready), it grew
/// to 30 s and left serin blind for about a minute.
fn watch_backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    ResetTimerBackoff::new(
        ExponentialBackoff::from(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(5))
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
        ),
        Duration::from_secs(30),
    )
}

/// Resolves once the process is asked to stop (SIGTERM or Ctrl-C); cloned wherever it matters.
fn stop_signal() -> SharedFuture<BoxFuture<'static, ()>> {
    async {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut terminate) => {
                    terminate.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "SIGTERM cannot be caught; only Ctrl-C stops gracefully");
                    futures::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("asked to stop: finishing the reconciles in progress");
    }
    .boxed()
    .shared()
}

/// One item each time this replica is elected leader.
fn elected(changes: watch::Receiver<bool>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(changes, |mut changes| async move {
        loop {
            changes.changed().await.ok()?;
            if *changes.borrow_and_update() {
                return Some(((), changes));
            }
        }
    })
}

fn canaries_in(store: &Store<Canary>, namespace: Option<String>) -> Vec<ObjectRef<Canary>> {
    store
        .state()
        .iter()
        .filter(|canary| canary.namespace() == namespace)
        .map(|canary| ObjectRef::from_obj(canary.as_ref()))
        .collect()
}

/// An Api over `K` in one namespace, or in all namespaces.
fn scoped<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// The Canaries that target a workload (Deployment or DaemonSet) or own it as their primary.
fn canaries_of<K: ResourceExt>(store: &Store<Canary>, workload: &K) -> Vec<ObjectRef<Canary>> {
    let namespace = workload.namespace();
    let name = workload.name_any();
    store
        .state()
        .iter()
        .filter(|canary| canary.namespace() == namespace)
        .filter(|canary| {
            let target = &canary.spec.target_ref.name;
            *target == name || primary_name(target) == name
        })
        .map(|canary| ObjectRef::from_obj(canary.as_ref()))
        .collect()
}

/// The context, and the retry bookkeeping only the controller's error policy uses.
struct Shared {
    context: Context,
    /// Consecutive failed reconciles per Canary, for the retry backoff; forgotten at the first
    /// success and when the Canary is gone.
    failures: Mutex<HashMap<ObjectRef<Canary>, u32>>,
    /// The Canaries of each watched scope.
    canaries: Vec<Store<Canary>>,
    /// Under leader election, whether this replica holds the Lease; `None`: it always acts.
    leader: Option<watch::Receiver<bool>>,
    /// Reconciles in progress, for the shutdown to wait for.
    in_flight: AtomicUsize,
}

/// Counts a reconcile in progress for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn reconcile(cached: Arc<Canary>, shared: Arc<Shared>) -> Result<Action, Error> {
    if let Some(leader) = &shared.leader
        && !*leader.borrow()
    {
        // A standby writes nothing; when elected it reconciles every Canary (`elected`).
        return Ok(Action::await_change());
    }
    let _in_flight = InFlight::enter(&shared.in_flight);
    let key = ObjectRef::from_obj(cached.as_ref());
    let context = &shared.context;
    let span = tracing::info_span!("canary", canary = %format!("{}/{}", cached.namespace().unwrap_or_default(), cached.name_any()));
    // Each stage reads the Canary afresh once it has observed the workloads (observe::reread).
    let started = std::time::Instant::now();
    let result = reconcile_canary(&cached, context).instrument(span).await;
    let reason = result.as_ref().err().map(Error::reason);
    context.telemetry.reconciled(reason, started.elapsed());
    let result = match result {
        // Someone changed the Canary between our read and our status write: decide again on
        // what it is now. Every action taken so far is idempotent.
        Err(Error::Kube(kube::Error::Api(response))) if response.code == 409 => {
            tracing::debug!("the Canary changed while it was reconciled; looking again");
            Ok(Action::requeue(Duration::ZERO))
        }
        other => other,
    };
    if result.is_ok()
        && let Ok(mut failures) = shared.failures.lock()
    {
        failures.remove(&key);
    }
    result
}

async fn reconcile_canary(canary: &Canary, context: &Context) -> Result<Action, Error> {
    let status = canary.status.clone().unwrap_or_default();
    let deleting = canary.metadata.deletion_timestamp.is_some();
    let stage = lifecycle::stage(deleting, finalize::has_finalizer(canary), &status);
    let result = match stage {
        Stage::Gone => return Ok(Action::await_change()),
        Stage::Revert => finalize::revert(canary, context).await,
        Stage::Initialize | Stage::Analyse => {
            if finalize::sync_finalizer(canary, context).await? {
                return Ok(Action::await_change());
            }
            if report::spec_warnings(context, canary).await? {
                return Ok(Action::requeue(Duration::ZERO));
            }
            if context.config.alerts.no_cross_namespace_refs
                && let Some(message) =
                    serin_core::alerts::cross_namespace_ref(&canary.spec, &canary.namespace().unwrap_or_default())
            {
                let outcome = lifecycle::problem(&status, "CrossNamespaceRef", &message, Timestamp::now());
                return interpret::record(context, canary, &outcome).await;
            }
            match stage {
                Stage::Initialize => initialize::run(canary, context).await,
                _ => {
                    let started = std::time::Instant::now();
                    let result = analyse::run(canary, context).await;
                    context.telemetry.analysed(canary, started.elapsed());
                    result
                }
            }
        }
    };
    match result {
        Err(error) if error.is_user_error() => {
            let outcome = lifecycle::problem(&status, error.reason(), &error.user_message(), Timestamp::now());
            interpret::record(context, canary, &outcome).await
        }
        other => other,
    }
}

/// Retries a failed reconcile after 1 s, doubling per consecutive failure up to 5 min, so a
/// transient API error is retried at once and a persistent one does not hammer the API server.
fn error_policy(canary: Arc<Canary>, error: &Error, shared: Arc<Shared>) -> Action {
    let key = ObjectRef::from_obj(canary.as_ref());
    let failures = shared
        .failures
        .lock()
        .map(|mut failures| {
            // Entries of Canaries that are gone are dropped here, where the map grows.
            failures.retain(|known, _| *known == key || shared.canaries.iter().any(|s| s.get(known).is_some()));
            let count = failures.entry(key.clone()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        })
        .unwrap_or(1);
    let delay = RETRY_FIRST
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(RETRY_MAX);
    tracing::warn!(
        canary = %format!("{}/{}", canary.namespace().unwrap_or_default(), canary.name_any()),
        reason = error.reason(),
        %error,
        "reconcile failed; retrying in {delay:?}"
    );
    Action::requeue(delay)
}
