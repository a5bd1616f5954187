//! What one operator did in one scenario, normalized so that the two operators' runs can be
//! compared: the status steps seen by a watch (every write, not samples), the HTTPRoute weights
//! seen by a watch, the webhook calls in order, and the objects left at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use serin_api::Canary;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::sides::Side;

/// One status step: phase, canaryWeight, iterations, failedChecks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub phase: String,
    pub weight: i32,
    pub iterations: i32,
    pub failed_checks: i32,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} w{} i{} f{}",
            self.phase, self.weight, self.iterations, self.failed_checks
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    pub steps: Vec<Step>,
    /// `type(phase)` of each webhook call, in order.
    pub hooks: Vec<String>,
    /// Each webhook type with the fields of its payloads and the Canary they name
    /// (`type: name.namespace checksum {fields}`).
    pub payloads: std::collections::BTreeSet<String>,
    /// The HTTPRoute's rules, the VirtualService's HTTP routes, the canary Ingress's
    /// ingress-nginx annotations and rules, the TrafficSplit's spec, the RouteTable's or the apex
    /// VirtualRouter's routes, each change once.
    pub routes: Vec<Value>,
    /// `lastAppliedSpec lastPromotedSpec trackedConfigs` of the status, each change once: the
    /// hashes are the same on both sides, so that each operator can take over the other's.
    pub revisions: Vec<String>,
    /// The primary's container (image, envFrom).
    pub primary_container: Option<Value>,
    /// Each Service's selector.
    pub selectors: BTreeMap<String, BTreeMap<String, String>>,
    /// Each Deployment's replicas at the end.
    pub deployments: BTreeMap<String, i32>,
    /// The ConfigMaps and Secrets at the end (`ConfigMap/<name>`, `Secret/<name>`).
    pub configs: Vec<String>,
    /// Each HorizontalPodAutoscaler's target at the end.
    pub autoscalers: BTreeMap<String, String>,
    /// `reason: message` of the Events about the Canary (reported, not compared).
    pub events: Vec<String>,
}

pub fn http_routes(side: &Side, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(
        side.env.client(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    )
}

/// The routing objects a scenario may have, named after the Canary, and what of each is
/// compared: (group, version, kind, plural, view). The TrafficSplit is read as v1alpha2 whichever
/// version wrote it (the test CRD converts none, so each version's weights show as written).
type RoutingObject = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    fn(&DynamicObject) -> Option<Value>,
);
const ROUTING_OBJECTS: [RoutingObject; 5] = [
    ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", |o| {
        Some(o.data["spec"]["rules"].clone())
    }),
    (
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
        |o| Some(o.data["spec"]["http"].clone()),
    ),
    ("split.smi-spec.io", "v1alpha2", "TrafficSplit", "trafficsplits", |o| {
        Some(o.data["spec"].clone())
    }),
    ("gateway.solo.io", "v1", "RouteTable", "routetables", |o| {
        Some(o.data["spec"]["routes"].clone())
    }),
    ("appmesh.k8s.aws", "v1beta2", "VirtualRouter", "virtualrouters", |o| {
        Some(o.data["spec"]["routes"].clone())
    }),
];

