//! SQL shared by both backends: `$N` placeholders work in Postgres and in SQLite (through
//! sqlx), and the tables have the same columns in both migration sets.
//!
//! Recording binds the attempt's twelve columns as `$1..$12` and the user row's extra values
//! as `$13..$16`, so one argument list serves every statement that records.

use chrono::{DateTime, Utc};

use super::{
    AttemptRecord, ImportCounters, ImportFailure, ImportRun, RunStatus, StoreError, UserRecord,
    state_from_db,
};

/// The user rows a hook lookup may mean, for [`super::Resolution::decide`]: those carrying the
/// Kratos identity id or external id, and those whose username (exact or normalised) or
/// verified e-mail equals the identifier; ids first, then the exact username.
/// `$1` Kratos identity id, `$2` external id, `$3` identifier as typed (trimmed),
/// `$4` normalised identifier.
pub const CANDIDATES: &str = "
SELECT cognito_username, kratos_identity_id, external_id FROM users
WHERE kratos_identity_id = $1 OR external_id = $2 OR cognito_username = $3
   OR username_normalized = $4 OR email_normalized = $4
ORDER BY CASE
    WHEN kratos_identity_id = $1 OR external_id = $2 THEN 0
    WHEN cognito_username = $3 THEN 1
    ELSE 2 END, cognito_username
LIMIT 8";

/// A `CANDIDATES` row.
pub type CandidateRow = (String, Option<String>, Option<String>);

pub fn candidate_from_row(row: CandidateRow) -> super::Candidate {
    super::Candidate {
        cognito_username: row.0,
        kratos_identity_id: row.1,
        external_id: row.2,
    }
}

/// Bind `CANDIDATES`' `$1..$4`.
macro_rules! bind_lookup {
    ($query:expr, $lookup:expr) => {{
        let lookup: $crate::store::UserLookup<'_> = $lookup;
        $query
            .bind(lookup.identity_id)
            .bind(lookup.external_id)
            .bind(lookup.identifier)
            .bind(lookup.normalized_identifier)
    }};
}

pub(crate) use bind_lookup;

/// The guard's counts from the attempt log (attempts in flight are written as failures):
/// failures at the user since the window opened or their last match, whichever is later,
/// and failures from the address group within the window. The placeholders are given as
/// literals so that each backend numbers its own statement.
macro_rules! guard_counts {
    ($key:literal, $ip:literal, $window_start:literal) => {
        concat!(
            "(SELECT COUNT(*) FROM attempts WHERE guard_key = ",
            $key,
            " AND guard = 'failure' AND at > (SELECT COALESCE(MAX(at), ",
            $window_start,
            ") FROM attempts WHERE guard_key = ",
            $key,
            " AND guard = 'success' AND at > ",
            $window_start,
            ")) AS identifier_failures, (SELECT COUNT(*) FROM attempts \
             WHERE client_ip = ",
            $ip,
            " AND guard = 'failure' AND at > ",
            $window_start,
            ") AS ip_failures"
        )
    };
}

