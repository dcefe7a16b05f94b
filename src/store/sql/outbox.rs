//! SQL of the capture outbox ([`crate::store::CaptureStore`]), the same for both backends.

use chrono::{DateTime, Utc};

use crate::domain::PasswordHash;
use crate::store::OutboxEntry;

/// `$1` username, `$2` Kratos identity id, `$3` hash, `$4` now, `$5` Cognito sub.
pub const ENQUEUE: &str = "
INSERT INTO capture_outbox (cognito_username, kratos_identity_id, password_hash, created_at,
                            attempts, next_attempt_at, last_error, cognito_sub)
VALUES ($1, $2, $3, $4, 0, $4, NULL, $5)
ON CONFLICT (cognito_username) DO UPDATE SET
    kratos_identity_id = COALESCE(excluded.kratos_identity_id, capture_outbox.kratos_identity_id),
    cognito_sub = COALESCE(excluded.cognito_sub, capture_outbox.cognito_sub),
    password_hash = excluded.password_hash, created_at = excluded.created_at, attempts = 0,
    next_attempt_at = excluded.next_attempt_at, last_error = NULL";

/// `$1` now, `$2` lease end, `$3` how many. The outer `next_attempt_at <= $1` is checked
/// again on a row another worker changed meanwhile (Postgres re-reads a row it waited for),
/// so an entry is never taken twice.
pub const CLAIM_DUE: &str = "
UPDATE capture_outbox SET next_attempt_at = $2, attempts = attempts + 1
WHERE next_attempt_at <= $1 AND cognito_username IN (
    SELECT cognito_username FROM capture_outbox WHERE next_attempt_at <= $1
    ORDER BY next_attempt_at LIMIT $3)
RETURNING cognito_username, kratos_identity_id, cognito_sub, password_hash, created_at, attempts";

/// `$1` username, `$2` next attempt, `$3` error.
pub const POSTPONE: &str = "
UPDATE capture_outbox SET next_attempt_at = $2, last_error = $3 WHERE cognito_username = $1";

/// `$1` username.
pub const DROP: &str = "DELETE FROM capture_outbox WHERE cognito_username = $1";

/// `$1` username, `$2` normalised username, `$3` Kratos identity id, `$4` now. A user already
/// migrated keeps how and when; the identity id is kept when the row has one.
pub const MARK_CAPTURED: &str = "
INSERT INTO users (cognito_username, username_normalized, kratos_identity_id, state,
                   migrated_via, created_at, updated_at, migrated_at)
VALUES ($1, $2, $3, 'migrated', 'capture', $4, $4, $4)
ON CONFLICT (cognito_username) DO UPDATE SET
    migrated_via = CASE WHEN users.state = 'migrated' THEN users.migrated_via ELSE 'capture' END,
    migrated_at = CASE WHEN users.state = 'migrated' THEN users.migrated_at ELSE $4 END,
    state = 'migrated',
    kratos_identity_id = COALESCE(users.kratos_identity_id, $3),
    updated_at = $4";

pub const DEPTH: &str = "SELECT COUNT(*) FROM capture_outbox";
pub const OLDEST: &str = "SELECT created_at FROM capture_outbox ORDER BY created_at LIMIT 1";

/// A `CLAIM_DUE` row.
#[derive(sqlx::FromRow)]
pub struct EntryRow {
    cognito_username: String,
    kratos_identity_id: Option<String>,
    cognito_sub: Option<String>,
    password_hash: String,
    created_at: DateTime<Utc>,
    attempts: i32,
}

impl From<EntryRow> for OutboxEntry {
    fn from(row: EntryRow) -> Self {
        OutboxEntry {
            cognito_username: row.cognito_username,
            kratos_identity_id: row.kratos_identity_id,
            cognito_sub: row.cognito_sub,
            password_hash: PasswordHash::new(row.password_hash),
            created_at: row.created_at,
            attempts: row.attempts,
        }
    }
}

/// `impl CaptureStore` for a backend, the same for both.
macro_rules! outbox_store_impl {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use $crate::store::sql::outbox;
            use $crate::store::{NewCapture, OutboxEntry, OutboxStatus, StoreError};

            #[async_trait::async_trait]
            impl $crate::store::CaptureStore for $store {
                async fn enqueue_capture(
                    &self,
                    capture: &NewCapture<'_>,
                ) -> Result<(), StoreError> {
                    sqlx::query(outbox::ENQUEUE)
                        .bind(capture.cognito_username)
                        .bind(capture.kratos_identity_id)
                        .bind(capture.password_hash.expose())
                        .bind(capture.at)
                        .bind(capture.cognito_sub)
                        .execute(&self.writer)
                        .await?;
                    Ok(())
                }

                async fn claim_due_captures(
                    &self,
                    now: DateTime<Utc>,
                    lease_until: DateTime<Utc>,
                    limit: i64,
                ) -> Result<Vec<OutboxEntry>, StoreError> {
                    let rows: Vec<outbox::EntryRow> = sqlx::query_as(outbox::CLAIM_DUE)
                        .bind(now)
                        .bind(lease_until)
                        .bind(limit)
                        .fetch_all(&self.writer)
                        .await?;
                    Ok(rows.into_iter().map(OutboxEntry::from).collect())
                }

                async fn postpone_capture(
                    &self,
                    cognito_username: &str,
                    next_at: DateTime<Utc>,
                    error: &str,
                ) -> Result<(), StoreError> {
                    sqlx::query(outbox::POSTPONE)
                        .bind(cognito_username)
                        .bind(next_at)
                        .bind(error)
                        .execute(&self.writer)
                        .await?;
                    Ok(())
                }

                async fn complete_capture(
                    &self,
                    cognito_username: &str,
                    kratos_identity_id: &str,
                    at: DateTime<Utc>,
                ) -> Result<(), StoreError> {
                    let mut tx = self.writer.begin().await?;
                    sqlx::query(outbox::DROP)
                        .bind(cognito_username)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(outbox::MARK_CAPTURED)
                        .bind(cognito_username)
                        .bind($crate::domain::normalize_identifier(cognito_username))
                        .bind(kratos_identity_id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn drop_capture(&self, cognito_username: &str) -> Result<(), StoreError> {
                    sqlx::query(outbox::DROP)
                        .bind(cognito_username)
                        .execute(&self.writer)
                        .await?;
                    Ok(())
                }

                async fn outbox_status(&self) -> Result<OutboxStatus, StoreError> {
                    let depth: i64 = sqlx::query_scalar(outbox::DEPTH)
                        .fetch_one(&self.pool)
                        .await?;
                    let oldest_at: Option<DateTime<Utc>> = sqlx::query_scalar(outbox::OLDEST)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(OutboxStatus::new(depth, oldest_at, Utc::now()))
                }
            }
        };
    };
}

pub(crate) use outbox_store_impl;
