//! SQL of the brute-force guard's claim: SQLite's single statement (and the counts that say
//! why it refused), and the call of Postgres's `guard_claim` function.

use crate::store::{Claim, GuardCounts};

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
/// `$7` request id, `$8` trigger id, `$9` identity id, `$10` attempt key; `$11`/`$12` the
/// shared Cognito rate's emission and tolerance in µs, or NULL: a granted claim then takes a
/// token (`take_cognito_token`, migration `..._cognito_rate`) in the same statement, after the
/// claim (the select list is evaluated on the function's row).
pub const POSTGRES_CLAIM: &str = "
SELECT g.granted, g.identifier_failures, g.ip_failures,
       CASE WHEN g.granted AND $11::BIGINT IS NOT NULL
            THEN take_cognito_token($11::BIGINT, $12::BIGINT) END AS token_wait_us
FROM guard_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) AS g";

/// A `POSTGRES_CLAIM` row: the claim's answer, and the counts it saw.
#[derive(sqlx::FromRow)]
pub struct ClaimRow {
    granted: bool,
    #[sqlx(flatten)]
    counts: GuardCounts,
    token_wait_us: Option<i64>,
}

impl From<ClaimRow> for Claim {
    fn from(row: ClaimRow) -> Self {
        if row.granted {
            Claim::Granted {
                cognito_token: row.token_wait_us.map(crate::store::postgres::token_wait),
            }
        } else {
            Claim::Refused(row.counts)
        }
    }
}
