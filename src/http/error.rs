//! The one JSON error contract of the HTTP layer, and its mapping to status codes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

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
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
        }
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
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
        })
    }
}
