//! `/health/alive` and `/health/ready`.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

/// Ready when the database answers and the Cognito settings are usable: Cognito decided the
/// last hook call or probe (at most 30 s ago), rather than refusing our call itself. The
/// admin listener's answer says why not; this one (the hook's port, for Kratos-side probes)
/// only whether.
pub async fn ready_brief(state: web::Data<AppState>) -> HttpResponse {
    match problem(&state).await {
        None => HttpResponse::Ok().json(json!({"status": "ready"})),
        Some(_) => HttpResponse::ServiceUnavailable().json(json!({"status": "not_ready"})),
    }
}

/// The same, with the reason (admin listener).
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match problem(&state).await {
        None => HttpResponse::Ok().json(json!({"status": "ready"})),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not_ready", "reason": reason})),
    }
}

async fn problem(state: &AppState) -> Option<String> {
    let database_problem =
        match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: database does not answer");
                Some("database does not answer".to_owned())
            }
            Err(_) => Some("database did not answer within 2 s".to_owned()),
        };
    match database_problem {
        Some(problem) => Some(problem),
        None => state.hooks.cognito_problem().await,
    }
}
