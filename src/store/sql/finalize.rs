//! SQL of `finalize` ([`crate::store::FinalizeStore`]), the same for both backends, and its
//! `impl`.

use crate::store::{FinalizeRow, StoreError, state_from_db};

/// `$1` the last username of the previous page (`NULL`: from the start), `$2` how many.
pub const ROWS_TO_FINALIZE: &str = "
SELECT cognito_username, email_normalized, kratos_identity_id, state FROM users
WHERE state IN ('pending', 'needs_recovery') AND finalized_at IS NULL
  AND ($1 IS NULL OR cognito_username > $1)
ORDER BY cognito_username LIMIT $2";

pub const COUNT_TO_FINALIZE: &str = "
SELECT COUNT(*) FROM users
WHERE state IN ('pending', 'needs_recovery') AND finalized_at IS NULL";

pub const ATTEMPTS_SINCE: &str = "SELECT COUNT(*) FROM attempts WHERE at >= $1";

/// `$1` when, `$2` the username. The user_counts triggers see the state change.
pub const MARK_FINALIZED: &str = "
UPDATE users SET state = 'needs_recovery', finalized_at = $1, updated_at = $1
WHERE cognito_username = $2 AND state IN ('pending', 'needs_recovery')
  AND finalized_at IS NULL";

/// A row of [`ROWS_TO_FINALIZE`], its state not parsed yet.
#[derive(sqlx::FromRow)]
pub struct FinalizeRowRaw {
    cognito_username: String,
    email_normalized: Option<String>,
    kratos_identity_id: Option<String>,
    state: String,
}

impl TryFrom<FinalizeRowRaw> for FinalizeRow {
    type Error = StoreError;

    fn try_from(row: FinalizeRowRaw) -> Result<Self, StoreError> {
        Ok(FinalizeRow {
            cognito_username: row.cognito_username,
            email: row.email_normalized,
            kratos_identity_id: row.kratos_identity_id,
            state: state_from_db(row.state)?,
        })
    }
}

/// `impl FinalizeStore` for a backend, the same for both.
macro_rules! finalize_store_impl {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use $crate::store::sql::finalize::{self, FinalizeRowRaw};
            use $crate::store::{FinalizeRow, StoreError};

            #[async_trait::async_trait]
            impl $crate::store::FinalizeStore for $store {
                async fn rows_to_finalize(
                    &self,
                    after: Option<&str>,
                    limit: i64,
                ) -> Result<Vec<FinalizeRow>, StoreError> {
                    let raw: Vec<FinalizeRowRaw> = sqlx::query_as(finalize::ROWS_TO_FINALIZE)
                        .bind(after)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                    raw.into_iter().map(FinalizeRow::try_from).collect()
                }

                async fn count_to_finalize(&self) -> Result<i64, StoreError> {
                    let (count,): (i64,) = sqlx::query_as(finalize::COUNT_TO_FINALIZE)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(count)
                }

                async fn attempts_since(&self, since: DateTime<Utc>) -> Result<i64, StoreError> {
                    let (count,): (i64,) = sqlx::query_as(finalize::ATTEMPTS_SINCE)
                        .bind(since)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(count)
                }

                async fn mark_finalized(
                    &self,
                    cognito_username: &str,
                    at: DateTime<Utc>,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(finalize::MARK_FINALIZED)
                        .bind(at)
                        .bind(cognito_username)
                        .execute(&self.writer)
                        .await?;
                    Ok(done.rows_affected() == 1)
                }
            }
        };
    };
}

pub(crate) use finalize_store_impl;