/// SQLite's claim: one statement, so atomic (a writing statement takes the database's
/// write lock before it reads). `$1` time, `$2` username, `$3` request id, `$4` trigger id,
/// `$5` identity id, `$6` guard key, `$7` address group, `$8` identifier limit, `$9` IP
/// limit, `$10` window start, `$11` attempt key.
pub const SQLITE_CLAIM: &str = concat!(
    "
INSERT INTO attempts (at, cognito_username, outcome, cognito_calls, request_id, trigger_id,
                      identity_id, guard_key, client_ip, guard, attempt_key)
SELECT $1, $2, 'in_flight', 0, $3, $4, $5, $6, $7, 'failure', $11
FROM (SELECT ",
    guard_counts!("$6", "$7", "$10"),
    ") AS counts
WHERE ($8 = 0 OR counts.identifier_failures < $8) AND ($9 = 0 OR counts.ip_failures < $9)
RETURNING id"
);

/// The counts alone, to say which limit refused a claim. `$1` guard key, `$2` address
/// group, `$3` window start.
pub const SQLITE_GUARD_COUNTS: &str = concat!("SELECT ", guard_counts!("$1", "$2", "$3"));

/// Postgres's claim: `guard_claim` (migration `..._binding_and_claims`) takes a lock per
/// user and per address group, counts by the database's clock, and writes the attempt in
/// flight below the limits, in one round trip. `$1` guard key, `$2` address group,
/// `$3` identifier limit, `$4` IP limit, `$5` window in seconds, `$6` username,
/// `$7` request id, `$8` trigger id, `$9` identity id, `$10` attempt key.
pub const POSTGRES_CLAIM: &str = "
SELECT granted, identifier_failures, ip_failures
FROM guard_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// A claim's answer, and the counts it saw.
pub type ClaimRow = (bool, i64, i64);

pub fn claim_from_row(row: ClaimRow) -> super::Claim {
    if row.0 {
        super::Claim::Granted
    } else {
        super::Claim::Refused(super::GuardCounts {
            identifier_failures: row.1,
            ip_failures: row.2,
        })
    }
}

/// The statements are macros so that Postgres can `concat!` them into one statement.
/// Written over the row of the same key (the claim's row in flight, or an earlier try of this
/// write): the claim's time stays, the outcome replaces it.
macro_rules! log_attempt {
    () => {
        "
INSERT INTO attempts (at, cognito_username, outcome, cognito_latency_ms, cognito_calls,
                      request_id, trigger_id, identity_id, guard_key, client_ip, guard,
                      attempt_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (attempt_key) WHERE attempt_key IS NOT NULL DO UPDATE SET
    cognito_username = excluded.cognito_username, outcome = excluded.outcome,
    cognito_latency_ms = excluded.cognito_latency_ms, cognito_calls = excluded.cognito_calls,
    identity_id = excluded.identity_id, guard_key = excluded.guard_key,
    client_ip = excluded.client_ip, guard = excluded.guard"
    };
}

/// Create the row, or move it; a migrated user is never moved back.
/// `$13` normalised username, `$14` new state or NULL, `$15` `via` or NULL, `$16` MFA dropped.
macro_rules! upsert_user {
    () => {
        "
INSERT INTO users (cognito_username, username_normalized, state, migrated_via, mfa_dropped,
                   created_at, updated_at, migrated_at, last_attempt_at)
VALUES ($2, $13, COALESCE($14, 'pending'), $15, $16, $1, $1,
        CASE WHEN $15 IS NULL THEN NULL ELSE $1 END, $1)
ON CONFLICT (cognito_username) DO UPDATE SET
    state = CASE WHEN users.state = 'migrated' THEN users.state
                 ELSE COALESCE($14, users.state) END,
    migrated_via = CASE WHEN users.state = 'migrated' THEN users.migrated_via
                        ELSE COALESCE($15, users.migrated_via) END,
    migrated_at = CASE WHEN users.state = 'migrated' OR $15 IS NULL THEN users.migrated_at
                       ELSE $1 END,
    mfa_dropped = CASE WHEN users.state = 'migrated' THEN users.mfa_dropped ELSE $16 END,
    updated_at = $1,
    last_attempt_at = $1"
    };
}

/// Note an attempt on an existing row without moving its state.
macro_rules! touch_user {
    () => {
        "UPDATE users SET last_attempt_at = $1, updated_at = $1 WHERE cognito_username = $2"
    };
}

pub const LOG_ATTEMPT: &str = log_attempt!();
pub const UPSERT_USER: &str = upsert_user!();
pub const TOUCH_USER: &str = touch_user!();
/// Postgres: the row change and the attempt in one statement (one round trip, atomic).
pub const UPSERT_USER_AND_LOG: &str =
    concat!("WITH user_row AS (", upsert_user!(), ")", log_attempt!());
pub const TOUCH_USER_AND_LOG: &str =
    concat!("WITH user_row AS (", touch_user!(), ")", log_attempt!());

/// One batch of pruning (`attempts_at` makes it an index range), so no long lock.
/// `$1` the cut-off, `$2` the batch size.
pub const PRUNE_ATTEMPTS: &str = "
DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE at < $1 LIMIT $2)";

pub const SELECT_USER: &str = "
SELECT cognito_username, state, migrated_via, mfa_dropped, external_id, kratos_identity_id,
       migrated_at, last_attempt_at
FROM users WHERE cognito_username = $1";

pub const RECENT_ATTEMPTS: &str = "
SELECT at, cognito_username, outcome, cognito_latency_ms, cognito_calls, request_id
FROM attempts ORDER BY id DESC LIMIT $1";

pub const STATE_COUNTS: &str = "SELECT state, COUNT(*) FROM users GROUP BY state";
pub const MFA_DROPPED_COUNT: &str = "SELECT COUNT(*) FROM users WHERE mfa_dropped";
pub const OUTCOME_COUNTS: &str = "SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome";

/// A `SELECT_USER` row.
pub type UserRow = (
    String,
    String,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

pub fn user_from_row(row: UserRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        cognito_username: row.0,
        state: state_from_db(row.1)?,
        migrated_via: row.2,
        mfa_dropped: row.3,
        external_id: row.4,
        kratos_identity_id: row.5,
        migrated_at: row.6,
        last_attempt_at: row.7,
    })
}

