//! The user pool's token signing keys (its JWKS): fetched once, cached, and fetched again when a
//! token names a key we do not know, at most once per refresh interval (so that tokens with
//! made-up key ids cannot make us hammer Cognito).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use url::Url;

/// Time allowed for one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS larger than this is not Cognito's (it publishes two keys).
const MAX_JWKS_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    /// No key with this id, even after a fetch (or a fetch was made too recently).
    #[error("the token's signing key is not one of the pool's")]
    UnknownKey,
    /// The keys could not be fetched (and none we hold matches).
    #[error("the pool's signing keys could not be fetched: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct Keys {
    by_id: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
}

pub struct Jwks {
    client: reqwest::Client,
    url: Url,
    min_refresh: Duration,
    keys: RwLock<Keys>,
    /// One fetch at a time; callers that waited for it look again before fetching.
    fetching: Mutex<()>,
}

impl Jwks {
    pub fn new(url: Url, min_refresh: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            url,
            min_refresh,
            keys: RwLock::default(),
            fetching: Mutex::new(()),
        }
    }

    /// The RS256 key `kid`, fetching the set when it is not known yet.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwksError> {
        if let Some(key) = self.keys.read().await.by_id.get(kid) {
            return Ok(key.clone());
        }
        let _fetching = self.fetching.lock().await;
        {
            let keys = self.keys.read().await;
            if let Some(key) = keys.by_id.get(kid) {
                return Ok(key.clone());
            }
            if keys
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.min_refresh)
            {
                return Err(match &keys.last_error {
                    Some(reason) => JwksError::Unavailable(reason.clone()),
                    None => JwksError::UnknownKey,
                });
            }
        }
        let fetched = self.fetch().await;
        let mut keys = self.keys.write().await;
        // A failed fetch counts too: the next one waits for the interval as well. The keys
        // held so far stay.
        keys.fetched_at = Some(Instant::now());
        match fetched {
            Ok(by_id) => {
                keys.by_id = by_id;
                keys.last_error = None;
            }
            Err(JwksError::Unavailable(reason)) => {
                keys.last_error = Some(reason.clone());
                return Err(JwksError::Unavailable(reason));
            }
            Err(other) => return Err(other),
        }
        keys.by_id.get(kid).cloned().ok_or(JwksError::UnknownKey)
    }

    /// Fetch the set once at startup, so that the first capture does not wait for it; a
    /// failure is logged and retried when a token needs a key.
    pub async fn prefetch(&self) {
        if let Err(error) = self.key("").await
            && error != JwksError::UnknownKey
        {
            tracing::warn!(%error, url = %self.url, "the pool's signing keys are not available yet");
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, JwksError> {
        let unavailable = |reason: String| JwksError::Unavailable(reason);
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|error| unavailable(format!("{}: {error}", self.url)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("{} answered {status}", self.url)));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
        {
            return Err(unavailable(format!("{} is too large", self.url)));
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| unavailable(format!("{}: {error}", self.url)))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(unavailable(format!("{} is too large", self.url)));
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|error| unavailable(format!("{} is not a JWK set: {error}", self.url)))?;
        let keys: HashMap<_, _> = set
            .keys
            .iter()
            .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
            .filter(|jwk| {
                jwk.common
                    .key_algorithm
                    .is_none_or(|alg| alg == KeyAlgorithm::RS256)
            })
            .filter(|jwk| {
                jwk.common
                    .public_key_use
                    .as_ref()
                    .is_none_or(|usage| *usage == PublicKeyUse::Signature)
            })
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, Arc::new(key)))
            })
            .collect();
        tracing::info!(keys = keys.len(), url = %self.url, "fetched the pool's signing keys");
        Ok(keys)
    }
}
