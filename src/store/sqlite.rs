//! The SQLite backend: the embedded default, one file, one process.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::{self, bind_attempt, import_methods};
use super::{
    Attempt, AttemptRecord, Claim, GuardClaim, ImportCommit, ImportFailure, ImportRun, Progress,
    Resolution, RowChange, RunStatus, RunUpdate, Store, StoreError, UserLookup, UserRecord,
};

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
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    /// SQLite has no data-modifying CTEs: the row change and the attempt share a transaction
    /// (in-process, so the extra statements cost no round trips).
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let row_statement = match attempt.row_change() {
            Some(RowChange::Upsert) => Some((sql::UPSERT_USER, true)),
            Some(RowChange::TouchExisting) => Some((sql::TOUCH_USER, false)),
            None => None,
        };
        if let Some((statement, with_user_row)) = row_statement {
            bind_attempt!(sqlx::query(statement), attempt, with_user_row)
                .execute(&mut *tx)
                .await?;
        }
        bind_attempt!(sqlx::query(sql::LOG_ATTEMPT), attempt, false)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn resolve(&self, lookup: UserLookup<'_>) -> Result<Resolution, StoreError> {
        let rows: Vec<sql::CandidateRow> =
            sql::bind_lookup!(sqlx::query_as(sql::CANDIDATES), lookup)
                .fetch_all(&self.pool)
                .await?;
        let candidates: Vec<_> = rows.into_iter().map(sql::candidate_from_row).collect();
        Ok(Resolution::decide(&lookup, &candidates))
    }

    async fn claim(&self, claim: &GuardClaim<'_>) -> Result<Claim, StoreError> {
        let window = chrono::Duration::from_std(claim.window).unwrap_or(chrono::Duration::MAX);
        let window_start = claim.at - window;
        let granted: Option<i64> = sqlx::query_scalar(sql::SQLITE_CLAIM)
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
        let (identifier_failures, ip_failures): (i64, i64) =
            sqlx::query_as(sql::SQLITE_GUARD_COUNTS)
                .bind(claim.guard_key)
                .bind(claim.client_ip)
                .bind(window_start)
                .fetch_one(&self.pool)
                .await?;
        Ok(Claim::Refused(super::GuardCounts {
            identifier_failures,
            ip_failures,
        }))
    }

    async fn user(&self, cognito_username: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query_as(sql::SELECT_USER)
            .bind(cognito_username)
            .fetch_optional(&self.pool)
            .await?
            .map(sql::user_from_row)
            .transpose()
    }

    async fn recent_attempts(&self, limit: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows: Vec<sql::AttemptRow> = sqlx::query_as(sql::RECENT_ATTEMPTS)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(sql::attempt_from_row).collect())
    }

    async fn prune_attempts(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PRUNE_ATTEMPTS)
            .bind(before)
            .bind(limit)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn progress(&self) -> Result<Progress, StoreError> {
        let states = sqlx::query_as(sql::STATE_COUNTS)
            .fetch_all(&self.pool)
            .await?;
        let mfa_dropped = sqlx::query_scalar(sql::MFA_DROPPED_COUNT)
            .fetch_one(&self.pool)
            .await?;
        let outcomes = sqlx::query_as(sql::OUTCOME_COUNTS)
            .fetch_all(&self.pool)
            .await?;
        Progress::from_counts(states, mfa_dropped, outcomes)
    }
}

import_methods!(
    SqliteStore,
    sql::Placeholders::Anonymous,
    sql::Clock::Sqlite
);
