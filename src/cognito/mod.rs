//! Cognito: every call to it (`AdminInitiateAuth` in `auth`, the user directory in
//! `directory` and its app clients in `app_clients`, the pool's description in `pool`, one
//! user's second factors in `user_mfa`, the pool's token signing keys in `jwks`,
//! SDK errors read in `sdk_error` only), the verifier boundary, and the one table that turns
//! an `AdminInitiateAuth` answer into a verdict.

mod app_clients;
mod auth;
pub mod directory;
mod health;
mod jwks;
mod pool;
mod sdk_config;
mod sdk_error;
mod user_mfa;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

pub use app_clients::{AppClient, ValidityUnit};
pub use auth::{AwsCognito, secret_hash};
pub use directory::PoolGroup;
pub use health::{CognitoHealth, OBSERVATION_TTL};
pub use jwks::{Jwks, JwksError};
pub use pool::{AttributeKind, PoolAttribute, PoolDescription};
pub use sdk_config::{sdk_config, sdk_http_client};
pub use user_mfa::{MfaFactors, UserMfa};

use sdk_error::is_unavailable_code;

use crate::config::{Policies, Policy};
use crate::domain::{CognitoUsername, Outcome, Password};

/// What Cognito said to one `AdminInitiateAuth`, before any policy is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CognitoAnswer {
    /// `AuthenticationResult` present.
    Authenticated,
    /// A challenge instead of tokens (`ChallengeName`); empty when Cognito sent neither.
    Challenge(String),
    /// An error response: the error code (`__type`, namespace stripped) and HTTP status.
    Error { code: Option<String>, status: u16 },
    /// No answer within the attempt's time budget.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The request could not even be built or signed (e.g. no AWS credentials).
    NotSent,
}

/// Who is really logging in, for `ContextData` (Cognito's threat protection).
#[derive(Debug, Clone, Copy)]
pub struct ClientContext<'a> {
    pub ip: IpAddr,
    pub user_agent: Option<&'a str>,
}

/// One password to check: whose, and who is typing it.
#[derive(Clone, Copy)]
pub struct AuthAttempt<'a> {
    pub username: &'a CognitoUsername,
    pub password: &'a Password,
    /// Sent as `ContextData` when the verifier is configured to (`cognito.send_context_data`).
    pub context: Option<ClientContext<'a>>,
}

/// One `AdminInitiateAuth` call with `ADMIN_USER_PASSWORD_AUTH`, answered within `timeout`.
#[async_trait]
pub trait CognitoVerifier: Send + Sync {
    async fn admin_initiate_auth(
        &self,
        attempt: AuthAttempt<'_>,
        timeout: Duration,
    ) -> CognitoAnswer;
}

/// Challenges that prove the password without a second factor being lost.
const PASSWORD_PROVEN_CHALLENGES: [&str; 2] = ["MFA_SETUP", "DEVICE_SRP_AUTH"];
/// Challenges that prove the password but ask for an MFA code we cannot pass.
const MFA_CHALLENGES: [&str; 4] = [
    "SMS_MFA",
    "SOFTWARE_TOKEN_MFA",
    "EMAIL_OTP",
    "SELECT_MFA_TYPE",
];

