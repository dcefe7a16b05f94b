//! The Postgres backend: for production and for several replicas sharing one database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{
    Attempt, AttemptRecord, Progress, RowChange, Store, StoreError, UserLookup, UserRecord,
    state_from_db,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("cognito-bridge");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }
}

const RESOLVE: &str = "
SELECT cognito_username FROM users
WHERE kratos_identity_id = $1 OR external_id = $2 OR cognito_username = $3
   OR username_normalized = $4 OR email_normalized = $4
ORDER BY CASE
    WHEN kratos_identity_id = $1 THEN 0
    WHEN external_id = $2 THEN 1
    WHEN cognito_username = $3 THEN 2
    WHEN username_normalized = $4 THEN 3
    ELSE 4 END
LIMIT 1";

// Recording is one statement, so one round trip and atomic without an explicit transaction:
// the user-row change runs as a data-modifying CTE beside the attempt insert.
// $1..$8 are the attempt's columns; $9.. the user row's.
macro_rules! log_attempt {
    () => {
        "
INSERT INTO attempts (at, cognito_username, outcome, cognito_latency_ms, cognito_calls,
                      request_id, trigger_id, identity_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    };
}

const LOG_ATTEMPT: &str = log_attempt!();

const UPSERT_USER_AND_LOG: &str = concat!(
    "
WITH user_row AS (
INSERT INTO users (cognito_username, username_normalized, state, migrated_via, mfa_dropped,
                   created_at, updated_at, migrated_at, last_attempt_at)
VALUES ($2, $9, COALESCE($10, 'pending'), $11, $12, $1, $1, CASE WHEN $11 IS NULL THEN NULL ELSE $1 END, $1)
ON CONFLICT (cognito_username) DO UPDATE SET
    state = CASE WHEN users.state = 'migrated' THEN users.state ELSE COALESCE($10, users.state) END,
    migrated_via = CASE WHEN users.state = 'migrated' THEN users.migrated_via
                        ELSE COALESCE($11, users.migrated_via) END,
    migrated_at = CASE WHEN users.state = 'migrated' OR $11 IS NULL THEN users.migrated_at ELSE $1 END,
    mfa_dropped = CASE WHEN users.state = 'migrated' THEN users.mfa_dropped ELSE $12 END,
    updated_at = $1,
    last_attempt_at = $1
)",
    log_attempt!()
);

const TOUCH_USER_AND_LOG: &str = concat!(
    "
WITH user_row AS (
    UPDATE users SET last_attempt_at = $1, updated_at = $1 WHERE cognito_username = $2
)",
    log_attempt!()
);

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn resolve_username(&self, lookup: UserLookup<'_>) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(RESOLVE)
            .bind(lookup.identity_id)
            .bind(lookup.external_id)
            .bind(lookup.identifier)
            .bind(lookup.normalized_identifier)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), StoreError> {
        let statement = match attempt.row_change() {
            Some((RowChange::Upsert, _)) => UPSERT_USER_AND_LOG,
            Some((RowChange::TouchExisting, _)) => TOUCH_USER_AND_LOG,
            None => LOG_ATTEMPT,
        };
        let mut query = sqlx::query(statement)
            .bind(attempt.at)
            .bind(attempt.cognito_username.as_deref())
            .bind(attempt.outcome.as_str())
            .bind(attempt.cognito_latency_ms)
            .bind(attempt.cognito_calls)
            .bind(attempt.request_id.as_deref())
            .bind(attempt.trigger_id.as_deref())
            .bind(attempt.identity_id.as_deref());
        if let Some((RowChange::Upsert, username)) = attempt.row_change() {
            query = query
                .bind(crate::domain::normalize_identifier(username))
                .bind(attempt.outcome.new_state().map(|state| state.as_str()))
                .bind(attempt.migrated_via())
                .bind(attempt.outcome == crate::domain::Outcome::VerifiedMfaDropped);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }

    async fn user(&self, cognito_username: &str) -> Result<Option<UserRecord>, StoreError> {
        type Row = (
            String,
            String,
            Option<String>,
            bool,
            Option<String>,
            Option<String>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT cognito_username, state, migrated_via, mfa_dropped, external_id,
                    kratos_identity_id, migrated_at, last_attempt_at
             FROM users WHERE cognito_username = $1",
        )
        .bind(cognito_username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(UserRecord {
                cognito_username: r.0,
                state: state_from_db(r.1)?,
                migrated_via: r.2,
                mfa_dropped: r.3,
                external_id: r.4,
                kratos_identity_id: r.5,
                migrated_at: r.6,
                last_attempt_at: r.7,
            })
        })
        .transpose()
    }

    async fn recent_attempts(&self, limit: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        type Row = (
            DateTime<Utc>,
            Option<String>,
            String,
            Option<i64>,
            i32,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT at, cognito_username, outcome, cognito_latency_ms, cognito_calls, request_id
             FROM attempts ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AttemptRecord {
                at: r.0,
                cognito_username: r.1,
                outcome: r.2,
                cognito_latency_ms: r.3,
                cognito_calls: r.4,
                request_id: r.5,
            })
            .collect())
    }

    async fn progress(&self) -> Result<Progress, StoreError> {
        let states: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM users GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        let mfa_dropped: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE mfa_dropped")
            .fetch_one(&self.pool)
            .await?;
        let outcomes: Vec<(String, i64)> =
            sqlx::query_as("SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome")
                .fetch_all(&self.pool)
                .await?;
        Progress::from_counts(states, mfa_dropped, outcomes)
    }
}
