//! The `[hooks]` section: the migration hook's keys, deadline, policies, body limit and
//! the proxies whose forwarded addresses are trusted.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use super::{ConfigError, env_name, invalid, plain_string_or_list};

/// Kratos waits 30 s per hook attempt; answering later makes it retry.
pub const MAX_DEADLINE_MS: u64 = 25_000;
/// Largest `hooks.max_body_bytes` `serve` accepts (1 MiB). A hook body is a few hundred
/// bytes, and a body without `Content-Length` gets a buffer of the whole limit up front.
pub const MAX_BODY_BYTES_LIMIT: usize = 1024 * 1024;
/// Shortest hook key `serve` accepts: `openssl rand -hex 32` gives 64 characters.
pub const MIN_API_KEY_CHARS: usize = 32;
/// The placeholder key of `cognito-bridge.example.toml` (and `kratos-hooks/`), which `serve`
/// refuses whatever its length.
pub const EXAMPLE_API_KEY: &str = "change-me-to-a-long-random-key";

/// What to do when Cognito checked the password but a second step remains
/// (`hooks.mfa_policy`, `hooks.temporary_password_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    #[default]
    Deny,
    Allow,
}

/// The two policies together, as the hook's verdict reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policies {
    pub mfa: Policy,
    pub temporary_password: Policy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookSettings {
    /// Accepted bearer keys; several allow rotation (`hooks.api_keys`).
    #[serde(deserialize_with = "string_or_list")]
    pub api_keys: Vec<SecretString>,
    /// Time budget of one hook answer, Cognito retries included (`hooks.deadline_ms`).
    pub deadline_ms: u64,
    pub mfa_policy: Policy,
    pub temporary_password_policy: Policy,
    /// Largest accepted request body (`hooks.max_body_bytes`).
    pub max_body_bytes: usize,
    /// Proxies between the users and Kratos whose `X-Forwarded-For` entries are skipped when
    /// the client's address is read from the right (`hooks.trusted_proxies`): CIDRs or
    /// addresses. Default: none (the entry the nearest proxy appended is the client).
    #[serde(deserialize_with = "plain_string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// A header a trusted proxy sets to the client's address, overwriting what the client
    /// sent, such as `True-Client-Ip` or `CF-Connecting-IP` (`hooks.client_ip_header`).
    /// Default: none; such headers are ignored, since a client can send them itself.
    pub client_ip_header: Option<String>,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            deadline_ms: 5000,
            mfa_policy: Policy::Deny,
            temporary_password_policy: Policy::Deny,
            max_body_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
            client_ip_header: None,
        }
    }
}

impl HookSettings {
    /// What every command needs: checked at load.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.deadline_ms == 0 {
            return Err(invalid("hooks.deadline_ms", "must be greater than 0"));
        }
        if self.deadline_ms > MAX_DEADLINE_MS {
            return Err(invalid(
                "hooks.deadline_ms",
                format!(
                    "must be at most {MAX_DEADLINE_MS}: Kratos gives up on an attempt after 30 s \
                     and retries it, which would be one more Cognito attempt"
                ),
            ));
        }
        Ok(())
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn policies(&self) -> Policies {
        Policies {
            mfa: self.mfa_policy,
            temporary_password: self.temporary_password_policy,
        }
    }

    /// `hooks.trusted_proxies` as networks (a bare address is a /32 or /128).
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .enumerate()
            .map(|(position, raw)| {
                raw.parse::<ipnet::IpNet>()
                    .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        invalid(
                            "hooks.trusted_proxies",
                            format!(
                                "entry {position} (`{raw}`) is neither a CIDR such as \
                                 `10.0.0.0/8` nor an address"
                            ),
                        )
                    })
            })
            .collect()
    }

    /// `hooks.client_ip_header`, when set to a usable header name.
    pub fn client_ip_header(&self) -> Result<Option<&str>, ConfigError> {
        match self.client_ip_header.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(name)
                if name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                Ok(Some(name))
            }
            Some(_) => Err(invalid(
                "hooks.client_ip_header",
                "must be a header name such as `True-Client-Ip` (letters, digits, `-`)",
            )),
        }
    }

    /// What `serve` needs on top of parsing: at least one key, and a usable deadline.
    pub(super) fn check_for_serving(&self) -> Result<(), ConfigError> {
        self.trusted_proxy_nets()?;
        self.client_ip_header()?;
        if self.api_keys.is_empty() {
            return Err(invalid(
                "hooks.api_keys",
                format!(
                    "serve needs at least one key; Kratos sends it as `Authorization: Bearer <key>` \
                     (set it in the file or in {})",
                    env_name("hooks.api_keys")
                ),
            ));
        }
        for (position, key) in self.api_keys.iter().enumerate() {
            check_secret_key("hooks.api_keys", position, key.expose_secret())?;
        }
        if self.deadline_ms < 100 {
            return Err(invalid("hooks.deadline_ms", "must be at least 100"));
        }
        if !(1024..=MAX_BODY_BYTES_LIMIT).contains(&self.max_body_bytes) {
            return Err(invalid(
                "hooks.max_body_bytes",
                format!(
                    "must be between 1024 and {MAX_BODY_BYTES_LIMIT} (1 MiB); a hook body is a \
                     few hundred bytes"
                ),
            ));
        }
        Ok(())
    }
}

