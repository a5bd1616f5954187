//! Google Cloud access tokens, by Google's rules as the `gcp_auth` crate implements them: a
//! service-account key (JSON) is exchanged for a token with a JWT it signs (RS256); without a
//! key, Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's, or the
//! metadata server, i.e. GKE Workload Identity). Providers are kept per key in the
//! [`ProviderEnvironment`], so their tokens are cached across checks until they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gcp_auth::{CustomServiceAccount, TokenProvider};

use crate::{ProviderEnvironment, ProviderError};

#[derive(Default)]
pub struct TokenProviders {
    by_key: Mutex<HashMap<String, Arc<CustomServiceAccount>>>,
    default: tokio::sync::OnceCell<Arc<dyn TokenProvider>>,
}

/// A bearer token for `scope`, from the service-account key `key` or, without one, from the
/// Application Default Credentials.
pub async fn token(environment: &ProviderEnvironment, key: Option<&str>, scope: &str) -> Result<String, ProviderError> {
    let unauthenticated = |what: &str, error: gcp_auth::Error| ProviderError::Unauthenticated {
        reason: format!("{what}: {error}"),
    };
    let providers = environment.google_tokens();
    let provider: Arc<dyn TokenProvider> = match key {
        Some(key) => {
            let cached = providers.by_key.lock().ok().and_then(|cache| cache.get(key).cloned());
            match cached {
                Some(account) => account,
                None => {
                    let account = Arc::new(CustomServiceAccount::from_json(key).map_err(|e| {
                        unauthenticated("the secretRef's serviceAccountKey is not a service-account key", e)
                    })?);
                    if let Ok(mut cache) = providers.by_key.lock() {
                        cache.insert(key.to_string(), account.clone());
                    }
                    account
                }
            }
        }
        None => providers
            .default
            .get_or_try_init(gcp_auth::provider)
            .await
            .map_err(|e| unauthenticated("no Application Default Credentials (and no serviceAccountKey)", e))?
            .clone(),
    };
    let token = provider
        .token(&[scope])
        .await
        .map_err(|e| unauthenticated("Google refused a token", e))?;
    Ok(token.as_str().to_string())
}
