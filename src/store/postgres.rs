//! The Postgres backend: for production and for several replicas sharing one database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sql::{self, bind_attempt, import_methods};
use super::{
    Attempt, AttemptRecord, Claim, GuardClaim, ImportCommit, ImportFailure, ImportRun, Progress,
    Resolution, RowChange, RunStatus, RunUpdate, Store, StoreError, UserLookup, UserRecord,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    /// The same pool: Postgres takes concurrent writers (see the SQLite store).
    writer: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("cognito-bridge");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            // Kept: the ping per checkout costs a round trip, but without it every idle
            // connection the server dropped (a restart, a proxy) fails one query first, and a
            // write lost that way is an attempt row lost (store_outage.rs).
            .connect_with(options)
            .await?;
        Ok(Self {
            writer: pool.clone(),
            pool,
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// One statement: the row change runs as a data-modifying CTE beside the attempt insert.
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let (statement, with_user_row) = match attempt.row_change() {
            Some(RowChange::Upsert) => (sql::UPSERT_USER_AND_LOG, true),
            Some(RowChange::TouchExisting) => (sql::TOUCH_USER_AND_LOG, false),
            None => (sql::LOG_ATTEMPT, false),
        };
        bind_attempt!(sqlx::query(statement), attempt, with_user_row)
            .execute(&self.writer)
            .await?;
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
        let row: sql::ClaimRow = sqlx::query_as(sql::POSTGRES_CLAIM)
            .bind(claim.guard_key)
            .bind(claim.client_ip)
            .bind(i64::from(claim.identifier_limit))
            .bind(i64::from(claim.ip_limit))
            .bind(claim.window.as_secs_f64())
            .bind(claim.cognito_username)
            .bind(claim.request_id)
            .bind(claim.trigger_id)
            .bind(claim.identity_id)
            .bind(claim.attempt_key.to_string())
            .fetch_one(&self.writer)
            .await?;
        Ok(sql::claim_from_row(row))
    }

    /// One statement: the row change runs as a data-modifying CTE beside the update.
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
    PostgresStore,
    sql::Placeholders::Numbered,
    sql::Clock::Postgres
);
