//! What `import` writes: its runs (with the page to resume from), the user rows it links to
//! Kratos identities, and the users it could not import.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::domain::UserState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// In progress, or killed without a chance to say so.
    Running,
    /// Stopped by an error, a signal or `--limit`; `--resume` continues it.
    Interrupted,
    Completed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Completed => "completed",
        }
    }

    pub(super) fn parse(raw: String) -> Result<Self, StoreError> {
        match raw.as_str() {
            "running" => Ok(RunStatus::Running),
            "interrupted" => Ok(RunStatus::Interrupted),
            "completed" => Ok(RunStatus::Completed),
            _ => Err(StoreError::Corrupt(raw)),
        }
    }
}

/// A run's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ImportCounters {
    /// `ListUsers` pages committed.
    pub pages: i64,
    /// Cognito users listed.
    pub seen: i64,
    /// Identities created in Kratos (in a dry run: that would be created).
    pub created: i64,
    /// Identities that already existed in Kratos (409) and were linked by external id.
    pub linked: i64,
    /// Users already imported by an earlier run: no Kratos call.
    pub skipped: i64,
    /// Users Kratos refused, or that could not be mapped; recorded with the reason, once per
    /// user and run (a resumed run's retry that succeeds is no failure any more).
    pub failed: i64,
    /// Dry run: mapped identities the identity schema rejects.
    pub invalid: i64,
}

/// A run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct ImportRun {
    pub id: i64,
    pub dry_run: bool,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub next_token: Option<String>,
    #[serde(flatten)]
    pub counters: ImportCounters,
    pub estimated_users: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

impl ImportRun {
    /// Whether every page was listed and committed (only the run's end is missing).
    pub fn listing_complete(&self) -> bool {
        self.next_token.is_none() && self.counters.pages > 0
    }
}

/// A user row as import leaves it: linked to its Kratos identity.
#[derive(Debug, Clone)]
pub struct ImportedUser {
    pub cognito_username: String,
    pub email_normalized: Option<String>,
    pub external_id: String,
    pub kratos_identity_id: String,
    pub state: UserState,
    /// This run created the identity (it did not link one that was there): `import undo`
    /// may delete it.
    pub created: bool,
}

/// A user whose Kratos identity an import run created, as `import undo` weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedByRun {
    pub cognito_username: String,
    pub kratos_identity_id: Option<String>,
    pub state: UserState,
}

/// A user the run could not import.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ImportFailure {
    pub cognito_username: String,
    pub external_id: Option<String>,
    /// Kratos's HTTP status for the item, when Kratos answered.
    pub status: Option<i32>,
    pub reason: String,
}

/// One commit: rows and failures of the users sent since the last commit, and where the
/// listing goes on. Atomic, so `--resume` never skips an uncommitted user.
#[derive(Debug)]
pub struct ImportCommit<'a> {
    pub run_id: i64,
    pub at: DateTime<Utc>,
    pub users: &'a [ImportedUser],
    pub failures: &'a [ImportFailure],
    pub next_token: Option<&'a str>,
    pub counters: ImportCounters,
    pub duration_ms: i64,
}
