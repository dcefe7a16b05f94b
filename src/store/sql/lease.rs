//! SQL of the import lease: taking, renewing, giving up and reading it, by the database's
//! clock.

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

/// Rows are [`crate::store::LeaseHolder`]s.
pub fn select_import_lease(clock: Clock) -> String {
    let now = clock.now();
    format!(
        "
SELECT import_lease.holder, import_lease.run_id, import_runs.started_at AS run_started_at,
       import_lease.acquired_at, import_lease.heartbeat_at, import_lease.expires_at,
       import_lease.expires_at <= {now} AS expired
FROM import_lease LEFT JOIN import_runs ON import_runs.id = import_lease.run_id"
    )
}
