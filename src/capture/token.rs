//! The Cognito token a capture comes with: RS256 against the pool's keys, the pool's issuer,
//! `token_use` `id` (then `aud`) or `access` (then `client_id`) naming an allowed app client,
//! not expired, and a login (`auth_time`) recent enough. The Cognito username is taken from
//! the token, never from the request body.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::cognito::{Jwks, JwksError};
use crate::config::CaptureConfig;
use crate::domain::CognitoUsername;

/// Clock skew allowed between Cognito and us, on `exp` and `auth_time`.
pub const LEEWAY: Duration = Duration::from_secs(10);

/// Why a token was refused. The code goes into the 401 body: it tells the app's developers what
/// to fix, and nothing an attacker holding the token does not know already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no `Authorization: Bearer <Cognito ID or access token>` header")]
    Missing,
    #[error("the token is not a JWT signed with RS256")]
    Malformed,
    #[error("the token is not signed with one of the user pool's keys")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was not issued by the configured user pool")]
    WrongIssuer,
    #[error("the token's `token_use` is neither `id` nor `access`")]
    WrongUse,
    #[error("the token was issued to an app client not in capture.app_client_ids")]
    WrongClient,
    #[error("the Cognito login behind the token is older than capture.max_token_age_secs")]
    TooOld,
    #[error("the token lacks a claim capture needs (auth_time, the username)")]
    MissingClaim,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::Missing => "token_missing",
            TokenError::Malformed => "token_malformed",
            TokenError::UnknownKey => "token_unknown_key",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::WrongIssuer => "token_wrong_issuer",
            TokenError::WrongUse => "token_wrong_use",
            TokenError::WrongClient => "token_wrong_client",
            TokenError::TooOld => "token_too_old",
            TokenError::MissingClaim => "token_missing_claim",
        }
    }
}

/// A token refused, or the keys to check it with out of reach.
#[derive(Debug, thiserror::Error)]
pub enum TokenCheckError {
    #[error(transparent)]
    Invalid(#[from] TokenError),
    #[error("{0}")]
    KeysUnavailable(String),
}

/// Whose login a verified token proves.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub username: CognitoUsername,
    /// The user's `sub`: the external id of their Kratos identity.
    pub sub: String,
    /// The ID token's `email`, when it carries one (a lookup hint on Kratos v1.3.x).
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    token_use: Option<String>,
    aud: Option<Audience>,
    client_id: Option<String>,
    auth_time: Option<i64>,
    sub: Option<String>,
    #[serde(rename = "cognito:username")]
    cognito_username: Option<String>,
    username: Option<String>,
    email: Option<String>,
}

/// `aud` as one string or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains_any(&self, allowed: &HashSet<String>) -> bool {
        match self {
            Audience::One(aud) => allowed.contains(aud),
            Audience::Many(auds) => auds.iter().any(|aud| allowed.contains(aud)),
        }
    }
}

pub struct TokenVerifier {
    jwks: Jwks,
    validation: Validation,
    app_client_ids: HashSet<String>,
    max_age: Duration,
}

impl TokenVerifier {
    pub fn new(config: &CaptureConfig) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.set_issuer(&config.issuers);
        validation.set_required_spec_claims(&["exp", "iss"]);
        // Access tokens carry no `aud`: the app client is checked below, per `token_use`.
        validation.validate_aud = false;
        validation.leeway = LEEWAY.as_secs();
        Self {
            jwks: Jwks::new(config.jwks_url.clone(), config.jwks_refresh),
            validation,
            app_client_ids: config.app_client_ids.iter().cloned().collect(),
            max_age: config.max_token_age,
        }
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Check `token` at `now` (seconds since the epoch).
    pub async fn verify(&self, token: &str, now: i64) -> Result<TokenUser, TokenCheckError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Malformed.into());
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.jwks.key(&kid).await.map_err(|error| match error {
            JwksError::UnknownKey => TokenCheckError::Invalid(TokenError::UnknownKey),
            JwksError::Unavailable(reason) => TokenCheckError::KeysUnavailable(reason),
        })?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
                _ => TokenError::Malformed,
            })?
            .claims;
        Ok(self.check_claims(claims, now)?)
    }

    fn check_claims(&self, claims: Claims, now: i64) -> Result<TokenUser, TokenError> {
        let (client_ok, username) = match claims.token_use.as_deref() {
            Some("id") => (
                claims
                    .aud
                    .as_ref()
                    .is_some_and(|aud| aud.contains_any(&self.app_client_ids)),
                claims.cognito_username,
            ),
            Some("access") => (
                claims
                    .client_id
                    .as_ref()
                    .is_some_and(|client| self.app_client_ids.contains(client)),
                claims.username,
            ),
            _ => return Err(TokenError::WrongUse),
        };
        if !client_ok {
            return Err(TokenError::WrongClient);
        }
        let auth_time = claims.auth_time.ok_or(TokenError::MissingClaim)?;
        let leeway = LEEWAY.as_secs() as i64;
        if auth_time > now + leeway {
            return Err(TokenError::Malformed);
        }
        if now - auth_time > self.max_age.as_secs() as i64 + leeway {
            return Err(TokenError::TooOld);
        }
        let username = username
            .as_deref()
            .and_then(CognitoUsername::parse)
            .ok_or(TokenError::MissingClaim)?;
        let sub = claims
            .sub
            .filter(|sub| !sub.is_empty())
            .ok_or(TokenError::MissingClaim)?;
        Ok(TokenUser {
            username,
            sub,
            email: claims.email,
        })
    }
}
