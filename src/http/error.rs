//! The one JSON error contract of the HTTP layer, and its mapping to status codes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::capture::CaptureError;
use crate::confirm::{ConfirmBodyError, ConfirmError};
use crate::domain::Outcome;
use crate::hook::HookBodyError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer key")]
    Unauthorized,
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    BadBody(#[from] HookBodyError),
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("Cognito did not decide within the deadline")]
    CognitoUnavailable,
    #[error("no Cognito capacity within the deadline (cognito.max_rps / cognito.max_concurrency)")]
    CognitoOverQuota,
    #[error("Cognito has been unavailable; calls pause briefly (circuit open)")]
    CognitoCircuitOpen,
    #[error("Cognito refused our call; the bridge's Cognito settings need attention")]
    CognitoMisconfigured,
    #[error("{0}")]
    Capture(#[from] CaptureError),
    #[error("{0}")]
    CaptureBody(&'static str),
    #[error("{0}")]
    BadQuery(&'static str),
    /// The store failed; the cause went to the log.
    #[error("the database did not answer; try again")]
    Store,
    /// Something of ours failed; the cause went to the log.
    #[error("internal error")]
    Internal,
    #[error("{0}")]
    ConfirmBody(#[from] ConfirmBodyError),
    #[error("the event could not be recorded now; Kratos may send it again")]
    ConfirmNotRecorded(#[from] ConfirmError),
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BadBody(_) | ApiError::BodyUnreadable => "bad_request",
            ApiError::BodyTimeout => "request_timeout",
            ApiError::CognitoUnavailable => "cognito_unavailable",
            ApiError::CognitoOverQuota => "cognito_over_quota",
            ApiError::CognitoCircuitOpen => "cognito_circuit_open",
            ApiError::CognitoMisconfigured => "cognito_misconfigured",
            ApiError::Capture(error) => capture_code(error),
            ApiError::CaptureBody(_) | ApiError::ConfirmBody(_) | ApiError::BadQuery(_) => {
                "bad_request"
            }
            ApiError::Store | ApiError::ConfirmNotRecorded(_) => "store_unavailable",
            ApiError::Internal => "internal_error",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The message of the body: the error itself, except for 5xx answers, whose cause goes to
    /// the log only.
    fn message(&self) -> String {
        match self {
            ApiError::Capture(CaptureError::KratosRefused(_)) => {
                "Kratos refused the password write; the bridge's log has the reason".to_owned()
            }
            ApiError::Capture(CaptureError::NotQueued(_) | CaptureError::Hashing(_)) => {
                "the password could not be written or queued; try again later".to_owned()
            }
            error => error.to_string(),
        }
    }
}

impl ApiError {
    /// A store failure, logged here; the answer says only that the database failed.
    pub fn store(error: crate::store::StoreError) -> Self {
        tracing::error!(%error, "admin API: store error");
        ApiError::Store
    }

    pub fn timeline(error: crate::report::TimelineError) -> Self {
        ApiError::BadQuery(match error {
            crate::report::TimelineError::EmptyRange => "`from` must be before `to`",
            crate::report::TimelineError::TooManyBuckets => {
                "the range holds more than 1000 buckets; narrow it or use bucket=day"
            }
        })
    }

    pub fn csv(error: csv::Error) -> Self {
        tracing::error!(%error, "admin API: writing CSV failed");
        ApiError::Internal
    }
}

fn capture_code(error: &CaptureError) -> &'static str {
    match error {
        CaptureError::Token(token) => token.code(),
        CaptureError::KeysUnavailable => "jwks_unavailable",
        CaptureError::PasswordTooLong => "password_too_long",
        CaptureError::NoMatch(_) => "password_no_match",
        CaptureError::TooManyAttempts { .. } => "too_many_attempts",
        CaptureError::Cognito(outcome) => cognito_code(*outcome),
        CaptureError::NoIdentity => "identity_not_found",
        CaptureError::KratosRefused(_) => "kratos_refused",
        CaptureError::NotQueued(_) => "kratos_unavailable",
        CaptureError::Hashing(_) => "internal_error",
    }
}

fn cognito_code(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::OverQuota => "cognito_over_quota",
        Outcome::CircuitOpen => "cognito_circuit_open",
        Outcome::Misconfigured => "cognito_misconfigured",
        _ => "cognito_unavailable",
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadBody(_) | ApiError::BodyUnreadable => StatusCode::BAD_REQUEST,
            // Kratos retries only 5xx and 429, so a slow client's 408 costs no Cognito attempt.
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            // 424: Kratos shows an error without retrying, so no extra Cognito attempt.
            ApiError::CognitoUnavailable
            | ApiError::CognitoMisconfigured
            | ApiError::CognitoOverQuota
            | ApiError::CognitoCircuitOpen => StatusCode::FAILED_DEPENDENCY,
            ApiError::Capture(error) => match error {
                CaptureError::Token(_) => StatusCode::UNAUTHORIZED,
                CaptureError::KeysUnavailable | CaptureError::Cognito(_) => {
                    StatusCode::FAILED_DEPENDENCY
                }
                CaptureError::PasswordTooLong => StatusCode::BAD_REQUEST,
                CaptureError::NoMatch(_) => StatusCode::FORBIDDEN,
                CaptureError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
                CaptureError::NoIdentity => StatusCode::NOT_FOUND,
                CaptureError::KratosRefused(_) => StatusCode::BAD_GATEWAY,
                CaptureError::NotQueued(_) => StatusCode::SERVICE_UNAVAILABLE,
                CaptureError::Hashing(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::CaptureBody(_) | ApiError::ConfirmBody(_) | ApiError::BadQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Store => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            // Not a decided outcome: Kratos's client retries a 503 a few times, and every
            // confirmation step can be repeated safely.
            ApiError::ConfirmNotRecorded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::Capture(CaptureError::Token(_)) => {
                response.insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""));
            }
            ApiError::Capture(CaptureError::TooManyAttempts { retry_after }) => {
                response.insert_header(("Retry-After", retry_after.as_secs().max(1).to_string()));
            }
            ApiError::Capture(CaptureError::NotQueued(_)) => {
                response.insert_header(("Retry-After", "30"));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            message: self.message(),
        })
    }
}
