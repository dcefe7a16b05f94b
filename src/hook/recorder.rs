//! Writing attempt rows so that none is lost. Every row joins a bounded queue before it is
//! written and leaves it once the store has taken it; a row the store refuses stays and is
//! retried in the background, and what is left at shutdown is written then. Writes are keyed
//! by the attempt's key, so writing a row twice (its own try and a retry racing) is harmless.
//! A row whose username came from the identifier as typed, because the lookup failed, is
//! resolved again when it is written, so progress lands on the user's real row.
//!
//! Rows are written in groups: one task writes, in one transaction, every row that arrived
//! while its last transaction ran (at most [`MAX_GROUP`]), and each caller waits for its
//! own row's commit, so an answer still follows its durable row. Under light load a group
//! is one row; under heavy load many calls share one commit. A group the database refuses
//! is written again row by row, so one bad row fails alone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::domain::normalize_identifier;
use crate::metrics::Metrics;
use crate::store::{Attempt, Resolution, Store, StoreError, UserLookup};

/// Most rows waiting for the store; past it the oldest are dropped (and counted).
pub const MAX_UNWRITTEN: usize = 10_000;
/// Most rows one transaction writes.
pub const MAX_GROUP: usize = 256;
/// Pauses between retries of the queue, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long one write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries at writing a hook call's row before the background retries take over, and the
/// pause between them (a connection the database dropped fails once, then the pool
/// replaces it).
const SUBMIT_TRIES: u32 = 3;
const SUBMIT_PAUSE: Duration = Duration::from_millis(20);

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
    retrying: AtomicBool,
    group: Mutex<Group>,
}

/// The rows waiting for the group writer's next transaction, and whether it runs.
#[derive(Default)]
struct Group {
    waiting: Vec<(Attempt, oneshot::Sender<Result<(), StoreError>>)>,
    writing: bool,
}

