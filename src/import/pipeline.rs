//! The import loop: one task lists Cognito pages under the rate limit while this one maps
//! them, sends batches to Kratos and commits rows, failures and the next page token together;
//! and why a run stops ([`Interruption`]).
//!
//! Over 400 lines on purpose: the loop, the page it takes and the batch it sends share the
//! ledger's order of events (taken, sent, committed), which reads best in one place.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio::sync::mpsc;

use super::directory::{Directory, DirectoryError, PAGE_SIZE, Page};
use super::lease::Lease;
use super::ledger::Ledger;
use super::mapping::{MappedUser, Mapping};
use super::summary::{InvalidExample, SUMMARY_EXAMPLES};
use super::{ImportOptions, schema, send};
use crate::domain::redact;
use crate::kratos::{
    BatchBody, ItemResult, KratosAdmin, KratosError, KratosLine, MAX_BATCH_BODY_BYTES,
};
use crate::store::{ImportCommit, ImportFailure, ImportedUser, RunStatus, Store, StoreError};

/// Conflict lookups in flight at once.
const LOOKUP_CONCURRENCY: usize = 8;

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

/// A mapped user waiting to be sent, its create body serialised once.
struct Queued {
    user: MappedUser,
    body: Vec<u8>,
}

/// What one batch produced: a row for each user Kratos holds now, a failure for the rest.
#[derive(Default)]
struct Sent {
    rows: Vec<ImportedUser>,
    failures: Vec<ImportFailure>,
    created: i64,
    linked: i64,
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
        options: &ImportOptions,
        stop: StopSignal,
    ) -> Result<Outcome, StoreError> {
        let mut invalid = Vec::new();
        let ended = self
            .import_pages(ledger, directory, options, stop, &mut invalid)
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
        options: &ImportOptions,
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
        let lister = tokio::spawn(list_pages(
            directory,
            ledger.token.clone(),
            options.limit,
            sender,
        ));
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
            if let Err(error) = self
                .take_page(ledger, page, &groups, line, &mut queue, invalid)
                .await
            {
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
                    self.commit(ledger, Vec::new(), Vec::new()).await?;
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
            self.commit(ledger, Vec::new(), Vec::new()).await?;
        }
        listed?;
        Ok(if last_token.is_none() {
            Ended::ListingDone
        } else {
            Ended::Limit
        })
    }

    /// Map a page's users, skip those already imported, and queue the rest (in a dry run:
    /// check them against the identity schema instead).
    async fn take_page(
        &self,
        ledger: &mut Ledger,
        page: Page,
        groups: &HashMap<String, Vec<String>>,
        line: KratosLine,
        queue: &mut VecDeque<Queued>,
        invalid: &mut Vec<InvalidExample>,
    ) -> Result<(), StoreError> {
        ledger.listing.pages += 1;
        ledger.listing.seen += page.users.len() as i64;
        self.progress.inc(page.users.len() as u64);
        let known = if self.check_known {
            let subs: Vec<&str> = page
                .users
                .iter()
                .filter_map(|user| user.attribute("sub"))
                .collect();
            self.store.imported_external_ids(&subs).await?
        } else {
            HashMap::new()
        };
        let mut queued = 0;
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
                    if invalid.len() < SUMMARY_EXAMPLES {
                        invalid.push(InvalidExample {
                            cognito_username: mapped.username,
                            reasons,
                        });
                    }
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
            queue.push_back(Queued { user: mapped, body });
            queued += 1;
        }
        if !ledger.dry_run && !emails.is_empty() {
            let emails: Vec<(&str, Option<&str>)> = emails
                .iter()
                .map(|(sub, email)| (sub.as_str(), email.as_deref()))
                .collect();
            self.store.refresh_emails(&emails).await?;
        }
        ledger.page_taken(queued, page.next_token, failures);
        Ok(())
    }

    /// One batch from the front of the queue (at most `batch_size` identities, within the
    /// Kratos line's limit, and 5 MB), sent and committed.
    async fn send_and_commit(
        &self,
        ledger: &mut Ledger,
        line: KratosLine,
        queue: &mut VecDeque<Queued>,
    ) -> Result<(), Interruption> {
        let limit = self.batch_size.min(line.max_batch_items());
        let mut batch = BatchBody::new();
        let mut members = Vec::new();
        while let Some(next) = queue.front() {
            let full = members.len() == limit
                || (!members.is_empty() && batch.size_with(&next.body) > MAX_BATCH_BODY_BYTES);
            if full {
                break;
            }
            let next = queue.pop_front().expect("a front entry");
            batch.push(&next.body);
            members.push(next);
        }
        let batch = batch.finish();
        let sent = self.send_batch(line, &batch, &members).await?;
        ledger.sending.created += sent.created;
        ledger.sending.linked += sent.linked;
        ledger.sent(members.len());
        self.commit(ledger, sent.rows, sent.failures).await?;
        Ok(())
    }

    /// Rows, failures, totals and the page token (moved past every fully sent page) in one
    /// transaction. Without rows or failures, only when the token moved.
    async fn commit(
        &self,
        ledger: &mut Ledger,
        rows: Vec<ImportedUser>,
        mut failures: Vec<ImportFailure>,
    ) -> Result<(), StoreError> {
        let covered = ledger.cover();
        if rows.is_empty() && failures.is_empty() && !covered.moved {
            return Ok(());
        }
        let rows = last_row_per_user(rows);
        failures.extend(covered.failures);
        let failed = self
            .store
            .commit_import(&ImportCommit {
                run_id: ledger.id,
                at: Utc::now(),
                users: &rows,
                failures: &failures,
                next_token: ledger.token.as_deref(),
                counters: ledger.committed_counters(),
                duration_ms: ledger.duration_ms(),
            })
            .await?;
        ledger.failures_stored(failed);
        Ok(())
    }

    /// One `PATCH /admin/identities` (on Kratos v1.3.x, with its creates checked and re-sent
    /// after a rollback); conflicts are looked up and linked. Counted only once every answer
    /// is in: a batch that fails half way is not committed, and `--resume` sends (and counts)
    /// its users again.
    async fn send_batch(
        &self,
        line: KratosLine,
        batch: &BatchBody,
        members: &[Queued],
    ) -> Result<Sent, KratosError> {
        let bodies: Vec<&[u8]> = members
            .iter()
            .map(|member| member.body.as_slice())
            .collect();
        let results = send::create_batch(&self.kratos, line, batch, &bodies).await?;
        let mut sent = Sent {
            rows: Vec::with_capacity(members.len()),
            ..Sent::default()
        };
        let mut conflicts = Vec::new();
        let members = members.iter().map(|member| &member.user);
        for (user, result) in members.zip(results) {
            match result {
                ItemResult::Created { identity_id } => {
                    sent.created += 1;
                    sent.rows.push(imported(user, identity_id));
                }
                ItemResult::Conflict => conflicts.push(user),
                ItemResult::Failed { status, message } => {
                    // Kratos's message may quote trait values: it goes to the store, not the log.
                    tracing::warn!(user = %redact(&user.username), status, "Kratos refused an identity");
                    sent.failures.push(failure(user, status, message));
                }
            }
        }
        let lookups: Vec<_> = futures_util::stream::iter(conflicts)
            .map(|user| async move {
                let found = send::find_imported(&self.kratos, line, user).await;
                (user, found)
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        for (user, found) in lookups {
            match found? {
                Some(identity_id) => {
                    sent.linked += 1;
                    sent.rows.push(imported(user, identity_id));
                }
                None => {
                    let which = if line.accepts_external_id() {
                        "no identity has this external_id, and none holding this user's \
                         identifiers has its sub (metadata_admin.cognito.sub)"
                    } else {
                        "no identity holding this user's identifiers has its sub \
                         (metadata_admin.cognito.sub)"
                    };
                    sent.failures.push(failure(
                        user,
                        Some(409),
                        format!(
                            "Kratos reports a conflict, but {which}: another identity probably \
                             holds the same identifier (e-mail address)"
                        ),
                    ));
                }
            }
        }
        Ok(sent)
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

/// A user listed twice in one batch (pages shifting while users sign up) is created once and
/// linked once; one row each, the last, or Postgres refuses to upsert a row twice in one
/// statement.
fn last_row_per_user(rows: Vec<ImportedUser>) -> Vec<ImportedUser> {
    let mut seen = HashSet::new();
    let mut unique: Vec<ImportedUser> = rows
        .into_iter()
        .rev()
        .filter(|row| seen.insert(row.cognito_username.clone()))
        .collect();
    unique.reverse();
    unique
}

fn imported(user: &MappedUser, identity_id: String) -> ImportedUser {
    ImportedUser {
        cognito_username: user.username.clone(),
        email_normalized: user.email_normalized.clone(),
        external_id: user.external_id.clone(),
        kratos_identity_id: identity_id,
        state: user.state,
    }
}

fn failure(user: &MappedUser, status: Option<u16>, reason: String) -> ImportFailure {
    ImportFailure {
        cognito_username: user.username.clone(),
        external_id: Some(user.external_id.clone()),
        status: status.map(i32::from),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserState;

    fn row(username: &str, identity: &str) -> ImportedUser {
        ImportedUser {
            cognito_username: username.to_owned(),
            email_normalized: None,
            external_id: format!("sub-{username}"),
            kratos_identity_id: identity.to_owned(),
            state: UserState::Pending,
        }
    }

    #[test]
    fn a_user_listed_twice_keeps_one_row_the_last() {
        let rows = vec![
            row("a", "1"),
            row("b", "2"),
            row("a", "1-linked"),
            row("c", "3"),
        ];
        let unique: Vec<(String, String)> = last_row_per_user(rows)
            .into_iter()
            .map(|row| (row.cognito_username, row.kratos_identity_id))
            .collect();
        assert_eq!(
            unique,
            [
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1-linked".to_owned()),
                ("c".to_owned(), "3".to_owned())
            ]
        );
    }
}
