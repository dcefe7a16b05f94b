//! SQL that `import` runs: its bulk writes (built with `sqlx::QueryBuilder`, in chunks), its
//! runs and its failures.
//!
//! `QueryBuilder` numbers the placeholders for Postgres (`$1, $2, …`) and writes anonymous `?`
//! for SQLite: sqlx looks up every named parameter by name, and SQLite finds a name by walking
//! the statement's list, so thousands of `$N` would cost in their square.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::domain::normalize_identifier;
use crate::store::{ImportCounters, ImportFailure, ImportRun, ImportedUser, RunStatus, StoreError};

/// Rows per statement when import writes users: 500 rows × 10 values stays far below
/// SQLite's and Postgres's bind limits.
pub const IMPORT_ROWS_PER_STATEMENT: usize = 500;

/// A value a bulk statement binds (a bound that names both traits `push_bind` needs).
pub trait Bind<'a, DB: Database>: Encode<'a, DB> + Type<DB> + 'a {}

impl<'a, DB: Database, T: Encode<'a, DB> + Type<DB> + 'a> Bind<'a, DB> for T {}

/// Appends `(v1, v2, …)`, each value bound, to an `… IN ` the caller wrote.
pub fn push_list<'a, DB>(query: &mut QueryBuilder<'a, DB>, values: &[&'a str])
where
    DB: Database,
    &'a str: Bind<'a, DB>,
{
    query.push("(");
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(*value);
    }
    query.push(")");
}

/// Which of these external ids already have a row, and the run that imported each. Rows are
/// `(external_id, import_run_id)`.
pub fn imported_external_ids<'a, DB>(external_ids: &[&'a str]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Bind<'a, DB>,
{
    let mut query =
        QueryBuilder::new("SELECT external_id, import_run_id FROM users WHERE external_id IN ");
    push_list(&mut query, external_ids);
    query
}

/// Create or link these user rows for the run. A row the hook has already moved to `migrated`
/// or `needs_recovery` keeps its state. The e-mail is replaced, not kept: one no longer
/// verified in Cognito must stop finding the user.
pub fn upsert_imported_users<'a, DB>(
    run_id: i64,
    at: DateTime<Utc>,
    users: &'a [ImportedUser],
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Bind<'a, DB>,
    Option<&'a str>: Bind<'a, DB>,
    String: Bind<'a, DB>,
    i64: Bind<'a, DB>,
    Option<i64>: Bind<'a, DB>,
    DateTime<Utc>: Bind<'a, DB>,
{
    let mut query = QueryBuilder::new(
        "
INSERT INTO users (cognito_username, username_normalized, email_normalized, external_id,
                   kratos_identity_id, state, import_run_id, created_by_run, created_at,
                   updated_at)
",
    );
    query.push_values(users, |mut row, user| {
        row.push_bind(user.cognito_username.as_str())
            .push_bind(normalize_identifier(&user.cognito_username))
            .push_bind(user.email_normalized.as_deref())
            .push_bind(user.external_id.as_str())
            .push_bind(user.kratos_identity_id.as_str())
            .push_bind(user.state.as_str())
            .push_bind(run_id)
            .push_bind(user.created.then_some(run_id))
            .push_bind(at)
            .push_bind(at);
    });
    query.push(
        "
ON CONFLICT (cognito_username) DO UPDATE SET
    email_normalized = excluded.email_normalized,
    external_id = excluded.external_id,
    kratos_identity_id = excluded.kratos_identity_id,
    import_run_id = excluded.import_run_id,
    created_by_run = COALESCE(excluded.created_by_run, users.created_by_run),
    state = CASE WHEN users.state IN ('migrated', 'needs_recovery') THEN users.state
                 ELSE excluded.state END,
    updated_at = excluded.updated_at",
    );
    query
}

