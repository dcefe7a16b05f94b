//! What `finalize` (the cutover) reads and writes: the rows still waiting for the hook
//! (`pending` or `needs_recovery`, not finalized), how many hook calls arrived lately, and the
//! mark that a row's flag is gone from Kratos.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::UserState;

/// A row `finalize` still has to handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizeRow {
    pub cognito_username: String,
    /// The verified e-mail as the import last saw it (lower case), for the mailer.
    pub email: Option<String>,
    pub kratos_identity_id: Option<String>,
    pub state: UserState,
}

/// Part of every [`Store`](super::Store).
#[async_trait]
pub trait FinalizeStore: Send + Sync {
    /// Up to `limit` rows `pending` or `needs_recovery` without `finalized_at`, in username
    /// order after `after` (keyset paging).
    async fn rows_to_finalize(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FinalizeRow>, StoreError>;
    /// How many rows [`rows_to_finalize`](Self::rows_to_finalize) would walk.
    async fn count_to_finalize(&self) -> Result<i64, StoreError>;
    /// Attempt rows (hook, capture, guard claims) written at or after `since`.
    async fn attempts_since(&self, since: DateTime<Utc>) -> Result<i64, StoreError>;
    /// Move the user to `needs_recovery` with `finalized_at` = `at`, if it is still `pending`
    /// or `needs_recovery` and not finalized; whether it moved.
    async fn mark_finalized(
        &self,
        cognito_username: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
