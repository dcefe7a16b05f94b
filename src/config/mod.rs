//! Settings: one TOML file plus `COGNITO_BRIDGE__SECTION__KEY` environment variables,
//! parsed into real types at load; errors name the key. This file owns `Settings`, its
//! loading, `ConfigError` and the helpers every section uses; each section has a file.

mod admin;
mod capture;
mod cognito;
mod guard;
mod hooks;
mod hydra;
mod import;
mod kratos;
mod serve;
mod server;
mod store;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::telemetry::{self, LogSettings};

pub use admin::{AdminConfig, AdminSettings};
pub use capture::{BCRYPT_COSTS, CaptureConfig, CaptureSettings};
pub use cognito::{
    CognitoConfig, CognitoPool, CognitoSettings, DEFAULT_CONTEXT_SERVER_NAME, QuotaScope,
    QuotaSettings,
};
pub use guard::{GuardLimits, GuardSettings};
pub use hooks::{
    EXAMPLE_API_KEY, HookSettings, MAX_BODY_BYTES_LIMIT, MAX_DEADLINE_MS, MIN_API_KEY_CHARS,
    Policies, Policy,
};
pub use hydra::HydraSettings;
pub use import::{ImportSettings, LIST_USERS_QUOTA, MAX_BATCH_SIZE, TraitType};
pub use kratos::KratosSettings;
pub use serve::{HookConfig, ServeConfig};
pub use server::ServerSettings;
pub use store::{DatabaseSettings, StoreSettings};

pub const DEFAULT_CONFIG_FILE: &str = "cognito-bridge.toml";
pub const ENV_PREFIX: &str = "COGNITO_BRIDGE";

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

fn required(value: &Option<String>, key: &'static str) -> Result<String, ConfigError> {
    match value.as_deref().map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Err(invalid(
            key,
            format!("is required (set it in the file or in {})", env_name(key)),
        )),
    }
}

/// A list of plain strings from a TOML list, one string, or `KEY=a,b` from the environment.
fn plain_string_or_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match <OneOrMany as Deserialize>::deserialize(deserializer)
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

/// `cognito.user_pool_id` → `COGNITO_BRIDGE__COGNITO__USER_POOL_ID`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.replace('.', "__").to_uppercase())
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
    pub hydra: HydraSettings,
    pub import: ImportSettings,
    pub capture: CaptureSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
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
        settings.hooks.check()?;
        if let Err(error) = telemetry::filter(&settings.log.level) {
            return Err(invalid(
                "log.level",
                format!("not a tracing filter: {error}"),
            ));
        }
        settings.import.check()?;
        settings.kratos.check()?;
        settings.hydra.check()?;
        settings.capture.check()?;
        settings.database.check()?;
        Ok(settings)
    }
}

/// What the tests of every section share.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;

    /// What `openssl rand -hex 32` could print.
    pub const STRONG_KEY: &str = "5f0c3b9e8a1d47e2b6c94f0a7d3e12c85b9f6a0e4d7c21b3a8f5e09c6d4b7a21";

    pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{STRONG_KEY, env, file};
    use super::*;
    use secrecy::ExposeSecret;

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
        assert_eq!(quota.scope, QuotaScope::Deployment);
        assert_eq!(settings.guard.identifier_failures, 5);
        CognitoConfig::from_settings(&settings.cognito).unwrap();
    }

    #[test]
    fn the_quota_scope_is_deployment_or_process() {
        let scope = |value: &str| {
            Settings::load_from(None, env(&[(&env_name("cognito.quota_scope"), value)]))
                .map(|settings| settings.cognito.quota_scope)
        };
        assert_eq!(scope("process").unwrap(), QuotaScope::Process);
        assert_eq!(scope("deployment").unwrap(), QuotaScope::Deployment);
        let error = scope("cluster").unwrap_err().to_string();
        assert!(error.contains("quota_scope"), "{error}");
        assert!(error.contains("deployment"), "{error}");
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
    fn a_missing_config_file_is_named() {
        let error =
            Settings::load_from(Some(Path::new("/nonexistent/cb.toml")), env(&[])).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/cb.toml"));
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
