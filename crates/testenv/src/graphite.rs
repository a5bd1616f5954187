//! A real Graphite on loopback: Debian's carbon-cache (graphite-carbon) receiving points on its
//! plaintext port and writing whisper files at one-second resolution, and graphite-web (Django's
//! server) answering the render API from those files and carbon's cache.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::server::{self, ServerProcess};
use crate::{Error, free_port, wait_for};

const CARBON: &str = "/usr/bin/carbon-cache";
const DJANGO_ADMIN: &str = "/usr/bin/django-admin";

pub struct Graphite {
    _processes: [ServerProcess; 2],
    url: String,
    line_receiver: u16,
    _dir: TempDir,
}

impl Graphite {
    /// Starts carbon-cache and graphite-web, and waits until both answer.
    pub async fn start() -> Result<Graphite, Error> {
        let carbon = server::program(PathBuf::from(CARBON), "graphite-carbon")?;
        let web = server::program(PathBuf::from(DJANGO_ADMIN), "graphite-web")?;
        let dir = server::directory()?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(storage.join("whisper"))?;
        std::fs::create_dir_all(storage.join("log"))?;
        let (line_receiver, pickle_receiver, cache_query, web_port) =
            (free_port()?, free_port()?, free_port()?, free_port()?);
        std::fs::write(
            dir.path().join("carbon.conf"),
            carbon_conf(dir.path(), &storage, line_receiver, pickle_receiver, cache_query),
        )?;
        std::fs::write(
            dir.path().join("storage-schemas.conf"),
            "[everything]\npattern = .*\nretentions = 1s:1h\n",
        )?;
        std::fs::write(dir.path().join("storage-aggregation.conf"), "")?;
        std::fs::write(
            dir.path().join("serin_graphite.py"),
            web_settings(&storage, cache_query),
        )?;

        let carbon = ServerProcess::spawn(
            "carbon-cache",
            Command::new(carbon)
                .arg(format!("--config={}", dir.path().join("carbon.conf").display()))
                .args(["--nodaemon", "start"])
                .current_dir(dir.path()),
            dir.path(),
        )?;
        let web = ServerProcess::spawn(
            "graphite-web",
            Command::new(web)
                .args(["runserver", &format!("127.0.0.1:{web_port}"), "--noreload"])
                .env("PYTHONPATH", dir.path())
                .env("GRAPHITE_SETTINGS_MODULE", "serin_graphite")
                .env("DJANGO_SETTINGS_MODULE", "graphite.settings")
                .current_dir(dir.path()),
            dir.path(),
        )?;
        let graphite = Graphite {
            _processes: [carbon, web],
            url: format!("http://127.0.0.1:{web_port}"),
            line_receiver,
            _dir: dir,
        };
        let probe = format!("{}/render?target=none&format=json", graphite.url);
        wait_for(Duration::from_secs(60), "graphite-web to answer", || {
            let probe = probe.clone();
            async move { reqwest::get(&probe).await.ok()?.status().is_success().then_some(()) }
        })
        .await?;
        wait_for(Duration::from_secs(60), "carbon-cache to listen", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", line_receiver))
                .await
                .ok()
                .map(|_| ())
        })
        .await?;
        Ok(graphite)
    }

    /// Base URL of graphite-web, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `points` (metric path, value, Unix seconds) to carbon's plaintext receiver.
    pub async fn send(&self, points: &[(&str, f64, u64)]) -> Result<(), Error> {
        let lines: String = points
            .iter()
            .map(|(path, value, at)| format!("{path} {value} {at}\n"))
            .collect();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.line_receiver)).await?;
        stream.write_all(lines.as_bytes()).await?;
        stream.shutdown().await?;
        Ok(())
    }
}

fn carbon_conf(conf: &Path, storage: &Path, line: u16, pickle: u16, cache_query: u16) -> String {
    let (conf, storage) = (conf.display(), storage.display());
    format!(
        "[cache]
STORAGE_DIR = {storage}
LOCAL_DATA_DIR = {storage}/whisper
WHITELISTS_DIR = {storage}/lists
CONF_DIR = {conf}
LOG_DIR = {storage}/log
PID_DIR = {storage}
ENABLE_LOGROTATION = False
ENABLE_TAGS = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {cache_query}
"
    )
}

/// graphite-web's local settings (`GRAPHITE_SETTINGS_MODULE`): everything under the test's
/// directory, carbon's cache asked for points not yet written.
fn web_settings(storage: &Path, cache_query: u16) -> String {
    let storage = storage.display();
    format!(
        "SECRET_KEY = 'serin-testenv'
STORAGE_DIR = '{storage}'
WHISPER_DIR = '{storage}/whisper'
LOG_DIR = '{storage}/log'
INDEX_FILE = '{storage}/index'
CARBONLINK_HOSTS = ['127.0.0.1:{cache_query}']
DATABASES = {{'default': {{'NAME': '{storage}/graphite.db', 'ENGINE': 'django.db.backends.sqlite3'}}}}
"
    )
}
