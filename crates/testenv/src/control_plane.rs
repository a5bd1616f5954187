//! Starting and stopping the upstream processes that make up the local control plane.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tempfile::TempDir;

use crate::certs::{OPERATOR_USER, Pki};
use crate::prometheus::ScrapeTarget;
use crate::reaper;
use crate::{Error, free_port, wait_for};

const NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The running processes; dropping it stops them all and removes their data directory
/// (kept when `SERIN_TESTENV_KEEP` is set, for debugging).
pub struct ControlPlane {
    processes: Vec<Process>,
    api_port: u16,
    client: Client,
    kubeconfig: PathBuf,
    dir: Option<TempDir>,
}

struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// How it was started, to start it again.
    program: PathBuf,
    args: Vec<String>,
}

impl ControlPlane {
    pub async fn start(binaries: &Path, nodes: usize) -> Result<ControlPlane, Error> {
        reaper::reap_orphans();
        let dir = tempfile::Builder::new().prefix(reaper::DIR_PREFIX).tempdir()?;
        let root = dir.path().to_path_buf();
        reaper::record_owner(&root)?;
        Pki::generate()?.write(&root)?;
        let (etcd_port, etcd_peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let kubeconfig = root.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&root, api_port, "admin"))?;
        std::fs::write(
            root.join(OPERATOR_KUBECONFIG),
            kubeconfig_yaml(&root, api_port, OPERATOR_USER),
        )?;
        std::fs::write(root.join("audit-policy.yaml"), AUDIT_POLICY)?;
        let client = client_for(&kubeconfig).await?;
        let mut plane = ControlPlane {
            processes: Vec::new(),
            api_port,
            client,
            kubeconfig: kubeconfig.clone(),
            dir: Some(dir),
        };

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        plane.spawn(
            binaries,
            "etcd",
            &[
                "--name=default".into(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
        )?;
        plane
            .wait_until("etcd to accept connections", || async move {
                TcpStream::connect(("127.0.0.1", etcd_port)).ok().map(|_| ())
            })
            .await?;

        let file = |name: &str| root.join(name).display().to_string();
        plane.spawn(
            binaries,
            "kube-apiserver",
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", file("apiserver-certs")),
                format!("--tls-cert-file={}", file("apiserver.crt")),
                format!("--tls-private-key-file={}", file("apiserver.key")),
                format!("--client-ca-file={}", file("ca.crt")),
                format!("--service-account-key-file={}", file("service-account.pub")),
                format!("--service-account-signing-key-file={}", file("service-account.key")),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                "--authorization-mode=RBAC".into(),
                "--endpoint-reconciler-type=none".into(),
                "--allow-privileged=true".into(),
                "--profiling=false".into(),
                format!("--audit-policy-file={}", file("audit-policy.yaml")),
                format!("--audit-log-path={}", file(AUDIT_LOG)),
                // Never rotated (the default rotates at 100 MB, which 1,000 polled Canaries reach
                // in minutes), so that counting its lines counts every request.
                "--audit-log-maxsize=1000000".into(),
            ],
        )?;
        let client = plane.client.clone();
        plane
            .wait_until("kube-apiserver to serve requests", || {
                let api = Api::<Namespace>::all(client.clone());
                async move { api.get("default").await.ok().map(|_| ()) }
            })
            .await?;

        let kubeconfig_flag = format!("--kubeconfig={}", kubeconfig.display());
        plane.spawn(
            binaries,
            "kube-controller-manager",
            &[
                kubeconfig_flag.clone(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                format!("--service-account-private-key-file={}", file("service-account.key")),
                format!("--root-ca-file={}", file("ca.crt")),
                "--controllers=*".into(),
                // The defaults (20 requests/s) make a thousand Deployments take minutes to roll out.
                "--kube-api-qps=200".into(),
                "--kube-api-burst=400".into(),
            ],
        )?;
        plane.spawn(
            binaries,
            "kube-scheduler",
            &[
                kubeconfig_flag.clone(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--kube-api-qps=200".into(),
                "--kube-api-burst=400".into(),
            ],
        )?;
        plane.spawn(
            binaries,
            "kwok",
            &[
                kubeconfig_flag,
                "--manage-all-nodes=false".into(),
                format!(
                    "--manage-nodes-with-annotation-selector={}={}",
                    NODE_ANNOTATION.0, NODE_ANNOTATION.1
                ),
                "--cidr=10.244.0.0/16".into(),
                "--node-ip=10.1.0.1".into(),
                format!("--config={}", kwok_stages(binaries)?),
            ],
        )?;
        plane.add_nodes(nodes).await?;
        Ok(plane)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig for an operator under test: its requests are the ones [`Self::operator_requests`]
    /// counts.
    pub fn operator_kubeconfig(&self) -> PathBuf {
        self.kubeconfig.with_file_name(OPERATOR_KUBECONFIG)
    }

    /// Every request made with [`Self::operator_kubeconfig`] so far, as the API server's audit
    /// log recorded it (one JSON object per request: verb, objectRef, requestReceivedTimestamp…).
    /// A last line still being written is left out.
    pub fn operator_requests(&self) -> Result<Vec<serde_json::Value>, Error> {
        Ok(self
            .audit_log()?
            .into_iter()
            .filter(|entry| entry["user"]["username"] == "operator")
            .collect())
    }

    /// Every request of a service account of [`INSTALL_NAMESPACE`] so far, with its answer
    /// (`responseStatus.code`), as the audit log recorded it.
    pub fn install_requests(&self) -> Result<Vec<serde_json::Value>, Error> {
        let prefix = format!("system:serviceaccount:{INSTALL_NAMESPACE}:");
        Ok(self
            .audit_log()?
            .into_iter()
            .filter(|entry| {
                entry["user"]["username"]
                    .as_str()
                    .is_some_and(|u| u.starts_with(&prefix))
            })
            .collect())
    }

    /// The audit log's entries; a last line still being written is left out.
    fn audit_log(&self) -> Result<Vec<serde_json::Value>, Error> {
        let log = std::fs::read_to_string(self.kubeconfig.with_file_name(AUDIT_LOG)).unwrap_or_default();
        let complete = log.rfind('\n').map_or("", |end| &log[..end]);
        complete
            .lines()
            .map(|line| serde_json::from_str(line).map_err(|e| Error::Manifest(format!("audit log line: {e}"))))
            .collect()
    }

    /// The API server's `/metrics`, scraped with the admin client certificate.
    pub fn apiserver_scrape_target(&self) -> ScrapeTarget {
        let file = |name: &str| self.kubeconfig.with_file_name(name);
        ScrapeTarget {
            job: "kube-apiserver".into(),
            address: format!("127.0.0.1:{}", self.api_port),
            scheme: "https",
            metrics_path: "/metrics".into(),
            tls: Some((file("ca.crt"), file("admin.crt"), file("admin.key"))),
        }
    }

    /// Starts `program` as one more process of this control plane (an operator under test):
    /// its output goes to `<name>.log` beside the others', it stops with the control plane, and
    /// it is reaped if the test run is killed.
    pub fn start_process(&mut self, name: &'static str, program: &Path, args: &[String]) -> Result<(), Error> {
        self.spawn_program(program.to_path_buf(), name, args)
    }

    /// Stops (SIGKILL) the process started as `name`, as an operator stopped to switch to another.
    pub fn stop_process(&mut self, name: &str) -> Result<(), Error> {
        if let Some(index) = self.processes.iter().position(|p| p.name == name) {
            let mut process = self.processes.remove(index);
            process.child.kill()?;
            process.child.wait()?;
        }
        Ok(())
    }

    /// Stops the API server (SIGKILL), keeps it down for `down`, and starts it again on the same
    /// port and etcd; returns once it serves requests. Clients see refused connections
    /// meanwhile, as when an API server restarts or a control plane fails over.
    pub async fn restart_apiserver(&mut self, down: Duration) -> Result<(), Error> {
        let index = self
            .processes
            .iter()
            .position(|p| p.name == "kube-apiserver")
            .ok_or_else(|| Error::Manifest("no kube-apiserver runs".into()))?;
        let mut process = self.processes.remove(index);
        process.child.kill()?;
        process.child.wait()?;
        tokio::time::sleep(down).await;
        self.spawn_program(process.program, process.name, &process.args)?;
        let client = self.client.clone();
        self.wait_until("kube-apiserver to serve requests again", || {
            let api = Api::<Namespace>::all(client.clone());
            async move { api.get("default").await.ok().map(|_| ()) }
        })
        .await
    }

    /// The pid of the process started as `name`, while it runs.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.processes.iter().find(|p| p.name == name).map(|p| p.child.id())
    }

    /// The log file of the process started as `name`.
    pub fn log_of(&self, name: &str) -> PathBuf {
        self.kubeconfig.with_file_name(format!("{name}.log"))
    }

    fn spawn(&mut self, binaries: &Path, name: &'static str, args: &[String]) -> Result<(), Error> {
        self.spawn_program(binaries.join(name), name, args)
    }

    fn spawn_program(&mut self, path: PathBuf, name: &'static str, args: &[String]) -> Result<(), Error> {
        let log = self.log_of(name);
        // Appended to: a restarted process keeps its earlier output.
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                name: name.to_string(),
                path: path.clone(),
                source,
            })?;
        tracing::debug!(name, pid = child.id(), "started");
        reaper::record_child(self.kubeconfig.parent().unwrap_or(Path::new(".")), child.id(), name)?;
        self.processes.push(Process {
            name,
            child,
            log,
            program: path,
            args: args.to_vec(),
        });
        Ok(())
    }

