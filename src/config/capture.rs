//! The `[capture]` section: `POST /capture/password`, where the apps still on Cognito forward a
//! password right after a Cognito login (Strategy C), and `CaptureConfig`, the section checked
//! for `serve`.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::{ConfigError, invalid, plain_string_or_list};

/// bcrypt costs `capture.bcrypt_cost` accepts: Kratos checks 4..=31 at login, below 10 is too
/// cheap to store, above 14 takes over a second per login on common hardware.
pub const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 10..=14;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSettings {
    /// Serve `POST /capture/password` (`capture.enabled`).
    pub enabled: bool,
    /// The Cognito app clients whose tokens are accepted: an ID token's `aud` or an access
    /// token's `client_id` must be one of them (`capture.app_client_ids`).
    #[serde(deserialize_with = "plain_string_or_list")]
    pub app_client_ids: Vec<String>,
    /// Where the pool's signing keys are (`capture.jwks_url`); default
    /// `https://cognito-idp.{region}.amazonaws.com/{pool}/.well-known/jwks.json`. Set it for an
    /// emulator.
    pub jwks_url: Option<Url>,
    /// A token signed with a key we do not know makes us fetch the keys again, at most once
    /// per this many seconds (`capture.jwks_refresh_secs`).
    pub jwks_refresh_secs: u64,
    /// How long after the Cognito login (`auth_time`) a token may still capture
    /// (`capture.max_token_age_secs`).
    pub max_token_age_secs: u64,
    /// bcrypt cost of the hashes written to Kratos (`capture.bcrypt_cost`, 10 to 14).
    pub bcrypt_cost: u32,
    /// Hashes computed at once; default one per core (`capture.hash_threads`).
    pub hash_threads: Option<usize>,
    /// Time allowed for writing the hash to Kratos before it goes to the outbox and the app is
    /// answered 202 (`capture.kratos_timeout_ms`).
    pub kratos_timeout_ms: u64,
    /// Browser origins allowed to call the endpoint (CORS), e.g. `https://app.example.com`
    /// (`capture.allowed_origins`). None: no CORS headers at all.
    #[serde(deserialize_with = "plain_string_or_list")]
    pub allowed_origins: Vec<String>,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            app_client_ids: Vec::new(),
            jwks_url: None,
            jwks_refresh_secs: 60,
            max_token_age_secs: 300,
            bcrypt_cost: 12,
            hash_threads: None,
            kratos_timeout_ms: 3_000,
            allowed_origins: Vec::new(),
        }
    }
}

/// `[capture]` checked for `serve` (only when `capture.enabled`).
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub app_client_ids: Vec<String>,
    pub jwks_url: Url,
    /// The two issuers AWS uses for the pool (original and updated).
    pub issuers: [String; 2],
    pub jwks_refresh: Duration,
    pub max_token_age: Duration,
    pub bcrypt_cost: u32,
    pub hash_threads: NonZeroUsize,
    pub kratos_timeout: Duration,
    /// Origins as browsers send them (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
}

impl CaptureSettings {
    /// What every command needs: checked at load.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !BCRYPT_COSTS.contains(&self.bcrypt_cost) {
            return Err(invalid(
                "capture.bcrypt_cost",
                format!(
                    "must be between {} and {} (12 is a good default)",
                    BCRYPT_COSTS.start(),
                    BCRYPT_COSTS.end()
                ),
            ));
        }
        if self.jwks_refresh_secs == 0 {
            return Err(invalid("capture.jwks_refresh_secs", "must be at least 1"));
        }
        if !(1..=86_400).contains(&self.max_token_age_secs) {
            return Err(invalid(
                "capture.max_token_age_secs",
                "must be between 1 and 86400 (a day, Cognito's longest token lifetime)",
            ));
        }
        if self.hash_threads == Some(0) {
            return Err(invalid(
                "capture.hash_threads",
                "must be at least 1 (leave it out for one per core)",
            ));
        }
        if self.kratos_timeout_ms == 0 {
            return Err(invalid(
                "capture.kratos_timeout_ms",
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    /// The section for `serve`: `None` when capture is off. `region` and `user_pool_id`
    /// name the pool whose tokens are accepted.
    pub fn for_serving(
        &self,
        region: &str,
        user_pool_id: &str,
    ) -> Result<Option<CaptureConfig>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        if self.app_client_ids.is_empty() {
            return Err(invalid(
                "capture.app_client_ids",
                "must name at least one Cognito app client when capture.enabled is true \
                 (the clients whose tokens may capture a password)",
            ));
        }
        let original = format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}");
        let updated = format!("https://issuer-cognito-idp.{region}.amazonaws.com/{user_pool_id}");
        let jwks_url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("{original}/.well-known/jwks.json")).map_err(|error| {
                invalid("capture.jwks_url", format!("cannot be built: {error}"))
            })?,
        };
        if !matches!(jwks_url.scheme(), "https" | "http") {
            return Err(invalid("capture.jwks_url", "must be an http(s) URL"));
        }
        let allowed_origins = self
            .allowed_origins
            .iter()
            .enumerate()
            .map(|(index, origin)| browser_origin(index, origin))
            .collect::<Result<_, _>>()?;
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Ok(Some(CaptureConfig {
            app_client_ids: self.app_client_ids.clone(),
            jwks_url,
            issuers: [original, updated],
            jwks_refresh: Duration::from_secs(self.jwks_refresh_secs),
            max_token_age: Duration::from_secs(self.max_token_age_secs),
            bcrypt_cost: self.bcrypt_cost,
            hash_threads: NonZeroUsize::new(self.hash_threads.unwrap_or(cores))
                .unwrap_or(NonZeroUsize::MIN),
            kratos_timeout: Duration::from_millis(self.kratos_timeout_ms),
            allowed_origins,
        }))
    }
}

