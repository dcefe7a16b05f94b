//! What `reconcile` reads and writes: the rows Kratos's identities belong to, the move of users
//! whose password Kratos already holds to `migrated` via `kratos`, and a walk over every row for
//! the users Kratos lacks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::UserState;

/// A user's row as `reconcile` matches it to Kratos's identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedRow {
    pub cognito_username: String,
    pub kratos_identity_id: Option<String>,
    /// The Cognito `sub`.
    pub external_id: Option<String>,
    pub state: UserState,
}

/// Part of every [`Store`](super::Store).
#[async_trait]
pub trait ReconcileStore: Send + Sync {
    /// The rows of these identities: those whose `kratos_identity_id` is one of
    /// `identity_ids` or whose `external_id` (Cognito sub) is one of `subs`. One statement per
    /// 500 values.
    async fn rows_for_identities(
        &self,
        identity_ids: &[&str],
        subs: &[&str],
    ) -> Result<Vec<LinkedRow>, StoreError>;
    /// Move these users to `migrated` via `kratos` (`migrated_at` = `at`), those still
    /// `pending` or `needs_recovery` only (a user the hook migrated meanwhile keeps how and
    /// when), in one transaction; the usernames that moved.
    async fn mark_migrated_in_kratos(
        &self,
        cognito_usernames: &[&str],
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;
    /// Up to `limit` rows in username order, after `after` (keyset paging over every row).
    async fn rows_after(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LinkedRow>, StoreError>;
}