/// A `RECENT_ATTEMPTS` row.
pub type AttemptRow = (
    DateTime<Utc>,
    Option<String>,
    String,
    Option<i64>,
    i32,
    Option<String>,
);

pub fn attempt_from_row(row: AttemptRow) -> AttemptRecord {
    AttemptRecord {
        at: row.0,
        cognito_username: row.1,
        outcome: row.2,
        cognito_latency_ms: row.3,
        cognito_calls: row.4,
        request_id: row.5,
    }
}

/// Bind `$1..$12` (the attempt) and, for an upsert, `$13..$16` (the user row).
macro_rules! bind_attempt {
    ($query:expr, $attempt:expr, $with_user_row:expr) => {{
        let attempt: &$crate::store::Attempt = $attempt;
        let query = $query
            .bind(attempt.at)
            .bind(attempt.cognito_username.as_deref())
            .bind(attempt.outcome.as_str())
            .bind(attempt.cognito_latency_ms)
            .bind(attempt.cognito_calls)
            .bind(attempt.request_id.as_deref())
            .bind(attempt.trigger_id.as_deref())
            .bind(attempt.identity_id.as_deref())
            .bind(
                attempt
                    .cognito_username
                    .as_deref()
                    .map($crate::domain::normalize_identifier),
            )
            .bind(attempt.client_ip.as_deref())
            .bind(attempt.outcome.guard_effect().map(|effect| effect.as_str()))
            .bind(attempt.key.to_string());
        if $with_user_row {
            query
                .bind(
                    attempt
                        .cognito_username
                        .as_deref()
                        .map($crate::domain::normalize_identifier),
                )
                .bind(attempt.outcome.new_state().map(|state| state.as_str()))
                .bind(attempt.migrated_via())
                .bind(attempt.outcome == $crate::domain::Outcome::VerifiedMfaDropped)
        } else {
            query
        }
    }};
}

pub(crate) use bind_attempt;

// ---- import ----------------------------------------------------------------------------

/// Rows per statement when import writes users: 500 rows × 9 values stays far below
/// SQLite's and Postgres's bind limits.
pub const IMPORT_ROWS_PER_STATEMENT: usize = 500;

/// How a backend writes bind parameters in the statements below, which bind many values.
/// SQLite gets anonymous `?`: sqlx looks up every named parameter by name, and SQLite finds a
/// name by walking the statement's list, so thousands of `$N` cost in their square.
#[derive(Debug, Clone, Copy)]
pub enum Placeholders {
    /// `$1, $2, …` (Postgres).
    Numbered,
    /// `?, ?, …`, bound in order (SQLite).
    Anonymous,
}

impl Placeholders {
    /// `rows` groups of `per_row` placeholders: `($1, $2), ($3, $4)` or `(?, ?), (?, ?)`.
    fn rows(self, rows: usize, per_row: usize) -> String {
        let mut out = String::with_capacity(rows * per_row * 6);
        for row in 0..rows {
            if row > 0 {
                out.push_str(",\n");
            }
            out.push('(');
            for column in 0..per_row {
                if column > 0 {
                    out.push_str(", ");
                }
                match self {
                    Placeholders::Numbered => {
                        out.push('$');
                        out.push_str(&(row * per_row + column + 1).to_string());
                    }
                    Placeholders::Anonymous => out.push('?'),
                }
            }
            out.push(')');
        }
        out
    }
}

