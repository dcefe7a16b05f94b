//! Settings: one TOML file plus `COGNITO_BRIDGE__SECTION__KEY` environment variables,
//! parsed into real types at load; errors name the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use url::Url;

use crate::telemetry::{self, LogSettings};

pub const DEFAULT_CONFIG_FILE: &str = "cognito-bridge.toml";
pub const ENV_PREFIX: &str = "COGNITO_BRIDGE";
/// Kratos waits 30 s per hook attempt; answering later makes it retry.
pub const MAX_DEADLINE_MS: u64 = 25_000;
/// `ContextData.ServerName` unless `cognito.context_server_name` says otherwise.
pub const DEFAULT_CONTEXT_SERVER_NAME: &str = "cognito-bridge";
/// Largest `hooks.max_body_bytes` `serve` accepts (1 MiB). A hook body is a few hundred
/// bytes, and a body without `Content-Length` gets a buffer of the whole limit up front.
pub const MAX_BODY_BYTES_LIMIT: usize = 1024 * 1024;
/// Shortest hook key `serve` accepts: `openssl rand -hex 32` gives 64 characters.
pub const MIN_API_KEY_CHARS: usize = 32;
/// The placeholder key of `cognito-bridge.example.toml` (and `kratos-hooks/`), which `serve`
/// refuses whatever its length.
pub const EXAMPLE_API_KEY: &str = "change-me-to-a-long-random-key";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    FileMissing(PathBuf),
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// One entry of a list, named by position (`hooks.api_keys[2]`), never by value.
    #[error("configuration key `{key}`: {reason}")]
    InvalidEntry { key: String, reason: String },
    #[error("environment variable `{variable}` is set: {reason}")]
    UnsafeEnvironment {
        variable: &'static str,
        reason: &'static str,
    },
}

/// With it set (to `true`), the AWS SDK's request signer logs request bodies, and
/// `AdminInitiateAuth` bodies hold passwords.
pub const LOG_SIGNABLE_BODY: &str = "LOG_SIGNABLE_BODY";

/// For commands that call AWS: refuse an environment (given by its variable names) in which
/// the AWS SDK would log secrets. Any value counts, so nobody has to know which ones the SDK
/// reads.
pub fn check_aws_environment<N: AsRef<std::ffi::OsStr>>(
    names: impl IntoIterator<Item = N>,
) -> Result<(), ConfigError> {
    if names
        .into_iter()
        .any(|name| name.as_ref() == LOG_SIGNABLE_BODY)
    {
        return Err(ConfigError::UnsafeEnvironment {
            variable: LOG_SIGNABLE_BODY,
            reason: "the AWS SDK would log request bodies, and they hold passwords; unset it",
        });
    }
    Ok(())
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub store: StoreSettings,
    pub cognito: CognitoSettings,
    pub hooks: HookSettings,
    pub guard: GuardSettings,
    pub kratos: KratosSettings,
    pub import: ImportSettings,
    pub log: LogSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on (`server.listen`).
    pub listen: SocketAddr,
    /// Worker threads; `None` means one per core (`server.workers`).
    pub workers: Option<usize>,
    /// Time a client has to send a request's head, and again its body
    /// (`server.request_timeout_ms`); slower clients get 408 or 400.
    pub request_timeout_ms: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            request_timeout_ms: 5000,
        }
    }
}

