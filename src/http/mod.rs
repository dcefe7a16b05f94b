//! The HTTP layer: one app builder shared by `serve` and the tests, routing, health.

mod error;
mod health;
mod hooks;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use secrecy::SecretString;
use tracing_actix_web::TracingLogger;

pub use error::ApiError;

use crate::cognito::{AwsCognito, CognitoHealth, CognitoVerifier};
use crate::config::{CognitoConfig, Settings};
use crate::hook::{HookService, HookTiming};
use crate::store::{self, Store};

pub const HOOK_PATH: &str = "/hooks/password-migration";

/// Shared state of every worker.
pub struct AppState {
    pub hooks: HookService,
    pub store: Arc<dyn Store>,
    pub api_keys: Vec<SecretString>,
    pub max_body_bytes: usize,
}

/// The parts `serve` builds from settings, and tests may build themselves.
pub struct Dependencies {
    pub store: Arc<dyn Store>,
    pub verifier: Arc<dyn CognitoVerifier>,
    /// A Cognito problem found at startup (no credentials), shown by `/health/ready`
    /// until Cognito decides a hook call or a readiness probe.
    pub cognito_problem: Option<String>,
}

impl Dependencies {
    /// Open and migrate the database, build the AWS client once.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let cognito = CognitoConfig::from_settings(&settings.cognito)?;
        if cognito.timeout >= settings.hooks.deadline() {
            tracing::warn!(
                "cognito.timeout_ms is not below hooks.deadline_ms: a slow Cognito call gets no retry"
            );
        }
        tracing::info!(
            user_pool_id = %cognito.user_pool_id,
            region = %cognito.region,
            endpoint = cognito.endpoint_url.as_ref().map_or("AWS", |url| url.as_str()),
            secret_hash = cognito.client_secret.is_some(),
            mfa_policy = ?settings.hooks.mfa_policy,
            temporary_password_policy = ?settings.hooks.temporary_password_policy,
            deadline_ms = settings.hooks.deadline_ms,
            api_keys = settings.hooks.api_keys.len(),
            "starting"
        );
        let store = store::connect(&settings.database.url, settings.database.max_connections)
            .await
            .context("opening the database named by `database.url`")?;
        store
            .migrate()
            .await
            .context("applying database migrations")?;
        let verifier = AwsCognito::new(&cognito, None).await;
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
}

impl Application {
    /// Everything `serve` does before accepting requests.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.hooks.check_for_serving()?;
        let dependencies = Dependencies::from_settings(&settings).await?;
        Self::bind(settings, dependencies)
    }

    /// Bind `server.listen` (port 0 picks a free one) and route with the given parts.
    pub fn build_with(settings: Settings, dependencies: Dependencies) -> anyhow::Result<Self> {
        settings.hooks.check_for_serving()?;
        Self::bind(settings, dependencies)
    }

    fn bind(settings: Settings, dependencies: Dependencies) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("binding `server.listen` = {}", settings.server.listen))?;
        let port = listener.local_addr()?.port();
        let hooks = HookService::new(
            dependencies.store.clone(),
            dependencies.verifier,
            settings.hooks.policies(),
            HookTiming::for_deadline(settings.hooks.deadline()),
            Arc::new(CognitoHealth::new(dependencies.cognito_problem)),
        );
        let state = web::Data::new(AppState {
            hooks,
            store: dependencies.store,
            api_keys: settings.hooks.api_keys,
            max_body_bytes: settings.hooks.max_body_bytes,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .configure(routes)
        })
        .listen(listener)?;
        if let Some(workers) = settings.server.workers {
            server = server.workers(workers);
        }
        Ok(Self {
            port,
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until SIGINT/SIGTERM; requests in flight are finished first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The routing table, shared by `serve` and the tests.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource(HOOK_PATH)
                .route(web::post().to(hooks::password_migration))
                .default_service(web::to(method_not_allowed)),
        )
        .route("/health/alive", web::get().to(health::alive))
        .route("/health/ready", web::get().to(health::ready))
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
