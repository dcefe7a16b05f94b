//! The Postgres backend: for production and for several replicas sharing one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sql::attempts::{self, bind_attempt};
use super::sql::{
    admin_store_impl, confirm_store_impl, finalize_store_impl, guard, import_store_impl,
    outbox_store_impl, reconcile_store_impl, store_impl,
};
use super::{Attempt, Claim, GuardClaim, RateCell, RowChange, StoreError};

/// Microseconds, as `take_cognito_token` takes them.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// `take_cognito_token`'s answer: 0 when a token was taken, else microseconds until one is due.
pub(super) fn token_wait(wait_us: i64) -> Option<Duration> {
    (wait_us > 0).then(|| Duration::from_micros(wait_us.unsigned_abs()))
}

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

    /// Folds the changes the triggers logged into `user_counts` (migration
    /// `..._user_counts`); the admin reads call it first.
    pub(crate) async fn fold_user_counts(&self) -> Result<(), StoreError> {
        sqlx::query(super::sql::users::PG_FOLD_USER_COUNTS)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

store_impl!(PostgresStore, {
    fn shares_cognito_rate(&self) -> bool {
        true
    }

    /// Migration `..._cognito_rate`: one row every replica locks for a moment.
    async fn take_cognito_token(&self, rate: RateCell) -> Result<Option<Duration>, StoreError> {
        let wait_us: i64 = sqlx::query_scalar("SELECT take_cognito_token($1, $2)")
            .bind(micros(rate.emission))
            .bind(micros(rate.tolerance))
            .fetch_one(&self.writer)
            .await?;
        Ok(token_wait(wait_us))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// One statement per attempt: the row change runs as a data-modifying CTE beside the
    /// attempt insert. One attempt commits on its own; several share a transaction.
    async fn record_attempts(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        fn statement(attempt: &Attempt) -> (&'static str, bool) {
            match attempt.row_change() {
                Some(RowChange::Upsert) => (attempts::UPSERT_USER_AND_LOG, true),
                Some(RowChange::TouchExisting) => (attempts::TOUCH_USER_AND_LOG, false),
                None => (attempts::LOG_ATTEMPT, false),
            }
        }
        if let [attempt] = attempts {
            let (statement, with_user_row) = statement(attempt);
            bind_attempt!(sqlx::query(statement), attempt, with_user_row)
                .execute(&self.writer)
                .await?;
            return Ok(());
        }
        // Rows in the order of their usernames (each user's own rows keep theirs), so that
        // replicas writing groups at once lock users' rows in one order and never deadlock.
        let mut ordered: Vec<&Attempt> = attempts.iter().collect();
        ordered.sort_by(|a, b| a.cognito_username.cmp(&b.cognito_username));
        let mut tx = self.writer.begin().await?;
        for attempt in ordered {
            let (statement, with_user_row) = statement(attempt);
            bind_attempt!(sqlx::query(statement), attempt, with_user_row)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim(&self, claim: &GuardClaim<'_>) -> Result<Claim, StoreError> {
        let row: guard::ClaimRow = sqlx::query_as(guard::POSTGRES_CLAIM)
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
            .bind(claim.cognito_rate.map(|rate| micros(rate.emission)))
            .bind(claim.cognito_rate.map(|rate| micros(rate.tolerance)))
            .fetch_one(&self.writer)
            .await?;
        Ok(row.into())
    }
});

import_store_impl!(PostgresStore, Postgres);
outbox_store_impl!(PostgresStore);
admin_store_impl!(PostgresStore);
confirm_store_impl!(PostgresStore);
reconcile_store_impl!(PostgresStore);
finalize_store_impl!(PostgresStore);