/// Which of `count` external ids already have a row, and the run that imported each.
pub fn imported_external_ids(style: Placeholders, count: usize) -> String {
    let list = style.rows(1, count);
    format!("SELECT external_id, import_run_id FROM users WHERE external_id IN {list}")
}

/// Create or link `rows` user rows, nine values each in the order of the column list. A row the
/// hook has already moved to `migrated` or `needs_recovery` keeps its state. The e-mail is
/// replaced, not kept: one no longer verified in Cognito must stop finding the user.
pub fn upsert_imported_users(style: Placeholders, rows: usize) -> String {
    let values = style.rows(rows, 9);
    format!(
        "
INSERT INTO users (cognito_username, username_normalized, email_normalized, external_id,
                   kratos_identity_id, state, import_run_id, created_at, updated_at)
VALUES {values}
ON CONFLICT (cognito_username) DO UPDATE SET
    email_normalized = excluded.email_normalized,
    external_id = excluded.external_id,
    kratos_identity_id = excluded.kratos_identity_id,
    import_run_id = excluded.import_run_id,
    state = CASE WHEN users.state IN ('migrated', 'needs_recovery') THEN users.state
                 ELSE excluded.state END,
    updated_at = excluded.updated_at"
    )
}

/// `rows` pairs of (external id, verified e-mail or NULL): the users' e-mails, where changed.
/// (`VALUES` names its columns `column1`, `column2` in both backends.)
pub fn refresh_emails(style: Placeholders, rows: usize) -> String {
    let values = style.rows(rows, 2);
    format!(
        "
UPDATE users SET email_normalized = v.column2
FROM (VALUES {values}) AS v
WHERE users.external_id = v.column1 AND users.email_normalized IS DISTINCT FROM v.column2"
    )
}

/// Six values per failure: run id, time, username, external id, status, reason. A user the
/// run failed before (an interrupted run's page listed again by `--resume`) keeps one row, with
/// the latest reason. One row per user in a statement (Postgres refuses to upsert a row twice).
pub fn upsert_import_failures(style: Placeholders, rows: usize) -> String {
    let values = style.rows(rows, 6);
    format!(
        "
INSERT INTO import_failures (run_id, at, cognito_username, external_id, status, reason)
VALUES {values}
ON CONFLICT (run_id, cognito_username) DO UPDATE SET
    at = excluded.at,
    external_id = excluded.external_id,
    status = excluded.status,
    reason = excluded.reason"
    )
}

/// Users the run has now imported are no failures of it: `count` usernames, then the run id.
pub fn forget_import_failures(style: Placeholders, count: usize) -> String {
    let list = style.rows(1, count);
    let run = match style {
        Placeholders::Numbered => format!("${}", count + 1),
        Placeholders::Anonymous => "?".to_owned(),
    };
    format!("DELETE FROM import_failures WHERE cognito_username IN {list} AND run_id = {run}")
}

/// The last failure of each user, in the order of their first.
pub fn last_failure_per_user(failures: &[ImportFailure]) -> Vec<&ImportFailure> {
    let mut index = std::collections::HashMap::new();
    let mut unique: Vec<&ImportFailure> = Vec::with_capacity(failures.len());
    for failure in failures {
        match index.entry(failure.cognito_username.as_str()) {
            std::collections::hash_map::Entry::Occupied(entry) => unique[*entry.get()] = failure,
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(unique.len());
                unique.push(failure);
            }
        }
    }
    unique
}

/// `COUNT` is a 64-bit integer in both backends (a bare `1` is 32-bit in Postgres).
pub const ANY_IMPORTED_USER: &str = "
SELECT COUNT(*) FROM (SELECT 1 FROM users WHERE external_id IS NOT NULL LIMIT 1) AS imported";

/// `$1` dry run, `$2` time, `$3` estimated users.
pub const START_IMPORT_RUN: &str = "
INSERT INTO import_runs (dry_run, status, started_at, updated_at, estimated_users)
VALUES ($1, 'running', $2, $2, $3) RETURNING id";