/// One bearer key of the list `list` (`hooks.api_keys`, `admin.tokens`), named by its position
/// (among the non-blank entries) and never echoed.
pub(super) fn check_secret_key(list: &str, position: usize, key: &str) -> Result<(), ConfigError> {
    let refuse = |reason: &str| {
        Err(ConfigError::InvalidEntry {
            key: format!("{list}[{position}]"),
            reason: format!("{reason}; make a key with `openssl rand -hex 32`"),
        })
    };
    // Blank entries were dropped at load; a key with inner blanks cannot travel in a header.
    if key.contains(char::is_whitespace) {
        return refuse("must contain no whitespace");
    }
    if key == EXAMPLE_API_KEY {
        return refuse("is the example configuration's placeholder, known to everyone");
    }
    if key.chars().count() < MIN_API_KEY_CHARS {
        return refuse(&format!(
            "is shorter than {MIN_API_KEY_CHARS} characters, too easy to guess"
        ));
    }
    Ok(())
}

/// Accept `api_keys = ["a", "b"]`, `api_keys = "a"` and `KEY=a,b` from the environment.
pub(super) fn string_or_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SecretString>, D::Error> {
    Ok(plain_string_or_list(deserializer)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::config::testing::{STRONG_KEY, env};

    #[test]
    fn trusted_proxies_and_the_client_ip_header_are_parsed_and_checked() {
        let settings = Settings::load_from(
            None,
            env(&[
                (
                    "COGNITO_BRIDGE__HOOKS__TRUSTED_PROXIES",
                    "10.0.0.0/8, 192.0.2.7,2001:db8::/32",
                ),
                (
                    "COGNITO_BRIDGE__HOOKS__CLIENT_IP_HEADER",
                    "CF-Connecting-IP",
                ),
            ]),
        )
        .unwrap();
        let nets: Vec<String> = settings
            .hooks
            .trusted_proxy_nets()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        assert_eq!(
            settings.hooks.client_ip_header().unwrap(),
            Some("CF-Connecting-IP")
        );
        let defaults = Settings::load_from(None, env(&[])).unwrap();
        assert!(defaults.hooks.trusted_proxy_nets().unwrap().is_empty());
        assert_eq!(defaults.hooks.client_ip_header().unwrap(), None);

        for (name, value, key) in [
            (
                "COGNITO_BRIDGE__HOOKS__TRUSTED_PROXIES",
                "10.0.0.0/8,proxy.internal",
                "hooks.trusted_proxies",
            ),
            (
                "COGNITO_BRIDGE__HOOKS__CLIENT_IP_HEADER",
                "X-Forwarded-For: 1",
                "hooks.client_ip_header",
            ),
        ] {
            let settings = Settings::load_from(None, env(&[(name, value)])).unwrap();
            let error = settings.hooks.check_for_serving().unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
    }
    #[test]
    fn serving_needs_api_keys() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        let error = settings.hooks.check_for_serving().unwrap_err().to_string();
        assert!(error.contains("hooks.api_keys"), "{error}");
        assert!(error.contains("COGNITO_BRIDGE__HOOKS__API_KEYS"), "{error}");
    }

    fn hook_key_error(keys: &str) -> String {
        let settings =
            Settings::load_from(None, env(&[("COGNITO_BRIDGE__HOOKS__API_KEYS", keys)])).unwrap();
        settings.hooks.check_for_serving().unwrap_err().to_string()
    }
    #[test]
    fn hook_body_limit_is_bounded_both_ways() {
        let check = |bytes: usize| {
            let settings = Settings::load_from(
                None,
                env(&[
                    ("COGNITO_BRIDGE__HOOKS__API_KEYS", STRONG_KEY),
                    ("COGNITO_BRIDGE__HOOKS__MAX_BODY_BYTES", &bytes.to_string()),
                ]),
            )
            .unwrap();
            settings
                .hooks
                .check_for_serving()
                .map_err(|e| e.to_string())
        };
        for refused in [1023, MAX_BODY_BYTES_LIMIT + 1, 64 * 1024 * 1024] {
            let error = check(refused).unwrap_err();
            assert!(error.contains("hooks.max_body_bytes"), "{error}");
            assert!(error.contains("1048576"), "{error}");
        }
        for accepted in [1024, 64 * 1024, MAX_BODY_BYTES_LIMIT] {
            check(accepted).unwrap();
        }
    }

    #[test]
    fn serving_refuses_a_short_key_by_position_without_echoing_it() {
        let short = "a".repeat(MIN_API_KEY_CHARS - 1);
        let error = hook_key_error(&short);
        assert!(error.contains("hooks.api_keys[0]"), "{error}");
        assert!(error.contains("32 characters"), "{error}");
        assert!(error.contains("openssl rand -hex 32"), "{error}");
        assert!(!error.contains(&short), "{error}");

        // The weak key is the third one: named by its position, the others not echoed.
        let keys = format!("{STRONG_KEY},{STRONG_KEY}x,weak-key-1234");
        let error = hook_key_error(&keys);
        assert!(error.contains("hooks.api_keys[2]"), "{error}");
        assert!(!error.contains("weak-key-1234"), "{error}");
        assert!(!error.contains(STRONG_KEY), "{error}");

        let exactly_long_enough = "b".repeat(MIN_API_KEY_CHARS);
        let settings = Settings::load_from(
            None,
            env(&[("COGNITO_BRIDGE__HOOKS__API_KEYS", &exactly_long_enough)]),
        )
        .unwrap();
        settings.hooks.check_for_serving().unwrap();
    }

    #[test]
    fn serving_refuses_the_example_placeholder_key() {
        let error = hook_key_error(&format!("{STRONG_KEY},{EXAMPLE_API_KEY}"));
        assert!(error.contains("hooks.api_keys[1]"), "{error}");
        assert!(error.contains("placeholder"), "{error}");
        assert!(!error.contains(EXAMPLE_API_KEY), "{error}");
    }

    #[test]
    fn serving_refuses_a_key_with_inner_whitespace_by_position() {
        let settings = Settings::load_from(
            None,
            env(&[(
                "COGNITO_BRIDGE__HOOKS__API_KEYS",
                "0123456789abcdef 0123456789abcdef",
            )]),
        )
        .unwrap();
        let error = settings.hooks.check_for_serving().unwrap_err().to_string();
        assert!(error.contains("hooks.api_keys[0]"), "{error}");
        assert!(error.contains("whitespace"), "{error}");
        assert!(!error.contains("0123456789abcdef"), "{error}");
    }
}
