//! What `serve` runs on: `ServeConfig`, built once from `Settings`. Every check `serve` needs
//! beyond parsing runs here, in the order `serve` has always reported them, and the values
//! come out typed (`Duration`, `IpNet`, `Url` inside `CognitoConfig`) instead of `*_ms`.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

use super::{
    AdminConfig, CaptureConfig, CognitoConfig, ConfigError, GuardLimits, KratosSettings, Policies,
    QuotaSettings, Settings,
};

/// `Settings` checked for `serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `server.listen`.
    pub listen: SocketAddr,
    /// `server.workers`; `None` means one per core.
    pub workers: Option<NonZeroUsize>,
    /// `server.request_timeout_ms`: for a request's head, and again for its body.
    pub request_timeout: Duration,
    /// `database.url`.
    pub database_url: SecretString,
    /// `database.max_connections`.
    pub max_connections: u32,
    /// `store.attempts_retention_days`; `None` keeps attempts forever.
    pub attempts_retention: Option<Duration>,
    pub hooks: HookConfig,
    /// `[guard]`.
    pub guard: GuardLimits,
    /// `cognito.*`: what the verifier needs.
    pub cognito: CognitoConfig,
    /// `cognito.max_rps` and the rest of the quota guard and circuit breaker.
    pub quota: QuotaSettings,
    /// `[capture]`, when `capture.enabled`.
    pub capture: Option<CaptureConfig>,
    /// `[kratos]`: where captured passwords are written.
    pub kratos: KratosSettings,
    /// `[admin]`, when `admin.tokens` is set.
    pub admin: Option<AdminConfig>,
}

/// The `[hooks]` section checked for `serve`.
#[derive(Debug, Clone)]
pub struct HookConfig {
    /// `hooks.api_keys`: at least one, each long enough and not the example's.
    pub api_keys: Vec<SecretString>,
    /// `hooks.deadline_ms`.
    pub deadline: Duration,
    /// `hooks.mfa_policy` and `hooks.temporary_password_policy`.
    pub policies: Policies,
    /// `hooks.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `hooks.trusted_proxies` as networks.
    pub trusted_proxies: Vec<IpNet>,
    /// `hooks.client_ip_header`, when set.
    pub client_ip_header: Option<String>,
}

