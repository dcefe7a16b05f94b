//! The capture outbox: bcrypt hashes captured while Kratos was unavailable, waiting for the
//! background worker to deliver them. The only place a hash is ever stored, and only until it
//! is delivered or no longer needed; never a password.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::domain::PasswordHash;

/// A hash to queue for one user.
pub struct NewCapture<'a> {
    pub cognito_username: &'a str,
    /// The user's Kratos identity, when the capture found it before Kratos failed.
    pub kratos_identity_id: Option<&'a str>,
    /// The user's Cognito `sub`, to find the identity later when its id is not known.
    pub cognito_sub: Option<&'a str>,
    pub password_hash: &'a PasswordHash,
    pub at: DateTime<Utc>,
}

/// A queued hash, as a worker took it.
pub struct OutboxEntry {
    pub cognito_username: String,
    pub kratos_identity_id: Option<String>,
    pub cognito_sub: Option<String>,
    pub password_hash: PasswordHash,
    pub created_at: DateTime<Utc>,
    /// Deliveries tried so far, this one included.
    pub attempts: i32,
}

/// How much waits in the outbox, for `report` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct OutboxStatus {
    pub depth: i64,
    /// When the oldest waiting hash was captured.
    pub oldest_at: Option<DateTime<Utc>>,
    /// Its age when this status was read, in whole seconds.
    pub oldest_age_secs: Option<i64>,
}

impl OutboxStatus {
    pub fn new(depth: i64, oldest_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        Self {
            depth,
            oldest_at,
            oldest_age_secs: oldest_at.map(|oldest| (now - oldest).num_seconds().max(0)),
        }
    }
}

/// What the capture endpoint and its worker read and write; part of every
/// [`Store`](super::Store).
#[async_trait]
pub trait CaptureStore: Send + Sync {
    /// Queue a hash, due at once; it replaces the user's earlier one (the newest password wins).
    async fn enqueue_capture(&self, capture: &NewCapture<'_>) -> Result<(), StoreError>;
    /// Take up to `limit` entries due by `now`, oldest due first, and move each one's next
    /// attempt to `lease_until` (counting the attempt), so that no other worker takes it
    /// meanwhile. Atomic per entry across every process sharing the database.
    async fn claim_due_captures(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Kratos is still unavailable: try again at `next_at`; `error` says why (no secret).
    async fn postpone_capture(
        &self,
        cognito_username: &str,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError>;
    /// The hash is in Kratos: delete the user's entry, if any, and mark the user `migrated`
    /// via `capture` (a user already migrated keeps how and when), in one transaction.
    async fn complete_capture(
        &self,
        cognito_username: &str,
        kratos_identity_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Delete the user's entry (migrated another way, or refused by Kratos for good).
    async fn drop_capture(&self, cognito_username: &str) -> Result<(), StoreError>;
    async fn outbox_status(&self) -> Result<OutboxStatus, StoreError>;
}
