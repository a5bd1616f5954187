//! Delivering serin-core's alerts: to the AlertProviders a Canary's `analysis.alerts` name (by
//! severity), or to the `-slack-url` / `-msteams-url` notifier when it names none, as Flagger's
//! `alert` (pkg/controller/events.go). Everything after the deduplication runs in the
//! background, one alert after the other so that they arrive in the order they were decided:
//! reading the AlertProvider and its Secret (at every alert, so a changed Secret is used
//! without a restart), building the payload, queueing it. A provider that cannot be used is
//! said once per revision in a Warning Event on the Canary, without its address or token.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serin_api::Canary;
use serin_api::alert_provider::{AlertProvider, AlertProviderType};
use serin_api::canary::AlertSeverity;
use serin_core::alerts::{Alert, details, reaches};
use serin_notify::{Dedup, Dispatcher, Endpoint, Message, Policy, Severity, notifier};

use crate::context::Context;

/// Canaries whose alert causes are remembered (see `serin_notify::Dedup`).
const REMEMBERED_CANARIES: usize = 20_000;

/// Alerts waiting for their providers to be read; more are dropped (and logged).
const WAITING_ALERTS: usize = 1_000;

/// The alert flags.
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    /// `-slack-url` or `-msteams-url` (and their proxy, user, channel and token flags).
    pub global: Option<GlobalNotifier>,
    /// `-cluster-name`: a `Cluster` field first in every message.
    pub cluster_name: Option<String>,
    /// `-no-cross-namespace-refs`: AlertProviders only from the Canary's namespace.
    pub no_cross_namespace_refs: bool,
    pub policy: Policy,
}

/// The notifier of Canaries without `analysis.alerts`.
#[derive(Debug, Clone)]
pub struct GlobalNotifier {
    pub kind: AlertProviderType,
    pub endpoint: Endpoint,
    pub proxy: Option<String>,
}

impl GlobalNotifier {
    /// The notifier the flags describe, or why it cannot be used (without the address).
    pub fn new(
        kind: AlertProviderType,
        endpoint: Endpoint,
        proxy: Option<String>,
    ) -> Result<GlobalNotifier, serin_notify::Error> {
        notifier(kind, &endpoint)?;
        if let Some(proxy) = &proxy {
            reqwest::Url::parse(proxy).map_err(|_| serin_notify::Error::InvalidProxy)?;
        }
        Ok(GlobalNotifier { kind, endpoint, proxy })
    }
}

/// What has been said already, and the queue of alerts to deliver.
pub struct Alerting {
    said: Said,
    waiting: mpsc::Sender<Delivery>,
}

impl Alerting {
    /// Starts the task that delivers alerts; must be called within a Tokio runtime.
    pub fn new(policy: Policy, observer: Arc<dyn serin_notify::DeliveryObserver>) -> Alerting {
        let said = Said(Arc::new(Mutex::new(Dedup::new(REMEMBERED_CANARIES))));
        let (waiting, mut deliveries) = mpsc::channel::<Delivery>(WAITING_ALERTS);
        let dispatcher = Dispatcher::new(policy, Some(observer));
        let resolver = (said.clone(), dispatcher);
        tokio::spawn(async move {
            while let Some(delivery) = deliveries.recv().await {
                delivery.run(&resolver.0, &resolver.1).await;
            }
        });
        Alerting { said, waiting }
    }
}

#[derive(Clone)]
struct Said(Arc<Mutex<Dedup>>);

impl Said {
    /// Whether `cause` is new for the Canary `key` at `revision`.
    fn first(&self, key: &str, revision: &str, cause: &str) -> bool {
        self.0
            .lock()
            .map(|mut said| said.first(key, revision, cause))
            .unwrap_or(true)
    }
}

/// Sends `alert` about `canary`, whose revision is `revision`, unless its cause was said for
/// that revision already. Returns at once.
pub fn send(context: &Context, canary: &Canary, revision: &str, alert: &Alert) {
    let namespace = canary.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", canary.name_any());
    if !context.alerting.said.first(&key, revision, &alert.cause) {
        return;
    }
    let settings = &context.config.alerts;
    let mut fields: Vec<(String, String)> = settings
        .cluster_name
        .iter()
        .map(|cluster| ("Cluster".to_string(), cluster.clone()))
        .collect();
    if alert.details {
        let shifts_weights = context
            .router_for(&canary.spec)
            .map(|router| router.shifts_weights())
            .unwrap_or(true);
        fields.extend(details(&canary.spec, &namespace, shifts_weights));
    }
    let message = Message {
        workload: canary.name_any(),
        namespace,
        text: alert.message.clone(),
        fields,
        severity: match alert.severity {
            AlertSeverity::Error => Severity::Error,
            AlertSeverity::Warn => Severity::Warn,
            AlertSeverity::Info | AlertSeverity::Unset => Severity::Info,
        },
    };
    let delivery = Delivery {
        client: context.client.clone(),
        reporter: context.reporter.clone(),
        settings: settings.clone(),
        canary: canary.clone(),
        revision: revision.to_string(),
        severity: alert.severity,
        message,
    };
    if context.alerting.waiting.try_send(delivery).is_err() {
        tracing::warn!(
            canary = key,
            "too many alerts are waiting to be delivered; this one was dropped"
        );
    }
}

struct Delivery {
    client: Client,
    reporter: Reporter,
    settings: AlertSettings,
    canary: Canary,
    revision: String,
    severity: AlertSeverity,
    message: Message,
}

