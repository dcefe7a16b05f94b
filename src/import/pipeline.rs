//! The import loop: one task lists Cognito pages under the rate limit while this one maps
//! them, skips users imported before and queues the rest (a dry run checks them against the
//! identity schema instead), sending each full batch (`batch`) as it goes; and why a run
//! stops early ([`Interruption`]).
//!
//! A little over 400 lines: the loop and the page it takes share the ledger's order of events
//! (listed, taken, sent, committed), which reads best in one place.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::sync::mpsc;

use super::batch::{self, Queued, failure};
use super::lease::Lease;
use super::ledger::Ledger;
use super::mapping::Mapping;
use super::summary::{InvalidExample, SUMMARY_EXAMPLES};
use super::{schema, send};
use crate::cognito::directory::{Directory, DirectoryError, PAGE_SIZE, Page};
use crate::kratos::{BatchBody, KratosAdmin, KratosError, KratosLine, MAX_BATCH_BODY_BYTES};
use crate::store::{ImportFailure, RunStatus, Store, StoreError};

/// Why a run stopped before the listing ended. Everything taken before it is sent and
/// committed, except after Ctrl-C, a lost lease, or when Kratos or the database is the
/// problem; `--resume` continues from the last committed page.
#[derive(Debug, thiserror::Error)]
pub enum Interruption {
    /// Cognito's directory failed: listing users, or their groups.
    #[error(transparent)]
    Listing(DirectoryError),
    /// Cognito refused the page token a resumed run started from.
    #[error(
        "{0}; the stored page token may have expired: run `cognito-bridge import` without \
         --resume (the delta sync skips every user imported so far without Kratos calls)"
    )]
    StoredTokenRefused(DirectoryError),
    #[error(transparent)]
    Kratos(#[from] KratosError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stopped by Ctrl-C")]
    CtrlC,
    #[error(
        "lost the import lease: this import could not renew it in time and another import \
         took it over"
    )]
    LeaseLost,
}

/// Why the listing stopped without an interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    ListingDone,
    Limit,
}

/// How a run ended, as recorded in its row.
pub(super) struct Outcome {
    pub status: RunStatus,
    pub ended: Result<Ended, Interruption>,
    /// Dry run: the first identities the schema rejects.
    pub invalid: Vec<InvalidExample>,
}

/// Resolves when a run must stop early: Ctrl-C (when asked to listen for it), or the lease
/// taken over.
pub(super) type StopSignal = Pin<Box<dyn Future<Output = Interruption> + Send>>;

pub(super) fn stop_signal(stop_on_ctrl_c: bool, lease: Option<&Lease>) -> StopSignal {
    let lost = lease.map(Lease::lost);
    Box::pin(async move {
        let ctrl_c = async {
            if stop_on_ctrl_c {
                let _ = tokio::signal::ctrl_c().await;
            } else {
                std::future::pending::<()>().await;
            }
            Interruption::CtrlC
        };
        match lost {
            Some(lost) => tokio::select! {
                reason = ctrl_c => reason,
                () = lost => Interruption::LeaseLost,
            },
            None => ctrl_c.await,
        }
    })
}

pub(super) fn progress_bar(enabled: bool, estimated: Option<i64>, already: i64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    // indicatif draws nothing when standard error is not a terminal.
    let bar = match estimated.filter(|estimate| *estimate > 0) {
        Some(estimate) => ProgressBar::new(estimate as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/~{human_len} users, {per_sec}, ETA {eta}",
            )
            .expect("a valid template"),
        ),
        None => ProgressBar::no_length().with_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {human_pos} users, {per_sec}")
                .expect("a valid template"),
        ),
    };
    bar.set_position(already.max(0) as u64);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What the lister hands the importer.
enum Listed {
    Page(Page),
    Failed(DirectoryError),
}

