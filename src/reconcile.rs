//! `cognito-bridge reconcile`: reads every Kratos identity with its password credential and
//! corrects our rows where Kratos knows better. A user we hold as `pending` or
//! `needs_recovery` whose identity has a password hash and no migration flag got a password
//! in Kratos some way we did not see (an admin, a recovery, a login we missed): the row
//! becomes `migrated` via `kratos`. It also reports what does not line up: identities our rows
//! point at that Kratos no longer has ("gone"), users Kratos lacks, identities we do not know.
//!
//! One list request per page (`kratos::list`), one store read and at most one write
//! transaction per page; then one walk over our rows for those no identity matched. What a
//! run found, and how it is printed, is in `reconcile/summary.rs`.
//!
//! Just over 400 lines: the run reads as one loop (page, match, correct, report) in the order
//! a page is handled; splitting it would spread one page's steps over files.

mod summary;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{ConfigError, Settings};
use crate::domain::UserState;
use crate::kratos::{
    KratosAdmin, KratosError, KratosLine, LIST_PAGE_SIZE, LineSource, ListedIdentityCredential,
    PasswordState,
};
use crate::store::{self, LinkedRow, Store, StoreError};

pub use summary::{Example, Examples, ReconcileCounts, ReconcileFormat, ReconcileSummary};

/// Examples kept per finding.
pub const EXAMPLES: usize = 10;
/// Our rows read per statement in the final walk.
const ROWS_PER_WALK: i64 = 1000;
/// Identities read one by one at once, when the list showed a password credential without
/// its config.
pub const FALLBACK_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// Report what would change; change nothing.
    pub dry_run: bool,
    /// Draw a progress bar on standard error.
    pub progress: bool,
    /// Identities per list request (Kratos caps it at 500).
    pub page_size: usize,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            progress: false,
            page_size: LIST_PAGE_SIZE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Kratos(#[from] KratosError),
}

/// Run one reconcile with `settings`.
pub async fn run(
    settings: &Settings,
    options: ReconcileOptions,
) -> Result<ReconcileSummary, ReconcileError> {
    let started = Instant::now();
    let kratos = KratosAdmin::new(&settings.kratos)?;
    let store = store::open_for_command(&settings.database).await?;
    let (line, source) = kratos.detect_line().await?;
    let version = match source {
        LineSource::Version(version) => Some(version),
        LineSource::Probe { version } => version,
    };
    tracing::info!(
        kratos = %crate::kratos::display_url(&settings.kratos.admin_url),
        %line,
        dry_run = options.dry_run,
        "reconcile started"
    );
    let estimate = store.progress().await?.total;
    let mut run = Run {
        store: store.as_ref(),
        kratos: &kratos,
        line,
        dry_run: options.dry_run,
        seen_ids: IdSet::default(),
        seen_subs: IdSet::default(),
        counts: ReconcileCounts::default(),
        examples: Examples::default(),
        progress: progress_bar(options.progress, estimate),
    };
    let outcome = run.execute(options.page_size.clamp(1, 500)).await;
    run.progress.finish_and_clear();
    outcome?;
    tracing::info!(counts = ?run.counts, dry_run = options.dry_run, "reconcile finished");
    Ok(ReconcileSummary {
        dry_run: options.dry_run,
        kratos_line: line.to_string(),
        kratos_version: version,
        counts: run.counts,
        examples: run.examples,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

fn progress_bar(enabled: bool, estimate: i64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = if estimate > 0 {
        ProgressBar::new(estimate as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/~{human_len} identities, {per_sec} {msg}",
            )
            .expect("a valid template"),
        )
    } else {
        ProgressBar::no_length().with_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} {human_pos} identities, {per_sec} {msg}",
            )
            .expect("a valid template"),
        )
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Ids seen in Kratos, compact: a UUID as 16 bytes, anything else as it is.
#[derive(Default)]
struct IdSet {
    uuids: HashSet<u128>,
    others: HashSet<String>,
}

impl IdSet {
    fn insert(&mut self, id: &str) {
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) => {
                self.uuids.insert(uuid.as_u128());
            }
            Err(_) => {
                self.others.insert(id.to_owned());
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) => self.uuids.contains(&uuid.as_u128()),
            Err(_) => self.others.contains(id),
        }
    }
}

