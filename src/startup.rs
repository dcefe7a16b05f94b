//! Startup: the parts `serve` builds from its settings (store, Cognito client) and the
//! `Application` that binds the hook's listener and runs it. `serve` and the tests build it
//! the same way; only the AWS credentials may be handed in (as `import` takes them).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use aws_credential_types::provider::SharedCredentialsProvider;
use tracing_actix_web::TracingLogger;

use crate::capture::{CaptureService, Delivery};
use crate::cognito::{AwsCognito, CognitoHealth, CognitoVerifier};
use crate::config::{ServeConfig, Settings};
use crate::confirm::ConfirmService;
use crate::hook::{ClientIpRule, CognitoGate, HookRules, HookService, HookTiming};
use crate::http::{AppState, admin_routes, routes};
use crate::metrics::Metrics;
use crate::store::{self, Store};

/// The parts `serve` builds from its settings.
pub struct Dependencies {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<dyn CognitoVerifier>,
    /// A Cognito problem found at startup (no credentials), shown by `/health/ready`
    /// until Cognito decides a hook call or a readiness probe.
    pub cognito_problem: Option<String>,
}

impl Dependencies {
    /// Open and migrate the database, build the AWS client once (with `credentials`, or the
    /// standard AWS chain when `None`).
    pub async fn from_config(
        config: &ServeConfig,
        credentials: Option<SharedCredentialsProvider>,
    ) -> anyhow::Result<Self> {
        let cognito = &config.cognito;
        if cognito.timeout >= config.hooks.deadline {
            tracing::warn!(
                "cognito.timeout_ms is not below hooks.deadline_ms: a slow Cognito call gets no retry"
            );
        }
        tracing::info!(
            user_pool_id = %cognito.user_pool_id,
            region = %cognito.region,
            endpoint = cognito.endpoint_url.as_ref().map_or("AWS", |url| url.as_str()),
            secret_hash = cognito.client_secret.is_some(),
            mfa_policy = ?config.hooks.policies.mfa,
            temporary_password_policy = ?config.hooks.policies.temporary_password,
            deadline_ms = config.hooks.deadline.as_millis() as u64,
            api_keys = config.hooks.api_keys.len(),
            "starting"
        );
        let store = store::connect(&config.database_url, config.max_connections)
            .await
            .context("opening the database named by `database.url`")?;
        store
            .migrate()
            .await
            .context("applying database migrations")?;
        let verifier = AwsCognito::new(cognito, credentials).await;
        let cognito_problem = verifier.check_credentials().await.err();
        if let Some(reason) = &cognito_problem {
            tracing::warn!(%reason, "hook calls will answer 424 until AWS credentials are available");
        }
        Ok(Self {
            store,
            verifier: Arc::new(verifier),
            cognito_problem,
        })
    }
}

pub struct Application {
    port: u16,
    server: Server,
    /// The admin listener, when `admin.tokens` is set: its port and server.
    admin: Option<(u16, Server)>,
    state: web::Data<AppState>,
    /// Tasks that live as long as the server (the capture outbox worker), and what tells
    /// them to stop.
    background: Vec<tokio::task::JoinHandle<()>>,
    stop_background: tokio::sync::watch::Sender<bool>,
}

/// At shutdown, how long attempt rows still waiting for the database may take.
const FLUSH_AT_SHUTDOWN: Duration = Duration::from_secs(5);

impl Application {
    /// Everything `serve` does before accepting requests: check the settings, build the
    /// dependencies, bind `server.listen` (port 0 picks a free one). `credentials`: as for
    /// [`Dependencies::from_config`].
    pub async fn build(
        settings: Settings,
        credentials: Option<SharedCredentialsProvider>,
    ) -> anyhow::Result<Self> {
        let config = ServeConfig::from_settings(&settings)?;
        let dependencies = Dependencies::from_config(&config, credentials).await?;
        Self::bind(config, dependencies)
    }

