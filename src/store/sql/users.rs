//! SQL that reads user rows: the hook's lookup, one user's row, and the counts by state.

use chrono::{DateTime, Utc};

use crate::store::{StoreError, UserRecord, state_from_db};

/// The user rows a hook lookup may mean, for [`crate::store::Resolution::decide`]: those
/// carrying the Kratos identity id or external id, and those whose username (exact or
/// normalised) or verified e-mail equals the identifier; ids first, then the exact username.
/// `$1` Kratos identity id, `$2` external id, `$3` identifier as typed (trimmed),
/// `$4` normalised identifier. Rows are [`crate::store::Candidate`]s.
pub const CANDIDATES: &str = "
SELECT cognito_username, kratos_identity_id, external_id FROM users
WHERE kratos_identity_id = $1 OR external_id = $2 OR cognito_username = $3
   OR username_normalized = $4 OR email_normalized = $4
ORDER BY CASE
    WHEN kratos_identity_id = $1 OR external_id = $2 THEN 0
    WHEN cognito_username = $3 THEN 1
    ELSE 2 END, cognito_username
LIMIT 8";

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

/// `$1` Cognito username. Rows are [`UserRow`]s.
pub const SELECT_USER: &str = "
SELECT cognito_username, state, migrated_via, mfa_dropped, external_id, kratos_identity_id,
       migrated_at, last_attempt_at, confirmed_at, last_seen_at, finalized_at
FROM users WHERE cognito_username = $1";

/// A `SELECT_USER` row: a [`UserRecord`] whose state is not parsed yet.
#[derive(sqlx::FromRow)]
pub struct UserRow {
    cognito_username: String,
    state: String,
    migrated_via: Option<String>,
    mfa_dropped: bool,
    external_id: Option<String>,
    kratos_identity_id: Option<String>,
    migrated_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    confirmed_at: Option<DateTime<Utc>>,
    last_seen_at: Option<DateTime<Utc>>,
    finalized_at: Option<DateTime<Utc>>,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(UserRecord {
            cognito_username: row.cognito_username,
            state: state_from_db(row.state)?,
            migrated_via: row.migrated_via,
            mfa_dropped: row.mfa_dropped,
            external_id: row.external_id,
            kratos_identity_id: row.kratos_identity_id,
            migrated_at: row.migrated_at,
            last_attempt_at: row.last_attempt_at,
            confirmed_at: row.confirmed_at,
            last_seen_at: row.last_seen_at,
            finalized_at: row.finalized_at,
        })
    }
}

/// Users by state, from the rollup (migration `..._user_counts`; fold it first).
pub const STATE_COUNTS: &str = "
SELECT state, CAST(SUM(n) AS BIGINT) FROM user_counts GROUP BY state HAVING SUM(n) <> 0";
/// Postgres: one fold at a time (the function takes an advisory lock).
pub const PG_FOLD_USER_COUNTS: &str = "SELECT fold_user_counts()";
/// SQLite: the deltas summed into the rollup (then deleted, in the same transaction).
pub const SQLITE_FOLD_USER_COUNTS: &str = "
INSERT INTO user_counts (state, mfa_dropped, migrated_hour, migrated_via, n)
SELECT state, mfa_dropped, migrated_hour, migrated_via, SUM(delta) FROM user_count_deltas
WHERE true GROUP BY state, mfa_dropped, migrated_hour, migrated_via
ON CONFLICT (state, mfa_dropped, migrated_hour, migrated_via) DO UPDATE SET n = n + excluded.n";
/// Users whose MFA was dropped, from the rollup.
pub const MFA_DROPPED_COUNT: &str =
    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM user_counts WHERE mfa_dropped";
