//! A real nginx (Debian's `nginx-light`) on loopback serving HTTPS in front of another server,
//! as Prometheus is often exposed: under a path prefix (as Thanos, Cortex and Mimir serve their
//! query API) and behind basic auth or a bearer token with a tenant header.
//!
//! - `/basic/…` asks for basic auth ([`BASIC_USER`], [`BASIC_PASSWORD`]);
//! - `/bearer/…` asks for `Authorization: Bearer` [`BEARER_TOKEN`] and `X-Scope-OrgID:`
//!   [`TENANT`] (Mimir's and Cortex's tenant header);
//!
//! each proxied to the upstream with the prefix taken off. Its certificate is signed by a CA of
//! its own, [`AuthProxy::ca_pem`].

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;

use crate::server::{self, ServerProcess};
use crate::{Error, free_port, wait_for};

/// Where Debian's package installs it; `SERIN_NGINX` overrides.
const DEFAULT_BINARY: &str = "/usr/sbin/nginx";

pub const BASIC_USER: &str = "serin";
pub const BASIC_PASSWORD: &str = "basic-secret-1";
pub const BEARER_TOKEN: &str = "bearer-token-1";
pub const TENANT: &str = "tenant-1";

pub struct AuthProxy {
    _process: ServerProcess,
    url: String,
    ca_pem: String,
    _dir: TempDir,
}

impl AuthProxy {
    /// Starts nginx proxying to `upstream` (e.g. `http://127.0.0.1:9090`), and waits until it
    /// answers.
    pub async fn start(upstream: &str) -> Result<AuthProxy, Error> {
        let binary = server::program(
            std::env::var_os("SERIN_NGINX")
                .map(PathBuf::from)
                .unwrap_or_else(|| DEFAULT_BINARY.into()),
            "nginx-light",
        )?;
        let dir = server::directory()?;
        let (ca_pem, certificate, key) = serving_certificate()?;
        std::fs::write(dir.path().join("server.crt"), certificate)?;
        std::fs::write(dir.path().join("server.key"), key)?;
        std::fs::write(
            dir.path().join("htpasswd"),
            format!("{BASIC_USER}:{{PLAIN}}{BASIC_PASSWORD}\n"),
        )?;
        let port = free_port()?;
        std::fs::write(dir.path().join("nginx.conf"), config(port, upstream))?;
        let process = ServerProcess::spawn(
            "nginx",
            Command::new(&binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-e")
                .arg("stderr"),
            dir.path(),
        )?;
        let proxy = AuthProxy {
            _process: process,
            url: format!("https://127.0.0.1:{port}"),
            ca_pem,
            _dir: dir,
        };
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(proxy.ca_pem.as_bytes()).map_err(|e| Error::Tls(e.to_string()))?,
            )
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let probe = format!("{}/basic/", proxy.url);
        wait_for(Duration::from_secs(20), "nginx to answer", || {
            let request = client.get(&probe);
            async move { request.send().await.ok().map(|_| ()) }
        })
        .await?;
        Ok(proxy)
    }

    /// e.g. `https://127.0.0.1:8443`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA that signed its serving certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

/// A CA (PEM) and a certificate for 127.0.0.1 it signed, with the certificate's key.
fn serving_certificate() -> Result<(String, String, String), Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "serin-testenv-proxy-ca");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec!["127.0.0.1".to_string()])?;
    serving.distinguished_name.push(DnType::CommonName, "auth-proxy");
    let certificate = serving.signed_by(&key, &issuer)?.pem();
    Ok((ca_pem, certificate, key.serialize_pem()))
}

/// One worker in the foreground, everything under the prefix directory (`-p`).
fn config(port: u16, upstream: &str) -> String {
    let upstream = upstream.trim_end_matches('/');
    format!(
        r#"daemon off;
master_process off;
pid nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path tmp-body;
  proxy_temp_path tmp-proxy;
  fastcgi_temp_path tmp-fastcgi;
  uwsgi_temp_path tmp-uwsgi;
  scgi_temp_path tmp-scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate server.crt;
    ssl_certificate_key server.key;
    location /basic/ {{
      auth_basic "serin";
      auth_basic_user_file htpasswd;
      proxy_pass {upstream}/;
    }}
    location /bearer/ {{
      if ($http_authorization != "Bearer {BEARER_TOKEN}") {{ return 401; }}
      if ($http_x_scope_orgid != "{TENANT}") {{ return 403 "no tenant"; }}
      proxy_pass {upstream}/;
    }}
  }}
}}
"#
    )
}
