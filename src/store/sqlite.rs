//! The SQLite backend: the embedded default, one file, one process.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::attempts::{self, bind_attempt};
use super::sql::{
    admin_store_impl, confirm_store_impl, finalize_store_impl, guard, import_store_impl,
    outbox_store_impl, reconcile_store_impl, store_impl,
};
use super::{Attempt, Claim, GuardClaim, RateCell, RowChange, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// One connection for every write. SQLite allows one writer at a time; writers
    /// contending on the file lock sleep in its busy handler (1 ms, 2 ms, 5 ms, … 100 ms),
    /// while waiting for this pool is a fair async queue.
    writer: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool_options = || {
            SqlitePoolOptions::new()
                .acquire_timeout(Duration::from_secs(3))
                .test_before_acquire(false)
        };
        // The writer first: it creates the file and switches it to WAL.
        let writer = pool_options()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        if url.contains(":memory:") || url.contains("mode=memory") {
            // Every connection would be a database of its own.
            return Ok(Self {
                pool: writer.clone(),
                writer,
            });
        }
        let pool = pool_options()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        Ok(Self { pool, writer })
    }

    /// Folds the changes the triggers logged into `user_counts` (migration
    /// `..._user_counts`) on the writer, so nothing is logged between the two statements; the
    /// admin reads call it first.
    pub(crate) async fn fold_user_counts(&self) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(super::sql::users::SQLITE_FOLD_USER_COUNTS)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM user_count_deltas")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM user_counts WHERE n = 0")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

store_impl!(SqliteStore, {
    fn shares_cognito_rate(&self) -> bool {
        false
    }

    async fn take_cognito_token(
        &self,
        _rate: RateCell,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        Err(StoreError::NotShared)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    /// SQLite has no data-modifying CTEs: the row change and the attempt share a transaction
    /// (in-process, so the extra statements cost no round trips).
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let row_statement = match attempt.row_change() {
            Some(RowChange::Upsert) => Some((attempts::UPSERT_USER, true)),
            Some(RowChange::TouchExisting) => Some((attempts::TOUCH_USER, false)),
            None => None,
        };
        if let Some((statement, with_user_row)) = row_statement {
            bind_attempt!(sqlx::query(statement), attempt, with_user_row)
                .execute(&mut *tx)
                .await?;
        }
        bind_attempt!(sqlx::query(attempts::LOG_ATTEMPT), attempt, false)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim(&self, claim: &GuardClaim<'_>) -> Result<Claim, StoreError> {
        let window = chrono::Duration::from_std(claim.window).unwrap_or(chrono::Duration::MAX);
        let window_start = claim.at - window;
        let granted: Option<i64> = sqlx::query_scalar(guard::SQLITE_CLAIM)
            .bind(claim.at)
            .bind(claim.cognito_username)
            .bind(claim.request_id)
            .bind(claim.trigger_id)
            .bind(claim.identity_id)
            .bind(claim.guard_key)
            .bind(claim.client_ip)
            .bind(i64::from(claim.identifier_limit))
            .bind(i64::from(claim.ip_limit))
            .bind(window_start)
            .bind(claim.attempt_key.to_string())
            .fetch_optional(&self.writer)
            .await?;
        if granted.is_some() {
            return Ok(Claim::Granted);
        }
        // Refused: read the counts that did it, for the log and the metric.
        let counts = sqlx::query_as(guard::SQLITE_GUARD_COUNTS)
            .bind(claim.guard_key)
            .bind(claim.client_ip)
            .bind(window_start)
            .fetch_one(&self.pool)
            .await?;
        Ok(Claim::Refused(counts))
    }
});

import_store_impl!(SqliteStore, Sqlite);
outbox_store_impl!(SqliteStore);
admin_store_impl!(SqliteStore);
confirm_store_impl!(SqliteStore);
reconcile_store_impl!(SqliteStore);
finalize_store_impl!(SqliteStore);
