//! The `[guard]` section: the brute-force guard's limits and window.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// The `[guard]` section: the brute-force guard, checked before Cognito is called.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardSettings {
    /// Failed attempts per normalised identifier within the window before further attempts
    /// are refused without asking Cognito; 0 turns the limit off (`guard.identifier_failures`).
    pub identifier_failures: u32,
    /// Failed attempts per client address within the window (`guard.ip_failures`); 0 turns
    /// it off. An IPv6 address counts by its /64. Needs the extended hook body (the
    /// forwarded address headers) and `hooks.trusted_proxies` set to the proxies in front of
    /// Kratos.
    pub ip_failures: u32,
    /// The sliding window, in seconds (`guard.window_secs`).
    pub window_secs: u64,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            identifier_failures: 5,
            ip_failures: 50,
            window_secs: 900,
        }
    }
}

/// The brute-force guard's limits, typed: what `serve` and the hook use. A limit of 0 is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardLimits {
    /// `guard.identifier_failures`.
    pub identifier_failures: u32,
    /// `guard.ip_failures`.
    pub ip_failures: u32,
    /// `guard.window_secs`.
    pub window: Duration,
}

impl GuardLimits {
    /// The keys of the limits set to 0, which turns them off: `serve` warns about each.
    pub fn limits_off(&self) -> Vec<&'static str> {
        [
            ("guard.identifier_failures", self.identifier_failures),
            ("guard.ip_failures", self.ip_failures),
        ]
        .into_iter()
        .filter(|(_, limit)| *limit == 0)
        .map(|(key, _)| key)
        .collect()
    }
}

impl GuardSettings {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

    pub fn limits(&self) -> GuardLimits {
        GuardLimits {
            identifier_failures: self.identifier_failures,
            ip_failures: self.ip_failures,
            window: self.window(),
        }
    }

    pub(super) fn check_for_serving(&self) -> Result<(), ConfigError> {
        if self.window_secs == 0 || self.window_secs > 7 * 24 * 3600 {
            return Err(invalid(
                "guard.window_secs",
                "must be between 1 and 604800 (a week)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use crate::config::testing::env;

    #[test]
    fn guard_limits_set_to_zero_are_named() {
        let off = |pairs: &[(&str, &str)]| {
            Settings::load_from(None, env(pairs))
                .unwrap()
                .guard
                .limits()
                .limits_off()
        };
        assert!(off(&[]).is_empty(), "both limits are on by default");
        assert_eq!(
            off(&[("COGNITO_BRIDGE__GUARD__IP_FAILURES", "0")]),
            ["guard.ip_failures"]
        );
        assert_eq!(
            off(&[
                ("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", "0"),
                ("COGNITO_BRIDGE__GUARD__IP_FAILURES", "0"),
            ]),
            ["guard.identifier_failures", "guard.ip_failures"]
        );
    }
}
