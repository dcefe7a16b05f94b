//! SQL shared by both backends: `$N` placeholders work in Postgres and in SQLite (through
//! sqlx), and the tables have the same columns in both migration sets.
//!
//! Recording binds the attempt's eight columns as `$1..$8` and the user row's extra values
//! as `$9..$12`, so one argument list serves every statement that records.

use chrono::{DateTime, Utc};

use super::{AttemptRecord, StoreError, UserRecord, state_from_db};

/// Username lookup in DESIGN.md's order. `$1` Kratos identity id, `$2` external id,
/// `$3` identifier as typed (trimmed), `$4` normalised identifier.
pub const RESOLVE: &str = "
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

/// The statements are macros so that Postgres can `concat!` them into one statement.
macro_rules! log_attempt {
    () => {
        "
INSERT INTO attempts (at, cognito_username, outcome, cognito_latency_ms, cognito_calls,
                      request_id, trigger_id, identity_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    };
}

/// Create the row, or move it; a migrated user is never moved back.
/// `$9` normalised username, `$10` new state or NULL, `$11` `via` or NULL, `$12` MFA dropped.
macro_rules! upsert_user {
    () => {
        "
INSERT INTO users (cognito_username, username_normalized, state, migrated_via, mfa_dropped,
                   created_at, updated_at, migrated_at, last_attempt_at)
VALUES ($2, $9, COALESCE($10, 'pending'), $11, $12, $1, $1,
        CASE WHEN $11 IS NULL THEN NULL ELSE $1 END, $1)
ON CONFLICT (cognito_username) DO UPDATE SET
    state = CASE WHEN users.state = 'migrated' THEN users.state
                 ELSE COALESCE($10, users.state) END,
    migrated_via = CASE WHEN users.state = 'migrated' THEN users.migrated_via
                        ELSE COALESCE($11, users.migrated_via) END,
    migrated_at = CASE WHEN users.state = 'migrated' OR $11 IS NULL THEN users.migrated_at
                       ELSE $1 END,
    mfa_dropped = CASE WHEN users.state = 'migrated' THEN users.mfa_dropped ELSE $12 END,
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

/// Bind `$1..$8` (the attempt) and, for an upsert, `$9..$12` (the user row).
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
            .bind(attempt.identity_id.as_deref());
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
