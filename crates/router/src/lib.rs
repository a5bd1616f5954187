//! Traffic routers: one file per provider, each implementing [`Router`]. Adding a provider is
//! adding a file and a line in [`for_provider`].

mod appmesh;
mod custom_kind;
mod gatewayapi;
mod gloo;
mod istio;
mod kubernetes;
mod nginx;
mod smi;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use kube::Client;
use serin_api::canary::Provider;
use serin_api::{Canary, CanarySpec};
use serin_core::plan::{ObservedRoutes, Routes};
use serin_core::services::FLUX_ANNOTATIONS;

/// Failures of a router. Each has a short PascalCase reason used in Events and logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Canary has no namespace")]
    MissingNamespace,
    #[error("the Canary has no uid to own its objects with")]
    MissingUid,
    #[error("could not build a routing object: {0}")]
    Serialize(serde_json::Error),
    #[error(
        "the {kind} CRD ({crd}) is not installed in the cluster: install {provider}'s CRDs or choose another provider"
    )]
    MissingCrd {
        kind: String,
        crd: String,
        provider: &'static str,
    },
    #[error(
        "provider nginx routes through an Ingress: set spec.ingressRef to the Ingress whose backend is the apex Service"
    )]
    MissingIngressRef,
    #[error("spec.ingressRef names Ingress {name}, which does not exist: create it or fix spec.ingressRef")]
    IngressNotFound { name: String },
    #[error("Ingress {ingress} has no backend for the apex Service {service}: point one of its paths at {service}")]
    IngressBackendNotFound { ingress: String, service: String },
    #[error("spec.upstreamRef names Upstream {name}, which does not exist: create it or fix spec.upstreamRef")]
    UpstreamNotFound { name: String },
    #[error("provider {provider} is not supported: {why}; use {replacement}")]
    RetiredProvider {
        provider: &'static str,
        why: &'static str,
        replacement: &'static str,
    },
    #[error(
        "provider {0} is not supported by this serin version; use kubernetes, istio, linkerd, osm, smi:v1alpha1, smi:v1alpha2, smi:v1alpha3, nginx, gloo, appmesh:v1beta2, gatewayapi:v1 or gatewayapi:v1beta1"
    )]
    UnsupportedProvider(String),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApiError",
            Error::MissingNamespace => "MissingNamespace",
            Error::MissingUid => "MissingUid",
            Error::Serialize(_) => "InvalidObject",
            Error::UnsupportedProvider(_) | Error::RetiredProvider { .. } => "UnsupportedProvider",
            Error::MissingCrd { .. } => "MissingCrd",
            Error::MissingIngressRef => "MissingIngressRef",
            Error::IngressNotFound { .. } => "IngressNotFound",
            Error::IngressBackendNotFound { .. } => "IngressBackendNotFound",
            Error::UpstreamNotFound { .. } => "UpstreamNotFound",
        }
    }

    /// Whether the user must fix their manifests (reported in the status and an Event) rather
    /// than the cluster failing to answer.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedProvider(_)
                | Error::RetiredProvider { .. }
                | Error::MissingCrd { .. }
                | Error::MissingIngressRef
                | Error::IngressNotFound { .. }
                | Error::IngressBackendNotFound { .. }
                | Error::UpstreamNotFound { .. }
        )
    }
}

/// What the operator's flags say about routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `-ingress-annotations-prefix`: the NGINX canary annotations' prefix.
    pub ingress_annotations_prefix: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ingress_annotations_prefix: "nginx.ingress.kubernetes.io".into(),
        }
    }
}

pub trait Router: Send + Sync {
    /// Whether the router can split traffic by weight; one that cannot runs blue/green only.
    fn shifts_weights(&self) -> bool;

