//! Leader election on a Lease (`-enable-leader-election`): every replica watches and keeps its
//! caches warm, only the holder of the Lease reconciles. The Lease is renewed before it expires;
//! a replica that dies stops renewing and a standby takes over once the Lease expires; a replica
//! that stops (SIGTERM) releases it once its reconciles have finished, and a standby (which
//! reads the Lease every second) takes over at once. kube-lease-manager does the locking
//! (server-side apply with conflict detection).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::with_causes;

/// What `-enable-leader-election` and its companions say.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// `-leader-election-namespace`.
    pub namespace: String,
    pub lease_name: String,
    /// Unique per replica: the pod name (or host name) and the process id.
    pub identity: String,
    /// How long a Lease not renewed stays held (`-leader-election-lease-duration`).
    pub lease_duration: Duration,
}

impl LeaderElection {
    /// The Lease's name, as Flagger's is `flagger-leader-election`.
    pub const LEASE_NAME: &'static str = "serin-leader-election";
    /// Flagger's lease duration.
    pub const LEASE_DURATION: Duration = Duration::from_secs(60);
}

/// This replica's side of the election.
pub struct Leadership {
    leader: watch::Receiver<bool>,
    /// Why the Lease cannot be reached, while it cannot.
    problem: watch::Receiver<Option<String>>,
    release: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Pause after a failed attempt to reach the Lease.
const RETRY: Duration = Duration::from_secs(2);
/// How often a standby looks whether the leader released the Lease.
const STANDBY_POLL: Duration = Duration::from_secs(1);
/// How long releasing the Lease may take at shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

impl Leadership {
    /// Starts campaigning for the Lease in the background. Until the Lease can be read (the API
    /// server unreachable, the Lease API forbidden), this replica is a standby and says why.
    pub fn start(client: Client, settings: &LeaderElection) -> Leadership {
        let (sender, leader) = watch::channel(false);
        let (problem_sender, problem) = watch::channel(None);
        let (release, mut released) = oneshot::channel();
        let settings = settings.clone();
        let task = tokio::spawn(
            async move {
                let mut manager = tokio::select! {
                    manager = build(client.clone(), &settings, &problem_sender) => manager,
                    _ = &mut released => return,
                };
                let leases = Api::<Lease>::namespaced(client.clone(), &settings.namespace);
                tracing::info!(
                    identity = %settings.identity,
                    lease = %format!("{}/{}", settings.namespace, settings.lease_name),
                    "campaigning for leadership"
                );
                loop {
                    let standby = !*sender.borrow();
                    tokio::select! {
                        _ = &mut released => break,
                        // The lease manager waits for the holder's Lease to expire; a holder that
                        // stopped gracefully released it, so look, and take it over at once.
                        _ = holder_gone(&leases, &settings.lease_name), if standby => {
                            tokio::select! {
                                rebuilt = build(client.clone(), &settings, &problem_sender) => manager = rebuilt,
                                _ = &mut released => break,
                            }
                        }
                        changed = manager.changed() => match changed {
                            Ok(leading) => {
                                problem_sender.send_replace(None);
                                if leading {
                                    tracing::info!(identity = %settings.identity, "elected leader: reconciling");
                                } else {
                                    tracing::warn!(identity = %settings.identity, "lost the lease: standing by");
                                }
                                let _ = sender.send(leading);
                            }
                            Err(error) => {
                                problem_sender.send_replace(Some(lease_problem(&settings, &error)));
                                if *sender.borrow() {
                                    tracing::warn!(%error, "the lease could not be renewed: standing by");
                                    let _ = sender.send(false);
                                } else {
                                    tracing::warn!(%error, "the lease could not be read; retrying in {RETRY:?}");
                                }
                                tokio::time::sleep(RETRY).await;
                            }
                        },
                    }
                }
                let _ = sender.send(false);
                match tokio::time::timeout(RELEASE_TIMEOUT, manager.release()).await {
                    Ok(Ok(())) => tracing::info!("released the lease"),
                    Ok(Err(error)) => tracing::warn!(%error, "could not release the lease; it expires on its own"),
                    Err(_) => tracing::warn!("releasing the lease timed out; it expires on its own"),
                }
            }
            .in_current_span(),
        );
        Leadership {
            leader,
            problem,
            release: Some(release),
            task,
        }
    }

    /// Changes of leadership, for the controller to reconcile everything when elected.
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Why the Lease cannot be reached (the API server unreachable, the Lease API forbidden),
    /// while it cannot.
    pub fn problems(&self) -> watch::Receiver<Option<String>> {
        self.problem.clone()
    }

    /// Stops campaigning and releases the Lease if held (at shutdown, once reconciles are done).
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        let _ = tokio::time::timeout(RELEASE_TIMEOUT + RETRY, &mut self.task).await;
    }
}

/// Resolves once the Lease exists without a holder (released), looking every [`STANDBY_POLL`].
async fn holder_gone(leases: &Api<Lease>, name: &str) {
    loop {
        tokio::time::sleep(STANDBY_POLL).await;
        if let Ok(Some(lease)) = leases.get_opt(name).await
            && lease.spec.and_then(|s| s.holder_identity).is_none()
        {
            return;
        }
    }
}

/// What a standby says on `/readyz` when the Lease cannot be reached.
fn lease_problem(settings: &LeaderElection, error: &dyn std::error::Error) -> String {
    format!(
        "the Lease {}/{} cannot be reached: {}",
        settings.namespace,
        settings.lease_name,
        with_causes(error)
    )
}

async fn build(client: Client, settings: &LeaderElection, problem: &watch::Sender<Option<String>>) -> LeaseManager {
    let duration = settings.lease_duration.as_secs().max(2);
    // Renew a quarter of the duration before expiry (Flagger: 60 s lease, renewed within 15 s).
    let grace = (duration / 4).max(1);
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(duration)
            .with_grace(grace)
            .with_field_manager(format!("serin-{}", settings.identity))
            .build()
            .await;
        match built {
            Ok(manager) => return manager,
            Err(error) => {
                problem.send_replace(Some(lease_problem(settings, &error)));
                let error = with_causes(&error);
                tracing::warn!(%error, "the lease could not be set up; retrying in {RETRY:?}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
