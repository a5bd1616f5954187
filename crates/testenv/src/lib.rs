//! A real local Kubernetes control plane for serin's tests and demo: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok (as the kubelet of fake nodes), built from the
//! upstream Go modules by `hack/upstream/build.sh` and started as processes on 127.0.0.1.
//!
//! Set `SERIN_TESTENV=existing` to use the cluster of `KUBECONFIG` instead; namespaces the
//! tests create are then deleted by [`TestEnv::teardown`].

pub mod auth_proxy;
mod certs;
mod control_plane;
pub mod datadog;
mod error;
pub mod fixtures;
pub mod graphite;
pub mod influxdb;
pub mod prometheus;
mod reaper;
mod server;
pub mod traffic;
mod upstream;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::Deserialize;

pub use control_plane::{ControlPlane, INSTALL_NAMESPACE};
pub use error::Error;

/// Options for a new control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fake nodes that kwok runs pods on.
    pub nodes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { nodes: 2 }
    }
}

/// The CRDs in `crates/testenv/testdata/crds/`: SMI's TrafficSplit (minimal), Gloo's and App
/// Mesh's (published, unchanged).
const TESTDATA_CRDS: [&str; 7] = [
    "trafficsplits.split.smi-spec.io",
    "gateway.solo.io_v1_RouteTable",
    "gloo.solo.io_v1_Upstream",
    "appmesh.k8s.aws_virtualnodes",
    "appmesh.k8s.aws_virtualrouters",
    "appmesh.k8s.aws_virtualservices",
    "metrics.keptn.sh_minimal",
];

pub struct TestEnv {
    client: Client,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    control_plane: Option<ControlPlane>,
    namespaces: Mutex<Vec<String>>,
    counter: AtomicUsize,
}

impl TestEnv {
    /// Starts a local control plane, or attaches to `KUBECONFIG`'s cluster when `SERIN_TESTENV=existing`.
    pub async fn start(options: Options) -> Result<TestEnv, Error> {
        if std::env::var("SERIN_TESTENV").as_deref() == Ok("existing") {
            return Self::attach().await;
        }
        let binaries = upstream::binaries()?;
        let control_plane = ControlPlane::start(&binaries, options.nodes).await?;
        Ok(TestEnv {
            client: control_plane.client().clone(),
            kubeconfig: control_plane.kubeconfig().to_path_buf(),
            kubectl: binaries.join("kubectl"),
            control_plane: Some(control_plane),
            namespaces: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
        })
    }

    async fn attach() -> Result<TestEnv, Error> {
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .map(PathBuf::from)
            .ok_or(Error::MissingKubeconfig)?;
        let client = Client::try_default().await.map_err(Error::Kube)?;
        Ok(TestEnv {
            client,
            kubeconfig,
            kubectl: PathBuf::from("kubectl"),
            control_plane: None,
            namespaces: Mutex::new(Vec::new()),
            counter: AtomicUsize::new(0),
        })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The local control plane, when this environment started one.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        self.control_plane.as_ref()
    }

    pub fn control_plane_mut(&mut self) -> Option<&mut ControlPlane> {
        self.control_plane.as_mut()
    }

    /// The kubectl built with the control plane (or the one on PATH for an existing cluster).
    pub fn kubectl(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.kubectl);
        command.env("KUBECONFIG", &self.kubeconfig).kill_on_drop(true);
        command
    }

    /// A fresh namespace named `<prefix>-<n>`, deleted on teardown when attached to an existing cluster.
    pub async fn namespace(&self, prefix: &str) -> Result<String, Error> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(Error::Kube)?;
        if let Ok(mut namespaces) = self.namespaces.lock() {
            namespaces.push(name.clone());
        }
        Ok(name)
    }

    /// Installs serin's CRDs and waits until the API server serves them.
    pub async fn install_crds(&self) -> Result<(), Error> {
        apply_crds(&self.client(), serin_api::crd::all()).await
    }

    /// Installs the upstream CRDs `hack/upstream/build.sh` fetched under `crds/<set>/`
    /// (e.g. `gateway-api`) and waits until the API server serves them.
    pub async fn install_upstream_crds(&self, set: &str) -> Result<(), Error> {
        let dir = upstream::binaries()?.join("crds").join(set);
        let files = std::fs::read_dir(&dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?;
        self.install_crd_files(&files).await
    }

    /// Installs the routing CRDs of every traffic provider serin's tests exercise: the Gateway
    /// API's and Istio's from the upstream cache, and the ones kept in
    /// `crates/testenv/testdata/crds/` (each file says where it comes from and why it is there).
    pub async fn install_provider_crds(&self) -> Result<(), Error> {
        self.install_upstream_crds("gateway-api").await?;
        self.install_upstream_crds("istio").await?;
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/crds"));
        let files = TESTDATA_CRDS.map(|name| dir.join(format!("{name}.yaml")));
        self.install_crd_files(&files).await
    }

    /// Installs Flagger's own CRDs (its `artifacts/flagger/crd.yaml`), as a cluster that ran
    /// Flagger has them.
    pub async fn install_flagger_crds(&self) -> Result<(), Error> {
        self.install_crd_files(&[upstream::flagger()?.join("crd.yaml")]).await
    }

    async fn install_crd_files(&self, files: &[PathBuf]) -> Result<(), Error> {
        let mut crds = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(path)?;
            for document in serde_norway::Deserializer::from_str(&text) {
                let value = serde_norway::Value::deserialize(document)
                    .map_err(|e| Error::Manifest(format!("{}: {e}", path.display())))?;
                if value.is_null() {
                    continue;
                }
                let crd: CustomResourceDefinition =
                    serde_norway::from_value(value).map_err(|e| Error::Manifest(format!("{}: {e}", path.display())))?;
                crds.push(crd);
            }
        }
        apply_crds(&self.client(), crds).await
    }

    /// Deletes the namespaces the tests created (on an existing cluster) and stops every process.
    pub async fn teardown(self) {
        if self.control_plane.is_none() {
            let namespaces: Vec<String> = self.namespaces.lock().map(|n| n.clone()).unwrap_or_default();
            let api = Api::<Namespace>::all(self.client.clone());
            for name in namespaces {
                if let Err(error) = api.delete(&name, &DeleteParams::background()).await {
                    tracing::warn!(namespace = %name, %error, "could not delete test namespace");
                }
            }
        }
        drop(self.control_plane);
    }
}

/// Applies CRDs with server-side apply and waits until each is Established.
pub async fn apply_crds(client: &Client, crds: Vec<CustomResourceDefinition>) -> Result<(), Error> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply("serin").force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(Error::Kube)?;
        wait_for(
            Duration::from_secs(30),
            &format!("CRD {name} to be established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let established = crd
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    established.then_some(())
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// reqwest may be built without a crypto provider (serin-operator does so); use ring, as kube does.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The path of an upstream program built for the tests (`kubectl`, `etcd`, ...), building the
/// set on first use.
pub fn upstream_binary(name: &str) -> Result<PathBuf, Error> {
    Ok(upstream::binaries()?.join(name))
}

/// The directory of the `flagger` binary and its `crd.yaml` (built by `hack/upstream/flagger.sh`).
pub fn upstream_flagger() -> Result<PathBuf, Error> {
    upstream::flagger()
}

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Serves `app` on a free loopback port until the runtime ends; its base URL.
pub async fn serve_on_loopback(app: axum::Router) -> Result<String, Error> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "a loopback server stopped");
        }
    });
    Ok(url)
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
