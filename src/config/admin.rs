//! The `[admin]` section: the admin listener (admin API, dashboard, `/metrics`, detailed
//! readiness), apart from the hook's port and behind tokens of its own.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::hooks::{check_secret_key, string_or_list};
use super::{ConfigError, HookSettings, env_name};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Address of the admin listener (`admin.listen`).
    pub listen: SocketAddr,
    /// Accepted `Authorization: Bearer` tokens of the admin routes (`admin.tokens`); none:
    /// `serve` does not start the admin listener.
    #[serde(deserialize_with = "string_or_list")]
    pub tokens: Vec<SecretString>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tokens: Vec::new(),
        }
    }
}

/// The admin listener, checked for `serve`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub tokens: Vec<SecretString>,
}

impl AdminSettings {
    /// `None` when no token is set (the listener stays off); tokens as strong as hook keys,
    /// and none of them a hook key, so that neither opens the other's routes.
    pub fn for_serving(&self, hooks: &HookSettings) -> Result<Option<AdminConfig>, ConfigError> {
        if self.tokens.is_empty() {
            return Ok(None);
        }
        for (position, token) in self.tokens.iter().enumerate() {
            check_secret_key("admin.tokens", position, token.expose_secret())?;
            if hooks
                .api_keys
                .iter()
                .any(|key| key.expose_secret() == token.expose_secret())
            {
                return Err(ConfigError::InvalidEntry {
                    key: format!("admin.tokens[{position}]"),
                    reason: "is also a hook key (hooks.api_keys): admin tokens must be their own"
                        .to_owned(),
                });
            }
        }
        Ok(Some(AdminConfig {
            listen: self.listen,
            tokens: self.tokens.clone(),
        }))
    }

    /// Why the admin listener is off, for `serve`'s log.
    pub fn off_reason() -> String {
        format!(
            "the admin listener (admin API, dashboard, /metrics, detailed readiness) is not \
             started: set admin.tokens (or {}); make one with `openssl rand -hex 32`",
            env_name("admin.tokens")
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use crate::config::testing::{STRONG_KEY, env};

    fn admin(pairs: &[(&str, &str)]) -> Result<Option<super::AdminConfig>, String> {
        let settings = Settings::load_from(None, env(pairs)).map_err(|e| e.to_string())?;
        settings
            .admin
            .for_serving(&settings.hooks)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_listener_is_off_without_tokens_and_on_port_8081_with_them() {
        assert!(admin(&[]).unwrap().is_none());
        let token = "a".repeat(40);
        let config = admin(&[("COGNITO_BRIDGE__ADMIN__TOKENS", &token)])
            .unwrap()
            .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(config.tokens.len(), 1);
    }

    #[test]
    fn weak_placeholder_or_hook_tokens_are_refused_by_position() {
        for (tokens, named) in [
            ("short", "admin.tokens[0]"),
            (
                &format!("{},change-me-to-a-long-random-key", "b".repeat(40)) as &str,
                "admin.tokens[1]",
            ),
            (STRONG_KEY, "admin.tokens[0]"),
        ] {
            let error = admin(&[
                ("COGNITO_BRIDGE__ADMIN__TOKENS", tokens),
                ("COGNITO_BRIDGE__HOOKS__API_KEYS", STRONG_KEY),
            ])
            .unwrap_err();
            assert!(error.contains(named), "{tokens}: {error}");
            assert!(!error.contains(STRONG_KEY), "never echoed: {error}");
        }
    }
}