/// Everything a run's row says after a commit or at its end. `$1` id, `$2` status,
/// `$3` next token, `$4..$10` counters, `$11` duration, `$12` time, `$13` finished at,
/// `$14` error. A real run's `failed` is the count of its `import_failures` rows (so a user
/// failed twice counts once, and one imported after all not at all); a dry run stores no
/// failures and keeps `$9`. Returns `failed` as stored.
pub const UPDATE_IMPORT_RUN: &str = "
UPDATE import_runs SET status = $2, next_token = $3, pages = $4, seen = $5, created = $6,
    linked = $7, skipped = $8,
    failed = CASE WHEN dry_run THEN $9
                  ELSE (SELECT COUNT(*) FROM import_failures WHERE run_id = $1) END,
    invalid = $10, duration_ms = $11, updated_at = $12, finished_at = $13, error = $14
WHERE id = $1
RETURNING failed";

const IMPORT_RUN_COLUMNS: &str = "id, dry_run, status, started_at, finished_at, next_token, \
     pages, seen, created, linked, skipped, failed, invalid, estimated_users, duration_ms, error";

pub fn import_runs() -> String {
    format!("SELECT {IMPORT_RUN_COLUMNS} FROM import_runs ORDER BY id DESC LIMIT $1")
}

pub fn latest_real_import_run() -> String {
    format!(
        "SELECT {IMPORT_RUN_COLUMNS} FROM import_runs WHERE NOT dry_run ORDER BY id DESC LIMIT 1"
    )
}

pub const IMPORT_FAILURES: &str = "
SELECT cognito_username, external_id, status, reason FROM import_failures
WHERE run_id = $1 ORDER BY id LIMIT $2";

/// Whose clock a statement reads: the database's, so that importers on several machines
/// agree about a lease's expiry.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// `timestamptz` values.
    Postgres,
    /// RFC 3339 text with milliseconds (`…T10:00:00.123Z`): one format, so text order is
    /// time order.
    Sqlite,
}

impl Clock {
    fn now(self) -> &'static str {
        match self {
            Clock::Postgres => "now()",
            Clock::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        }
    }

    /// Now plus the seconds bound as `$n` (a float).
    fn in_seconds(self, n: usize) -> String {
        match self {
            Clock::Postgres => format!("now() + make_interval(secs => ${n})"),
            Clock::Sqlite => {
                format!("strftime('%Y-%m-%dT%H:%M:%fZ', julianday('now') + ${n} / 86400.0)")
            }
        }
    }
}

/// `$1` token, `$2` holder, `$3` seconds to expiry. A row comes back when the lease was free
/// or expired, and is now this claim's.
pub fn acquire_import_lease(clock: Clock) -> String {
    let now = clock.now();
    let expires = clock.in_seconds(3);
    format!(
        "
INSERT INTO import_lease (id, token, holder, run_id, acquired_at, heartbeat_at, expires_at)
VALUES (1, $1, $2, NULL, {now}, {now}, {expires})
ON CONFLICT (id) DO UPDATE SET
    token = excluded.token,
    holder = excluded.holder,
    run_id = NULL,
    acquired_at = excluded.acquired_at,
    heartbeat_at = excluded.heartbeat_at,
    expires_at = excluded.expires_at
WHERE import_lease.expires_at <= {now}
RETURNING token"
    )
}

/// `$1` token, `$2` run id or NULL (keeps the one named before), `$3` seconds to expiry.
pub fn renew_import_lease(clock: Clock) -> String {
    let now = clock.now();
    let expires = clock.in_seconds(3);
    format!(
        "UPDATE import_lease SET heartbeat_at = {now}, expires_at = {expires}, \
         run_id = COALESCE($2, run_id) WHERE token = $1"
    )
}

pub const RELEASE_IMPORT_LEASE: &str = "DELETE FROM import_lease WHERE token = $1";

pub fn select_import_lease(clock: Clock) -> String {
    let now = clock.now();
    format!(
        "
SELECT import_lease.holder, import_lease.run_id, import_runs.started_at,
       import_lease.acquired_at, import_lease.heartbeat_at, import_lease.expires_at,
       import_lease.expires_at <= {now}
FROM import_lease LEFT JOIN import_runs ON import_runs.id = import_lease.run_id"
    )
}