    fn bind(config: ServeConfig, dependencies: Dependencies) -> anyhow::Result<Self> {
        for key in config.guard.limits_off() {
            tracing::warn!(
                key,
                "{key} = 0 turns this brute-force limit off: only Cognito's own lockout slows \
                 password guessing through the hook"
            );
        }
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("binding `server.listen` = {}", config.listen))?;
        let port = listener.local_addr()?.port();
        let admin_listener = match &config.admin {
            Some(admin) => Some(
                TcpListener::bind(admin.listen)
                    .with_context(|| format!("binding `admin.listen` = {}", admin.listen))?,
            ),
            None => {
                tracing::warn!("{}", crate::config::AdminSettings::off_reason());
                None
            }
        };
        let metrics = Arc::new(Metrics::new());
        let rules = HookRules {
            policies: config.hooks.policies,
            timing: HookTiming::for_deadline(config.hooks.deadline),
            guard: config.guard,
            gate: CognitoGate::new(
                config.quota,
                metrics.clone(),
                Some(dependencies.store.clone()),
            ),
            client_ip: ClientIpRule::new(
                config.hooks.trusted_proxies,
                config.hooks.client_ip_header.as_deref(),
            ),
        };
        if rules.gate.shares_rate() {
            tracing::info!(
                max_rps = config.quota.max_rps.get(),
                burst = config.quota.burst.get(),
                "cognito.max_rps and cognito.burst hold for every replica on this database together"
            );
        } else {
            tracing::info!(
                max_rps = config.quota.max_rps.get(),
                burst = config.quota.burst.get(),
                "cognito.max_rps and cognito.burst hold for this process (SQLite, or \
                 cognito.quota_scope = \"process\")"
            );
        }
        if let Some(retention) = config.attempts_retention {
            tokio::spawn(crate::hook::prune_attempts_forever(
                dependencies.store.clone(),
                retention,
                metrics.clone(),
            ));
        }
        let hooks = Arc::new(HookService::new(
            dependencies.store.clone(),
            dependencies.verifier,
            Arc::new(CognitoHealth::new(dependencies.cognito_problem)),
            metrics.clone(),
            rules,
        ));
        let mut background = Vec::new();
        let (stop_background, stopping) = tokio::sync::watch::channel(false);
        let capture = match &config.capture {
            Some(capture) => {
                let delivery = Arc::new(
                    Delivery::new(&config.kratos, dependencies.store.clone(), metrics.clone())
                        .context("building the Kratos client for `[capture]`")?,
                );
                let service = CaptureService::new(
                    capture,
                    hooks.clone(),
                    delivery.clone(),
                    dependencies.store.clone(),
                );
                background.push(tokio::spawn(crate::capture::deliver_forever(
                    delivery,
                    stopping.clone(),
                )));
                tracing::info!(
                    app_clients = capture.app_client_ids.len(),
                    jwks = %capture.jwks_url,
                    bcrypt_cost = capture.bcrypt_cost,
                    hash_threads = capture.hash_threads.get(),
                    cors_origins = capture.allowed_origins.len(),
                    "capture endpoint enabled: POST {}",
                    crate::http::CAPTURE_PATH
                );
                Some(service)
            }
            None => None,
        };
        if let Some(service) = &capture {
            let keys = service.tokens_handle();
            tokio::spawn(async move { keys.jwks().prefetch().await });
        }
        let capture_origins = config
            .capture
            .as_ref()
            .map(|capture| capture.allowed_origins.clone())
            .unwrap_or_default();
        let request_timeout = config.request_timeout;
        let shutdown_secs = shutdown_timeout_secs(config.hooks.deadline);
        let state = web::Data::new(AppState {
            hooks,
            capture,
            confirmations: ConfirmService::new(dependencies.store.clone(), metrics),
            store: dependencies.store,
            api_keys: config.hooks.api_keys,
            admin_tokens: config.admin.map(|admin| admin.tokens).unwrap_or_default(),
            max_body_bytes: config.hooks.max_body_bytes,
            body_timeout: request_timeout,
        });
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(app_state.clone())
                .configure(|config| routes(config, &capture_origins))
        })
        .disable_signals()
        .client_request_timeout(request_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .shutdown_timeout(shutdown_secs)
        .listen(listener)?;
        if let Some(workers) = config.workers {
            server = server.workers(workers.get());
        }
        let admin = match admin_listener {
            Some(listener) => {
                let admin_port = listener.local_addr()?.port();
                let admin_state = state.clone();
                let admin_server = HttpServer::new(move || {
                    App::new()
                        .wrap(TracingLogger::default())
                        .app_data(admin_state.clone())
                        .configure(admin_routes)
                })
                .disable_signals()
                .client_request_timeout(request_timeout)
                .shutdown_timeout(shutdown_secs)
                .workers(1)
                .listen(listener)?
                .run();
                tracing::info!(
                    port = admin_port,
                    "admin listener: /admin/, /metrics, /health/ready"
                );
                Some((admin_port, admin_server))
            }
            None => None,
        };
        Ok(Self {
            port,
            admin,
            server: server.run(),
            state,
            background,
            stop_background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port, when it runs.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin.as_ref().map(|(port, _)| *port)
    }

    /// Stops the server as SIGTERM does (for tests that restart it).
    pub fn handle(&self) -> StopHandle {
        StopHandle(
            std::iter::once(self.server.handle())
                .chain(self.admin.as_ref().map(|(_, server)| server.handle()))
                .collect(),
        )
    }

    /// The store the hook writes to.
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Serve until SIGINT or SIGTERM; then stop accepting and let requests in flight
    /// finish (up to the hook deadline plus 2 s, rounded up to a whole second; actix alone
    /// would drop them on SIGINT), let the outbox worker finish its delivery in flight, and
    /// write the attempt rows still waiting for the database (those two within 5 s).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.handle();
        tokio::spawn(async move {
            let signal = stop_signal().await;
            tracing::info!(signal, "stopping: finishing the requests in flight");
            handle.stop().await;
        });
        let served = match self.admin {
            Some((_, admin)) => {
                let (served, admin_served) = tokio::join!(self.server, admin);
                served.and(admin_served)
            }
            None => self.server.await,
        };
        let until = tokio::time::Instant::now() + FLUSH_AT_SHUTDOWN;
        self.stop_background.send_replace(true);
        for mut task in self.background {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                task.abort();
            }
        }
        self.state.hooks.flush_records(until).await;
        served
    }
}

