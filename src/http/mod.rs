//! The HTTP layer: the shared state of the workers, the routing table (used by `serve` and the
//! tests through `startup::Application`), handlers and the JSON error contract.

mod error;
mod health;
mod hooks;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use secrecy::SecretString;

pub use error::ApiError;

use crate::hook::HookService;
use crate::store::Store;

pub const HOOK_PATH: &str = "/hooks/password-migration";

/// Shared state of every worker.
pub struct AppState {
    pub hooks: HookService,
    pub store: Arc<dyn Store>,
    pub api_keys: Vec<SecretString>,
    pub max_body_bytes: usize,
    /// Time allowed for reading a request body (`server.request_timeout_ms`).
    pub body_timeout: Duration,
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
        .route("/metrics", web::get().to(metrics))
        .default_service(web::to(not_found));
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.hooks.metrics_text())
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
