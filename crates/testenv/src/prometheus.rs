//! A real Prometheus (Debian's `prometheus` package) on loopback, scraping the targets a test names.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::server::{self, ServerProcess};
use crate::{Error, free_port, wait_for};

/// Where Debian's package installs it; `SERIN_PROMETHEUS` overrides.
const DEFAULT_BINARY: &str = "/usr/bin/prometheus";

/// One scrape job.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub job: String,
    /// `host:port`
    pub address: String,
    pub scheme: &'static str,
    pub metrics_path: String,
    /// CA, client certificate and key files for an HTTPS target.
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

pub struct Prometheus {
    _process: ServerProcess,
    url: String,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every `scrape_interval`, and waits until it is ready.
    pub async fn start(targets: &[ScrapeTarget], scrape_interval: Duration) -> Result<Prometheus, Error> {
        let binary = server::program(
            std::env::var_os("SERIN_PROMETHEUS")
                .map(PathBuf::from)
                .unwrap_or_else(|| DEFAULT_BINARY.into()),
            "prometheus",
        )?;
        let dir = server::directory()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(targets, scrape_interval))?;
        let port = free_port()?;
        let process = ServerProcess::spawn(
            "prometheus",
            Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn"),
            dir.path(),
        )?;
        let prometheus = Prometheus {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", prometheus.url);
        wait_for(Duration::from_secs(30), "prometheus to be ready", || {
            let ready = ready.clone();
            async move { reqwest::get(&ready).await.ok()?.status().is_success().then_some(()) }
        })
        .await?;
        prometheus.wait_for_first_scrapes(targets.len()).await?;
        Ok(prometheus)
    }

    /// Prometheus applies its targets a few seconds after it starts; tests must not query
    /// before every target has been scraped once.
    async fn wait_for_first_scrapes(&self, targets: usize) -> Result<(), Error> {
        let url = format!("{}/api/v1/query", self.url);
        let client = reqwest::Client::new();
        wait_for(
            Duration::from_secs(30),
            "prometheus to scrape every target once",
            || {
                let request = client.get(&url).query(&[("query", "count(up)")]);
                async move {
                    let body: serde_json::Value = request.send().await.ok()?.json().await.ok()?;
                    let count: usize = body["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
                    (count >= targets).then_some(())
                }
            },
        )
        .await
    }

    /// Base URL of the HTTP API, e.g. `http://127.0.0.1:9090`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The value of the first series an instant `query` returns; `None` without one.
    pub async fn instant(&self, query: &str) -> Option<f64> {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["data"]["result"].as_array()?.first()?["value"][1]
            .as_str()?
            .parse()
            .ok()
    }
}

fn config_yaml(targets: &[ScrapeTarget], scrape_interval: Duration) -> String {
    let mut yaml = format!(
        "global:\n  scrape_interval: {}ms\n  evaluation_interval: 1s\nscrape_configs:\n",
        scrape_interval.as_millis()
    );
    for target in targets {
        yaml.push_str(&format!(
            "- job_name: {job:?}\n  scheme: {scheme}\n  metrics_path: {path:?}\n  static_configs:\n  - targets: [{address:?}]\n",
            job = target.job,
            scheme = target.scheme,
            path = target.metrics_path,
            address = target.address,
        ));
        if let Some((ca, cert, key)) = &target.tls {
            yaml.push_str(&format!(
                "  tls_config:\n    ca_file: {:?}\n    cert_file: {:?}\n    key_file: {:?}\n",
                path(ca),
                path(cert),
                path(key)
            ));
        }
    }
    yaml
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