    /// Like [`wait_for`], but fails at once with the process's log when one of them exits.
    async fn wait_until<F, Fut>(&mut self, what: &str, mut check: F) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<()>>,
    {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            self.check_running()?;
            if check().await.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    after: START_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn check_running(&mut self) -> Result<(), Error> {
        for process in &mut self.processes {
            if let Some(status) = process.child.try_wait()? {
                let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(Error::Exited {
                    name: process.name.to_string(),
                    status,
                    log: process.log.clone(),
                    tail,
                });
            }
        }
        Ok(())
    }

    async fn add_nodes(&mut self, count: usize) -> Result<(), Error> {
        let nodes = Api::<Node>::all(self.client.clone());
        for i in 0..count {
            let name = format!("kwok-node-{i}");
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([
                        ("type".to_string(), "kwok".to_string()),
                        ("kubernetes.io/hostname".to_string(), name.clone()),
                    ])),
                    annotations: Some(BTreeMap::from([(
                        NODE_ANNOTATION.0.to_string(),
                        NODE_ANNOTATION.1.to_string(),
                    )])),
                    ..Default::default()
                },
                ..Default::default()
            };
            nodes.create(&PostParams::default(), &node).await.map_err(Error::Kube)?;
        }
        self.wait_until("kwok nodes to become Ready", || {
            let nodes = nodes.clone();
            async move {
                let list = nodes.list(&Default::default()).await.ok()?;
                let ready = list.items.iter().filter(|n| is_ready(n)).count();
                (ready >= count).then_some(())
            }
        })
        .await?;
        // Pods need the namespace's default ServiceAccount, which the controller-manager creates.
        let client = self.client.clone();
        wait_for(START_TIMEOUT, "the default ServiceAccount", || {
            let api = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), "default");
            async move { api.get("default").await.ok().map(|_| ()) }
        })
        .await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        while let Some(mut process) = self.processes.pop() {
            if let Err(error) = process.child.kill() {
                tracing::warn!(name = process.name, %error, "could not stop");
            }
            let _ = process.child.wait();
        }
        if std::env::var_os("SERIN_TESTENV_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("testenv: kept {}", dir.keep().display());
        }
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The stage files `hack/upstream/build.sh` copied from the kwok module, comma-separated.
fn kwok_stages(binaries: &Path) -> Result<String, Error> {
    let dir = binaries.join("kwok-stages");
    let mut files: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().display().to_string())
        .filter(|path| path.ends_with(".yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::UpstreamBuild(format!(
            "no kwok stage files in {}",
            dir.display()
        )));
    }
    Ok(files.join(","))
}

