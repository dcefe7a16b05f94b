//! The `[cognito]` section as written, and what it becomes once checked: the pool
//! (`CognitoPool`, for `import`), the verifier's settings (`CognitoConfig`) and the quota
//! guard and circuit breaker (`QuotaSettings`), both for `serve`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, invalid, required};

/// `ContextData.ServerName` unless `cognito.context_server_name` says otherwise.
pub const DEFAULT_CONTEXT_SERVER_NAME: &str = "cognito-bridge";

/// The `[cognito]` section as written; [`CognitoConfig::from_settings`] checks it for `serve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CognitoSettings {
    pub region: Option<String>,
    pub user_pool_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub endpoint_url: Option<String>,
    /// Accept an `http://` `cognito.endpoint_url` (`cognito.allow_insecure_endpoint`): for
    /// tests and emulators only, as requests carry passwords.
    pub allow_insecure_endpoint: bool,
    pub timeout_ms: u64,
    /// Most `AdminInitiateAuth` calls per second (`cognito.max_rps`), of every replica
    /// together or of this process (`cognito.quota_scope`); the UserAuthentication quota
    /// (120/s by default) is shared with the live apps.
    pub max_rps: u32,
    /// Calls allowed in the first instant before `max_rps` paces them (`cognito.burst`).
    pub burst: u32,
    /// Who shares `max_rps` and `burst` (`cognito.quota_scope`).
    pub quota_scope: QuotaScope,
    /// Most `AdminInitiateAuth` calls in flight at once in this process
    /// (`cognito.max_concurrency`).
    pub max_concurrency: usize,
    /// Consecutive unavailable answers that open the circuit (`cognito.circuit_failures`).
    pub circuit_failures: u32,
    /// How long an open circuit answers 424 without calling Cognito before one probe call
    /// is let through (`cognito.circuit_open_ms`).
    pub circuit_open_ms: u64,
    /// Send `ContextData` (client IP, user agent) so Cognito's threat protection sees the
    /// real user (`cognito.send_context_data`).
    pub send_context_data: bool,
    /// `ContextData.ServerName`: the host users log in at (`cognito.context_server_name`).
    pub context_server_name: Option<String>,
}

impl Default for CognitoSettings {
    fn default() -> Self {
        Self {
            region: None,
            user_pool_id: None,
            client_id: None,
            client_secret: None,
            endpoint_url: None,
            allow_insecure_endpoint: false,
            timeout_ms: 2000,
            max_rps: 50,
            burst: 10,
            quota_scope: QuotaScope::Deployment,
            max_concurrency: 32,
            circuit_failures: 5,
            circuit_open_ms: 5000,
            send_context_data: false,
            context_server_name: None,
        }
    }
}

/// Who shares `cognito.max_rps` and `cognito.burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    /// Every replica on the same Postgres database together: they take their tokens from
    /// one rate state in the database. On SQLite (one process per database) this is the
    /// process.
    Deployment,
    /// Each process on its own: with N replicas, Cognito sees up to N × `max_rps`.
    Process,
}

impl<'de> Deserialize<'de> for QuotaScope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "deployment" => Ok(QuotaScope::Deployment),
            "process" => Ok(QuotaScope::Process),
            other => Err(serde::de::Error::custom(format!(
                "`{other}` is not a quota scope: use \"deployment\" or \"process\""
            ))),
        }
    }
}

/// Where the user pool is: what listing users needs (no app client).
#[derive(Debug, Clone)]
pub struct CognitoPool {
    pub region: String,
    pub user_pool_id: String,
    pub endpoint_url: Option<Url>,
}

impl CognitoPool {
    pub fn from_settings(settings: &CognitoSettings) -> Result<Self, ConfigError> {
        let user_pool_id = required(&settings.user_pool_id, "cognito.user_pool_id")?;
        let pool_region = user_pool_id
            .split_once('_')
            .map(|(region, _)| region.to_owned())
            .filter(|region| !region.is_empty())
            .ok_or_else(|| {
                invalid(
                    "cognito.user_pool_id",
                    "expected `<region>_<id>`, for example `eu-west-1_AbCdEf123`",
                )
            })?;
        let region = match &settings.region {
            Some(region) if !region.trim().is_empty() => region.trim().to_owned(),
            _ => pool_region,
        };
        let endpoint_url = settings
            .endpoint_url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .map(|url| endpoint(url.trim(), settings.allow_insecure_endpoint))
            .transpose()?;
        Ok(Self {
            region,
            user_pool_id,
            endpoint_url,
        })
    }
}

/// `cognito.endpoint_url`: HTTPS, or plain HTTP when `cognito.allow_insecure_endpoint` says
/// so (every `AdminInitiateAuth` carries a password).
fn endpoint(raw: &str, allow_insecure: bool) -> Result<Url, ConfigError> {
    let url =
        Url::parse(raw).map_err(|error| invalid("cognito.endpoint_url", error.to_string()))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_insecure => Ok(url),
        "http" => Err(invalid(
            "cognito.endpoint_url",
            "is http://, which would send passwords in clear; use https://, or set \
             `cognito.allow_insecure_endpoint = true` for a local emulator or test double",
        )),
        scheme => Err(invalid(
            "cognito.endpoint_url",
            format!("must be an https:// URL, not {scheme}://"),
        )),
    }
}

/// Cognito settings checked and typed: what the verifier needs.
#[derive(Debug, Clone)]
pub struct CognitoConfig {
    pub region: String,
    pub user_pool_id: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub endpoint_url: Option<Url>,
    /// Time budget of one `AdminInitiateAuth` attempt.
    pub timeout: Duration,
    /// `ContextData.ServerName` when `cognito.send_context_data` is on; `None` when off.
    pub context_server_name: Option<String>,
}

