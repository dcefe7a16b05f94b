//! `POST /hooks/login-after` and `POST /hooks/settings-after`: Kratos's confirmation hooks
//! (`web_hook` with `response.ignore: true`; body from `kratos-hooks/*-after.jsonnet`).
//! 200 `{"status": "migrated" | "confirmed" | "seen" | "no_match"}`, errors in the JSON error
//! contract (401 without a hook key, 400 / 413 for a bad body, 503 when the store fails).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::hooks::{authorized_body, header_token};
use crate::confirm::{ConfirmHook, ConfirmRequest};
use crate::store::ConfirmOutcome;

pub const LOGIN_AFTER_PATH: &str = "/hooks/login-after";
pub const SETTINGS_AFTER_PATH: &str = "/hooks/settings-after";

#[derive(Serialize)]
struct ConfirmAnswer {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

pub async fn login_after(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    confirm(ConfirmHook::LoginAfter, request, payload, state).await
}

pub async fn settings_after(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    confirm(ConfirmHook::SettingsAfter, request, payload, state).await
}

async fn confirm(
    hook: ConfirmHook,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = authorized_body(&request, payload, &state).await?;
    let confirmation = ConfirmRequest::from_json(&body)?;
    drop(body);
    let request_id = header_token(request.headers(), "ory-webhook-request-id");
    let outcome = state
        .confirmations
        .record(hook, &confirmation, request_id.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(ConfirmAnswer {
        status: outcome.as_str(),
        reason: (outcome == ConfirmOutcome::IdentityMismatch).then_some("identity_mismatch"),
    }))
}