/// Watches the Canary and its routing object from before the scenario starts until it is dropped.
pub struct Recorder {
    steps: Arc<Mutex<Vec<Step>>>,
    routes: Arc<Mutex<Vec<Value>>>,
    revisions: Arc<Mutex<Vec<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Recorder {
    /// Starts the watches and waits until each has listed what exists, so no write after this
    /// returns is missed.
    pub async fn start(side: &Side, namespace: &str, name: &str) -> Result<Recorder, String> {
        let steps: Arc<Mutex<Vec<Step>>> = Arc::default();
        let routes: Arc<Mutex<Vec<Value>>> = Arc::default();
        let revisions: Arc<Mutex<Vec<String>>> = Arc::default();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let canaries = Api::<Canary>::namespaced(side.env.client(), namespace);
        let (canary_ready, canary_listed) = oneshot::channel();
        let (revisions_ready, revisions_listed) = oneshot::channel();
        let revision_task = tokio::spawn(record(
            canaries.clone(),
            config.clone(),
            revisions_ready,
            revisions.clone(),
            |canary: &Canary| {
                let status = canary.status.as_ref()?;
                let hash = |h: &Option<String>| h.clone().unwrap_or_else(|| "-".into());
                Some(format!(
                    "{} {} {:?}",
                    hash(&status.last_applied_spec),
                    hash(&status.last_promoted_spec),
                    status.tracked_configs.clone().unwrap_or_default()
                ))
            },
        ));
        let canary_task = tokio::spawn(record(
            canaries,
            config.clone(),
            canary_ready,
            steps.clone(),
            |canary: &Canary| {
                let status = canary.status.clone()?;
                Some(Step {
                    phase: serin_api::wire_name(&status.phase?),
                    weight: status.canary_weight.unwrap_or(0),
                    iterations: status.iterations.unwrap_or(0),
                    failed_checks: status.failed_checks.unwrap_or(0),
                })
            },
        ));
        let mut tasks = vec![canary_task, revision_task];
        let mut listings = vec![canary_listed, revisions_listed];
        // A scenario has one kind of routing object: every routing watch writes into `routes`.
        for (group, version, kind, plural, view) in ROUTING_OBJECTS {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let api = Api::<DynamicObject>::namespaced_with(
                side.env.client(),
                namespace,
                &ApiResource::from_gvk_with_plural(&gvk, plural),
            );
            let (ready, listed) = oneshot::channel();
            tasks.push(tokio::spawn(record(api, config.clone(), ready, routes.clone(), view)));
            listings.push(listed);
        }
        // NGINX's canary Ingress: ingress-nginx's annotations and the rules.
        let (ingress_ready, ingress_listed) = oneshot::channel();
        tasks.push(tokio::spawn(record(
            Api::<Ingress>::namespaced(side.env.client(), namespace),
            watcher::Config::default().fields(&format!("metadata.name={name}-canary")),
            ingress_ready,
            routes.clone(),
            |ingress: &Ingress| {
                let annotations: BTreeMap<&String, &String> = ingress
                    .metadata
                    .annotations
                    .iter()
                    .flatten()
                    .filter(|(key, _)| key.starts_with("nginx.ingress.kubernetes.io/"))
                    .collect();
                let rules = ingress.spec.as_ref().map(|s| s.rules.clone());
                Some(serde_json::json!({ "annotations": annotations, "rules": rules }))
            },
        )));
        listings.push(ingress_listed);
        let recorder = Recorder {
            steps,
            routes,
            revisions,
            tasks,
        };
        let listed = futures::future::try_join_all(listings);
        match tokio::time::timeout(std::time::Duration::from_secs(30), listed).await {
            Ok(Ok(_)) => Ok(recorder),
            _ => Err(format!(
                "{}: the watches of {namespace}/{name} did not start",
                side.operator
            )),
        }
    }

    pub fn steps(&self) -> Vec<Step> {
        self.steps.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The trace so far, with the objects as they are now.
    pub async fn finish(&self, side: &Side, namespace: &str, name: &str) -> Trace {
        let client = side.env.client();
        let deployments: Vec<Deployment> = list(&client, namespace).await;
        let primary_container = deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(&format!("{name}-primary")))
            .and_then(|d| d.spec.as_ref()?.template.spec.as_ref()?.containers.first().cloned())
            .map(|c| serde_json::json!({ "image": c.image, "envFrom": c.env_from }));
        let deployments = deployments
            .into_iter()
            .filter_map(|d| Some((d.metadata.name?, d.spec?.replicas.unwrap_or(1))))
            .collect();
        let config_maps: Vec<ConfigMap> = list(&client, namespace).await;
        let secrets: Vec<Secret> = list(&client, namespace).await;
        let configs = config_maps
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .filter(|name| name != "kube-root-ca.crt")
            .map(|name| format!("ConfigMap/{name}"))
            .chain(
                secrets
                    .into_iter()
                    .filter_map(|s| s.metadata.name)
                    .map(|name| format!("Secret/{name}")),
            )
            .collect();
        let autoscalers = list::<HorizontalPodAutoscaler>(&client, namespace)
            .await
            .into_iter()
            .filter_map(|h| Some((h.metadata.name?, h.spec.scale_target_ref.name)))
            .collect();
        let selectors = list::<Service>(&client, namespace)
            .await
            .into_iter()
            .filter_map(|s| Some((s.metadata.name?, s.spec?.selector.unwrap_or_default())))
            .collect();
        let events = Api::<Event>::namespaced(client, namespace)
            .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
            .await
            .map(|list| {
                let mut events = list.items;
                events.sort_by_key(|e| e.metadata.creation_timestamp.clone());
                events
                    .into_iter()
                    .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let calls = side.hooks.calls_to(&format!("/{namespace}/"));
        let kind = |path: &str| path.rsplit('/').next().unwrap_or_default().to_string();
        let hooks = calls
            .iter()
            .map(|call| format!("{}({})", kind(&call.path), call.body["phase"].as_str().unwrap_or("?")))
            .collect();
        let payloads = calls
            .iter()
            .map(|call| {
                let fields: Vec<&String> = call.body.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                format!(
                    "{}: {}.{} {} {fields:?}",
                    kind(&call.path),
                    call.body["name"].as_str().unwrap_or("?"),
                    call.body["namespace"].as_str().unwrap_or("?"),
                    call.body["checksum"].as_str().unwrap_or("?")
                )
            })
            .collect();
        Trace {
            steps: self.steps(),
            hooks,
            payloads,
            routes: self.routes.lock().map(|r| r.clone()).unwrap_or_default(),
            revisions: self.revisions.lock().map(|r| r.clone()).unwrap_or_default(),
            primary_container,
            selectors,
            deployments,
            configs,
            autoscalers,
            events,
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Appends `view(object)` to `seen` each time it changes, for every version the watch delivers;
/// says when the first listing is done on `listed`.
async fn record<K, T>(
    api: Api<K>,
    config: watcher::Config,
    listed: oneshot::Sender<()>,
    seen: Arc<Mutex<Vec<T>>>,
    view: fn(&K) -> Option<T>,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug + Send + 'static,
    T: PartialEq,
{
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut listed = Some(listed);
    while let Some(event) = stream.next().await {
        let object = match event {
            Ok(watcher::Event::InitDone) => {
                if let Some(listed) = listed.take() {
                    let _ = listed.send(());
                }
                continue;
            }
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => object,
            _ => continue,
        };
        let Some(value) = view(&object) else {
            continue;
        };
        if let Ok(mut seen) = seen.lock()
            && seen.last() != Some(&value)
        {
            seen.push(value);
        }
    }
}

/// The objects of kind `K` in `namespace` (none when the list fails: the comparison shows it).
async fn list<K>(client: &kube::Client, namespace: &str) -> Vec<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .unwrap_or_default()
}
