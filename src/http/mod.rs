//! The HTTP layer: the shared state of the workers, the routing table (used by `serve` and the
//! tests through `startup::Application`), handlers and the JSON error contract.

mod admin;
mod capture;
mod confirm;
mod error;
mod health;
mod hooks;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use secrecy::SecretString;

pub use capture::{CAPTURE_PATH, MAX_CAPTURE_BODY_BYTES};
pub use confirm::{LOGIN_AFTER_PATH, SETTINGS_AFTER_PATH};
pub use error::ApiError;

use crate::capture::CaptureService;
use crate::confirm::ConfirmService;
use crate::hook::HookService;
use crate::store::Store;

pub const HOOK_PATH: &str = "/hooks/password-migration";

/// Shared state of every worker.
pub struct AppState {
    pub hooks: Arc<HookService>,
    /// `POST /capture/password`, when `capture.enabled`.
    pub capture: Option<CaptureService>,
    /// `POST /hooks/login-after` and `/hooks/settings-after`.
    pub confirmations: ConfirmService,
    pub store: Arc<dyn Store>,
    pub api_keys: Vec<SecretString>,
    /// `admin.tokens`: the admin listener's bearer tokens.
    pub admin_tokens: Vec<SecretString>,
    pub max_body_bytes: usize,
    /// Time allowed for reading a request body (`server.request_timeout_ms`).
    pub body_timeout: Duration,
}

/// The routing table, shared by `serve` and the tests; `capture_origins` are the browser
/// origins allowed to call the capture endpoint (`capture.allowed_origins`).
pub fn routes(config: &mut web::ServiceConfig, capture_origins: &[String]) {
    let capture = web::resource(CAPTURE_PATH)
        .route(web::post().to(capture::capture_password))
        .default_service(web::to(method_not_allowed));
    match capture::cors(capture_origins) {
        Some(cors) => config.service(capture.wrap(cors)),
        None => config.service(capture),
    };
    config
        .service(
            web::resource(HOOK_PATH)
                .route(web::post().to(hooks::password_migration))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource(LOGIN_AFTER_PATH)
                .route(web::post().to(confirm::login_after))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource(SETTINGS_AFTER_PATH)
                .route(web::post().to(confirm::settings_after))
                .default_service(web::to(method_not_allowed)),
        )
        .route("/health/alive", web::get().to(health::alive))
        .route("/health/ready", web::get().to(health::ready_brief))
        .default_service(web::to(not_found));
}

/// The admin listener's routing table (`admin.listen`): every route behind `admin.tokens`,
/// but the dashboard's page itself (it holds no data, and asks for the token to read the API).
pub fn admin_routes(config: &mut web::ServiceConfig) {
    config.route("/admin/", web::get().to(dashboard));
    config.service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(admin::require_token))
            .route("/admin/progress", web::get().to(admin::progress))
            .route("/admin/timeline", web::get().to(admin::timeline))
            .route("/admin/users", web::get().to(admin::users))
            .route("/admin/users.csv", web::get().to(admin::users_csv))
            .route("/admin/imports", web::get().to(admin::imports))
            .route("/metrics", web::get().to(metrics))
            .route("/health/ready", web::get().to(health::ready))
            .default_service(web::to(not_found)),
    );
}

/// `GET /admin/`: the dashboard, one self-contained page (no CDN, nothing to build).
async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' blob:",
        ))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(include_str!("dashboard.html"))
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Some(capture) = &state.capture {
        crate::capture::refresh_gauges(&capture.delivery()).await;
    }
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