impl ServerSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn check_for_serving(&self) -> Result<(), ConfigError> {
        if self.workers == Some(0) {
            return Err(invalid(
                "server.workers",
                "must be at least 1 (or unset: one per core)",
            ));
        }
        // actix times request heads against a clock it refreshes every 500 ms: below a
        // second, fresh connections can be cut off before they send anything.
        if !(1000..=60_000).contains(&self.request_timeout_ms) {
            return Err(invalid(
                "server.request_timeout_ms",
                "must be between 1000 and 60000",
            ));
        }
        Ok(())
    }
}

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

    pub fn check_for_serving(&self, guard: &GuardSettings) -> Result<(), ConfigError> {
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
    /// Most `AdminInitiateAuth` calls per second from this process (`cognito.max_rps`);
    /// the UserAuthentication quota (120/s by default) is shared with the live apps.
    pub max_rps: u32,
    /// Calls allowed in the first instant before `max_rps` paces them (`cognito.burst`).
    pub burst: u32,
    /// Most `AdminInitiateAuth` calls in flight at once (`cognito.max_concurrency`).
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
            max_concurrency: 32,
            circuit_failures: 5,
            circuit_open_ms: 5000,
            send_context_data: false,
            context_server_name: None,
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

fn required(value: &Option<String>, key: &'static str) -> Result<String, ConfigError> {
    match value.as_deref().map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Err(invalid(
            key,
            format!("is required (set it in the file or in {})", env_name(key)),
        )),
    }
}

/// `cognito.user_pool_id` → `COGNITO_BRIDGE__COGNITO__USER_POOL_ID`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
}

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
    pub fn check_for_serving(&self) -> Result<(), ConfigError> {
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
            check_api_key(position, key.expose_secret())?;
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

/// One hook key, named by its position (among the non-blank entries) and never echoed.
fn check_api_key(position: usize, key: &str) -> Result<(), ConfigError> {
    let refuse = |reason: &str| {
        Err(ConfigError::InvalidEntry {
            key: format!("hooks.api_keys[{position}]"),
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
fn string_or_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SecretString>, D::Error> {
    Ok(plain_string_or_list(deserializer)?
        .into_iter()
        .map(SecretString::from)
        .collect())
}

/// A list of plain strings from a TOML list, one string, or `KEY=a,b` from the environment.
fn plain_string_or_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))?
    {
        OneOrMany::One(item) => item.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(items) => items,
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

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

impl GuardSettings {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }

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

    pub fn check_for_serving(&self) -> Result<(), ConfigError> {
        if self.window_secs == 0 || self.window_secs > 7 * 24 * 3600 {
            return Err(invalid(
                "guard.window_secs",
                "must be between 1 and 604800 (a week)",
            ));
        }
        Ok(())
    }
}

/// The Cognito quota guard and circuit breaker, checked for `serve`.
#[derive(Debug, Clone, Copy)]
pub struct QuotaSettings {
    pub max_rps: std::num::NonZeroU32,
    pub burst: std::num::NonZeroU32,
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
            max_concurrency: settings.max_concurrency,
            circuit_failures: settings.circuit_failures,
            circuit_open: Duration::from_millis(settings.circuit_open_ms),
        })
    }
}

/// The `[kratos]` section: where `import` creates identities.
#[derive(Debug, Deserialize)]
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
}

/// Kratos takes at most this many identities per `PATCH /admin/identities`.
pub const MAX_BATCH_SIZE: usize = 1000;
/// Cognito's `ListUsers` quota: 30 requests/s per account and region, shared with live apps.
pub const LIST_USERS_QUOTA: f64 = 30.0;

/// The `[import]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportSettings {
    /// `ListUsers` requests per second (`import.list_rate`). Above 30 (the quota) Cognito
    /// throttles and the import backs off.
    pub list_rate: f64,
    /// Identities per `PATCH /admin/identities` (`import.batch_size`, at most 1000).
    pub batch_size: usize,
    /// Kratos trait path → Cognito attribute (`import.traits`); a dotted path nests.
    pub traits: BTreeMap<String, String>,
    /// Trait path that receives the user's Cognito groups (`import.groups_trait`).
    pub groups_trait: Option<String>,
    /// The identity schema for `--dry-run`, instead of fetching it from Kratos
    /// (`import.schema_file`).
    pub schema_file: Option<PathBuf>,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            list_rate: 10.0,
            batch_size: 500,
            traits: BTreeMap::from([("email".to_owned(), "email".to_owned())]),
            groups_trait: None,
            schema_file: None,
        }
    }
}