/// Pairs of (external id, verified e-mail or NULL): the users' e-mails, where changed.
/// (`VALUES` names its columns `column1`, `column2` in both backends.)
pub fn refresh_emails<'a, DB>(emails: &[(&'a str, Option<&'a str>)]) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Bind<'a, DB>,
    Option<&'a str>: Bind<'a, DB>,
{
    let mut query = QueryBuilder::new(
        "
UPDATE users SET email_normalized = v.column2
FROM (",
    );
    query.push_values(emails, |mut row, (external_id, email)| {
        row.push_bind(*external_id).push_bind(*email);
    });
    query.push(
        ") AS v
WHERE users.external_id = v.column1 AND users.email_normalized IS DISTINCT FROM v.column2",
    );
    query
}

/// The run's failures. A user the run failed before (an interrupted run's page listed again by
/// `--resume`) keeps one row, with the latest reason. One row per user in a statement
/// (Postgres refuses to upsert a row twice): see [`last_failure_per_user`].
pub fn upsert_import_failures<'a, DB>(
    run_id: i64,
    at: DateTime<Utc>,
    failures: &[&'a ImportFailure],
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Bind<'a, DB>,
    Option<&'a str>: Bind<'a, DB>,
    Option<i32>: Bind<'a, DB>,
    i64: Bind<'a, DB>,
    DateTime<Utc>: Bind<'a, DB>,
{
    let mut query = QueryBuilder::new(
        "
INSERT INTO import_failures (run_id, at, cognito_username, external_id, status, reason)
",
    );
    query.push_values(failures, |mut row, failure| {
        row.push_bind(run_id)
            .push_bind(at)
            .push_bind(failure.cognito_username.as_str())
            .push_bind(failure.external_id.as_deref())
            .push_bind(failure.status)
            .push_bind(failure.reason.as_str());
    });
    query.push(
        "
ON CONFLICT (run_id, cognito_username) DO UPDATE SET
    at = excluded.at,
    external_id = excluded.external_id,
    status = excluded.status,
    reason = excluded.reason",
    );
    query
}

/// Users the run has now imported are no failures of it.
pub fn forget_import_failures<'a, DB>(
    run_id: i64,
    users: &'a [ImportedUser],
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Bind<'a, DB>,
    i64: Bind<'a, DB>,
{
    let mut query = QueryBuilder::new("DELETE FROM import_failures WHERE cognito_username IN (");
    let mut list = query.separated(", ");
    for user in users {
        list.push_bind(user.cognito_username.as_str());
    }
    query.push(") AND run_id = ");
    query.push_bind(run_id);
    query
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

/// The newest runs first: `$1` whether dry runs count, `$2` how many. Rows are
/// [`ImportRunRow`]s.
pub const IMPORT_RUNS: &str = "
SELECT id, dry_run, status, started_at, finished_at, next_token, pages, seen, created, linked,
       skipped, failed, invalid, estimated_users, duration_ms, error
FROM import_runs WHERE $1 OR NOT dry_run ORDER BY id DESC LIMIT $2";

/// One run by id (`$1`). Rows are [`ImportRunRow`]s.
pub const IMPORT_RUN: &str = "
SELECT id, dry_run, status, started_at, finished_at, next_token, pages, seen, created, linked,
       skipped, failed, invalid, estimated_users, duration_ms, error
FROM import_runs WHERE id = $1";

/// The users whose identity run `$1` created, after `$2` in username order, `$3` of them.
pub const CREATED_BY_RUN: &str = "
SELECT cognito_username, kratos_identity_id, state FROM users
WHERE created_by_run = $1 AND cognito_username > $2 ORDER BY cognito_username LIMIT $3";

/// `$1` run, `$2` username: the row goes unless it migrated (or another run took it over).
pub const DELETE_UNMIGRATED: &str = "
DELETE FROM users WHERE cognito_username = $2 AND created_by_run = $1 AND state <> 'migrated'";

/// A `CREATED_BY_RUN` row, its state not parsed yet.
#[derive(sqlx::FromRow)]
pub struct CreatedByRunRow {
    cognito_username: String,
    kratos_identity_id: Option<String>,
    state: String,
}

impl TryFrom<CreatedByRunRow> for crate::store::CreatedByRun {
    type Error = StoreError;

    fn try_from(row: CreatedByRunRow) -> Result<Self, StoreError> {
        Ok(crate::store::CreatedByRun {
            cognito_username: row.cognito_username,
            kratos_identity_id: row.kratos_identity_id,
            state: crate::store::state_from_db(row.state)?,
        })
    }
}

/// Rows are [`ImportFailure`]s.
pub const IMPORT_FAILURES: &str = "
SELECT cognito_username, external_id, status, reason FROM import_failures
WHERE run_id = $1 ORDER BY id LIMIT $2";

/// An `import_runs` row: an [`ImportRun`] whose status is not parsed yet.
#[derive(sqlx::FromRow)]
pub struct ImportRunRow {
    id: i64,
    dry_run: bool,
    status: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    next_token: Option<String>,
    #[sqlx(flatten)]
    counters: ImportCounters,
    estimated_users: Option<i64>,
    duration_ms: i64,
    error: Option<String>,
}

impl TryFrom<ImportRunRow> for ImportRun {
    type Error = StoreError;

    fn try_from(row: ImportRunRow) -> Result<Self, StoreError> {
        Ok(ImportRun {
            id: row.id,
            dry_run: row.dry_run,
            status: RunStatus::parse(row.status)?,
            started_at: row.started_at,
            finished_at: row.finished_at,
            next_token: row.next_token,
            counters: row.counters,
            estimated_users: row.estimated_users,
            duration_ms: row.duration_ms,
            error: row.error,
        })
    }
}

/// Bind `UPDATE_IMPORT_RUN`'s `$1..$14`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> ImportedUser {
        ImportedUser {
            cognito_username: name.to_owned(),
            email_normalized: None,
            external_id: format!("sub-{name}"),
            kratos_identity_id: format!("id-{name}"),
            state: crate::domain::UserState::Pending,
            created: true,
        }
    }

    #[test]
    fn placeholders_number_across_rows_or_stay_anonymous() {
        let users = [user("a"), user("b")];
        let ids = ["x", "y", "z"];
        assert_eq!(
            imported_external_ids::<sqlx::Postgres>(&ids).sql(),
            "SELECT external_id, import_run_id FROM users WHERE external_id IN ($1, $2, $3)"
        );
        assert!(
            upsert_imported_users::<sqlx::Postgres>(1, Utc::now(), &users)
                .sql()
                .contains("$20)")
        );
        assert_eq!(
            forget_import_failures::<sqlx::Postgres>(7, &users).sql(),
            "DELETE FROM import_failures WHERE cognito_username IN ($1, $2) AND run_id = $3"
        );
        assert!(
            forget_import_failures::<sqlx::Sqlite>(7, &users)
                .sql()
                .ends_with("(?, ?) AND run_id = ?")
        );
        assert!(
            upsert_imported_users::<sqlx::Sqlite>(1, Utc::now(), &users)
                .sql()
                .contains("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
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
