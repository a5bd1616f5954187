//! A real InfluxDB 1.x (Debian's `influxdb`) on loopback with authentication on, one admin user
//! ([`USERNAME`], [`PASSWORD`]) and one database ([`DATABASE`]).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::server::{self, ServerProcess};
use crate::{Error, free_port, wait_for};

/// Where Debian's package installs it; `SERIN_INFLUXD` overrides.
const DEFAULT_BINARY: &str = "/usr/bin/influxd";

pub const USERNAME: &str = "serin";
pub const PASSWORD: &str = "influx-secret-1";
pub const DATABASE: &str = "canaries";

pub struct InfluxDb {
    _process: ServerProcess,
    url: String,
    client: reqwest::Client,
    _dir: TempDir,
}

impl InfluxDb {
    /// Starts influxd, creates the admin user and the database, and waits until it answers.
    pub async fn start() -> Result<InfluxDb, Error> {
        let binary = server::program(
            std::env::var_os("SERIN_INFLUXD")
                .map(PathBuf::from)
                .unwrap_or_else(|| DEFAULT_BINARY.into()),
            "influxdb",
        )?;
        let dir = server::directory()?;
        let (http, rpc) = (free_port()?, free_port()?);
        let config = dir.path().join("influxdb.conf");
        std::fs::write(&config, config_toml(dir.path(), http, rpc))?;
        let process = ServerProcess::spawn("influxd", Command::new(&binary).arg("-config").arg(&config), dir.path())?;
        let influxdb = InfluxDb {
            _process: process,
            url: format!("http://127.0.0.1:{http}"),
            client: reqwest::Client::new(),
            _dir: dir,
        };
        let ping = format!("{}/ping", influxdb.url);
        wait_for(Duration::from_secs(30), "influxd to answer", || {
            let request = influxdb.client.get(&ping);
            async move { request.send().await.ok()?.status().is_success().then_some(()) }
        })
        .await?;
        // With authentication on and no user yet, InfluxDB accepts the first admin's creation.
        influxdb
            .statement(&format!(
                "CREATE USER {USERNAME} WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES"
            ))
            .await?;
        influxdb.statement(&format!("CREATE DATABASE {DATABASE}")).await?;
        Ok(influxdb)
    }

    async fn statement(&self, statement: &str) -> Result<(), Error> {
        let response = self
            .client
            .post(format!("{}/query", self.url))
            .basic_auth(USERNAME, Some(PASSWORD))
            .form(&[("q", statement)])
            .send()
            .await
            .map_err(|e| server_error(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() || body.contains("\"error\"") {
            return Err(server_error(format!("refused {statement:?}: {status} {body}")));
        }
        Ok(())
    }

    /// e.g. `http://127.0.0.1:8086`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes points in line protocol into [`DATABASE`].
    pub async fn write(&self, lines: &str) -> Result<(), Error> {
        let response = self
            .client
            .post(format!("{}/write", self.url))
            .basic_auth(USERNAME, Some(PASSWORD))
            .query(&[("db", DATABASE), ("precision", "s")])
            .body(lines.to_string())
            .send()
            .await
            .map_err(|e| server_error(e.to_string()))?;
        if response.status().as_u16() != 204 {
            let body = response.text().await.unwrap_or_default();
            return Err(server_error(format!("refused the points: {body}")));
        }
        Ok(())
    }
}

fn server_error(reason: String) -> Error {
    Error::Server {
        server: "influxdb",
        reason,
    }
}

fn config_toml(dir: &std::path::Path, http: u16, rpc: u16) -> String {
    let dir = dir.display();
    format!(
        r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http}"
  auth-enabled = true
  log-enabled = false
[ifql]
  enabled = false
"#
    )
}