struct Run<'a> {
    store: &'a dyn Store,
    kratos: &'a KratosAdmin,
    line: KratosLine,
    dry_run: bool,
    /// Identity ids Kratos listed.
    seen_ids: IdSet,
    /// Cognito subs Kratos's identities carry (external id or `metadata_admin.cognito.sub`).
    seen_subs: IdSet,
    counts: ReconcileCounts,
    examples: Examples,
    progress: ProgressBar,
}

impl Run<'_> {
    async fn execute(&mut self, page_size: usize) -> Result<(), ReconcileError> {
        let mut token: Option<String> = None;
        loop {
            let page = self
                .kratos
                .identities_page(token.as_deref(), page_size, self.line.accepts_external_id())
                .await?;
            if page.identities.is_empty() {
                break;
            }
            self.page(&page.identities).await?;
            self.progress.inc(page.identities.len() as u64);
            match page.next_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        self.progress.set_message("checking our rows");
        self.walk_rows().await
    }

    /// Match one page of identities to our rows, count them, and move the rows Kratos has a
    /// password for.
    async fn page(
        &mut self,
        identities: &[ListedIdentityCredential],
    ) -> Result<(), ReconcileError> {
        let ids: Vec<&str> = identities.iter().map(|i| i.id.as_str()).collect();
        let mut subs: Vec<&str> = identities
            .iter()
            .flat_map(|i| [i.external_id.as_deref(), i.cognito_sub.as_deref()])
            .flatten()
            .collect();
        subs.sort_unstable();
        subs.dedup();
        let rows = self.store.rows_for_identities(&ids, &subs).await?;
        let by_id: HashMap<&str, &LinkedRow> = rows
            .iter()
            .filter_map(|row| Some((row.kratos_identity_id.as_deref()?, row)))
            .collect();
        let by_sub: HashMap<&str, &LinkedRow> = rows
            .iter()
            .filter_map(|row| Some((row.external_id.as_deref()?, row)))
            .collect();

        let unread = self
            .read_unlisted_configs(identities, &by_id, &by_sub)
            .await?;
        let mut to_move: Vec<(&str, &str)> = Vec::new();
        for identity in identities {
            self.counts.identities += 1;
            self.seen_ids.insert(&identity.id);
            for sub in [&identity.external_id, &identity.cognito_sub]
                .into_iter()
                .flatten()
            {
                self.seen_subs.insert(sub);
            }
            let row = by_id.get(identity.id.as_str()).or_else(|| {
                [&identity.external_id, &identity.cognito_sub]
                    .into_iter()
                    .flatten()
                    .find_map(|sub| by_sub.get(sub.as_str()))
            });
            let Some(row) = row else {
                self.counts.unknown_identities += 1;
                continue;
            };
            self.counts.matched += 1;
            let password = match identity.password {
                PasswordState::Unread => unread
                    .get(identity.id.as_str())
                    .copied()
                    .unwrap_or(PasswordState::Unread),
                read => read,
            };
            match (row.state, password) {
                (UserState::Migrated, _) => self.counts.already_migrated += 1,
                (UserState::Pending | UserState::NeedsRecovery, PasswordState::Hash) => {
                    if !to_move
                        .iter()
                        .any(|(name, _)| *name == row.cognito_username)
                    {
                        to_move.push((&row.cognito_username, &identity.id));
                    }
                }
                (UserState::Pending | UserState::NeedsRecovery, _) => {
                    self.counts.still_pending += 1;
                }
                (UserState::Inactive | UserState::Skipped, _) => self.counts.other_states += 1,
            }
        }
        if to_move.is_empty() {
            return Ok(());
        }
        let moved: HashSet<String> = if self.dry_run {
            to_move.iter().map(|(name, _)| (*name).to_owned()).collect()
        } else {
            let names: Vec<&str> = to_move.iter().map(|(name, _)| *name).collect();
            self.store
                .mark_migrated_in_kratos(&names, Utc::now())
                .await?
                .into_iter()
                .collect()
        };
        for (name, identity_id) in to_move {
            if moved.contains(name) {
                self.counts.corrected += 1;
                if self.examples.corrected.len() < EXAMPLES {
                    self.examples.corrected.push(Example {
                        cognito_username: name.to_owned(),
                        kratos_identity_id: Some(identity_id.to_owned()),
                        error: None,
                    });
                }
            } else {
                // Migrated by the hook or a capture between our read and our write.
                self.counts.already_migrated += 1;
            }
        }
        Ok(())
    }

    /// The password state of the page's identities that the list showed without their
    /// credential's config and that matter (their user is `pending` or `needs_recovery`),
    /// read one by one, [`FALLBACK_CONCURRENCY`] at a time. Both supported Kratos lines list
    /// the config with `include_credential=password`, so this normally reads nothing.
    async fn read_unlisted_configs<'i>(
        &mut self,
        identities: &'i [ListedIdentityCredential],
        by_id: &HashMap<&str, &LinkedRow>,
        by_sub: &HashMap<&str, &LinkedRow>,
    ) -> Result<HashMap<&'i str, PasswordState>, ReconcileError> {
        use futures_util::{StreamExt, TryStreamExt};
        let wanted: Vec<&str> = identities
            .iter()
            .filter(|identity| identity.password == PasswordState::Unread)
            .filter(|identity| {
                let row = by_id.get(identity.id.as_str()).or_else(|| {
                    [&identity.external_id, &identity.cognito_sub]
                        .into_iter()
                        .flatten()
                        .find_map(|sub| by_sub.get(sub.as_str()))
                });
                row.is_some_and(|row| {
                    matches!(row.state, UserState::Pending | UserState::NeedsRecovery)
                })
            })
            .map(|identity| identity.id.as_str())
            .collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        self.counts.read_one_by_one += wanted.len() as u64;
        let kratos = self.kratos;
        let states: Vec<(&str, Option<PasswordState>)> = futures_util::stream::iter(wanted)
            .map(|id| async move { Ok::<_, KratosError>((id, kratos.password_state(id).await?)) })
            .buffer_unordered(FALLBACK_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(states
            .into_iter()
            // Deleted since the list: nothing to move.
            .map(|(id, state)| (id, state.unwrap_or(PasswordState::None)))
            .collect())
    }

    /// Every row pointing at an identity the list did not show (gone, once Kratos confirms
    /// it has no such id: it may have been created after the list passed it; the user may
    /// still have another identity, found by sub, and the row's link is then stale), and every
    /// row without an identity id that no identity's sub matched (missing in Kratos).
    async fn walk_rows(&mut self) -> Result<(), ReconcileError> {
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .store
                .rows_after(after.as_deref(), ROWS_PER_WALK)
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.cognito_username.clone());
            let unmatched: Vec<&LinkedRow> = rows
                .iter()
                .filter(|row| match row.kratos_identity_id.as_deref() {
                    Some(id) => !self.seen_ids.contains(id),
                    None => !row
                        .external_id
                        .as_deref()
                        .is_some_and(|sub| self.seen_subs.contains(sub)),
                })
                .collect();
            // Kratos refuses a malformed id in `ids` (400); such an id is no identity's.
            let pointed: Vec<String> = unmatched
                .iter()
                .filter_map(|row| row.kratos_identity_id.clone())
                .filter(|id| uuid::Uuid::try_parse(id).is_ok())
                .collect();
            let created_since = if pointed.is_empty() {
                HashSet::new()
            } else {
                self.kratos.existing_ids(&pointed).await?
            };
            for row in unmatched {
                match &row.kratos_identity_id {
                    Some(id) if created_since.contains(id) => {}
                    Some(id) => {
                        self.counts.gone += 1;
                        push_example(&mut self.examples.gone, row, Some(id));
                    }
                    None => {
                        self.counts.missing_in_kratos += 1;
                        push_example(&mut self.examples.missing_in_kratos, row, None);
                    }
                }
            }
            if (rows.len() as i64) < ROWS_PER_WALK {
                break;
            }
        }
        Ok(())
    }
}

fn push_example(examples: &mut Vec<Example>, row: &LinkedRow, id: Option<&String>) {
    if examples.len() < EXAMPLES {
        examples.push(Example {
            cognito_username: row.cognito_username.clone(),
            kratos_identity_id: id.cloned(),
            error: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_sets_hold_uuids_compactly_and_other_ids_as_they_are() {
        let mut set = IdSet::default();
        set.insert("7B1C0000-0000-4000-8000-000000000001");
        set.insert("not-a-uuid");
        assert!(set.contains("7b1c0000-0000-4000-8000-000000000001"));
        assert!(set.contains("not-a-uuid"));
        assert!(!set.contains("7b1c0000-0000-4000-8000-000000000002"));
        assert_eq!((set.uuids.len(), set.others.len()), (1, 1));
    }
}
