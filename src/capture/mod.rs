//! The capture service behind `POST /capture/password` (Strategy C): an app still on Cognito
//! forwards a password right after a Cognito login, with the user's token. In order: the token
//! (`token.rs`), the user's state (a migrated user is never overwritten), the password against
//! Cognito through the hook's guard and quota guard, bcrypt off the async workers
//! (`hasher.rs`), and the hash written into the user's Kratos identity; while Kratos is
//! unavailable the hash waits in the outbox for the background worker (`outbox.rs`).

mod delivery;
mod hasher;
mod outbox;
mod token;

use std::sync::Arc;
use std::time::Duration;

pub use delivery::{Delivered, Delivery, Recipient};
pub use hasher::{HashError, Hasher, MAX_PASSWORD_BYTES};
pub use outbox::{OUTBOX_POLL, deliver_due, deliver_forever, refresh_gauges};
pub use token::{LEEWAY, TokenCheckError, TokenError, TokenUser, TokenVerifier};

use crate::cognito::ClientContext;
use crate::config::CaptureConfig;
use crate::domain::{CognitoUsername, Outcome, Password, PasswordHash, UserState};
use crate::hook::{HookService, RequestMeta};
use crate::store::{NewCapture, Store};

/// The longest a capture waits for its user's row.
const STORE_BUDGET: Duration = Duration::from_millis(500);

/// What a capture achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureAnswer {
    /// The hash is in Kratos; the user is `migrated` via `capture`.
    Captured,
    /// Kratos was unavailable: the hash waits in the outbox.
    Queued,
    /// The user is migrated already (or Kratos holds a password for them): nothing written.
    AlreadyMigrated,
}

impl CaptureAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureAnswer::Captured => "captured",
            CaptureAnswer::Queued => "queued",
            CaptureAnswer::AlreadyMigrated => "already_migrated",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the user pool's signing keys could not be fetched")]
    KeysUnavailable,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes: Kratos could not check it")]
    PasswordTooLong,
    /// Cognito did not verify the password (any verdict but a match).
    #[error("the password was not verified by Cognito")]
    NoMatch(Outcome),
    #[error("too many failed attempts for this user or address")]
    TooManyAttempts { retry_after: Duration },
    /// Cognito undecided: unavailable, over quota, circuit open or misconfigured.
    #[error("Cognito did not decide")]
    Cognito(Outcome),
    #[error("no Kratos identity belongs to this user (has `import` run?)")]
    NoIdentity,
    #[error("Kratos refused the password write: {0}")]
    KratosRefused(String),
    #[error("Kratos is unavailable and the hash could not be queued: {0}")]
    NotQueued(String),
    #[error("hashing failed: {0}")]
    Hashing(String),
}

impl CaptureError {
    /// The metric label of this answer.
    pub fn result(&self) -> &'static str {
        match self {
            CaptureError::Token(_) => "token_invalid",
            CaptureError::KeysUnavailable => "keys_unavailable",
            CaptureError::PasswordTooLong => "password_too_long",
            CaptureError::NoMatch(_) => "password_no_match",
            CaptureError::TooManyAttempts { .. } => "too_many_attempts",
            CaptureError::Cognito(_) => "cognito_unavailable",
            CaptureError::NoIdentity => "no_identity",
            CaptureError::KratosRefused(_) => "kratos_refused",
            CaptureError::NotQueued(_) => "not_queued",
            CaptureError::Hashing(_) => "hashing_failed",
        }
    }
}

/// One call of the endpoint, as the handler read it.
pub struct CaptureRequest<'a> {
    /// From `Authorization: Bearer …`.
    pub token: Option<&'a str>,
    pub password: Password,
    pub context: Option<ClientContext<'a>>,
    pub meta: &'a RequestMeta,
}

pub struct CaptureService {
    tokens: Arc<TokenVerifier>,
    hooks: Arc<HookService>,
    hasher: Hasher,
    delivery: Arc<Delivery>,
    store: Arc<dyn Store>,
    kratos_timeout: Duration,
}

impl CaptureService {
    pub fn new(
        config: &CaptureConfig,
        hooks: Arc<HookService>,
        delivery: Arc<Delivery>,
        store: Arc<dyn Store>,
    ) -> Self {
        Self {
            tokens: Arc::new(TokenVerifier::new(config)),
            hooks,
            hasher: Hasher::new(config.bcrypt_cost, config.hash_threads.get()),
            delivery,
            store,
            kratos_timeout: config.kratos_timeout,
        }
    }

    /// The token checker, to warm its key cache from a task of its own.
    pub fn tokens_handle(&self) -> Arc<TokenVerifier> {
        self.tokens.clone()
    }

    pub fn delivery(&self) -> Arc<Delivery> {
        self.delivery.clone()
    }

