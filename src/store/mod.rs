//! The store: one row per Cognito user and an append-only attempt log, behind one trait
//! with a Postgres and a SQLite backend. Nothing secret is ever written here.

mod admin;
mod binding;
mod confirm;
mod finalize;
mod import_lease;
mod import_runs;
mod outbox;
mod postgres;
mod reconcile;
mod sql;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

pub use admin::{AdminStore, Bucket, BucketCount, HourSplit, UserListing};
pub use binding::{Candidate, Resolution, UserLookup};
pub use confirm::{ConfirmOutcome, ConfirmStore, KratosIdentityRef};
pub use finalize::{FinalizeRow, FinalizeStore};
pub use import_lease::{LeaseClaim, LeaseHolder};
pub use import_runs::{
    CreatedByRun, ImportCommit, ImportCounters, ImportFailure, ImportRun, ImportedUser, RunStatus,
};
pub use outbox::{CaptureStore, NewCapture, OutboxEntry, OutboxStatus};
pub use postgres::PostgresStore;
pub use reconcile::{LinkedRow, ReconcileStore};
pub use sqlite::SqliteStore;

use crate::domain::{Outcome, UserState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("`database.url` must start with `sqlite:` or `postgres://` / `postgresql://`")]
    UnsupportedUrl,
    #[error("the database did not answer in time")]
    Timeout,
    #[error("the database holds a value this version does not know: {0}")]
    Corrupt(String),
    #[error("a SQLite database belongs to one process: it holds no rate for several")]
    NotShared,
}

/// A rate as GCRA paces it: one call every `emission`, and `tolerance` ahead of that
/// schedule at most, which lets `tolerance / emission + 1` calls through at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCell {
    pub emission: std::time::Duration,
    pub tolerance: std::time::Duration,
}

impl RateCell {
    /// `per_second` calls a second, `burst` at once.
    pub fn new(per_second: std::num::NonZeroU32, burst: std::num::NonZeroU32) -> Self {
        let emission = std::time::Duration::from_secs(1) / per_second.get();
        Self {
            emission,
            tolerance: emission * (burst.get() - 1),
        }
    }
}

/// The brute-force guard's question before Cognito is asked: may this attempt go ahead?
/// Granted, it is written at once as an attempt in flight that counts as a failure until
/// it is settled, so concurrent attempts (on every replica) see it.
#[derive(Debug, Clone, Copy)]
pub struct GuardClaim<'a> {
    pub at: DateTime<Utc>,
    pub cognito_username: &'a str,
    /// The normalised Cognito username.
    pub guard_key: &'a str,
    /// The client's address group ([`crate::domain::ip_group`]).
    pub client_ip: Option<&'a str>,
    /// 0: off.
    pub identifier_limit: u32,
    /// 0: off.
    pub ip_limit: u32,
    /// Failures older than this, by the database's clock, no longer count.
    pub window: std::time::Duration,
    pub request_id: Option<&'a str>,
    pub trigger_id: Option<&'a str>,
    pub identity_id: Option<&'a str>,
    /// The attempt's key ([`Attempt::key`]).
    pub attempt_key: uuid::Uuid,
}

/// The guard's counts: failed guesses at the user since the window opened or their last
/// match, and from the client's address group within the window (attempts in flight
/// included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct GuardCounts {
    pub identifier_failures: i64,
    pub ip_failures: i64,
}

/// The store's answer to a [`GuardClaim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The attempt row in flight is written under the claim's attempt key;
    /// [`Store::record_attempt`] writes the outcome over it.
    Granted,
    /// A limit is reached; nothing was written.
    Refused(GuardCounts),
}

/// One hook call's outcome, to be recorded. No password, no token, no body.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Made by the hook call; the claim's row and the outcome share it.
    pub key: uuid::Uuid,
    pub at: DateTime<Utc>,
    /// `None` when the identifier could not be a Cognito username.
    pub cognito_username: Option<String>,
    /// Kratos's `Ory-Webhook-Request-ID`.
    pub request_id: Option<String>,
    /// Kratos's `Ory-Webhook-Trigger-ID`.
    pub trigger_id: Option<String>,
    pub identity_id: Option<String>,
    pub outcome: Outcome,
    /// Time spent in Cognito over all calls of this attempt.
    pub cognito_latency_ms: Option<i64>,
    pub cognito_calls: i32,
    /// Whether a verified attempt may create the user's row. False when the username is
    /// the identifier as typed and the store could not confirm it (it may be an e-mail or
    /// another spelling of a user the store knows under another name).
    pub creates_row: bool,
    /// For the per-IP guard: the client's address group ([`crate::domain::ip_group`]).
    /// (The per-user guard counts by the normalised username.)
    pub client_ip: Option<String>,
}