/// Stops every listener of an [`Application`] as SIGTERM does.
#[derive(Clone)]
pub struct StopHandle(Vec<actix_web::dev::ServerHandle>);

impl StopHandle {
    pub async fn stop(&self) {
        for handle in &self.0 {
            handle.stop(true).await;
        }
    }
}

/// Time kept after the hook deadline at shutdown, for a call in flight to write its outcome.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(2);

/// How long, in whole seconds, workers wait for requests in flight on SIGINT/SIGTERM: the
/// hook deadline plus [`SHUTDOWN_MARGIN`], rounded **up** (actix's `shutdown_timeout` takes
/// whole seconds, and rounding down would cut off a call still within its deadline).
fn shutdown_timeout_secs(deadline: Duration) -> u64 {
    let wait = deadline + SHUTDOWN_MARGIN;
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The first SIGINT or SIGTERM.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_wait_covers_the_whole_deadline_rounded_up_to_a_second() {
        let secs = |ms| shutdown_timeout_secs(Duration::from_millis(ms));
        assert_eq!(secs(5000), 7);
        assert_eq!(
            secs(1500),
            4,
            "1.5 s + 2 s is 3.5 s: 4 whole seconds, not 3"
        );
        assert_eq!(secs(1001), 4);
        assert_eq!(secs(100), 3);
    }
}