pub(super) struct Importer {
    pub store: Arc<dyn Store>,
    /// Whether users may already be imported. Not on a first import into an empty store:
    /// the per-page lookup is a quarter of that import's CPU, and a user listed twice (pages
    /// shifting while users sign up) still ends linked, through Kratos's 409.
    pub check_known: bool,
    pub kratos: KratosAdmin,
    pub mapping: Mapping,
    /// Dry run: the identity schema mapped identities are checked against.
    pub schema: Option<jsonschema::Validator>,
    pub batch_size: usize,
    pub progress: ProgressBar,
}

impl Importer {
    /// Import until the listing ends or the run is interrupted, then record how it ended.
    pub async fn execute(
        &self,
        ledger: &mut Ledger,
        directory: Arc<Directory>,
        limit: Option<u64>,
        stop: StopSignal,
    ) -> Result<Outcome, StoreError> {
        let mut invalid = Vec::new();
        let ended = self
            .import_pages(ledger, directory, limit, stop, &mut invalid)
            .await;
        self.progress.finish_and_clear();
        let (status, error) = match &ended {
            Ok(Ended::ListingDone) => (RunStatus::Completed, None),
            // A dry run is never resumed: it ends as completed, whatever stopped it.
            Ok(Ended::Limit) if ledger.dry_run => (RunStatus::Completed, None),
            Ok(Ended::Limit) => (
                RunStatus::Interrupted,
                Some("stopped at --limit".to_owned()),
            ),
            Err(reason) if ledger.dry_run => (RunStatus::Completed, Some(reason.to_string())),
            Err(reason) => (RunStatus::Interrupted, Some(reason.to_string())),
        };
        ledger
            .update(self.store.as_ref(), status, error.as_deref())
            .await?;
        let counters = ledger.committed_counters();
        tracing::info!(
            run_id = ledger.id,
            status = status.as_str(),
            seen = counters.seen,
            created = counters.created,
            linked = counters.linked,
            skipped = counters.skipped,
            failed = counters.failed,
            invalid = counters.invalid,
            "import finished"
        );
        Ok(Outcome {
            status,
            ended,
            invalid,
        })
    }

    /// List, map, send and commit until the listing ends, or until the run is interrupted.
    async fn import_pages(
        &self,
        ledger: &mut Ledger,
        directory: Arc<Directory>,
        limit: Option<u64>,
        mut stop: StopSignal,
        invalid: &mut Vec<InvalidExample>,
    ) -> Result<Ended, Interruption> {
        if ledger.listing_complete {
            return Ok(Ended::ListingDone);
        }
        // A dry run writes nothing, and the traits it checks are the same on every line.
        let line = if ledger.dry_run {
            KratosLine::Current
        } else {
            send::detect_line(&self.kratos).await?
        };
        let groups = if self.mapping.wants_groups() {
            directory
                .group_memberships()
                .await
                .map_err(Interruption::Listing)?
        } else {
            HashMap::new()
        };
        // Room for two batches of pages, so listing goes on while a batch is sent.
        let capacity = 2 * self.batch_size.div_ceil(PAGE_SIZE as usize) + 2;
        let (sender, mut receiver) = mpsc::channel(capacity);
        let lister = tokio::spawn(list_pages(directory, ledger.token.clone(), limit, sender));
        let mut queue = VecDeque::new();
        let mut last_token = ledger.token.clone();
        let mut stopped = false;
        // One listener for the whole run, so a Ctrl-C during a send is not lost.
        let listed: Result<(), Interruption> = loop {
            let next = tokio::select! {
                // First: after a lost lease, not one more page.
                biased;
                reason = &mut stop => {
                    stopped = true;
                    break Err(reason);
                }
                next = receiver.recv() => next,
            };
            let page = match next {
                None => break Ok(()),
                Some(Listed::Failed(error)) => break Err(listing_failure(error, ledger)),
                Some(Listed::Page(page)) => page,
            };
            last_token = page.next_token.clone();
            let (taken, failed) = match self.take_page(ledger, page, &groups, line).await {
                Ok(taken) => (taken, None),
                Err(PageFailed { error, taken }) => (taken, Some(error)),
            };
            queue.extend(taken.queued);
            let room = SUMMARY_EXAMPLES.saturating_sub(invalid.len());
            invalid.extend(taken.invalid.into_iter().take(room));
            if let Some(error) = failed {
                break Err(error.into());
            }
            if ledger.dry_run {
                continue;
            }
            let sent = async {
                while queue.len() >= self.batch_size {
                    self.send_and_commit(ledger, line, &mut queue).await?;
                }
                if queue.is_empty() {
                    // Nothing waits: commit the token alone, so --resume starts close.
                    batch::commit(self.store.as_ref(), ledger, Vec::new(), Vec::new()).await?;
                }
                Ok::<_, Interruption>(())
            };
            if let Err(error) = sent.await {
                lister.abort();
                return Err(error);
            }
        };
        lister.abort();
        if !ledger.dry_run && !stopped {
            // Send what was taken even when the listing failed, so --resume redoes less.
            while !queue.is_empty() {
                self.send_and_commit(ledger, line, &mut queue).await?;
            }
            batch::commit(self.store.as_ref(), ledger, Vec::new(), Vec::new()).await?;
        }
        listed?;
        Ok(if last_token.is_none() {
            Ended::ListingDone
        } else {
            Ended::Limit
        })
    }

