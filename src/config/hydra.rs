//! The `[hydra]` section: where `clients` creates the OAuth2 clients (Hydra's admin API).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, invalid};

/// The `[hydra]` section: where `clients` creates the OAuth2 clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HydraSettings {
    /// Hydra's admin API (`hydra.admin_url`, default port 4445).
    pub admin_url: Url,
    /// Sent as `Authorization: Bearer <token>` when set (`hydra.admin_token`).
    pub admin_token: Option<SecretString>,
    /// Hydra's public API, where apps fetch discovery, keys and tokens (`hydra.public_url`,
    /// default port 4444; read by `check`).
    pub public_url: Url,
    /// Time budget of one admin API request (`hydra.timeout_ms`).
    pub timeout_ms: u64,
}

impl Default for HydraSettings {
    fn default() -> Self {
        Self {
            admin_url: Url::parse("http://127.0.0.1:4445").expect("a valid URL"),
            admin_token: None,
            public_url: Url::parse("http://127.0.0.1:4444").expect("a valid URL"),
            timeout_ms: 30_000,
        }
    }
}

impl HydraSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The token, when one is set and not blank.
    pub fn admin_token(&self) -> Option<&SecretString> {
        self.admin_token
            .as_ref()
            .filter(|token| !token.expose_secret().trim().is_empty())
    }

    /// What every command needs: checked at load.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !matches!(self.admin_url.scheme(), "http" | "https") {
            return Err(invalid(
                "hydra.admin_url",
                "must be an http:// or https:// URL",
            ));
        }
        if !matches!(self.public_url.scheme(), "http" | "https") {
            return Err(invalid(
                "hydra.public_url",
                "must be an http:// or https:// URL",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(invalid("hydra.timeout_ms", "must be greater than 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::super::testing::env;

    #[test]
    fn hydra_settings_have_defaults_and_name_their_key_when_invalid() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(settings.hydra.admin_url.as_str(), "http://127.0.0.1:4445/");
        assert_eq!(settings.hydra.public_url.as_str(), "http://127.0.0.1:4444/");
        assert!(settings.hydra.admin_token().is_none());
        for (name, value, key) in [
            (
                "COGNITO_BRIDGE__HYDRA__ADMIN_URL",
                "ftp://hydra",
                "hydra.admin_url",
            ),
            ("COGNITO_BRIDGE__HYDRA__ADMIN_URL", "not a url", "admin_url"),
            ("COGNITO_BRIDGE__HYDRA__TIMEOUT_MS", "0", "hydra.timeout_ms"),
            (
                "COGNITO_BRIDGE__HYDRA__PUBLIC_URL",
                "ftp://hydra",
                "hydra.public_url",
            ),
            ("COGNITO_BRIDGE__HYDRA__ADMIN", "typo", "admin"),
        ] {
            let error = Settings::load_from(None, env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{name}={value}: {error}");
        }
    }
}
