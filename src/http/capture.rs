//! `POST /capture/password`: an app still on Cognito forwards a password right after a Cognito
//! login (`Authorization: Bearer <the user's Cognito ID or access token>`, body
//! `{"password": "…"}`); 200 `captured` / `already_migrated`, 202 `queued`, 403
//! `password_no_match`, errors in the JSON error contract. Nothing from the request is echoed.

use std::collections::BTreeMap;

use actix_cors::Cors;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, USER_AGENT};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::AppState;
use super::error::ApiError;
use super::hooks::{header_token, read_body};
use crate::capture::{CaptureAnswer, CaptureError, CaptureRequest};
use crate::cognito::ClientContext;
use crate::domain::Password;
use crate::hook::RequestMeta;

pub const CAPTURE_PATH: &str = "/capture/password";
/// A password is at most 256 characters; with JSON escapes this is ample.
pub const MAX_CAPTURE_BODY_BYTES: usize = 4096;

#[derive(Serialize)]
struct CaptureStatus {
    status: &'static str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureBody {
    password: Zeroizing<String>,
}

pub async fn capture_password(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(capture) = state.capture.as_ref() else {
        return Err(ApiError::NotFound);
    };
    let headers = request.headers();
    let body = tokio::time::timeout(
        state.body_timeout,
        read_body(headers, payload, MAX_CAPTURE_BODY_BYTES),
    )
    .await
    .map_err(|_| ApiError::BodyTimeout)??;
    let password = parse_body(&body)?;
    drop(body);
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let rule = state.hooks.client_ip_rule();
    let forwarded = forwarded_headers(headers, rule.header_names());
    let client = rule.direct_client(request.peer_addr().map(|peer| peer.ip()), &forwarded);
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let context = client.map(|ip| ClientContext { ip, user_agent });
    let meta = RequestMeta {
        request_id: header_token(headers, "x-request-id"),
        trigger_id: None,
    };
    let request = CaptureRequest {
        token,
        password,
        context,
        meta: &meta,
    };
    match capture.capture(request).await {
        Ok(answer) => {
            let status = CaptureStatus {
                status: answer.as_str(),
            };
            Ok(match answer {
                CaptureAnswer::Queued => HttpResponse::Accepted().json(status),
                CaptureAnswer::Captured | CaptureAnswer::AlreadyMigrated => {
                    HttpResponse::Ok().json(status)
                }
            })
        }
        Err(CaptureError::NoMatch(_)) => Ok(HttpResponse::Forbidden().json(CaptureStatus {
            status: "password_no_match",
        })),
        Err(error) => Err(error.into()),
    }
}

/// `{"password": "…"}` and nothing else. Messages never contain input values.
fn parse_body(body: &[u8]) -> Result<Password, ApiError> {
    const SHAPE: &str = "the request body must be the JSON object {\"password\": \"…\"}";
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::CaptureBody(SHAPE));
    }
    let parsed: CaptureBody = serde_json::from_slice(body).map_err(|error| {
        ApiError::CaptureBody(match error.classify() {
            serde_json::error::Category::Data => SHAPE,
            _ => "the request body is not valid JSON",
        })
    })?;
    if parsed.password.is_empty() {
        return Err(ApiError::CaptureBody("`password` is empty"));
    }
    Ok(Password::new(parsed.password))
}

/// The values of the headers the client address rule reads, lower-cased names.
fn forwarded_headers<'a>(
    headers: &HeaderMap,
    names: impl Iterator<Item = &'a str>,
) -> BTreeMap<String, Vec<String>> {
    names
        .filter_map(|name| {
            let values: Vec<String> = headers
                .get_all(name)
                .filter_map(|value| value.to_str().ok())
                .map(str::to_owned)
                .collect();
            (!values.is_empty()).then(|| (name.to_owned(), values))
        })
        .collect()
}

/// CORS for `capture.allowed_origins` only: preflight answered, credentials off, a refused
/// origin stopped before the handler. `None` when no origin is configured (no CORS headers).
pub fn cors(allowed_origins: &[String]) -> Option<Cors> {
    if allowed_origins.is_empty() {
        return None;
    }
    let cors = allowed_origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["POST"])
        .allowed_headers([AUTHORIZATION, CONTENT_TYPE])
        .max_age(600)
        .block_on_origin_mismatch(true);
    Some(cors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;
    use actix_web::http::StatusCode;

    #[test]
    fn only_a_password_object_is_a_body_and_nothing_is_echoed() {
        assert!(parse_body(br#"{"password":"s3cret!"}"#).is_ok());
        for bad in [
            &br#"{"password":"s3cret!","username":"eve"}"#[..],
            br#"{"password":5}"#,
            br#"{"password":""}"#,
            br#"["s3cret!"]"#,
            br#"{"password":"s3cret!"#,
            b"password=s3cret!",
            b"",
        ] {
            let error = parse_body(bad).err().expect("refused");
            assert_eq!(error.status_code(), StatusCode::BAD_REQUEST);
            let message = error.to_string();
            assert!(!message.contains("s3cret"), "{message}");
            assert!(!message.contains("eve"), "{message}");
        }
    }

    #[test]
    fn capture_errors_map_to_the_contract() {
        use crate::capture::TokenError;
        use crate::domain::Outcome;
        use std::time::Duration;
        for (error, status) in [
            (
                CaptureError::Token(TokenError::Expired),
                StatusCode::UNAUTHORIZED,
            ),
            (CaptureError::KeysUnavailable, StatusCode::FAILED_DEPENDENCY),
            (
                CaptureError::Cognito(Outcome::Unavailable),
                StatusCode::FAILED_DEPENDENCY,
            ),
            (
                CaptureError::TooManyAttempts {
                    retry_after: Duration::from_secs(900),
                },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (CaptureError::PasswordTooLong, StatusCode::BAD_REQUEST),
            (CaptureError::NoIdentity, StatusCode::NOT_FOUND),
        ] {
            assert_eq!(ApiError::from(error).status_code(), status);
        }
        let limited = ApiError::from(CaptureError::TooManyAttempts {
            retry_after: Duration::from_secs(900),
        })
        .error_response();
        assert_eq!(limited.headers().get("retry-after").unwrap(), "900");
        let refused = ApiError::from(CaptureError::KratosRefused("secret detail".into()));
        assert_eq!(refused.status_code(), StatusCode::BAD_GATEWAY);
        let body = actix_web::body::to_bytes(refused.error_response().into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains("secret detail"),
            "5xx bodies are opaque"
        );
    }
}
