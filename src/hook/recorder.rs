//! Writing attempt rows so that none is lost: a write that fails waits in a bounded queue
//! and is retried in the background until the store takes it (and once more at shutdown).
//! A row whose username came from the identifier as typed, because the lookup failed, is
//! resolved again when it is written, so progress lands on the user's real row.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::normalize_identifier;
use crate::metrics::Metrics;
use crate::store::{Attempt, Resolution, Store, StoreError, UserLookup};

/// Most rows waiting for the store; past it the oldest are dropped (and counted).
pub const MAX_UNWRITTEN: usize = 10_000;
/// Pauses between retries of the queue, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How long one queued write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The lookup of a hook call whose store lookup failed, kept to resolve again at write time.
#[derive(Debug, Clone)]
pub struct LateLookup {
    pub identity_id: Option<String>,
    pub external_id: Option<String>,
    pub identifier: String,
}

/// One row to write, and the lookup to make again first when the hook's own failed.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    pub attempt: Attempt,
    pub late_lookup: Option<LateLookup>,
}

pub struct Recorder {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    queue: Mutex<VecDeque<PendingWrite>>,
    draining: AtomicBool,
    /// Rows being written for a hook call right now (not yet queued or written).
    submitted: AtomicUsize,
}

/// Tries at writing a hook call's row before it goes to the queue, the pause between them,
/// and the time they may take in all.
const SUBMIT_TRIES: u32 = 3;
const SUBMIT_PAUSE: Duration = Duration::from_millis(20);
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);

impl Recorder {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            queue: Mutex::new(VecDeque::new()),
            draining: AtomicBool::new(false),
            submitted: AtomicUsize::new(0),
        })
    }

    /// Write a hook call's row: a few quick tries (a connection the database dropped fails
    /// once, then the pool replaces it), then the queue. Ok when written now.
    pub async fn submit(self: &Arc<Self>, pending: PendingWrite) -> Result<(), StoreError> {
        self.submitted.fetch_add(1, Ordering::AcqRel);
        let give_up = Instant::now() + SUBMIT_TIMEOUT;
        let mut result = Err(StoreError::Timeout);
        for tries in 1..=SUBMIT_TRIES {
            result = tokio::time::timeout_at(give_up, self.write(&pending))
                .await
                .unwrap_or(Err(StoreError::Timeout));
            match &result {
                Ok(()) => break,
                Err(error) => {
                    self.metrics.store_error("record_attempt");
                    if tries < SUBMIT_TRIES && Instant::now() + SUBMIT_PAUSE < give_up {
                        tracing::warn!(%error, "recording the hook outcome failed; trying again");
                        tokio::time::sleep(SUBMIT_PAUSE).await;
                    } else {
                        tracing::error!(%error, tries, "could not record the hook outcome; it waits for the store");
                        break;
                    }
                }
            }
        }
        if result.is_err() {
            self.enqueue(pending);
        }
        self.submitted.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// Write one row now (resolving a late lookup first).
    pub async fn write(&self, pending: &PendingWrite) -> Result<(), StoreError> {
        let mut attempt = pending.attempt.clone();
        if let Some(late) = &pending.late_lookup {
            let normalized = normalize_identifier(&late.identifier);
            let lookup = UserLookup {
                identity_id: late.identity_id.as_deref(),
                external_id: late.external_id.as_deref(),
                identifier: late.identifier.trim(),
                normalized_identifier: &normalized,
            };
            match self.store.resolve(lookup).await? {
                Resolution::User(username) => attempt.cognito_username = Some(username),
                // The typed identifier stays on the attempt, but makes no new row: it may be
                // an e-mail or another user's spelling.
                _ => attempt.creates_row = false,
            }
        }
        self.store.record_attempt(&attempt).await
    }

    /// Keep a row the store did not take, and make sure a worker retries it.
    pub fn enqueue(self: &Arc<Self>, pending: PendingWrite) {
        {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if queue.len() >= MAX_UNWRITTEN {
                queue.pop_front();
                self.metrics.attempt_dropped();
                tracing::error!(
                    max = MAX_UNWRITTEN,
                    "too many unwritten attempt rows; dropped the oldest"
                );
            }
            queue.push_back(pending);
            self.metrics.unwritten_attempts(queue.len());
        }
        if !self.draining.swap(true, Ordering::AcqRel) {
            let recorder = self.clone();
            tokio::spawn(async move { recorder.drain_until_empty().await });
        }
    }

    /// Rows still waiting.
    pub fn unwritten(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    async fn drain_until_empty(self: Arc<Self>) {
        let mut pause = RETRY_FIRST;
        loop {
            if self.drain_once(None).await {
                pause = RETRY_FIRST;
            } else {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
            // Leave only with an empty queue, and look again after saying so, in case a
            // row arrived in between.
            if self.unwritten() == 0 {
                self.draining.store(false, Ordering::Release);
                if self.unwritten() == 0 || self.draining.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        }
    }

    /// Write queued rows in order until the queue is empty (true), one fails (false) or
    /// `until` passes.
    async fn drain_once(&self, until: Option<Instant>) -> bool {
        loop {
            if until.is_some_and(|until| Instant::now() >= until) {
                return false;
            }
            let Some(pending) = self
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            else {
                return true;
            };
            let give_up = until.unwrap_or_else(|| Instant::now() + WRITE_TIMEOUT);
            let written = tokio::time::timeout_at(give_up, self.write(&pending))
                .await
                .unwrap_or(Err(StoreError::Timeout));
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            match written {
                Ok(()) => {
                    self.metrics.unwritten_attempts(queue.len());
                }
                Err(error) => {
                    queue.push_front(pending);
                    drop(queue);
                    self.metrics.store_error("record_attempt");
                    tracing::warn!(%error, "an unwritten attempt row is still waiting for the store");
                    return false;
                }
            }
        }
    }

    /// At shutdown: let rows being written finish, then write what is waiting, until
    /// `until`. Returns the rows left unwritten.
    pub async fn flush(&self, until: Instant) -> usize {
        while self.submitted.load(Ordering::Acquire) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while self.unwritten() > 0 && Instant::now() < until {
            if !self.drain_once(Some(until)).await {
                tokio::time::sleep(
                    RETRY_FIRST.min(until.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
        let left = self.unwritten();
        if left > 0 {
            tracing::error!(left, "stopping with attempt rows the store never took");
        }
        left
    }
}