    /// Map a page's users, skip those already imported, and give back the rest to queue (in
    /// a dry run: check them against the identity schema instead, and give back the invalid).
    /// When the store fails, what was taken up to then comes back with the error.
    async fn take_page(
        &self,
        ledger: &mut Ledger,
        page: Page,
        groups: &HashMap<String, Vec<String>>,
        line: KratosLine,
    ) -> Result<TakenPage, PageFailed> {
        ledger.listing.pages += 1;
        ledger.listing.seen += page.users.len() as i64;
        self.progress.inc(page.users.len() as u64);
        let known = if self.check_known {
            let subs: Vec<&str> = page
                .users
                .iter()
                .filter_map(|user| user.attribute("sub"))
                .collect();
            self.store
                .imported_external_ids(&subs)
                .await
                .map_err(|error| PageFailed {
                    error,
                    taken: TakenPage::default(),
                })?
        } else {
            HashMap::new()
        };
        let mut taken = TakenPage::default();
        let mut failures = Vec::new();
        // Users imported before: their verified e-mail, as Cognito has it now.
        let mut emails: Vec<(String, Option<String>)> = Vec::new();
        for user in &page.users {
            let groups = self.mapping.wants_groups().then(|| {
                groups
                    .get(&user.username)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
            });
            let mut mapped = match self.mapping.map(user, groups, line) {
                Ok(mapped) => mapped,
                Err(error) if self.schema.is_some() && error.trait_pointer().is_some() => {
                    // A dry run lists a value that is not of its declared type with the
                    // schema's problems: the declared type is the schema's type.
                    let pointer = error.trait_pointer().unwrap_or_default();
                    ledger.listing.invalid += 1;
                    taken.invalid.push(InvalidExample {
                        cognito_username: user.username.clone(),
                        reasons: vec![format!("{pointer}: {error}")],
                    });
                    continue;
                }
                Err(error) => {
                    ledger.listing.unmappable += 1;
                    failures.push(ImportFailure {
                        cognito_username: user.username.clone(),
                        external_id: None,
                        status: None,
                        reason: error.to_string(),
                    });
                    continue;
                }
            };
            match known.get(&mapped.external_id) {
                // Sent by this run before it was interrupted, and counted then.
                Some(Some(run)) if *run == ledger.id => continue,
                Some(_) => {
                    ledger.listing.skipped += 1;
                    emails.push((mapped.external_id, mapped.email_normalized));
                    continue;
                }
                None => {}
            }
            if let Some(schema) = &self.schema {
                let reasons = schema::problems(schema, &mapped.identity);
                if reasons.is_empty() {
                    ledger.listing.would_create += 1;
                } else {
                    ledger.listing.invalid += 1;
                    taken.invalid.push(InvalidExample {
                        cognito_username: mapped.username,
                        reasons,
                    });
                }
                continue;
            }
            let body = serde_json::to_vec(&mapped.identity).expect("JSON values serialize");
            mapped.identity = Value::Null;
            if BatchBody::new().size_with(&body) > MAX_BATCH_BODY_BYTES {
                ledger.listing.unmappable += 1;
                failures.push(failure(
                    &mapped,
                    None,
                    "the identity is larger than Kratos's 5 MB request cap".to_owned(),
                ));
                continue;
            }
            taken.queued.push(Queued { user: mapped, body });
        }
        if !ledger.dry_run && !emails.is_empty() {
            let emails: Vec<(&str, Option<&str>)> = emails
                .iter()
                .map(|(sub, email)| (sub.as_str(), email.as_deref()))
                .collect();
            if let Err(error) = self.store.refresh_emails(&emails).await {
                return Err(PageFailed { error, taken });
            }
        }
        ledger.page_taken(taken.queued.len(), page.next_token, failures);
        Ok(taken)
    }

