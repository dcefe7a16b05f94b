//! What the admin API reads: the users list (cursor pages in username order), migrations per
//! time bucket and `via`, and counts of migrations in a time range.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::domain::UserState;

/// One user as the stragglers list shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UserListing {
    pub cognito_username: String,
    /// The verified e-mail the import recorded (lower-cased), if any.
    pub email: Option<String>,
    pub state: String,
    pub migrated_via: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The outcome of the user's newest attempt (hook or capture).
    pub last_outcome: Option<String>,
    /// The user's attempts still in the attempt log.
    pub attempts: i64,
}

/// How the timeline groups migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Day,
    Hour,
}

impl Bucket {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "day" => Some(Bucket::Day),
            "hour" => Some(Bucket::Hour),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Hour => "hour",
        }
    }

    /// The bucket's label for a time, as the store groups by it: `2026-12-01` or `2026-12-01T19`.
    pub fn label(self, at: DateTime<Utc>) -> String {
        match self {
            Bucket::Day => at.format("%Y-%m-%d").to_string(),
            Bucket::Hour => at.format("%Y-%m-%dT%H").to_string(),
        }
    }
}

/// Migrations of one bucket by one `via`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BucketCount {
    /// [`Bucket::label`] of the bucket.
    pub bucket: String,
    pub via: Option<String>,
    pub count: i64,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Up to `limit` users after `after` in username order (`""` for the first page), of one
    /// state or all.
    async fn users_page(
        &self,
        state: Option<UserState>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<UserListing>, StoreError>;
    /// Migrations with `from <= migrated_at < to`, per bucket and `via`, buckets in order.
    async fn migrations_by_bucket(
        &self,
        bucket: Bucket,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BucketCount>, StoreError>;
    /// Migrations with `from <= migrated_at < to` (`from` `None`: since the start).
    async fn migrated_between(
        &self,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
    ) -> Result<i64, StoreError>;
}