/// An `import_runs` row.
pub type ImportRunRow = (
    i64,
    bool,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
);

pub fn import_run_from_row(row: ImportRunRow) -> Result<ImportRun, StoreError> {
    Ok(ImportRun {
        id: row.0,
        dry_run: row.1,
        status: RunStatus::parse(row.2)?,
        started_at: row.3,
        finished_at: row.4,
        next_token: row.5,
        counters: ImportCounters {
            pages: row.6,
            seen: row.7,
            created: row.8,
            linked: row.9,
            skipped: row.10,
            failed: row.11,
            invalid: row.12,
        },
        estimated_users: row.13,
        duration_ms: row.14,
        error: row.15,
    })
}

pub type ImportFailureRow = (String, Option<String>, Option<i32>, String);

pub fn import_failure_from_row(row: ImportFailureRow) -> ImportFailure {
    ImportFailure {
        cognito_username: row.0,
        external_id: row.1,
        status: row.2,
        reason: row.3,
    }
}

/// The import half of `impl Store`, the same for both backends (only the pool type differs).
/// Reads go to `self.pool`, writes to `self.writer` (SQLite: its one writing connection).
macro_rules! import_methods {
    ($store:ty, $placeholders:expr, $clock:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::ImportStore for $store {
            async fn imported_external_ids(
                &self,
                external_ids: &[&str],
            ) -> Result<std::collections::HashMap<String, Option<i64>>, StoreError> {
                if external_ids.is_empty() {
                    return Ok(Default::default());
                }
                let statement = sql::imported_external_ids($placeholders, external_ids.len());
                let mut query = sqlx::query_as::<_, (String, Option<i64>)>(&statement);
                for id in external_ids {
                    query = query.bind(*id);
                }
                Ok(query.fetch_all(&self.pool).await?.into_iter().collect())
            }

            async fn any_imported_user(&self) -> Result<bool, StoreError> {
                let count: i64 = sqlx::query_scalar(sql::ANY_IMPORTED_USER)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count > 0)
            }

            async fn refresh_emails(
                &self,
                emails: &[(&str, Option<&str>)],
            ) -> Result<(), StoreError> {
                for rows in emails.chunks(sql::IMPORT_ROWS_PER_STATEMENT) {
                    let statement = sql::refresh_emails($placeholders, rows.len());
                    let mut query = sqlx::query(&statement);
                    for (external_id, email) in rows {
                        query = query.bind(*external_id).bind(*email);
                    }
                    query.execute(&self.writer).await?;
                }
                Ok(())
            }

            async fn start_import_run(
                &self,
                dry_run: bool,
                at: chrono::DateTime<chrono::Utc>,
                estimated_users: Option<i64>,
            ) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(sql::START_IMPORT_RUN)
                    .bind(dry_run)
                    .bind(at)
                    .bind(estimated_users)
                    .fetch_one(&self.writer)
                    .await?)
            }

            async fn latest_real_import_run(&self) -> Result<Option<ImportRun>, StoreError> {
                sqlx::query_as(&sql::latest_real_import_run())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(sql::import_run_from_row)
                    .transpose()
            }

            async fn import_runs(&self, limit: i64) -> Result<Vec<ImportRun>, StoreError> {
                let rows: Vec<sql::ImportRunRow> = sqlx::query_as(&sql::import_runs())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map(sql::import_run_from_row).collect()
            }

            async fn import_failures(
                &self,
                run_id: i64,
                limit: i64,
            ) -> Result<Vec<ImportFailure>, StoreError> {
                let rows: Vec<sql::ImportFailureRow> = sqlx::query_as(sql::IMPORT_FAILURES)
                    .bind(run_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(sql::import_failure_from_row).collect())
            }

            async fn commit_import(&self, commit: &ImportCommit<'_>) -> Result<i64, StoreError> {
                let mut tx = self.writer.begin().await?;
                for rows in commit.users.chunks(sql::IMPORT_ROWS_PER_STATEMENT) {
                    let statement = sql::upsert_imported_users($placeholders, rows.len());
                    let mut query = sqlx::query(&statement);
                    for row in rows {
                        query = query
                            .bind(row.cognito_username.as_str())
                            .bind($crate::domain::normalize_identifier(&row.cognito_username))
                            .bind(row.email_normalized.as_deref())
                            .bind(row.external_id.as_str())
                            .bind(row.kratos_identity_id.as_str())
                            .bind(row.state.as_str())
                            .bind(commit.run_id)
                            .bind(commit.at)
                            .bind(commit.at);
                    }
                    query.execute(&mut *tx).await?;
                }
                let failures = sql::last_failure_per_user(commit.failures);
                for rows in failures.chunks(sql::IMPORT_ROWS_PER_STATEMENT) {
                    let statement = sql::upsert_import_failures($placeholders, rows.len());
                    let mut query = sqlx::query(&statement);
                    for row in rows {
                        query = query
                            .bind(commit.run_id)
                            .bind(commit.at)
                            .bind(row.cognito_username.as_str())
                            .bind(row.external_id.as_deref())
                            .bind(row.status)
                            .bind(row.reason.as_str());
                    }
                    query.execute(&mut *tx).await?;
                }
                // After the failures: a user both failed and imported in this commit (listed
                // twice) is imported.
                for rows in commit.users.chunks(sql::IMPORT_ROWS_PER_STATEMENT) {
                    let statement = sql::forget_import_failures($placeholders, rows.len());
                    let mut query = sqlx::query(&statement);
                    for row in rows {
                        query = query.bind(row.cognito_username.as_str());
                    }
                    query.bind(commit.run_id).execute(&mut *tx).await?;
                }
                let failed: i64 = sql::bind_run_update!(
                    sqlx::query_scalar(sql::UPDATE_IMPORT_RUN),
                    commit.run_id,
                    RunStatus::Running,
                    commit.next_token,
                    commit.counters,
                    commit.duration_ms,
                    commit.at,
                    None::<chrono::DateTime<chrono::Utc>>,
                    None::<&str>
                )
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(failed)
            }

            async fn update_import_run(&self, update: &RunUpdate<'_>) -> Result<i64, StoreError> {
                let finished_at = (update.status != RunStatus::Running).then_some(update.at);
                sql::bind_run_update!(
                    sqlx::query_scalar(sql::UPDATE_IMPORT_RUN),
                    update.run_id,
                    update.status,
                    update.next_token,
                    update.counters,
                    update.duration_ms,
                    update.at,
                    finished_at,
                    update.error
                )
                .fetch_one(&self.writer)
                .await
                .map_err(StoreError::from)
            }

            async fn acquire_import_lease(
                &self,
                claim: &$crate::store::LeaseClaim<'_>,
            ) -> Result<bool, StoreError> {
                let acquired: Option<String> =
                    sqlx::query_scalar(&sql::acquire_import_lease($clock))
                        .bind(claim.token)
                        .bind(claim.holder)
                        .bind(claim.ttl.as_secs_f64())
                        .fetch_optional(&self.writer)
                        .await?;
                Ok(acquired.is_some())
            }

            async fn renew_import_lease(
                &self,
                claim: &$crate::store::LeaseClaim<'_>,
                run_id: Option<i64>,
            ) -> Result<bool, StoreError> {
                let renewed = sqlx::query(&sql::renew_import_lease($clock))
                    .bind(claim.token)
                    .bind(run_id)
                    .bind(claim.ttl.as_secs_f64())
                    .execute(&self.writer)
                    .await?;
                Ok(renewed.rows_affected() == 1)
            }

            async fn release_import_lease(&self, token: &str) -> Result<(), StoreError> {
                sqlx::query(sql::RELEASE_IMPORT_LEASE)
                    .bind(token)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn import_lease(&self) -> Result<Option<$crate::store::LeaseHolder>, StoreError> {
                let row = sqlx::query_as(&sql::select_import_lease($clock))
                    .fetch_optional(&self.writer)
                    .await?;
                Ok(row.map($crate::store::import_lease::lease_from_row))
            }
        }
    };
}