    /// One batch from the front of the queue, sent and committed.
    async fn send_and_commit(
        &self,
        ledger: &mut Ledger,
        line: KratosLine,
        queue: &mut VecDeque<Queued>,
    ) -> Result<(), Interruption> {
        let limit = self.batch_size.min(line.max_batch_items());
        let (members, body) = batch::cut(queue, limit);
        let sent = batch::send(&self.kratos, line, &body, &members).await?;
        ledger.sending.created += sent.created;
        ledger.sending.linked += sent.linked;
        ledger.sent(members.len());
        batch::commit(self.store.as_ref(), ledger, sent.rows, sent.failures).await?;
        Ok(())
    }
}

/// List pages from `token` on; stops after `limit` users, at the last page, or on an error.
async fn list_pages(
    directory: Arc<Directory>,
    mut token: Option<String>,
    limit: Option<u64>,
    sender: mpsc::Sender<Listed>,
) {
    let mut remaining = limit;
    loop {
        let size = match remaining {
            Some(0) => return,
            Some(left) => left.min(PAGE_SIZE as u64) as i32,
            None => PAGE_SIZE,
        };
        match directory.list_users(token.as_deref(), size).await {
            Ok(page) => {
                if let Some(left) = &mut remaining {
                    *left = left.saturating_sub(page.users.len() as u64);
                }
                token = page.next_token.clone();
                let last = token.is_none();
                if sender.send(Listed::Page(page)).await.is_err() || last {
                    return;
                }
            }
            Err(error) => {
                let _ = sender.send(Listed::Failed(error)).await;
                return;
            }
        }
    }
}

/// The listing's error; a refused stored page token gets the way out.
fn listing_failure(error: DirectoryError, ledger: &Ledger) -> Interruption {
    let resumed_from_token =
        ledger.token.is_some() && ledger.listing.pages == ledger.committed_pages();
    match &error {
        DirectoryError::Refused { code, .. }
            if resumed_from_token && code == "InvalidParameterException" =>
        {
            Interruption::StoredTokenRefused(error)
        }
        _ => Interruption::Listing(error),
    }
}

/// What one listed page gives the run: users to queue for Kratos and, in a dry run, those the
/// identity schema refuses.
#[derive(Default)]
struct TakenPage {
    queued: Vec<Queued>,
    invalid: Vec<InvalidExample>,
}

/// The store failed while a page was taken; what was taken before it still goes to the run
/// (the users already mapped are sent before the run stops).
struct PageFailed {
    error: StoreError,
    taken: TakenPage,
}
