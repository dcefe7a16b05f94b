//! `POST /hooks/password-migration`: Kratos's password migration hook (Kratos POSTs
//! `{identifier, password}`; 200 `password_match`, 403 no match, 424 Cognito unavailable).

use actix_web::http::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::AppState;
use super::error::ApiError;
use crate::domain::Outcome;
use crate::hook::{HookRequest, RequestMeta};

#[derive(Serialize)]
struct HookAnswer {
    status: &'static str,
    /// Why Cognito was not asked, when the identifier does not bind to one user.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

pub async fn password_migration(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = authorized_body(&request, payload, &state).await?;
    let hook_request = HookRequest::from_json(&body)?;
    drop(body);
    let meta = RequestMeta {
        request_id: header_token(request.headers(), "ory-webhook-request-id"),
        trigger_id: header_token(request.headers(), "ory-webhook-trigger-id"),
    };
    let outcome = state.hooks.verify(&hook_request, &meta).await;
    answer(outcome)
}

fn answer(outcome: Outcome) -> Result<HttpResponse, ApiError> {
    match outcome {
        Outcome::Unavailable => Err(ApiError::CognitoUnavailable),
        Outcome::Misconfigured => Err(ApiError::CognitoMisconfigured),
        Outcome::OverQuota => Err(ApiError::CognitoOverQuota),
        Outcome::CircuitOpen => Err(ApiError::CognitoCircuitOpen),
        outcome if outcome.is_match() => Ok(HttpResponse::Ok().json(HookAnswer {
            status: "password_match",
            reason: None,
        })),
        outcome => Ok(HttpResponse::Forbidden().json(HookAnswer {
            status: "password_no_match",
            reason: outcome.binding_refusal(),
        })),
    }
}

/// `Authorization: Bearer <key>`, compared in constant time against every configured key.
/// What is compared are SHA-256 digests, all 32 bytes long: comparing the values themselves
/// would answer at once when the lengths differ, telling a caller each key's length.
pub(super) fn authorize(headers: &HeaderMap, keys: &[SecretString]) -> Result<(), ApiError> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let presented = Sha256::digest(presented);
    let matched = keys.iter().fold(subtle::Choice::from(0), |found, key| {
        let configured = Sha256::digest(key.expose_secret().as_bytes());
        found | configured[..].ct_eq(&presented[..])
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// What every Kratos web hook of ours does first: the hook key checked, then the body read
/// within the request timeout and `hooks.max_body_bytes`.
pub(super) async fn authorized_body(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    authorize(request.headers(), &state.api_keys)?;
    tokio::time::timeout(
        state.body_timeout,
        read_body(request.headers(), payload, state.max_body_bytes),
    )
    .await
    .map_err(|_| ApiError::BodyTimeout)?
}

/// Read at most `limit` bytes into a buffer that is wiped when dropped. (actix's own
/// network buffers are outside our reach and are not wiped.)
pub(super) async fn read_body(
    headers: &HeaderMap,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // Allocated once at full size: a growing Vec would leave unwiped copies of the
    // password behind each reallocation.
    let mut body = Zeroizing::new(Vec::with_capacity(declared.unwrap_or(limit).min(limit)));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BodyUnreadable)?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A correlation header kept only when short and printable.
pub(super) fn header_token(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    let usable =
        !value.is_empty() && value.len() <= 128 && value.chars().all(|c| c.is_ascii_graphic());
    usable.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn any_configured_key_is_accepted_and_nothing_else() {
        let keys = [SecretString::from("old-key"), SecretString::from("new-key")];
        assert!(authorize(&headers(Some("Bearer old-key")), &keys).is_ok());
        assert!(authorize(&headers(Some("Bearer new-key")), &keys).is_ok());
        for bad in [
            None,
            Some("Bearer other"),
            Some("bearer new-key"),
            Some("new-key"),
            Some("Bearer new-key2"),
            Some("Bearer "),
        ] {
            assert!(authorize(&headers(bad), &keys).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_of_any_length_are_told_apart_by_digest() {
        let long = "k".repeat(64);
        let keys = [
            SecretString::from(long.clone()),
            SecretString::from("\u{e9}t\u{e9}-key-with-non-ascii-bytes-0123456789"),
        ];
        assert!(authorize(&headers(Some(&format!("Bearer {long}"))), &keys).is_ok());
        // Prefixes, extensions and values of other lengths: a digest each, and none matches.
        for bad in [
            format!("Bearer {}", &long[..63]),
            format!("Bearer {long}k"),
            format!("Bearer {}", "k".repeat(4096)),
            "Bearer k".to_owned(),
        ] {
            assert!(authorize(&headers(Some(&bad)), &keys).is_err(), "{bad}");
        }
        let mut raw = HeaderMap::new();
        raw.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(
                b"Bearer \xc3\xa9t\xc3\xa9-key-with-non-ascii-bytes-0123456789",
            )
            .unwrap(),
        );
        assert!(
            authorize(&raw, &keys).is_ok(),
            "compared as bytes, not text"
        );
        assert!(
            authorize(&headers(Some("Bearer x")), &[]).is_err(),
            "no keys, no entry"
        );
    }

    #[test]
    fn correlation_headers_are_kept_only_when_sane() {
        let mut map = HeaderMap::new();
        map.insert(
            actix_web::http::header::HeaderName::from_static("ory-webhook-request-id"),
            HeaderValue::from_static("6f1e-42"),
        );
        assert_eq!(
            header_token(&map, "ory-webhook-request-id").as_deref(),
            Some("6f1e-42")
        );
        map.insert(
            actix_web::http::header::HeaderName::from_static("ory-webhook-request-id"),
            HeaderValue::from_str(&"x".repeat(200)).unwrap(),
        );
        assert_eq!(header_token(&map, "ory-webhook-request-id"), None);
        assert_eq!(header_token(&map, "ory-webhook-trigger-id"), None);
    }

    #[test]
    fn outcomes_map_to_kratos_statuses() {
        use actix_web::http::StatusCode;
        let status = |outcome| match answer(outcome) {
            Ok(response) => response.status(),
            Err(error) => actix_web::ResponseError::status_code(&error),
        };
        assert_eq!(status(Outcome::Verified), StatusCode::OK);
        assert_eq!(status(Outcome::VerifiedMfaDropped), StatusCode::OK);
        assert_eq!(status(Outcome::VerifiedTemporaryPassword), StatusCode::OK);
        for refused in [
            Outcome::NotAuthorized,
            Outcome::UnknownUser,
            Outcome::Unverifiable,
            Outcome::ResetRequired,
            Outcome::Unconfirmed,
            Outcome::MfaDenied,
            Outcome::TemporaryPasswordDenied,
            Outcome::UnexpectedChallenge,
            Outcome::RefusedByLambda,
            Outcome::RefusedLocally,
            Outcome::AmbiguousIdentifier,
            Outcome::IdentityMismatch,
        ] {
            assert_eq!(status(refused), StatusCode::FORBIDDEN, "{refused:?}");
        }
        assert_eq!(status(Outcome::Unavailable), StatusCode::FAILED_DEPENDENCY);
        for undecided in [
            Outcome::Misconfigured,
            Outcome::OverQuota,
            Outcome::CircuitOpen,
        ] {
            assert_eq!(status(undecided), StatusCode::FAILED_DEPENDENCY);
        }
    }
}
