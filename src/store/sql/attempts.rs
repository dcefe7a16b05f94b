//! SQL that writes and reads the attempt log: recording an outcome (and the user row it
//! moves), the newest attempts, the counts by outcome, and pruning.
//!
//! Recording binds the attempt's twelve columns as `$1..$12` and the user row's extra values
//! as `$13..$16`, so one argument list serves every statement that records.

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

/// Create the row, or move it; a migrated user is never moved back, and keeps how and when
/// it migrated, except a row migrated via `kratos` that a hook match now explains: Kratos
/// calls the login-after hook (which marks a `pending` row `migrated` via `kratos`) for the
/// very login the hook answered, and that call may be written before this one.
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
    migrated_via = CASE WHEN users.state = 'migrated'
                         AND (COALESCE(users.migrated_via, '') <> 'kratos' OR $15 IS NULL)
                        THEN users.migrated_via
                        ELSE COALESCE($15, users.migrated_via) END,
    migrated_at = CASE WHEN (users.state = 'migrated'
                             AND (COALESCE(users.migrated_via, '') <> 'kratos' OR $15 IS NULL))
                            OR $15 IS NULL THEN users.migrated_at
                       ELSE $1 END,
    mfa_dropped = CASE WHEN users.state = 'migrated'
                        AND (COALESCE(users.migrated_via, '') <> 'kratos' OR $15 IS NULL)
                       THEN users.mfa_dropped ELSE $16 END,
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

/// Rows are [`crate::store::AttemptRecord`]s. `$1` how many.
pub const RECENT_ATTEMPTS: &str = "
SELECT at, cognito_username, outcome, cognito_latency_ms, cognito_calls, request_id
FROM attempts ORDER BY id DESC LIMIT $1";

/// Attempts since `$1` by outcome (through `attempts_at`: the recent end of the table only).
pub const OUTCOME_COUNTS: &str =
    "SELECT outcome, COUNT(*) FROM attempts WHERE at >= $1 GROUP BY outcome";

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
