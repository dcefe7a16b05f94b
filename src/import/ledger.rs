//! A run's bookkeeping: what it has counted, what is committed, and where `--resume` would
//! start. Batches are cut by size, not by page, so the page token only moves past a page
//! once every user of that page has been sent and committed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::store::{ImportCounters, ImportFailure, RunStatus, RunUpdate, Store, StoreError};

/// Why `--resume` cannot continue a run.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("no import has run yet; start one without --resume")]
    NoRunYet,
    #[error(
        "the last import (run {run_id}) completed; run `cognito-bridge import` without \
         --resume for a delta sync"
    )]
    LastRunCompleted { run_id: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counted when a page is taken.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Listing {
    pub pages: i64,
    pub seen: i64,
    pub skipped: i64,
    /// Users that could not be mapped: a dry run's `failed`. (A real run's failures are
    /// counted by the store, where a user failed twice is one row.)
    pub unmappable: i64,
    /// Dry run: valid identities that would be created.
    pub would_create: i64,
    pub invalid: i64,
}

/// Counted when Kratos answers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sending {
    pub created: i64,
    pub linked: i64,
}

fn counters(listing: Listing, sending: Sending, failed: i64) -> ImportCounters {
    ImportCounters {
        pages: listing.pages,
        seen: listing.seen,
        created: sending.created + listing.would_create,
        linked: sending.linked,
        skipped: listing.skipped,
        failed,
        invalid: listing.invalid,
    }
}

/// The end of a taken page: how many queued users precede it, the token after it, the
/// listing totals at that point, and its unmappable users.
#[derive(Debug)]
struct Boundary {
    end: u64,
    token: Option<String>,
    listing: Listing,
    failures: Vec<ImportFailure>,
}

/// What moves into the store once every user up to a page's end is sent.
#[derive(Debug, Default)]
pub(super) struct Covered {
    pub failures: Vec<ImportFailure>,
    pub moved: bool,
}

#[derive(Debug)]
pub(super) struct Ledger {
    pub id: i64,
    pub dry_run: bool,
    pub estimated_users: Option<i64>,
    pub listing: Listing,
    pub sending: Sending,
    committed_listing: Listing,
    /// A real run's failed users as the store counts them (`import_failures` rows): a
    /// resumed run retries its failures, so counting them here would count some twice.
    stored_failures: i64,
    /// The committed page token: where `--resume` starts. `None` with no page committed
    /// means the start; with pages committed, that the listing is complete.
    pub token: Option<String>,
    pub listing_complete: bool,
    boundaries: VecDeque<Boundary>,
    queued: u64,
    sent: u64,
    earlier: Duration,
    started: Instant,
}

impl Ledger {
    pub async fn start(
        store: &dyn Store,
        dry_run: bool,
        estimated_users: Option<i64>,
    ) -> Result<Self, StoreError> {
        let id = store
            .start_import_run(dry_run, Utc::now(), estimated_users)
            .await?;
        Ok(Self::new(id, dry_run, estimated_users))
    }

    fn new(id: i64, dry_run: bool, estimated_users: Option<i64>) -> Self {
        Self {
            id,
            dry_run,
            estimated_users,
            listing: Listing::default(),
            sending: Sending::default(),
            committed_listing: Listing::default(),
            stored_failures: 0,
            token: None,
            listing_complete: false,
            boundaries: VecDeque::new(),
            queued: 0,
            sent: 0,
            earlier: Duration::ZERO,
            started: Instant::now(),
        }
    }

    /// The newest real run, when it did not complete; marked `running` again.
    pub async fn resume(store: &dyn Store) -> Result<Self, ResumeError> {
        let Some(last) = store.latest_real_import_run().await? else {
            return Err(ResumeError::NoRunYet);
        };
        if last.status == RunStatus::Completed {
            return Err(ResumeError::LastRunCompleted { run_id: last.id });
        }
        let c = last.counters;
        let listing = Listing {
            pages: c.pages,
            seen: c.seen,
            skipped: c.skipped,
            unmappable: 0,
            would_create: 0,
            invalid: c.invalid,
        };
        let mut ledger = Self {
            id: last.id,
            dry_run: false,
            estimated_users: last.estimated_users,
            listing,
            sending: Sending {
                created: c.created,
                linked: c.linked,
            },
            committed_listing: listing,
            stored_failures: c.failed,
            listing_complete: last.listing_complete(),
            token: last.next_token.clone(),
            boundaries: VecDeque::new(),
            queued: 0,
            sent: 0,
            earlier: Duration::from_millis(last.duration_ms.max(0) as u64),
            started: Instant::now(),
        };
        ledger.update(store, RunStatus::Running, None).await?;
        Ok(ledger)
    }