impl Recorder {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            queue: Mutex::new(VecDeque::new()),
            retrying: AtomicBool::new(false),
            group: Mutex::default(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<PendingWrite>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write a hook call's row: it joins the queue, a few quick tries follow, and when they
    /// fail the background retries take over. Ok when written now.
    pub async fn submit(self: &Arc<Self>, pending: PendingWrite) -> Result<(), StoreError> {
        self.enqueue(pending.clone());
        let mut result = Err(StoreError::Timeout);
        for tries in 1..=SUBMIT_TRIES {
            result = self.write_and_dequeue(&pending, None).await;
            match &result {
                Ok(()) => break,
                Err(error) if tries < SUBMIT_TRIES => {
                    tracing::warn!(%error, "recording the hook outcome failed; trying again");
                    tokio::time::sleep(SUBMIT_PAUSE).await;
                }
                Err(error) => {
                    tracing::error!(%error, tries, "could not record the hook outcome; it waits for the store");
                }
            }
        }
        if result.is_err() {
            self.retry_in_background();
        }
        result
    }

    /// Rows not yet taken by the store (being written, or waiting for a retry).
    pub fn unwritten(&self) -> usize {
        self.queue().len()
    }

    /// At shutdown: write what is left, until `until`. Returns the rows left unwritten.
    pub async fn flush(self: &Arc<Self>, until: Instant) -> usize {
        while Instant::now() < until {
            let Some(front) = self.queue().front().cloned() else {
                break;
            };
            if self.write_and_dequeue(&front, Some(until)).await.is_err() {
                let pause = RETRY_FIRST.min(until.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
        }
        let left = self.unwritten();
        if left > 0 {
            tracing::error!(left, "stopping with attempt rows the store never took");
        }
        left
    }

    fn enqueue(&self, pending: PendingWrite) {
        let mut queue = self.queue();
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

    /// Write one row (resolving a late lookup first) and take it off the queue.
    async fn write_and_dequeue(
        self: &Arc<Self>,
        pending: &PendingWrite,
        until: Option<Instant>,
    ) -> Result<(), StoreError> {
        let give_up = until.unwrap_or_else(|| Instant::now() + WRITE_TIMEOUT);
        let written = tokio::time::timeout_at(give_up, self.write(pending))
            .await
            .unwrap_or(Err(StoreError::Timeout));
        match &written {
            Ok(()) => {
                let mut queue = self.queue();
                if let Some(at) = queue
                    .iter()
                    .position(|queued| queued.attempt.key == pending.attempt.key)
                {
                    queue.remove(at);
                }
                self.metrics.unwritten_attempts(queue.len());
            }
            Err(_) => self.metrics.store_error("record_attempt"),
        }
        written
    }

    async fn write(self: &Arc<Self>, pending: &PendingWrite) -> Result<(), StoreError> {
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
        self.write_in_group(attempt).await
    }

    /// Hand the row to the group writer (starting it if it is idle) and wait for its commit.
    async fn write_in_group(self: &Arc<Self>, attempt: Attempt) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        let start_writer = {
            let mut group = self.group.lock().unwrap_or_else(|p| p.into_inner());
            group.waiting.push((attempt, done));
            !std::mem::replace(&mut group.writing, true)
        };
        if start_writer {
            let recorder = self.clone();
            tokio::spawn(async move { recorder.write_groups().await });
        }
        // The writer answers every row it takes; a closed channel means it was stopped.
        committed.await.unwrap_or(Err(StoreError::Timeout))
    }

    /// The group writer: one transaction for what is waiting, until nothing is.
    async fn write_groups(&self) {
        loop {
            let taken: Vec<_> = {
                let mut group = self.group.lock().unwrap_or_else(|p| p.into_inner());
                if group.waiting.is_empty() {
                    group.writing = false;
                    return;
                }
                let take = group.waiting.len().min(MAX_GROUP);
                group.waiting.drain(..take).collect()
            };
            let (attempts, waiters): (Vec<Attempt>, Vec<_>) = taken.into_iter().unzip();
            let written = self.write_timed(&attempts).await;
            match written {
                Err(StoreError::Database(sqlx::Error::Database(_))) if attempts.len() > 1 => {
                    // The database refused a statement: one row may be at fault, so each
                    // row is written on its own and only a bad row fails.
                    for (attempt, waiter) in attempts.iter().zip(waiters) {
                        let alone = self.write_timed(std::slice::from_ref(attempt)).await;
                        if alone.is_ok() {
                            self.metrics.attempt_rows_committed(1);
                        }
                        let _ = waiter.send(alone);
                    }
                }
                Ok(()) => {
                    self.metrics.attempt_rows_committed(attempts.len());
                    for waiter in waiters {
                        let _ = waiter.send(Ok(()));
                    }
                }
                Err(error) => {
                    // The database is unreachable or slow: every row of the group failed
                    // alike, and each caller retries its own.
                    let error = Arc::new(error);
                    for waiter in waiters {
                        let _ = waiter.send(Err(StoreError::Shared(error.clone())));
                    }
                }
            }
        }
    }

    async fn write_timed(&self, attempts: &[Attempt]) -> Result<(), StoreError> {
        tokio::time::timeout(WRITE_TIMEOUT, self.store.record_attempts(attempts))
            .await
            .unwrap_or(Err(StoreError::Timeout))
    }

    /// Make sure one task retries the queue until it is empty.
    fn retry_in_background(self: &Arc<Self>) {
        if self.retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        let recorder = self.clone();
        tokio::spawn(async move {
            let mut pause = RETRY_FIRST;
            loop {
                let front = recorder.queue().front().cloned();
                match front {
                    Some(front) => {
                        if recorder.write_and_dequeue(&front, None).await.is_ok() {
                            pause = RETRY_FIRST;
                        } else {
                            tracing::warn!(
                                "an unwritten attempt row is still waiting for the store"
                            );
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(RETRY_MAX);
                        }
                    }
                    None => {
                        // Leave, then look again in case a row arrived in between.
                        recorder.retrying.store(false, Ordering::Release);
                        if recorder.unwritten() == 0
                            || recorder.retrying.swap(true, Ordering::AcqRel)
                        {
                            return;
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
