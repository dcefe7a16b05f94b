//! The `[kratos]` section: where `import` creates identities.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{ConfigError, invalid};

/// The `[kratos]` section: where `import` creates identities.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KratosSettings {
    /// Kratos's admin API (`kratos.admin_url`, default port 4434).
    pub admin_url: Url,
    /// Sent as `Authorization: Bearer <token>` when set (`kratos.admin_token`).
    pub admin_token: Option<SecretString>,
    /// Kratos's public API, for `GET /schemas/{id}` (`kratos.public_url`, default port 4433).
    pub public_url: Url,
    /// The identity schema of imported identities (`kratos.schema_id`).
    pub schema_id: String,
    /// Time budget of one admin API request (`kratos.timeout_ms`).
    pub timeout_ms: u64,
}

impl Default for KratosSettings {
    fn default() -> Self {
        Self {
            admin_url: Url::parse("http://127.0.0.1:4434").expect("a valid URL"),
            admin_token: None,
            public_url: Url::parse("http://127.0.0.1:4433").expect("a valid URL"),
            schema_id: "default".to_owned(),
            timeout_ms: 30_000,
        }
    }
}

impl KratosSettings {
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
        if self.timeout_ms == 0 {
            return Err(invalid("kratos.timeout_ms", "must be greater than 0"));
        }
        Ok(())
    }
}