impl ImportSettings {
    /// The trait path for groups, when one is set and not blank.
    pub fn groups_trait(&self) -> Option<&str> {
        self.groups_trait
            .as_deref()
            .map(str::trim)
            .filter(|path| !path.is_empty())
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !(self.list_rate.is_finite() && self.list_rate > 0.0) {
            return Err(invalid("import.list_rate", "must be a number above 0"));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(invalid(
                "import.batch_size",
                format!("must be between 1 and {MAX_BATCH_SIZE} (Kratos's limit per request)"),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// Load `file` (or `./cognito-bridge.toml` when present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`], with the environment given explicitly.
    pub fn load_from(
        file: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::FileMissing(path.to_owned())),
            Some(path) => {
                builder =
                    builder.add_source(config::File::from(path).format(config::FileFormat::Toml))
            }
            None => {
                let default = Path::new(DEFAULT_CONFIG_FILE);
                if default.exists() {
                    builder = builder
                        .add_source(config::File::from(default).format(config::FileFormat::Toml));
                }
            }
        }
        let environment: config::Map<String, String> = environment
            .into_iter()
            .filter(|(name, _)| name.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(environment)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        if settings.hooks.deadline_ms == 0 {
            return Err(invalid("hooks.deadline_ms", "must be greater than 0"));
        }
        if settings.hooks.deadline_ms > MAX_DEADLINE_MS {
            return Err(invalid(
                "hooks.deadline_ms",
                format!(
                    "must be at most {MAX_DEADLINE_MS}: Kratos gives up on an attempt after 30 s \
                     and retries it, which would be one more Cognito attempt"
                ),
            ));
        }
        if let Err(error) = telemetry::filter(&settings.log.level) {
            return Err(invalid(
                "log.level",
                format!("not a tracing filter: {error}"),
            ));
        }
        settings.import.check()?;
        if settings.kratos.timeout_ms == 0 {
            return Err(invalid("kratos.timeout_ms", "must be greater than 0"));
        }
        if settings.database.max_connections == 0 {
            return Err(invalid(
                "database.max_connections",
                "must be greater than 0",
            ));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// What `openssl rand -hex 32` could print.
    const STRONG_KEY: &str = "5f0c3b9e8a1d47e2b6c94f0a7d3e12c85b9f6a0e4d7c21b3a8f5e09c6d4b7a21";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    #[test]
    fn the_example_configuration_loads_and_serves_once_its_key_is_replaced() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cognito-bridge.example.toml");
        let settings = Settings::load_from(Some(&path), env(&[])).unwrap();
        // As shipped, its hook key is the public placeholder: serve must refuse it.
        let error = settings.hooks.check_for_serving().unwrap_err().to_string();
        assert!(error.contains("hooks.api_keys[0]"), "{error}");
        assert!(error.contains("placeholder"), "{error}");
        assert!(error.contains("openssl rand -hex 32"), "{error}");
        assert!(!error.contains(EXAMPLE_API_KEY), "{error}");

        let settings = Settings::load_from(
            Some(&path),
            env(&[("COGNITO_BRIDGE__HOOKS__API_KEYS", STRONG_KEY)]),
        )
        .unwrap();
        settings.server.check_for_serving().unwrap();
        settings.hooks.check_for_serving().unwrap();
        settings.guard.check_for_serving().unwrap();
        let quota = QuotaSettings::from_settings(&settings.cognito).unwrap();
        assert_eq!(quota.max_rps.get(), 50);
        assert_eq!(settings.guard.identifier_failures, 5);
        CognitoConfig::from_settings(&settings.cognito).unwrap();
    }

    #[test]
    fn guard_quota_and_server_limits_are_checked_with_their_key() {
        let refused = |key: &str, value: &str| {
            let settings = Settings::load_from(None, env(&[(&env_name(key), value)])).unwrap();
            let error = settings
                .server
                .check_for_serving()
                .and_then(|()| settings.guard.check_for_serving())
                .and_then(|()| QuotaSettings::from_settings(&settings.cognito).map(|_| ()))
                .expect_err(key);
            assert!(error.to_string().contains(key), "{error}");
        };
        refused("cognito.max_rps", "0");
        refused("cognito.burst", "0");
        refused("cognito.max_concurrency", "0");
        refused("cognito.circuit_failures", "0");
        refused("cognito.circuit_open_ms", "10");
        refused("guard.window_secs", "0");
        refused("server.request_timeout_ms", "100");
        refused("server.workers", "0");
        let settings = Settings::load_from(
            None,
            env(&[
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "eu-west-1_Abc"),
                ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
                ("COGNITO_BRIDGE__COGNITO__SEND_CONTEXT_DATA", "true"),
            ]),
        )
        .unwrap();
        let cognito = CognitoConfig::from_settings(&settings.cognito).unwrap();
        assert_eq!(
            cognito.context_server_name.as_deref(),
            Some(DEFAULT_CONTEXT_SERVER_NAME)
        );
    }

    #[test]
    fn defaults_apply_without_file_or_environment() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            settings.database.url.expose_secret(),
            "sqlite://cognito-bridge.db"
        );
        assert_eq!(settings.hooks.deadline_ms, 5000);
        assert_eq!(settings.hooks.mfa_policy, Policy::Deny);
        assert_eq!(settings.hooks.temporary_password_policy, Policy::Deny);
        assert!(settings.hooks.api_keys.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = file(
            "[server]\nlisten = \"0.0.0.0:9000\"\n[hooks]\napi_keys = [\"file-key\"]\ndeadline_ms = 3000\nmfa_policy = \"allow\"\n",
        );
        let settings = Settings::load_from(
            Some(file.path()),
            env(&[
                ("COGNITO_BRIDGE__HOOKS__DEADLINE_MS", "1500"),
                ("COGNITO_BRIDGE__HOOKS__API_KEYS", "k1,k2"),
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "eu-west-1_abc"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.server.listen.port(), 9000);
        assert_eq!(settings.hooks.deadline_ms, 1500);
        assert_eq!(settings.hooks.mfa_policy, Policy::Allow);
        let keys: Vec<_> = settings
            .hooks
            .api_keys
            .iter()
            .map(|k| k.expose_secret().to_owned())
            .collect();
        assert_eq!(keys, ["k1", "k2"]);
        assert_eq!(
            settings.cognito.user_pool_id.as_deref(),
            Some("eu-west-1_abc")
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("COGNITO_BRIDGE__SERVER__LISTEN", "not-an-address", "listen"),
            ("COGNITO_BRIDGE__HOOKS__DEADLINE_MS", "soon", "deadline_ms"),
            ("COGNITO_BRIDGE__HOOKS__MFA_POLICY", "maybe", "mfa_policy"),
            ("COGNITO_BRIDGE__LOG__FORMAT", "xml", "format"),
            (
                "COGNITO_BRIDGE__HOOKS__DEADLINE_MS",
                "0",
                "hooks.deadline_ms",
            ),
            ("COGNITO_BRIDGE__HOOKS__API_KEY", "typo", "api_key"),
            (
                "COGNITO_BRIDGE__HOOKS__DEADLINE_MS",
                "30000",
                "hooks.deadline_ms",
            ),
            ("COGNITO_BRIDGE__LOG__LEVEL", "info,[", "log.level"),
        ];
        for (name, value, key) in cases {
            let error = Settings::load_from(None, env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{name}={value}: {error}");
        }
    }

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

    #[test]
    fn a_missing_config_file_is_named() {
        let error =
            Settings::load_from(Some(Path::new("/nonexistent/cb.toml")), env(&[])).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/cb.toml"));
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
    fn guard_limits_set_to_zero_are_named() {
        let off = |pairs: &[(&str, &str)]| {
            Settings::load_from(None, env(pairs))
                .unwrap()
                .guard
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

    #[test]
    fn cognito_settings_are_checked_and_region_comes_from_the_pool() {
        let settings = Settings::load_from(None, env(&[])).unwrap();
        let error = CognitoConfig::from_settings(&settings.cognito)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cognito.user_pool_id"), "{error}");

        let settings = Settings::load_from(
            None,
            env(&[("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "eu-west-1_abc")]),
        )
        .unwrap();
        let error = CognitoConfig::from_settings(&settings.cognito)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cognito.client_id"), "{error}");

        let settings = Settings::load_from(
            None,
            env(&[
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "eu-west-1_abc"),
                ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
                (
                    "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
                    "http://127.0.0.1:5000",
                ),
                ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
            ]),
        )
        .unwrap();
        let cognito = CognitoConfig::from_settings(&settings.cognito).unwrap();
        assert_eq!(cognito.region, "eu-west-1");
        assert_eq!(cognito.timeout, Duration::from_millis(2000));
        assert!(cognito.client_secret.is_none());

        let settings = Settings::load_from(
            None,
            env(&[
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "nounderscore"),
                ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
            ]),
        )
        .unwrap();
        let error = CognitoConfig::from_settings(&settings.cognito)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cognito.user_pool_id"), "{error}");
    }

    #[test]
    fn a_plain_http_endpoint_needs_allow_insecure_endpoint() {
        let pool = |endpoint: &str, allow: Option<&str>| {
            let mut pairs = vec![
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "eu-west-1_abc"),
                ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", endpoint),
            ];
            if let Some(allow) = allow {
                pairs.push(("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", allow));
            }
            let settings = Settings::load_from(None, env(&pairs)).unwrap();
            CognitoPool::from_settings(&settings.cognito)
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
        let settings = Settings::load_from(
            None,
            env(&[
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "eu-west-1_abc"),
                ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
                (
                    "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
                    "http://127.0.0.1:5000",
                ),
            ]),
        )
        .unwrap();
        let error = CognitoConfig::from_settings(&settings.cognito)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cognito.allow_insecure_endpoint"), "{error}");
    }

    #[test]
    fn log_signable_body_in_the_environment_is_refused_by_name() {
        check_aws_environment(["PATH", "RUST_LOG", "AWS_REGION"]).unwrap();
        check_aws_environment(Vec::<String>::new()).unwrap();
        let error = check_aws_environment(["PATH", "LOG_SIGNABLE_BODY"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("LOG_SIGNABLE_BODY"), "{error}");
        assert!(error.contains("unset it"), "{error}");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("COGNITO_BRIDGE__HOOKS__API_KEYS", "very-secret-key"),
                (
                    "COGNITO_BRIDGE__COGNITO__CLIENT_SECRET",
                    "very-secret-client",
                ),
                (
                    "COGNITO_BRIDGE__DATABASE__URL",
                    "postgres://u:very-secret-db@h/db",
                ),
            ]),
        )
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
    }
}

#[cfg(test)]
mod import_settings_tests {
    use super::*;
    use std::io::Write;

    fn load(contents: &str) -> Result<Settings, ConfigError> {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        Settings::load_from(Some(file.path()), Vec::new())
    }

    #[test]
    fn trait_paths_keep_dots_and_case() {
        let settings = load(
            "[import.traits]\nemail = \"email\"\n\"name.first\" = \"given_name\"\ntenantId = \"custom:tenant\"\n",
        )
        .unwrap();
        let traits: Vec<_> = settings
            .import
            .traits
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            traits,
            [
                "email=email",
                "name.first=given_name",
                "tenantId=custom:tenant"
            ]
        );
    }
}
