//! The one place that reads AWS SDK errors: what an error means as a [`CognitoAnswer`], and
//! the tables of Cognito error codes that decide what callers do next.

use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response;

use super::CognitoAnswer;

/// Error codes that mean "Cognito could not decide now". `TooManyRequestsException`,
/// `LimitExceededException` and `InternalErrorException` are Cognito's own; the rest are
/// AWS-wide throttling and transient codes that arrive with a 4xx status and would otherwise
/// read as configuration errors.
const UNAVAILABLE_CODES: [&str; 7] = [
    "TooManyRequestsException",
    "LimitExceededException",
    "InternalErrorException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestTimeoutException",
    "ServiceUnavailableException",
];

/// Error codes that mean "too fast": wait longer, slow down, try again.
const THROTTLING_CODES: [&str; 4] = [
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];

/// Whether `code` says Cognito could not decide now (throttled or a transient fault).
pub(super) fn is_unavailable_code(code: &str) -> bool {
    UNAVAILABLE_CODES.contains(&code)
}

/// Whether `code` says we are calling too fast.
pub(super) fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// An SDK error, read once: what Cognito answered and, when it said, its message.
#[derive(Debug)]
pub(super) struct SdkFailure {
    pub answer: CognitoAnswer,
    pub message: Option<String>,
}

impl SdkFailure {
    pub fn read<E: ProvideErrorMetadata, R>(error: &SdkError<E, Response<R>>) -> Self {
        Self {
            answer: answer_for_error(error),
            message: error.message().map(str::to_owned),
        }
    }

    /// The error code Cognito sent (`__type`, namespace stripped), if any.
    pub fn error_code(&self) -> Option<&str> {
        match &self.answer {
            CognitoAnswer::Error { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// What an SDK error says about the call: Cognito's error code and HTTP status, a timeout, a
/// broken connection, or a request that was never sent.
pub(super) fn answer_for_error<E: ProvideErrorMetadata, R>(
    error: &SdkError<E, Response<R>>,
) -> CognitoAnswer {
    match error {
        SdkError::ServiceError(context) => CognitoAnswer::Error {
            code: context.err().code().map(str::to_owned),
            status: context.raw().status().as_u16(),
        },
        SdkError::ResponseError(context) => CognitoAnswer::Error {
            code: None,
            status: context.raw().status().as_u16(),
        },
        SdkError::TimeoutError(_) => CognitoAnswer::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => CognitoAnswer::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_user() => CognitoAnswer::NotSent,
        SdkError::ConstructionFailure(_) => CognitoAnswer::NotSent,
        _ => CognitoAnswer::Connection,
    }
}

/// Worth retrying a listing: timeouts, broken connections, any 5xx, and the codes that say
/// Cognito could not decide now.
pub(super) fn is_unavailable(answer: &CognitoAnswer) -> bool {
    match answer {
        CognitoAnswer::Timeout | CognitoAnswer::Connection => true,
        CognitoAnswer::Error { status, .. } if *status >= 500 => true,
        CognitoAnswer::Error {
            code: Some(code), ..
        } => is_unavailable_code(code),
        _ => false,
    }
}

/// What went wrong, for an error message: Cognito's own message when it sent one.
pub(super) fn describe(answer: &CognitoAnswer, message: Option<&str>) -> String {
    match (answer, message) {
        (_, Some(message)) => message.to_owned(),
        (CognitoAnswer::Timeout, None) => "timed out".to_owned(),
        (CognitoAnswer::Connection, None) => "connection failed".to_owned(),
        (CognitoAnswer::NotSent, None) => {
            "the request could not be signed (are AWS credentials available?)".to_owned()
        }
        (CognitoAnswer::Error { code, status }, None) => {
            format!("HTTP {status} {}", code.as_deref().unwrap_or(""))
        }
        (other, None) => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_timeouts_5xx_and_transient_codes() {
        let error = |code: Option<&str>, status| CognitoAnswer::Error {
            code: code.map(str::to_owned),
            status,
        };
        assert!(is_unavailable(&CognitoAnswer::Timeout));
        assert!(is_unavailable(&CognitoAnswer::Connection));
        assert!(is_unavailable(&error(None, 503)));
        assert!(is_unavailable(&error(Some("InternalErrorException"), 400)));
        assert!(!is_unavailable(&error(
            Some("ResourceNotFoundException"),
            400
        )));
        assert!(!is_unavailable(&CognitoAnswer::NotSent));
    }

    #[test]
    fn every_throttling_code_also_means_unavailable() {
        for code in THROTTLING_CODES {
            assert!(is_throttling_code(code), "{code}");
            assert!(is_unavailable_code(code), "{code}");
        }
        assert!(!is_throttling_code("InternalErrorException"));
        assert!(is_unavailable_code("InternalErrorException"));
        assert!(!is_unavailable_code("NotAuthorizedException"));
    }
}