impl ServeConfig {
    /// Check everything `serve` needs beyond parsing; the first problem names its key.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        settings.server.check_for_serving()?;
        settings.hooks.check_for_serving()?;
        settings.guard.check_for_serving()?;
        settings.store.check_for_serving(&settings.guard)?;
        let quota = QuotaSettings::from_settings(&settings.cognito)?;
        let cognito = CognitoConfig::from_settings(&settings.cognito)?;
        let capture = settings
            .capture
            .for_serving(&cognito.region, &cognito.user_pool_id)?;
        let hooks = &settings.hooks;
        Ok(Self {
            listen: settings.server.listen,
            workers: settings.server.workers.and_then(NonZeroUsize::new),
            request_timeout: settings.server.request_timeout(),
            database_url: settings.database.url.clone(),
            max_connections: settings.database.max_connections,
            attempts_retention: settings.store.attempts_retention(),
            hooks: HookConfig {
                api_keys: hooks.api_keys.clone(),
                deadline: hooks.deadline(),
                policies: hooks.policies(),
                max_body_bytes: hooks.max_body_bytes,
                trusted_proxies: hooks.trusted_proxy_nets()?,
                client_ip_header: hooks.client_ip_header()?.map(str::to_owned),
            },
            guard: settings.guard.limits(),
            cognito,
            quota,
            capture,
            kratos: settings.kratos.clone(),
            admin: settings.admin.for_serving(&settings.hooks)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{STRONG_KEY, env};
    use crate::config::{DEFAULT_CONTEXT_SERVER_NAME, Policy};

    fn serve_config(pairs: &[(&str, &str)]) -> Result<ServeConfig, String> {
        let settings = Settings::load_from(None, env(pairs)).unwrap();
        ServeConfig::from_settings(&settings).map_err(|error| error.to_string())
    }

    const SERVABLE: [(&str, &str); 3] = [
        ("COGNITO_BRIDGE__HOOKS__API_KEYS", STRONG_KEY),
        ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "eu-west-1_abc"),
        ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
    ];

    #[test]
    fn the_defaults_with_a_key_and_a_pool_are_typed_for_serving() {
        let serve = serve_config(&SERVABLE).unwrap();
        assert_eq!(serve.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(serve.workers, None);
        assert_eq!(serve.request_timeout, Duration::from_millis(5000));
        assert_eq!(
            serve.attempts_retention,
            Some(Duration::from_secs(90 * 24 * 3600))
        );
        assert_eq!(serve.hooks.deadline, Duration::from_millis(5000));
        assert_eq!(serve.hooks.policies.mfa, Policy::Deny);
        assert_eq!(serve.hooks.max_body_bytes, 64 * 1024);
        assert!(serve.hooks.trusted_proxies.is_empty());
        assert_eq!(serve.hooks.client_ip_header, None);
        assert_eq!(serve.guard.window, Duration::from_secs(900));
        assert!(serve.guard.limits_off().is_empty());
        assert_eq!(serve.cognito.region, "eu-west-1");
        assert_eq!(serve.cognito.timeout, Duration::from_millis(2000));
        assert_eq!(serve.quota.circuit_open, Duration::from_millis(5000));

        let mut pairs = SERVABLE.to_vec();
        pairs.extend([
            ("COGNITO_BRIDGE__SERVER__WORKERS", "3"),
            ("COGNITO_BRIDGE__HOOKS__TRUSTED_PROXIES", "10.0.0.0/8"),
            (
                "COGNITO_BRIDGE__HOOKS__CLIENT_IP_HEADER",
                " True-Client-Ip ",
            ),
            ("COGNITO_BRIDGE__GUARD__IP_FAILURES", "0"),
            ("COGNITO_BRIDGE__COGNITO__SEND_CONTEXT_DATA", "true"),
        ]);
        let serve = serve_config(&pairs).unwrap();
        assert_eq!(serve.workers, NonZeroUsize::new(3));
        assert_eq!(serve.hooks.trusted_proxies, ["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(
            serve.hooks.client_ip_header.as_deref(),
            Some("True-Client-Ip")
        );
        assert_eq!(serve.guard.limits_off(), ["guard.ip_failures"]);
        assert_eq!(
            serve.cognito.context_server_name.as_deref(),
            Some(DEFAULT_CONTEXT_SERVER_NAME)
        );
    }

    #[test]
    fn every_serve_check_runs_and_names_its_key_in_serves_order() {
        let cases: [(&[(&str, &str)], &str); 9] = [
            (
                &[("COGNITO_BRIDGE__SERVER__WORKERS", "0")],
                "server.workers",
            ),
            (
                &[("COGNITO_BRIDGE__SERVER__REQUEST_TIMEOUT_MS", "100")],
                "server.request_timeout_ms",
            ),
            (
                &[("COGNITO_BRIDGE__HOOKS__API_KEYS", "short")],
                "hooks.api_keys[0]",
            ),
            (
                &[("COGNITO_BRIDGE__HOOKS__DEADLINE_MS", "50")],
                "hooks.deadline_ms",
            ),
            (
                &[("COGNITO_BRIDGE__HOOKS__TRUSTED_PROXIES", "proxy.internal")],
                "hooks.trusted_proxies",
            ),
            (
                &[("COGNITO_BRIDGE__GUARD__WINDOW_SECS", "0")],
                "guard.window_secs",
            ),
            (
                &[
                    ("COGNITO_BRIDGE__STORE__ATTEMPTS_RETENTION_DAYS", "1"),
                    ("COGNITO_BRIDGE__GUARD__WINDOW_SECS", "172800"),
                ],
                "store.attempts_retention_days",
            ),
            (&[("COGNITO_BRIDGE__COGNITO__BURST", "0")], "cognito.burst"),
            (
                &[("COGNITO_BRIDGE__COGNITO__TIMEOUT_MS", "0")],
                "cognito.timeout_ms",
            ),
        ];
        for (extra, key) in cases {
            let mut pairs = SERVABLE.to_vec();
            pairs.extend_from_slice(extra);
            let error = serve_config(&pairs).expect_err(key);
            assert!(error.contains(key), "{key}: {error}");
        }
        // The hook's checks come before Cognito's, as they always have for `serve`.
        let error = serve_config(&[]).unwrap_err();
        assert!(error.contains("hooks.api_keys"), "{error}");
        let error = serve_config(&[SERVABLE[0]]).unwrap_err();
        assert!(error.contains("cognito.user_pool_id"), "{error}");
    }
}