/// `impl Store` for a backend: its own methods (`migrate`, `record_attempt`, `claim`) as
/// given, and the half that is the same for both (only the pool type differs): reads go to
/// `self.pool`, pruning to `self.writer`.
macro_rules! store_impl {
    ($store:ty, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            $($own)*

    async fn ping(&self) -> Result<(), $crate::store::StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn resolve(&self, lookup: $crate::store::UserLookup<'_>) -> Result<$crate::store::Resolution, $crate::store::StoreError> {
        let rows: Vec<sql::CandidateRow> =
            sql::bind_lookup!(sqlx::query_as(sql::CANDIDATES), lookup)
                .fetch_all(&self.pool)
                .await?;
        let candidates: Vec<_> = rows.into_iter().map(sql::candidate_from_row).collect();
        Ok($crate::store::Resolution::decide(&lookup, &candidates))
    }

    async fn user(&self, cognito_username: &str) -> Result<Option<$crate::store::UserRecord>, $crate::store::StoreError> {
        sqlx::query_as(sql::SELECT_USER)
            .bind(cognito_username)
            .fetch_optional(&self.pool)
            .await?
            .map(sql::user_from_row)
            .transpose()
    }

    async fn recent_attempts(&self, limit: i64) -> Result<Vec<$crate::store::AttemptRecord>, $crate::store::StoreError> {
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
    ) -> Result<u64, $crate::store::StoreError> {
        let done = sqlx::query(sql::PRUNE_ATTEMPTS)
            .bind(before)
            .bind(limit)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn progress(&self) -> Result<$crate::store::Progress, $crate::store::StoreError> {
        let states = sqlx::query_as(sql::STATE_COUNTS)
            .fetch_all(&self.pool)
            .await?;
        let mfa_dropped = sqlx::query_scalar(sql::MFA_DROPPED_COUNT)
            .fetch_one(&self.pool)
            .await?;
        let outcomes = sqlx::query_as(sql::OUTCOME_COUNTS)
            .fetch_all(&self.pool)
            .await?;
        $crate::store::Progress::from_counts(states, mfa_dropped, outcomes)
    }
        }
    };
}