impl Attempt {
    /// What this attempt does to the user's row: create or move it when Cognito proved
    /// the user exists; otherwise only note the attempt on a row that is already there
    /// (so typos and guesses never add phantom stragglers).
    fn row_change(&self) -> Option<RowChange> {
        self.cognito_username.as_ref()?;
        Some(if self.creates_row && self.outcome.proves_user_exists() {
            RowChange::Upsert
        } else {
            RowChange::TouchExisting
        })
    }

    fn migrated_via(&self) -> Option<&'static str> {
        self.outcome.is_match().then_some("hook")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowChange {
    Upsert,
    TouchExisting,
}

/// A user's row as stored.
#[derive(Debug, Clone, Serialize)]
pub struct UserRecord {
    pub cognito_username: String,
    pub state: UserState,
    pub migrated_via: Option<String>,
    pub mfa_dropped: bool,
    pub external_id: Option<String>,
    pub kratos_identity_id: Option<String>,
    pub migrated_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The first native Kratos login seen after the migration (the login-after hook).
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The latest login or password change seen in Kratos (the confirmation hooks).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// When `finalize` removed the migration flag (the cutover).
    pub finalized_at: Option<DateTime<Utc>>,
}

/// An attempt as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    pub cognito_username: Option<String>,
    pub outcome: String,
    pub cognito_latency_ms: Option<i64>,
    pub cognito_calls: i32,
    pub request_id: Option<String>,
}

/// Counts for `report`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Progress {
    pub total: i64,
    /// Every state, with 0 for the absent ones.
    pub states: BTreeMap<&'static str, i64>,
    pub mfa_dropped: i64,
    pub attempts: AttemptCounts,
    /// Captured hashes still waiting for Kratos.
    pub capture_outbox: OutboxStatus,
}

/// Hook attempts are counted over this many hours before now (the recent end of the attempts
/// table, read through its time index), so `report` and `/admin/progress` stay fast however
/// many attempts the store holds.
pub const ATTEMPTS_WINDOW_HOURS: i64 = 24;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct AttemptCounts {
    /// The window's start: now minus [`ATTEMPTS_WINDOW_HOURS`].
    pub since: DateTime<Utc>,
    pub total: i64,
    pub by_outcome: BTreeMap<String, i64>,
}

impl Progress {
    fn from_counts(
        states: Vec<(String, i64)>,
        mfa_dropped: i64,
        since: DateTime<Utc>,
        outcomes: Vec<(String, i64)>,
        capture_outbox: OutboxStatus,
    ) -> Result<Self, StoreError> {
        let mut by_state: BTreeMap<&'static str, i64> = UserState::ALL
            .iter()
            .map(|state| (state.as_str(), 0))
            .collect();
        for (state, count) in states {
            let state = UserState::parse(&state).ok_or(StoreError::Corrupt(state))?;
            by_state.insert(state.as_str(), count);
        }
        Ok(Self {
            total: by_state.values().sum(),
            states: by_state,
            mfa_dropped,
            attempts: AttemptCounts {
                since,
                total: outcomes.iter().map(|(_, count)| count).sum(),
                by_outcome: outcomes.into_iter().collect(),
            },
            capture_outbox,
        })
    }
}

