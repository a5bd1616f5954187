//! The HTTP clients serin shares for webhooks and metric providers: one that verifies TLS
//! certificates and one for the targets configured with `disableTLS` / `insecureSkipVerify`.

#[derive(Clone)]
pub struct HttpClients {
    verified: reqwest::Client,
    unverified: reqwest::Client,
}

impl HttpClients {
    pub fn new() -> Result<HttpClients, reqwest::Error> {
        install_crypto_provider();
        Ok(HttpClients {
            verified: reqwest::Client::builder().build()?,
            unverified: reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .build()?,
        })
    }

    pub fn get(&self, verify_tls: bool) -> &reqwest::Client {
        if verify_tls { &self.verified } else { &self.unverified }
    }
}

/// reqwest is built without a crypto provider; use ring, as kube's rustls does.
fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