    /// Sends traffic between the primary and the canary as `routes` says, creating the
    /// provider's routing objects if needed. Idempotent.
    fn set_routes<'a>(&'a self, canary: &'a Canary, routes: &'a Routes) -> BoxFuture<'a, Result<(), Error>>;

    /// The weights the provider's routing object holds in the cluster, and whether the
    /// provider accepted it; `None` when the router has no such object (or it does not exist yet).
    fn get_routes<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<Option<ObservedRoutes>, Error>>;

    /// Hands the provider's routing back to the apex Service when the Canary is deleted with
    /// `revertOnDeletion`: the routes then no longer belong to the Canary. Idempotent.
    fn revert<'a>(&'a self, canary: &'a Canary) -> BoxFuture<'a, Result<(), Error>>;

    /// The fields of `spec` this router does not act on; each gets a warning Event.
    fn ignored_fields(&self, spec: &CanarySpec) -> Vec<&'static str>;

    /// Whether the mesh must know the pods before they start (App Mesh injects its proxy into
    /// pods its VirtualNodes select): initialization then sets the routes before it creates the
    /// primary, as Flagger does.
    fn registers_pods(&self) -> bool {
        false
    }
}

/// Flagger's `filterMetadata` (pkg/router/util.go): `annotations` plus Flux's "do not reconcile"
/// annotations, so that Flux does not put back what serin changes.
fn with_flux_annotations(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut result = annotations.clone();
    result.extend(FLUX_ANNOTATIONS.map(|(key, value)| (key.to_string(), value.to_string())));
    result
}

/// `service.apex`'s labels, for a routing object named after the apex Service.
fn apex_labels(canary: &Canary) -> BTreeMap<String, String> {
    let apex = canary.spec.service.apex.as_ref();
    apex.and_then(|a| a.labels.clone()).unwrap_or_default()
}

/// `service.apex`'s annotations with Flux's, for a routing object named after the apex Service.
fn apex_annotations(canary: &Canary) -> BTreeMap<String, String> {
    let apex = canary.spec.service.apex.as_ref();
    with_flux_annotations(&apex.and_then(|a| a.annotations.clone()).unwrap_or_default())
}

/// The header matches of the Canary's `analysis.match`, in order.
fn match_headers(canary: &Canary) -> impl Iterator<Item = (&String, &serin_api::canary::HeaderMatch)> {
    let matches = canary.spec.analysis().and_then(|a| a.match_.as_ref());
    matches
        .into_iter()
        .flatten()
        .filter_map(|m| m.headers.as_ref())
        .flatten()
}

/// Whether the Canary's analysis is A/B testing (`match` with `iterations`, as
/// `serin_core::strategy` decides), whose matched requests a router sends to the canary while
/// the status says weight 0.
fn is_ab_testing(canary: &Canary) -> bool {
    canary
        .spec
        .analysis()
        .is_some_and(|a| a.iterations.unwrap_or(0) > 0 && a.match_.as_ref().is_some_and(|m| !m.is_empty()))
}

/// Flagger's `mergeMatchConditions`: every A/B match combined with every service match, the
/// service match with the A/B match's `keys` (headers and the like) put on it.
fn merge_matches_on(
    analysis: &[serde_json::Value],
    service: &[serde_json::Value],
    keys: &[&str],
) -> Vec<serde_json::Value> {
    analysis
        .iter()
        .flat_map(|a| {
            service.iter().map(move |s| {
                let mut merged = s.clone();
                for key in keys {
                    if let Some(value) = a.get(*key) {
                        merged[*key] = value.clone();
                    }
                }
                merged
            })
        })
        .collect()
}

/// The names of the fields among `fields` (name, whether set) that are set.
fn set_fields(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields.iter().filter(|(_, set)| *set).map(|(name, _)| *name).collect()
}

/// The Istio-style routing fields (and session affinity) that neither plain Services nor the
/// HTTPRoute carry, with whether `spec` sets them.
fn mesh_routing_fields(spec: &CanarySpec) -> Vec<(&'static str, bool)> {
    let service = &spec.service;
    vec![
        (
            "service.gateways",
            service.gateways.as_ref().is_some_and(|g| !g.is_empty()),
        ),
        ("service.match", service.match_.as_ref().is_some_and(|m| !m.is_empty())),
        ("service.rewrite", service.rewrite.is_some()),
        ("service.retries", service.retries.is_some()),
        ("service.timeout", service.timeout.is_some()),
        ("service.headers", service.headers.is_some()),
        ("service.corsPolicy", service.cors_policy.is_some()),
        ("service.trafficPolicy", service.traffic_policy.is_some()),
        ("service.mirror", service.mirror.as_ref().is_some_and(|m| !m.is_empty())),
        (
            "analysis.sessionAffinity",
            spec.analysis().is_some_and(|a| a.session_affinity.is_some()),
        ),
    ]
}

