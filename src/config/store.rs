//! The `[database]` and `[store]` sections: where the store is, and how long it keeps
//! attempts.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{ConfigError, GuardSettings, invalid};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://file.db` (created when missing) or `postgres://…` (`database.url`).
    pub url: SecretString,
    /// Connection pool size (`database.max_connections`).
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://cognito-bridge.db"),
            max_connections: 10,
        }
    }
}

impl DatabaseSettings {
    /// What every command needs: checked at load.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(invalid(
                "database.max_connections",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// The `[store]` section: what the store keeps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Attempt rows older than this many days are deleted by `serve`, at start and every
    /// hour (`store.attempts_retention_days`); 0 keeps them forever. Users' rows are never
    /// pruned.
    pub attempts_retention_days: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            attempts_retention_days: 90,
        }
    }
}

impl StoreSettings {
    /// The retention, or `None` when attempts are kept forever.
    pub fn attempts_retention(&self) -> Option<Duration> {
        (self.attempts_retention_days > 0)
            .then(|| Duration::from_secs(u64::from(self.attempts_retention_days) * 24 * 3600))
    }

    pub(super) fn check_for_serving(&self, guard: &GuardSettings) -> Result<(), ConfigError> {
        // The guard counts failures from the attempt log: they must outlive its window.
        if let Some(retention) = self.attempts_retention()
            && retention < guard.window()
        {
            return Err(invalid(
                "store.attempts_retention_days",
                "must cover guard.window_secs (or be 0: keep attempts forever)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::config::testing::env;

    #[test]
    fn attempt_retention_defaults_to_90_days_and_must_cover_the_guard_window() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(
            settings.store.attempts_retention(),
            Some(Duration::from_secs(90 * 24 * 3600))
        );
        settings.store.check_for_serving(&settings.guard).unwrap();
        let forever = Settings::load_from(
            None,
            env(&[("COGNITO_BRIDGE__STORE__ATTEMPTS_RETENTION_DAYS", "0")]),
        )
        .unwrap();
        assert_eq!(forever.store.attempts_retention(), None);
        forever.store.check_for_serving(&forever.guard).unwrap();
        let too_short = Settings::load_from(
            None,
            env(&[
                ("COGNITO_BRIDGE__STORE__ATTEMPTS_RETENTION_DAYS", "1"),
                ("COGNITO_BRIDGE__GUARD__WINDOW_SECS", "172800"),
            ]),
        )
        .unwrap();
        let error = too_short
            .store
            .check_for_serving(&too_short.guard)
            .unwrap_err()
            .to_string();
        assert!(error.contains("store.attempts_retention_days"), "{error}");
    }
}