#[async_trait]
pub trait Store:
    ImportStore
    + CaptureStore
    + AdminStore
    + ConfirmStore
    + ReconcileStore
    + FinalizeStore
    + Send
    + Sync
{
    /// Apply pending migrations of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// One cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Whose password to check, by the binding rule ([`Resolution::decide`]): the row of the
    /// identity logging in, else the one row the identifier names.
    /// One round trip.
    async fn resolve(&self, lookup: UserLookup<'_>) -> Result<Resolution, StoreError>;
    /// Check the guard's limits and, below them, write the attempt in flight; atomic per
    /// user and per address group, across every process sharing the database.
    async fn claim(&self, claim: &GuardClaim<'_>) -> Result<Claim, StoreError>;
    /// Write the attempt's outcome (over its claim's row in flight, if any: the attempt
    /// key decides, so a retried write never makes a second row) and move the user's row,
    /// in one transaction.
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), StoreError>;
    async fn user(&self, cognito_username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// The newest attempts first.
    async fn recent_attempts(&self, limit: i64) -> Result<Vec<AttemptRecord>, StoreError>;
    async fn progress(&self) -> Result<Progress, StoreError>;
    /// Delete up to `limit` attempt rows older than `before`; how many went.
    async fn prune_attempts(&self, before: DateTime<Utc>, limit: i64) -> Result<u64, StoreError>;
    /// Whether several processes can share one Cognito rate through this database
    /// ([`Store::take_cognito_token`]): Postgres, not SQLite.
    fn shares_cognito_rate(&self) -> bool;
    /// Take one token of the rate every process on this database shares: `None` when it
    /// was taken, else how long until one is due (nothing taken). One round trip, by the
    /// database's clock. [`StoreError::NotShared`] on SQLite.
    async fn take_cognito_token(
        &self,
        rate: RateCell,
    ) -> Result<Option<std::time::Duration>, StoreError>;
}

/// What `import` reads and writes; part of every [`Store`].
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Which of these Cognito `sub`s an import already linked, and by which run. One
    /// round trip.
    async fn imported_external_ids(
        &self,
        external_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, Option<i64>>, StoreError>;
    /// Whether any user row is linked to a Kratos identity (an import has run before).
    async fn any_imported_user(&self) -> Result<bool, StoreError>;
    /// Set the verified e-mail (or none) of users an earlier run imported, by Cognito `sub`:
    /// a delta sync keeps the lookup's e-mails true to Cognito. One statement.
    async fn refresh_emails(&self, emails: &[(&str, Option<&str>)]) -> Result<(), StoreError>;
    /// A new run in state `running`; its id.
    async fn start_import_run(
        &self,
        dry_run: bool,
        at: DateTime<Utc>,
        estimated_users: Option<i64>,
    ) -> Result<i64, StoreError>;
    /// The newest run that was not a dry run (the one `--resume` may continue).
    async fn latest_real_import_run(&self) -> Result<Option<ImportRun>, StoreError>;
    /// The newest runs first.
    async fn import_runs(&self, limit: i64) -> Result<Vec<ImportRun>, StoreError>;
    async fn import_failures(
        &self,
        run_id: i64,
        limit: i64,
    ) -> Result<Vec<ImportFailure>, StoreError>;
    /// User rows, failures and the run's progress, in one transaction. A failure replaces
    /// the run's earlier failure of that user; a user row clears it. Returns the run's
    /// `failed` as stored: its count of failure rows.
    async fn commit_import(&self, commit: &ImportCommit<'_>) -> Result<i64, StoreError>;
    /// The run's status and totals (its end, or a resumed run's restart); returns `failed`
    /// as stored (a real run's count of failure rows, a dry run's own count).
    async fn update_import_run(&self, update: &RunUpdate<'_>) -> Result<i64, StoreError>;
    /// Take the import lease when nobody holds it or its holder's has expired (by the
    /// database's clock), atomically; whether this claim got it.
    async fn acquire_import_lease(&self, claim: &LeaseClaim<'_>) -> Result<bool, StoreError>;
    /// Extend the lease by `claim.ttl` from now and, with `run_id`, name the holder's run;
    /// `false` when `claim.token` no longer holds it (it expired and was taken over).
    async fn renew_import_lease(
        &self,
        claim: &LeaseClaim<'_>,
        run_id: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Give the lease up (nothing happens when `token` no longer holds it).
    async fn release_import_lease(&self, token: &str) -> Result<(), StoreError>;
    /// Who holds the lease, if anyone (expired or not).
    async fn import_lease(&self) -> Result<Option<LeaseHolder>, StoreError>;
    /// The run with this id, if there is one.
    async fn import_run(&self, run_id: i64) -> Result<Option<ImportRun>, StoreError>;
    /// Up to `limit` users whose identity run `run_id` created, after `after` in username
    /// order (`""` first).
    async fn created_by_run(
        &self,
        run_id: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<CreatedByRun>, StoreError>;
    /// Delete the row of a user run `run_id` created, unless it migrated meanwhile; whether
    /// it was deleted.
    async fn delete_unmigrated(&self, run_id: i64, username: &str) -> Result<bool, StoreError>;
}

/// A run's new status and totals; `next_token` is kept as the last commit left it.
#[derive(Debug)]
pub struct RunUpdate<'a> {
    pub run_id: i64,
    pub status: RunStatus,
    pub at: DateTime<Utc>,
    pub next_token: Option<&'a str>,
    pub counters: ImportCounters,
    pub duration_ms: i64,
    pub error: Option<&'a str>,
}

/// Open the database named by `database.url` (SQLite files are created when missing).
/// The store a command (`import`, `reconcile`, `finalize`) works on: two connections at most (one task
/// reads and writes, a statement at a time, and every SQLite connection has its own page
/// cache), migrations applied.
pub async fn open_for_command(
    database: &crate::config::DatabaseSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    let store = connect(&database.url, database.max_connections.min(2)).await?;
    store.migrate().await?;
    Ok(store)
}

pub async fn connect(
    url: &SecretString,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    let url = url.expose_secret();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            PostgresStore::connect(url, max_connections).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

pub(crate) fn state_from_db(raw: String) -> Result<UserState, StoreError> {
    UserState::parse(&raw).ok_or(StoreError::Corrupt(raw))
}