    /// Totals as this process counts them (a real run's failures as the store last
    /// counted them).
    pub fn counters(&self) -> ImportCounters {
        counters(self.listing, self.sending, self.failed())
    }

    fn failed(&self) -> i64 {
        if self.dry_run {
            self.listing.unmappable
        } else {
            self.stored_failures
        }
    }

    /// The store committed this run's failures: it counts `failed` users.
    pub fn failures_stored(&mut self, failed: i64) {
        self.stored_failures = failed;
    }

    /// Totals as committed: what an interrupted run's row keeps. Users of a page not yet
    /// covered are counted when `--resume` lists the page again, except the ones already
    /// sent, which that run recognises as its own.
    pub fn committed_counters(&self) -> ImportCounters {
        if self.dry_run {
            self.counters()
        } else {
            counters(self.committed_listing, self.sending, self.failed())
        }
    }

    /// Pages as committed.
    pub fn committed_pages(&self) -> i64 {
        self.committed_listing.pages
    }

    /// A page was taken: `queued` more users wait to be sent.
    pub fn page_taken(
        &mut self,
        queued: usize,
        token: Option<String>,
        failures: Vec<ImportFailure>,
    ) {
        self.queued += queued as u64;
        self.boundaries.push_back(Boundary {
            end: self.queued,
            token,
            listing: self.listing,
            failures,
        });
    }

    /// `count` queued users were sent (and their results are about to be committed).
    pub fn sent(&mut self, count: usize) {
        self.sent += count as u64;
    }

    /// Pages whose users are all sent: their failures to commit, and the token moves on.
    pub fn cover(&mut self) -> Covered {
        let mut covered = Covered::default();
        while self
            .boundaries
            .front()
            .is_some_and(|boundary| boundary.end <= self.sent)
        {
            let boundary = self.boundaries.pop_front().expect("a front boundary");
            covered.failures.extend(boundary.failures);
            self.committed_listing = boundary.listing;
            self.token = boundary.token;
            covered.moved = true;
        }
        covered
    }

    pub fn duration(&self) -> Duration {
        self.earlier + self.started.elapsed()
    }

    pub fn duration_ms(&self) -> i64 {
        i64::try_from(self.duration().as_millis()).unwrap_or(i64::MAX)
    }

    pub async fn update(
        &mut self,
        store: &dyn Store,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let failed = store
            .update_import_run(&RunUpdate {
                run_id: self.id,
                status,
                at: Utc::now(),
                next_token: self.token.as_deref(),
                counters: self.committed_counters(),
                duration_ms: self.duration_ms(),
                error,
            })
            .await?;
        self.failures_stored(failed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        Ledger::new(1, false, None)
    }

    fn take(ledger: &mut Ledger, users: usize, token: &str) {
        ledger.listing.pages += 1;
        ledger.listing.seen += users as i64;
        ledger.page_taken(users, Some(token.to_owned()), Vec::new());
    }

    #[test]
    fn the_token_moves_only_past_pages_whose_users_are_all_sent() {
        let mut ledger = ledger();
        take(&mut ledger, 60, "after-1");
        take(&mut ledger, 60, "after-2");
        // A batch of 100: page 1 is covered, page 2 only partly.
        ledger.sent(100);
        ledger.sending.created += 100;
        assert!(ledger.cover().moved);
        assert_eq!(ledger.token.as_deref(), Some("after-1"));
        let committed = ledger.committed_counters();
        assert_eq!(
            (committed.pages, committed.seen, committed.created),
            (1, 60, 100)
        );
        assert_eq!(ledger.counters().seen, 120);

        take(&mut ledger, 0, "after-3");
        assert!(!ledger.cover().moved, "page 2 still has users to send");
        ledger.sent(20);
        ledger.cover();
        assert_eq!(ledger.token.as_deref(), Some("after-3"));
        assert_eq!(ledger.committed_counters().seen, 120);
    }

    #[test]
    fn failures_are_committed_with_their_page() {
        let mut ledger = ledger();
        let failure = ImportFailure {
            cognito_username: "u".into(),
            external_id: None,
            status: None,
            reason: "no sub".into(),
        };
        ledger.page_taken(1, Some("t".into()), vec![failure]);
        assert!(ledger.cover().failures.is_empty());
        ledger.sent(1);
        assert_eq!(ledger.cover().failures.len(), 1);
    }
}