pub(crate) use store_impl;

macro_rules! bind_run_update {
    ($query:expr, $id:expr, $status:expr, $token:expr, $counters:expr, $duration:expr, $at:expr,
     $finished:expr, $error:expr) => {{
        let counters: $crate::store::ImportCounters = $counters;
        $query
            .bind($id)
            .bind($status.as_str())
            .bind($token)
            .bind(counters.pages)
            .bind(counters.seen)
            .bind(counters.created)
            .bind(counters.linked)
            .bind(counters.skipped)
            .bind(counters.failed)
            .bind(counters.invalid)
            .bind($duration)
            .bind($at)
            .bind($finished)
            .bind($error)
    }};
}

pub(crate) use bind_run_update;
pub(crate) use import_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_across_rows_or_stay_anonymous() {
        assert_eq!(Placeholders::Numbered.rows(2, 2), "($1, $2),\n($3, $4)");
        assert_eq!(Placeholders::Anonymous.rows(2, 2), "(?, ?),\n(?, ?)");
        assert_eq!(
            imported_external_ids(Placeholders::Numbered, 3),
            "SELECT external_id, import_run_id FROM users WHERE external_id IN ($1, $2, $3)"
        );
        assert!(upsert_imported_users(Placeholders::Numbered, 2).contains("$18)"));
        assert_eq!(
            forget_import_failures(Placeholders::Numbered, 2),
            "DELETE FROM import_failures WHERE cognito_username IN ($1, $2) AND run_id = $3"
        );
        assert!(
            forget_import_failures(Placeholders::Anonymous, 2).ends_with("(?, ?) AND run_id = ?")
        );
    }

    #[test]
    fn a_user_failed_twice_in_one_commit_keeps_the_last_reason_in_first_place() {
        let failure = |username: &str, reason: &str| ImportFailure {
            cognito_username: username.to_owned(),
            external_id: None,
            status: None,
            reason: reason.to_owned(),
        };
        let failures = [failure("a", "1"), failure("b", "2"), failure("a", "3")];
        let unique: Vec<(&str, &str)> = last_failure_per_user(&failures)
            .into_iter()
            .map(|f| (f.cognito_username.as_str(), f.reason.as_str()))
            .collect();
        assert_eq!(unique, [("a", "3"), ("b", "2")]);
    }
}