/// Every request of the `operator` user, once (when received), without bodies; every request
/// of the service accounts of [`INSTALL_NAMESPACE`], once (when answered, with the answer's
/// code); nothing else.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
  users: [operator]
  omitStages: [ResponseStarted, ResponseComplete, Panic]
- level: Metadata
  userGroups: [\"system:serviceaccounts:serin-system\"]
  omitStages: [RequestReceived, ResponseStarted]
- level: None
";

/// The namespace an operator installed from the chart runs in, whose service accounts'
/// requests the audit log records with their answers ([`ControlPlane::install_requests`]).
pub const INSTALL_NAMESPACE: &str = "serin-system";
const AUDIT_LOG: &str = "audit.log";
const OPERATOR_KUBECONFIG: &str = "operator.kubeconfig";

fn kubeconfig_yaml(dir: &Path, api_port: u16, user: &str) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: serin-testenv
  cluster:
    server: https://127.0.0.1:{api_port}
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: serin-testenv
  context:
    cluster: serin-testenv
    user: admin
current-context: serin-testenv
",
        ca = path("ca.crt"),
        cert = path(&format!("{user}.crt")),
        key = path(&format!("{user}.key")),
    )
}

async fn client_for(kubeconfig: &Path) -> Result<Client, Error> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Client::try_from(config).map_err(Error::Kube)
}