    /// One capture.
    #[tracing::instrument(name = "capture", skip_all, fields(
        user = tracing::field::Empty,
        result = tracing::field::Empty,
    ))]
    pub async fn capture(
        &self,
        request: CaptureRequest<'_>,
    ) -> Result<CaptureAnswer, CaptureError> {
        let answer = self.run(request).await;
        let result = match &answer {
            Ok(answer) => answer.as_str(),
            Err(error) => error.result(),
        };
        self.delivery.metrics.capture_answered(result);
        tracing::Span::current().record("result", result);
        match &answer {
            Err(
                error @ (CaptureError::KratosRefused(_)
                | CaptureError::NotQueued(_)
                | CaptureError::Hashing(_)),
            ) => {
                tracing::error!(%error, "capture failed");
            }
            Err(error) => tracing::info!(%error, "capture refused"),
            Ok(answer) => tracing::info!(result = answer.as_str(), "capture answered"),
        }
        answer
    }

    async fn run(&self, request: CaptureRequest<'_>) -> Result<CaptureAnswer, CaptureError> {
        let CaptureRequest {
            token,
            password,
            context,
            meta,
        } = request;
        let token = token.ok_or(TokenError::Missing)?;
        let now = chrono::Utc::now();
        let user =
            self.tokens
                .verify(token, now.timestamp())
                .await
                .map_err(|error| match error {
                    TokenCheckError::Invalid(error) => CaptureError::Token(error),
                    TokenCheckError::KeysUnavailable(reason) => {
                        tracing::warn!(%reason, "cannot check capture tokens");
                        CaptureError::KeysUnavailable
                    }
                })?;
        tracing::Span::current().record("user", user.username.redacted());
        if password.expose().len() > MAX_PASSWORD_BYTES {
            return Err(CaptureError::PasswordTooLong);
        }
        let row = self.user_row(&user.username).await;
        if row
            .as_ref()
            .is_some_and(|row| row.state == UserState::Migrated)
        {
            return Ok(CaptureAnswer::AlreadyMigrated);
        }
        let outcome = self
            .hooks
            .verify_user(&user.username, &password, context, meta)
            .await;
        match outcome {
            outcome if outcome.is_match() => {}
            Outcome::RefusedLocally => {
                return Err(CaptureError::TooManyAttempts {
                    retry_after: self.hooks.guard_window(),
                });
            }
            outcome if !outcome.is_decided() => return Err(CaptureError::Cognito(outcome)),
            outcome => return Err(CaptureError::NoMatch(outcome)),
        }
        let hash = self
            .hasher
            .hash(&password)
            .await
            .map_err(|error| match error {
                HashError::TooLong => CaptureError::PasswordTooLong,
                HashError::Failed(reason) => CaptureError::Hashing(reason),
            })?;
        drop(password);
        let identity_id = row.as_ref().and_then(|row| row.kratos_identity_id.clone());
        let mut identifiers = Vec::new();
        if let Some(email) = user.email.as_deref() {
            identifiers.push(email);
        }
        identifiers.push(user.username.as_str());
        let recipient = Recipient {
            username: user.username.as_str(),
            identity_id: identity_id.as_deref(),
            sub: Some(&user.sub),
            identifiers,
        };
        let delivered = tokio::time::timeout(
            self.kratos_timeout,
            self.delivery.deliver(&recipient, &hash),
        )
        .await;
        match delivered {
            Ok(Ok(Delivered::Written(identity_id))) => {
                self.migrated(user.username.as_str(), &identity_id).await;
                Ok(CaptureAnswer::Captured)
            }
            Ok(Ok(Delivered::AlreadySet)) => {
                tracing::info!("Kratos holds a password for this user already; left alone");
                Ok(CaptureAnswer::AlreadyMigrated)
            }
            Ok(Ok(Delivered::NoIdentity)) => Err(CaptureError::NoIdentity),
            Ok(Err(error)) if !error.is_transient() => {
                Err(CaptureError::KratosRefused(error.to_string()))
            }
            Ok(Err(error)) => self.queue(&recipient, &hash, &error.to_string()).await,
            Err(_) => {
                self.queue(
                    &recipient,
                    &hash,
                    "no answer within capture.kratos_timeout_ms",
                )
                .await
            }
        }
    }

    async fn user_row(&self, username: &CognitoUsername) -> Option<crate::store::UserRecord> {
        match tokio::time::timeout(STORE_BUDGET, self.store.user(username.as_str())).await {
            Ok(Ok(row)) => row,
            Ok(Err(error)) => {
                self.delivery.metrics.store_error("capture_lookup");
                tracing::warn!(%error, "user lookup failed; Kratos decides whether a password is set");
                None
            }
            Err(_) => {
                self.delivery.metrics.store_error("capture_lookup");
                tracing::warn!("user lookup timed out; Kratos decides whether a password is set");
                None
            }
        }
    }

    async fn migrated(&self, username: &str, identity_id: &str) {
        if let Err(error) = self
            .store
            .complete_capture(username, identity_id, chrono::Utc::now())
            .await
        {
            self.delivery.metrics.store_error("capture_complete");
            tracing::error!(%error, "the password is in Kratos, but the user's row could not be marked migrated");
        }
    }

    async fn queue(
        &self,
        recipient: &Recipient<'_>,
        hash: &PasswordHash,
        why: &str,
    ) -> Result<CaptureAnswer, CaptureError> {
        tracing::warn!(
            reason = why,
            "Kratos unavailable; the hash waits in the outbox"
        );
        let capture = NewCapture {
            cognito_username: recipient.username,
            kratos_identity_id: recipient.identity_id,
            cognito_sub: recipient.sub,
            password_hash: hash,
            at: chrono::Utc::now(),
        };
        match self.store.enqueue_capture(&capture).await {
            Ok(()) => {
                self.delivery.queued.notify_one();
                Ok(CaptureAnswer::Queued)
            }
            Err(error) => {
                self.delivery.metrics.store_error("capture_enqueue");
                Err(CaptureError::NotQueued(error.to_string()))
            }
        }
    }
}
