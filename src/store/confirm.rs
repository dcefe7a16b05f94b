//! What Kratos's confirmation hooks change (`/hooks/login-after`, `/hooks/settings-after`):
//! a native Kratos login or a password set in Kratos, recorded on the user's row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;

/// The Kratos identity a confirmation hook is about.
#[derive(Debug, Clone, Copy)]
pub struct KratosIdentityRef<'a> {
    pub identity_id: &'a str,
    /// The identity's `external_id` (the Cognito `sub`; Kratos v25.4.0+ only).
    pub external_id: Option<&'a str>,
}

/// What a confirmation did to the user's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The row was `pending` or `needs_recovery` and is now `migrated` (via `kratos` for a
    /// login, `reset` for a password set in Kratos).
    Migrated,
    /// The row was `migrated` and this is its first native Kratos login (`confirmed_at`).
    Confirmed,
    /// Nothing moved: only `last_seen_at` (a migrated user already confirmed, a password
    /// changed by a migrated user, or a row in another state).
    Seen,
    /// No row carries the identity id or the external id.
    NoMatch,
    /// The identity id and the external id name two different rows: nothing is written.
    IdentityMismatch,
}

impl ConfirmOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmOutcome::Migrated => "migrated",
            ConfirmOutcome::Confirmed => "confirmed",
            ConfirmOutcome::Seen => "seen",
            ConfirmOutcome::NoMatch | ConfirmOutcome::IdentityMismatch => "no_match",
        }
    }
}

/// What the confirmation hooks write; part of every [`Store`](super::Store). The row is
/// found by the binding rule's id half ([`super::Resolution::by_identity`]).
#[async_trait]
pub trait ConfirmStore: Send + Sync {
    /// A native Kratos login at `at`: a `pending` or `needs_recovery` row becomes `migrated`
    /// via `kratos` (Kratos holds a password we did not see arrive) with `migrated_at`,
    /// `confirmed_at` and `last_seen_at`; a `migrated` row keeps its `via` and gets
    /// `confirmed_at` (first time only) and `last_seen_at`; a row in another state gets only
    /// `last_seen_at`. `last_seen_at` never goes back in time.
    async fn confirm_login(
        &self,
        identity: KratosIdentityRef<'_>,
        at: DateTime<Utc>,
    ) -> Result<ConfirmOutcome, StoreError>;
    /// The user set a new password in Kratos at `at` (settings flow, after recovery or
    /// not): a `pending` or `needs_recovery` row becomes `migrated` via `reset` with
    /// `migrated_at` and `last_seen_at`; any other row gets only `last_seen_at` (a migrated
    /// user keeps `via` and `migrated_at`: the migration happened before).
    async fn password_set_in_kratos(
        &self,
        identity: KratosIdentityRef<'_>,
        at: DateTime<Utc>,
    ) -> Result<ConfirmOutcome, StoreError>;
}