/// An AlertProvider resolved for one message.
struct Resolved {
    kind: AlertProviderType,
    endpoint: Endpoint,
    proxy: Option<String>,
}

impl Delivery {
    async fn run(&self, said: &Said, dispatcher: &Dispatcher) {
        let subscriptions = self
            .canary
            .spec
            .analysis()
            .and_then(|a| a.alerts.clone())
            .unwrap_or_default();
        if subscriptions.is_empty() {
            if let Some(global) = &self.settings.global {
                let kind = serin_notify::kind_name(global.kind);
                let resolved = Resolved {
                    kind: global.kind,
                    endpoint: global.endpoint.clone(),
                    proxy: global.proxy.clone(),
                };
                if let Err(error) = self.queue(dispatcher, &format!("-{kind}-url"), &resolved) {
                    tracing::warn!(kind, "the global notifier cannot be used: {error}");
                }
            }
            return;
        }
        let own_namespace = self.message.namespace.clone();
        for subscription in subscriptions {
            if !reaches(subscription.severity.unwrap_or_default(), self.severity) {
                continue;
            }
            let reference = &subscription.provider_ref;
            let namespace = reference
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| own_namespace.clone());
            let destination = format!("AlertProvider {namespace}/{}", reference.name);
            if self.settings.no_cross_namespace_refs && namespace != own_namespace {
                // The Canary is held with a CrossNamespaceRef problem already.
                continue;
            }
            let result = match self.resolve(&namespace, &reference.name, &subscription.name).await {
                Ok(resolved) => self
                    .queue(dispatcher, &destination, &resolved)
                    .map_err(|e| e.to_string()),
                Err(problem) => Err(problem),
            };
            if let Err(problem) = result {
                self.report(said, &destination, &problem).await;
            }
        }
    }

    async fn resolve(&self, namespace: &str, name: &str, alert: &str) -> Result<Resolved, String> {
        let providers = Api::<AlertProvider>::namespaced(self.client.clone(), namespace);
        let provider = match providers.get_opt(name).await {
            Ok(Some(provider)) => provider,
            Ok(None) => {
                return Err(format!(
                    "alert {alert} names AlertProvider {namespace}/{name}, which does not exist: create it or fix providerRef"
                ));
            }
            Err(kube::Error::SerdeError(error)) => {
                return Err(format!(
                    "AlertProvider {namespace}/{name} cannot be read ({error}): its type must be one of slack, msteams, discord, rocket, gchat"
                ));
            }
            Err(error) => return Err(format!("AlertProvider {namespace}/{name} could not be read: {error}")),
        };
        let spec = provider.spec;
        let mut endpoint = Endpoint {
            address: spec.address.clone().unwrap_or_default(),
            token: None,
            // Flagger's defaults for an AlertProvider without them.
            username: spec.username.clone().unwrap_or_else(|| "flagger".to_string()),
            channel: Some(spec.channel.clone().unwrap_or_else(|| "general".to_string())),
        };
        let mut proxy = spec.proxy.clone();
        if let Some(secret_ref) = &spec.secret_ref {
            let secrets = Api::<Secret>::namespaced(self.client.clone(), namespace);
            let secret = match secrets.get_opt(&secret_ref.name).await {
                Ok(Some(secret)) => secret,
                Ok(None) => {
                    return Err(format!(
                        "AlertProvider {namespace}/{name}: its secretRef names Secret {namespace}/{}, which does not exist",
                        secret_ref.name
                    ));
                }
                Err(error) => {
                    return Err(format!(
                        "AlertProvider {namespace}/{name}: Secret {namespace}/{} could not be read: {error}",
                        secret_ref.name
                    ));
                }
            };
            let data = secret.data.unwrap_or_default();
            let text = |key: &str| {
                data.get(key)
                    .map(|bytes| String::from_utf8_lossy(&bytes.0).trim().to_string())
            };
            endpoint.address = text("address").ok_or_else(|| {
                format!(
                    "AlertProvider {namespace}/{name}: Secret {namespace}/{} has no address key; add the webhook address under address",
                    secret_ref.name
                )
            })?;
            endpoint.token = text("token");
            proxy = text("proxy").or(proxy);
        }
        Ok(Resolved {
            kind: spec.type_,
            endpoint,
            proxy,
        })
    }

    fn queue(
        &self,
        dispatcher: &Dispatcher,
        destination: &str,
        resolved: &Resolved,
    ) -> Result<(), serin_notify::Error> {
        let notifier = notifier(resolved.kind, &resolved.endpoint)?;
        dispatcher.send(
            destination,
            serin_notify::kind_name(resolved.kind),
            resolved.proxy.as_deref(),
            notifier.request(&self.message),
        )
    }

    /// Says once per revision, in a Warning Event on the Canary, why a provider was not used.
    async fn report(&self, said: &Said, destination: &str, problem: &str) {
        tracing::warn!(destination, "alert not sent: {problem}");
        let key = format!("{}/{}", self.message.namespace, self.message.workload);
        if !said.first(&key, &self.revision, &format!("{destination}: {problem}")) {
            return;
        }
        let event = Event {
            type_: EventType::Warning,
            reason: "AlertNotSent".to_string(),
            note: Some(problem.to_string()),
            action: "Alert".to_string(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(error) = recorder.publish(&event, &self.canary.object_ref(&())).await {
            tracing::warn!(%error, "could not publish event");
        }
    }
}
