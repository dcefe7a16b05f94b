//! The service behind Kratos's confirmation hooks (`/hooks/login-after`,
//! `/hooks/settings-after`): read the identity from the body Kratos rendered with our jsonnet,
//! record the event on the user's row within a time limit, say what it did.
//! Kratos calls these with `response.ignore: true`: it never waits for us and never shows our
//! answer to the user.

mod request;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

pub use request::{ConfirmBodyError, ConfirmRequest};

use crate::domain::redact;
use crate::metrics::Metrics;
use crate::store::{ConfirmOutcome, Store, StoreError};

/// The most a confirmation may wait for the store: Kratos's own client gives up after 30 s,
/// and a store this slow is better answered with a 503 (Kratos then tries again).
const STORE_BUDGET: Duration = Duration::from_secs(3);

/// Which confirmation hook Kratos called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmHook {
    /// `selfservice.flows.login.after.password.hooks`: a password login Kratos let in.
    LoginAfter,
    /// `selfservice.flows.settings.after.password.hooks`: a password the user set in Kratos.
    SettingsAfter,
}

impl ConfirmHook {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmHook::LoginAfter => "login_after",
            ConfirmHook::SettingsAfter => "settings_after",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("the database did not record the event: {0}")]
    Store(#[from] StoreError),
}

pub struct ConfirmService {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl ConfirmService {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }

    /// Record `hook`'s event for the identity in `request`, now. `request_id`: Kratos's
    /// `Ory-Webhook-Request-ID`, for the log lines of the call.
    #[tracing::instrument(
        skip_all,
        fields(hook = hook.as_str(), identity_id = request.identity_id(), request_id)
    )]
    pub async fn record(
        &self,
        hook: ConfirmHook,
        request: &ConfirmRequest,
        request_id: Option<&str>,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        if let Some(request_id) = request_id {
            tracing::Span::current().record("request_id", request_id);
        }
        let identity = request.identity();
        let at = Utc::now();
        let write = async {
            match hook {
                ConfirmHook::LoginAfter => self.store.confirm_login(identity, at).await,
                ConfirmHook::SettingsAfter => self.store.password_set_in_kratos(identity, at).await,
            }
        };
        let error = match tokio::time::timeout(STORE_BUDGET, write).await {
            Ok(Ok(outcome)) => {
                self.note(hook, outcome, request);
                return Ok(outcome);
            }
            Ok(Err(error)) => error,
            Err(_) => StoreError::Timeout,
        };
        tracing::error!(%error, "recording the confirmation failed");
        self.metrics.store_error("confirm");
        self.metrics.confirmation(hook.as_str(), "store_error");
        Err(error.into())
    }

    fn note(&self, hook: ConfirmHook, outcome: ConfirmOutcome, request: &ConfirmRequest) {
        let result = match outcome {
            ConfirmOutcome::IdentityMismatch => "identity_mismatch",
            outcome => outcome.as_str(),
        };
        self.metrics.confirmation(hook.as_str(), result);
        match outcome {
            ConfirmOutcome::NoMatch | ConfirmOutcome::IdentityMismatch => tracing::info!(
                outcome = ?outcome,
                email = request.email().map(redact).as_deref(),
                "no user row for this Kratos identity"
            ),
            _ => tracing::info!(outcome = outcome.as_str(), "confirmation recorded"),
        }
    }
}