/// An origin as a browser sends it in `Origin`: `scheme://host[:port]`, nothing else.
fn browser_origin(index: usize, origin: &str) -> Result<String, ConfigError> {
    let entry = |reason: &str| ConfigError::InvalidEntry {
        key: format!("capture.allowed_origins[{index}]"),
        reason: format!("{reason} (expected an origin such as https://app.example.com)"),
    };
    if origin == "*" {
        return Err(entry(
            "a wildcard would let any web page send passwords here",
        ));
    }
    let url = Url::parse(origin).map_err(|_| entry("is not a URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(entry("must be an http(s) origin"));
    }
    let serialized = url.origin().ascii_serialization();
    if !serialized.eq_ignore_ascii_case(origin.trim_end_matches('/')) {
        return Err(entry("must have no path, query or credentials"));
    }
    Ok(serialized)
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use crate::config::testing::env;

    fn capture(pairs: &[(&str, &str)]) -> Result<Option<super::CaptureConfig>, String> {
        let settings = Settings::load_from(None, env(pairs)).map_err(|e| e.to_string())?;
        settings
            .capture
            .for_serving("eu-west-1", "eu-west-1_abc")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn capture_is_off_by_default_and_needs_app_clients_when_on() {
        assert!(capture(&[]).unwrap().is_none());
        let error = capture(&[("COGNITO_BRIDGE__CAPTURE__ENABLED", "true")]).unwrap_err();
        assert!(error.contains("capture.app_client_ids"), "{error}");
    }

    #[test]
    fn defaults_name_the_pool_issuers_and_its_jwks() {
        let config = capture(&[
            ("COGNITO_BRIDGE__CAPTURE__ENABLED", "true"),
            ("COGNITO_BRIDGE__CAPTURE__APP_CLIENT_IDS", "web, mobile"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(config.app_client_ids, ["web", "mobile"]);
        assert_eq!(
            config.issuers,
            [
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
                "https://issuer-cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"
            ]
        );
        assert_eq!(
            config.jwks_url.as_str(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json"
        );
        assert_eq!(config.bcrypt_cost, 12);
        assert_eq!(config.max_token_age.as_secs(), 300);
        assert!(config.allowed_origins.is_empty());
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let on = [
            ("COGNITO_BRIDGE__CAPTURE__ENABLED", "true"),
            ("COGNITO_BRIDGE__CAPTURE__APP_CLIENT_IDS", "web"),
        ];
        for (key, value, named) in [
            ("BCRYPT_COST", "9", "capture.bcrypt_cost"),
            ("BCRYPT_COST", "15", "capture.bcrypt_cost"),
            ("JWKS_REFRESH_SECS", "0", "capture.jwks_refresh_secs"),
            ("MAX_TOKEN_AGE_SECS", "0", "capture.max_token_age_secs"),
            ("HASH_THREADS", "0", "capture.hash_threads"),
            ("KRATOS_TIMEOUT_MS", "0", "capture.kratos_timeout_ms"),
            ("ALLOWED_ORIGINS", "*", "capture.allowed_origins[0]"),
            (
                "ALLOWED_ORIGINS",
                "https://ok.example,https://app.example/login",
                "capture.allowed_origins[1]",
            ),
            (
                "ALLOWED_ORIGINS",
                "ftp://files.example",
                "capture.allowed_origins[0]",
            ),
        ] {
            let variable = format!("COGNITO_BRIDGE__CAPTURE__{key}");
            let mut pairs = on.to_vec();
            pairs.push((variable.as_str(), value));
            let error = capture(&pairs).unwrap_err();
            assert!(error.contains(named), "{key}={value}: {error}");
        }
    }

    #[test]
    fn origins_are_kept_as_browsers_send_them() {
        let config = capture(&[
            ("COGNITO_BRIDGE__CAPTURE__ENABLED", "true"),
            ("COGNITO_BRIDGE__CAPTURE__APP_CLIENT_IDS", "web"),
            (
                "COGNITO_BRIDGE__CAPTURE__ALLOWED_ORIGINS",
                "https://App.Example.com/,http://localhost:3000",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            config.allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
    }
}