/// The fields a router without mesh routing (an ingress, a RouteTable) leaves alone, with
/// whether `spec` sets them: the mesh routing fields, hosts, gateway references, A/B matches on
/// query parameters or source labels, and mirroring.
fn ingress_routing_fields(spec: &CanarySpec) -> Vec<(&'static str, bool)> {
    let analysis = spec.analysis();
    let matches = analysis.and_then(|a| a.match_.as_ref());
    let mut fields = vec![
        (
            "service.hosts",
            spec.service.hosts.as_ref().is_some_and(|h| !h.is_empty()),
        ),
        (
            "service.gatewayRefs",
            spec.service.gateway_refs.as_ref().is_some_and(|g| !g.is_empty()),
        ),
        (
            "analysis.match.queryParams",
            matches.is_some_and(|m| m.iter().any(|m| m.query_params.is_some())),
        ),
        (
            "analysis.match.sourceLabels",
            matches.is_some_and(|m| m.iter().any(|m| m.source_labels.is_some())),
        ),
        ("analysis.mirror", analysis.is_some_and(|a| a.mirror == Some(true))),
    ];
    fields.extend(mesh_routing_fields(spec));
    fields
}

/// The router of `provider`; an error names a provider this version has no router for.
pub fn for_provider(provider: Provider, client: &Client, settings: &Settings) -> Result<Box<dyn Router>, Error> {
    match provider {
        Provider::Kubernetes => Ok(Box::new(kubernetes::KubernetesRouter)),
        Provider::GatewayApiV1 => Ok(Box::new(gatewayapi::GatewayApiRouter::new(client.clone(), "v1"))),
        Provider::GatewayApiV1beta1 => Ok(Box::new(gatewayapi::GatewayApiRouter::new(client.clone(), "v1beta1"))),
        Provider::Istio => Ok(Box::new(istio::IstioRouter::new(client.clone()))),
        Provider::Linkerd => Ok(Box::new(smi::SmiRouter::new(client.clone(), "v1alpha1", "linkerd-smi"))),
        Provider::SmiV1alpha1 => Ok(Box::new(smi::SmiRouter::new(client.clone(), "v1alpha1", "SMI"))),
        Provider::Osm => Ok(Box::new(smi::SmiRouter::new(
            client.clone(),
            "v1alpha2",
            "Open Service Mesh",
        ))),
        Provider::SmiV1alpha2 => Ok(Box::new(smi::SmiRouter::new(client.clone(), "v1alpha2", "SMI"))),
        Provider::SmiV1alpha3 => Ok(Box::new(smi::SmiRouter::new(client.clone(), "v1alpha3", "SMI"))),
        Provider::Gloo => Ok(Box::new(gloo::GlooRouter::new(client.clone()))),
        Provider::AppMeshV1beta2 => Ok(Box::new(appmesh::AppMeshRouter::new(client.clone()))),
        Provider::AppMesh => Err(Error::RetiredProvider {
            provider: "appmesh",
            why: "it writes App Mesh's v1beta1 API, served only by App Mesh controllers before v1.0, whose CRDs (apiextensions.k8s.io/v1beta1, non-structural) Kubernetes 1.22 and later cannot install",
            replacement: "appmesh:v1beta2 with App Mesh controller v1",
        }),
        Provider::Nginx => Ok(Box::new(nginx::NginxRouter::new(
            client.clone(),
            settings.ingress_annotations_prefix.clone(),
        ))),
        other => Err(Error::UnsupportedProvider(serin_api::wire_name(&other))),
    }
}
