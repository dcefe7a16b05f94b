//! The import lease as stored: which process may run a real import now, and until when.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A request for the lease, or for its renewal.
#[derive(Debug, Clone, Copy)]
pub struct LeaseClaim<'a> {
    /// Random per process: only its holder renews or releases the lease.
    pub token: &'a str,
    /// For people: host and pid.
    pub holder: &'a str,
    /// How long the lease lasts without a renewal.
    pub ttl: Duration,
}

/// Who holds the lease, as stored; times are the database's.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeaseHolder {
    pub holder: String,
    /// `None` while its import is starting.
    pub run_id: Option<i64>,
    pub run_started_at: Option<DateTime<Utc>>,
    pub acquired_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Past `expires_at` by the database's clock: the next claim takes it over.
    pub expired: bool,
}