impl CognitoConfig {
    pub fn from_settings(settings: &CognitoSettings) -> Result<Self, ConfigError> {
        let CognitoPool {
            region,
            user_pool_id,
            endpoint_url,
        } = CognitoPool::from_settings(settings)?;
        let client_id = required(&settings.client_id, "cognito.client_id")?;
        if settings.timeout_ms == 0 {
            return Err(invalid("cognito.timeout_ms", "must be greater than 0"));
        }
        let client_secret = settings
            .client_secret
            .clone()
            .filter(|secret| !secret.expose_secret().is_empty());
        Ok(Self {
            region,
            user_pool_id,
            client_id,
            client_secret,
            endpoint_url,
            timeout: Duration::from_millis(settings.timeout_ms),
            context_server_name: settings.send_context_data.then(|| {
                settings
                    .context_server_name
                    .clone()
                    .filter(|name| !name.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_CONTEXT_SERVER_NAME.to_owned())
            }),
        })
    }
}

/// The Cognito quota guard and circuit breaker, checked for `serve`.
#[derive(Debug, Clone, Copy)]
pub struct QuotaSettings {
    pub max_rps: std::num::NonZeroU32,
    pub burst: std::num::NonZeroU32,
    pub scope: QuotaScope,
    pub max_concurrency: usize,
    pub circuit_failures: u32,
    pub circuit_open: Duration,
}

impl QuotaSettings {
    pub fn from_settings(settings: &CognitoSettings) -> Result<Self, ConfigError> {
        use std::num::NonZeroU32;
        let max_rps = NonZeroU32::new(settings.max_rps)
            .ok_or_else(|| invalid("cognito.max_rps", "must be at least 1"))?;
        let burst = NonZeroU32::new(settings.burst)
            .ok_or_else(|| invalid("cognito.burst", "must be at least 1"))?;
        if settings.max_concurrency == 0 {
            return Err(invalid("cognito.max_concurrency", "must be at least 1"));
        }
        if settings.circuit_failures == 0 {
            return Err(invalid("cognito.circuit_failures", "must be at least 1"));
        }
        if !(100..=600_000).contains(&settings.circuit_open_ms) {
            return Err(invalid(
                "cognito.circuit_open_ms",
                "must be between 100 and 600000",
            ));
        }
        Ok(Self {
            max_rps,
            burst,
            scope: settings.quota_scope,
            max_concurrency: settings.max_concurrency,
            circuit_failures: settings.circuit_failures,
            circuit_open: Duration::from_millis(settings.circuit_open_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::config::testing::env;

    fn cognito_settings(pairs: &[(&str, &str)]) -> CognitoSettings {
        Settings::load_from(None, env(pairs)).unwrap().cognito
    }

    /// The message `serve` would stop with for these settings.
    fn config_error(pairs: &[(&str, &str)]) -> String {
        CognitoConfig::from_settings(&cognito_settings(pairs))
            .unwrap_err()
            .to_string()
    }

    const POOL: (&str, &str) = ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "eu-west-1_abc");
    const CLIENT: (&str, &str) = ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client");
    const PLAIN_HTTP: (&str, &str) = (
        "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
        "http://127.0.0.1:5000",
    );

    #[test]
    fn cognito_settings_are_checked_and_region_comes_from_the_pool() {
        let error = config_error(&[]);
        assert!(error.contains("cognito.user_pool_id"), "{error}");

        let error = config_error(&[POOL]);
        assert!(error.contains("cognito.client_id"), "{error}");

        let cognito = CognitoConfig::from_settings(&cognito_settings(&[
            POOL,
            CLIENT,
            PLAIN_HTTP,
            ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ]))
        .unwrap();
        assert_eq!(cognito.region, "eu-west-1");
        assert_eq!(cognito.timeout, Duration::from_millis(2000));
        assert!(cognito.client_secret.is_none());

        let error = config_error(&[
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "nounderscore"),
            CLIENT,
        ]);
        assert!(error.contains("cognito.user_pool_id"), "{error}");
    }

    #[test]
    fn a_plain_http_endpoint_needs_allow_insecure_endpoint() {
        let pool = |endpoint: &str, allow: Option<&str>| {
            let mut pairs = vec![POOL, ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", endpoint)];
            if let Some(allow) = allow {
                pairs.push(("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", allow));
            }
            CognitoPool::from_settings(&cognito_settings(&pairs))
        };
        for allow in [None, Some("false")] {
            let error = pool("http://127.0.0.1:5000", allow)
                .unwrap_err()
                .to_string();
            assert!(error.contains("cognito.endpoint_url"), "{error}");
            assert!(error.contains("cognito.allow_insecure_endpoint"), "{error}");
        }
        let error = pool("ftp://127.0.0.1:5000", Some("true"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cognito.endpoint_url"), "{error}");

        let allowed = pool("http://127.0.0.1:5000", Some("true")).unwrap();
        assert_eq!(allowed.endpoint_url.unwrap().scheme(), "http");
        let secure = pool("https://cognito-idp.eu-west-1.amazonaws.com", None).unwrap();
        assert_eq!(secure.endpoint_url.unwrap().scheme(), "https");
        assert!(
            pool("", None).unwrap().endpoint_url.is_none(),
            "blank is unset"
        );
        // What `serve` builds goes through the same check.
        let error = config_error(&[POOL, CLIENT, PLAIN_HTTP]);
        assert!(error.contains("cognito.allow_insecure_endpoint"), "{error}");
    }
}