/// What an `AdminInitiateAuth` answer means for the hook. Tokens, or a challenge that proves
/// the password without losing a second factor, verify it; MFA and temporary-password
/// challenges follow their policy; a wrong password, an unknown user, a required reset, an
/// unconfirmed user and a Lambda trigger's refusal are decided refusals; throttling, transient
/// faults, timeouts and broken connections are unavailable (retried while the deadline
/// allows); anything else is a configuration error. Matches on codes, never on messages.
pub fn verdict(answer: &CognitoAnswer, policies: Policies) -> Outcome {
    match answer {
        CognitoAnswer::Authenticated => Outcome::Verified,
        CognitoAnswer::Challenge(name) => {
            let name = name.as_str();
            if PASSWORD_PROVEN_CHALLENGES.contains(&name) {
                Outcome::Verified
            } else if MFA_CHALLENGES.contains(&name) {
                match policies.mfa {
                    Policy::Deny => Outcome::MfaDenied,
                    Policy::Allow => Outcome::VerifiedMfaDropped,
                }
            } else if name == "NEW_PASSWORD_REQUIRED" {
                match policies.temporary_password {
                    Policy::Deny => Outcome::TemporaryPasswordDenied,
                    Policy::Allow => Outcome::VerifiedTemporaryPassword,
                }
            } else {
                Outcome::UnexpectedChallenge
            }
        }
        CognitoAnswer::Error { code, status } => match code.as_deref() {
            Some("NotAuthorizedException") => Outcome::NotAuthorized,
            Some("UserNotFoundException") => Outcome::UnknownUser,
            Some("PasswordResetRequiredException") => Outcome::ResetRequired,
            Some("UserNotConfirmedException") => Outcome::Unconfirmed,
            // A Lambda trigger's verdict on this one user, not a fault of our settings: one
            // refused user must not make a replica unready.
            Some("UserLambdaValidationException") => Outcome::RefusedByLambda,
            Some(code) if is_unavailable_code(code) => Outcome::Unavailable,
            _ if *status >= 500 || *status == 429 => Outcome::Unavailable,
            _ => Outcome::Misconfigured,
        },
        CognitoAnswer::Timeout | CognitoAnswer::Connection => Outcome::Unavailable,
        CognitoAnswer::NotSent => Outcome::Misconfigured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DENY: Policies = Policies {
        mfa: Policy::Deny,
        temporary_password: Policy::Deny,
    };
    const ALLOW: Policies = Policies {
        mfa: Policy::Allow,
        temporary_password: Policy::Allow,
    };

    fn challenge(name: &str) -> CognitoAnswer {
        CognitoAnswer::Challenge(name.to_owned())
    }

    fn error(code: &str, status: u16) -> CognitoAnswer {
        CognitoAnswer::Error {
            code: Some(code.to_owned()),
            status,
        }
    }

    #[test]
    fn authentication_result_is_verified() {
        assert_eq!(
            verdict(&CognitoAnswer::Authenticated, DENY),
            Outcome::Verified
        );
    }

    #[test]
    fn mfa_setup_and_device_srp_are_verified_under_any_policy() {
        for name in ["MFA_SETUP", "DEVICE_SRP_AUTH"] {
            assert_eq!(verdict(&challenge(name), DENY), Outcome::Verified);
            assert_eq!(verdict(&challenge(name), ALLOW), Outcome::Verified);
        }
    }

    #[test]
    fn mfa_challenges_follow_the_mfa_policy() {
        for name in [
            "SMS_MFA",
            "SOFTWARE_TOKEN_MFA",
            "EMAIL_OTP",
            "SELECT_MFA_TYPE",
        ] {
            assert_eq!(
                verdict(&challenge(name), DENY),
                Outcome::MfaDenied,
                "{name}"
            );
            assert_eq!(
                verdict(&challenge(name), ALLOW),
                Outcome::VerifiedMfaDropped,
                "{name}"
            );
        }
    }

    #[test]
    fn new_password_required_follows_the_temporary_password_policy() {
        let answer = challenge("NEW_PASSWORD_REQUIRED");
        assert_eq!(verdict(&answer, DENY), Outcome::TemporaryPasswordDenied);
        assert_eq!(verdict(&answer, ALLOW), Outcome::VerifiedTemporaryPassword);
        let only_mfa_allowed = Policies {
            mfa: Policy::Allow,
            temporary_password: Policy::Deny,
        };
        assert_eq!(
            verdict(&answer, only_mfa_allowed),
            Outcome::TemporaryPasswordDenied
        );
    }

    #[test]
    fn any_other_challenge_is_not_verified() {
        for name in ["CUSTOM_CHALLENGE", "PASSWORD_VERIFIER", "SMS_OTP", ""] {
            assert_eq!(
                verdict(&challenge(name), ALLOW),
                Outcome::UnexpectedChallenge
            );
        }
    }

    /// The verdict each error code gives, in a 400 answer.
    fn assert_error_verdicts(cases: &[(&str, Outcome)]) {
        for &(code, expected) in cases {
            assert_eq!(verdict(&error(code, 400), ALLOW), expected, "{code}");
        }
    }

    #[test]
    fn not_authorized_and_user_not_found_are_not_verified() {
        assert_error_verdicts(&[
            ("NotAuthorizedException", Outcome::NotAuthorized),
            ("UserNotFoundException", Outcome::UnknownUser),
        ]);
    }

    #[test]
    fn reset_required_and_unconfirmed_are_not_verified() {
        assert_error_verdicts(&[
            ("PasswordResetRequiredException", Outcome::ResetRequired),
            ("UserNotConfirmedException", Outcome::Unconfirmed),
        ]);
    }

    #[test]
    fn a_lambda_trigger_refusing_the_user_is_a_decided_refusal() {
        for status in [400, 500] {
            let outcome = verdict(&error("UserLambdaValidationException", status), ALLOW);
            assert_eq!(outcome, Outcome::RefusedByLambda, "HTTP {status}");
            assert!(outcome.is_decided());
        }
    }

    #[test]
    fn throttling_internal_errors_timeouts_and_connections_are_unavailable() {
        for answer in [
            error("TooManyRequestsException", 400),
            error("LimitExceededException", 400),
            error("InternalErrorException", 500),
            CognitoAnswer::Error {
                code: None,
                status: 503,
            },
            CognitoAnswer::Error {
                code: None,
                status: 429,
            },
            CognitoAnswer::Timeout,
            CognitoAnswer::Connection,
        ] {
            assert_eq!(verdict(&answer, DENY), Outcome::Unavailable, "{answer:?}");
        }
    }

    #[test]
    fn configuration_errors_are_misconfigured() {
        for answer in [
            error("InvalidParameterException", 400),
            error("ResourceNotFoundException", 400),
            error("AccessDeniedException", 400),
            error("UnrecognizedClientException", 400),
            CognitoAnswer::Error {
                code: None,
                status: 400,
            },
            CognitoAnswer::NotSent,
        ] {
            assert_eq!(
                verdict(&answer, ALLOW),
                Outcome::Misconfigured,
                "{answer:?}"
            );
        }
    }

    #[test]
    fn messages_never_change_the_verdict() {
        // A decided code wins over a 5xx status, so a proxy's status cannot flip it.
        assert_eq!(
            verdict(&error("NotAuthorizedException", 500), DENY),
            Outcome::NotAuthorized
        );
    }
}
