//! `/health/alive` and `/health/ready`.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

/// Ready when the database answers and Cognito has not reported a configuration error.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let database = match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database does not answer");
            Some("database does not answer")
        }
        Err(_) => Some("database did not answer within 2 s"),
    };
    let cognito = state.hooks.health().problem();
    match (database, cognito) {
        (None, None) => HttpResponse::Ok().json(json!({"status": "ready"})),
        (Some(reason), _) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "reason": reason})),
        (None, Some(reason)) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "reason": reason})),
    }
}
