//! `cognito-bridge import`: Cognito users become Kratos identities flagged for the password
//! migration hook (DESIGN.md step 1). Resumable page by page; a rerun is the delta sync.
//!
//! One task lists Cognito pages under the rate limit while another maps them, sends
//! batches to Kratos and commits rows, failures and the next page token together.

mod directory;
mod mapping;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_credential_types::provider::SharedCredentialsProvider;
use chrono::Utc;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use directory::{Backoff, CognitoUser, Directory, DirectoryError, PAGE_SIZE, Page};
pub use mapping::{MappedUser, Mapping, MappingError};

use crate::config::{CognitoPool, ConfigError, Settings};
use crate::domain::redact;
use crate::kratos::{BatchBody, ItemResult, KratosAdmin, KratosError, MAX_BATCH_BODY_BYTES};
use crate::store::{
    self, ImportCommit, ImportCounters, ImportFailure, ImportedUser, RunStatus, RunUpdate, Store,
    StoreError,
};

/// Attempts per Kratos request when Kratos is briefly unavailable (5xx, 429, no answer).
const KRATOS_ATTEMPTS: u32 = 3;
const KRATOS_RETRY_BASE: Duration = Duration::from_millis(500);
/// Conflict lookups in flight at once.
const LOOKUP_CONCURRENCY: usize = 8;
/// How many failures and invalid examples the summary shows.
const SUMMARY_EXAMPLES: usize = 5;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Map and validate against the identity schema; write nothing to Kratos.
    pub dry_run: bool,
    /// Continue the newest interrupted run from its last committed page.
    pub resume: bool,
    /// Stop after this many users (the run stays resumable).
    pub limit: Option<u64>,
    /// Draw a progress bar on standard error (only when it is a terminal).
    pub progress: bool,
    /// Stop cleanly on Ctrl-C (the command line sets this; tests do not).
    pub stop_on_ctrl_c: bool,
    pub backoff: Backoff,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Kratos(#[from] KratosError),
    #[error("nothing to resume: {0}")]
    NothingToResume(String),
    #[error("identity schema for the dry run: {0}")]
    Schema(String),
    #[error(
        "import run {run_id} interrupted after {seen} users: {reason}\n\
         `cognito-bridge import --resume` continues from the last committed page"
    )]
    Interrupted {
        run_id: i64,
        seen: i64,
        reason: String,
    },
}

/// A mapped identity the identity schema rejects (dry run).
#[derive(Debug, Clone)]
pub struct InvalidExample {
    pub cognito_username: String,
    /// `/traits/email: "…" is not a "email"`, without the value itself.
    pub reasons: Vec<String>,
}

/// What a run did, as printed and stored.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    pub run_id: i64,
    pub dry_run: bool,
    pub status: RunStatus,
    pub counters: ImportCounters,
    pub duration: Duration,
    /// The run stopped at `--limit` with users left to list.
    pub stopped_at_limit: bool,
    /// The first failures of this run, with Kratos's reasons.
    pub failures: Vec<ImportFailure>,
    /// Dry run: the first identities the schema rejects.
    pub invalid: Vec<InvalidExample>,
}

/// Run one import with `settings`; `credentials` overrides the AWS chain (tests, emulators).
pub async fn run(
    settings: &Settings,
    options: ImportOptions,
    credentials: Option<SharedCredentialsProvider>,
) -> Result<ImportSummary, ImportError> {
    if options.dry_run && options.resume {
        return Err(ImportError::NothingToResume(
            "a dry run writes nothing, so there is nothing to resume; drop --resume".to_owned(),
        ));
    }
    let pool = CognitoPool::from_settings(&settings.cognito)?;
    let mapping = Mapping::new(&settings.import, &settings.kratos.schema_id)?;
    let kratos = KratosAdmin::new(&settings.kratos)?;
    let store = store::connect(&settings.database.url, settings.database.max_connections).await?;
    store.migrate().await?;
    let schema = if options.dry_run {
        Some(load_schema(settings, &kratos).await?)
    } else {
        None
    };
    let directory = Arc::new(
        Directory::new(
            &pool,
            settings.import.list_rate,
            options.backoff,
            credentials,
        )
        .await,
    );

    let run = if options.resume {
        Run::resume(store.as_ref()).await?
    } else {
        let estimated = match directory.estimated_users().await {
            Ok(estimate) => Some(estimate),
            Err(error) => {
                tracing::warn!(%error, "no user estimate from DescribeUserPool; the progress bar has no ETA");
                None
            }
        };
        Run::start(store.as_ref(), options.dry_run, estimated).await?
    };
    tracing::info!(
        run_id = run.id,
        dry_run = options.dry_run,
        resume = options.resume,
        user_pool_id = %pool.user_pool_id,
        kratos = %settings.kratos.admin_url,
        list_rate = settings.import.list_rate,
        batch_size = settings.import.batch_size,
        "import started"
    );
    let importer = Importer {
        store,
        kratos,
        mapping,
        schema,
        batch_size: settings.import.batch_size,
        progress: progress_bar(options.progress, run.estimated_users, run.counters.seen),
    };
    importer.execute(run, directory, &options).await
}

/// The identity schema from `import.schema_file`, or from Kratos's public API.
async fn load_schema(
    settings: &Settings,
    kratos: &KratosAdmin,
) -> Result<jsonschema::Validator, ImportError> {
    let schema: Value = match &settings.import.schema_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                ImportError::Schema(format!("cannot read {}: {error}", path.display()))
            })?;
            serde_json::from_str(&text).map_err(|error| {
                ImportError::Schema(format!("{} is not JSON: {error}", path.display()))
            })?
        }
        None => kratos
            .identity_schema(&settings.kratos.schema_id)
            .await
            .map_err(|error| {
                ImportError::Schema(format!(
                    "{error} (set `import.schema_file` to check against a local copy)"
                ))
            })?,
    };
    jsonschema::validator_for(&schema)
        .map_err(|error| ImportError::Schema(format!("not a valid JSON Schema: {error}")))
}

fn progress_bar(enabled: bool, estimated: Option<i64>, already: i64) -> ProgressBar {
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

/// The run's row as this process advances it.
struct Run {
    id: i64,
    dry_run: bool,
    /// Totals as this process counts them (ahead of `committed` until the next commit).
    counters: ImportCounters,
    /// Totals as of the last commit: what an interrupted run's row keeps.
    committed: ImportCounters,
    /// The committed page token: where `--resume` would start.
    next_token: Option<String>,
    listing_complete: bool,
    estimated_users: Option<i64>,
    /// Time spent by earlier invocations of this run.
    earlier: Duration,
    started: Instant,
}

impl Run {
    async fn start(
        store: &dyn Store,
        dry_run: bool,
        estimated_users: Option<i64>,
    ) -> Result<Self, ImportError> {
        let id = store
            .start_import_run(dry_run, Utc::now(), estimated_users)
            .await?;
        Ok(Self {
            id,
            dry_run,
            counters: ImportCounters::default(),
            committed: ImportCounters::default(),
            next_token: None,
            listing_complete: false,
            estimated_users,
            earlier: Duration::ZERO,
            started: Instant::now(),
        })
    }

    async fn resume(store: &dyn Store) -> Result<Self, ImportError> {
        let Some(last) = store.latest_real_import_run().await? else {
            return Err(ImportError::NothingToResume(
                "no import has run yet; start one without --resume".to_owned(),
            ));
        };
        if last.status == RunStatus::Completed {
            return Err(ImportError::NothingToResume(format!(
                "the last import (run {}) completed; run `cognito-bridge import` without \
                 --resume for a delta sync",
                last.id
            )));
        }
        let run = Self {
            id: last.id,
            dry_run: false,
            counters: last.counters,
            committed: last.counters,
            listing_complete: last.listing_complete(),
            next_token: last.next_token.clone(),
            estimated_users: last.estimated_users,
            earlier: Duration::from_millis(last.duration_ms.max(0) as u64),
            started: Instant::now(),
        };
        run.update(store, RunStatus::Running, None).await?;
        Ok(run)
    }

    fn duration(&self) -> Duration {
        self.earlier + self.started.elapsed()
    }

    fn duration_ms(&self) -> i64 {
        i64::try_from(self.duration().as_millis()).unwrap_or(i64::MAX)
    }

    async fn update(
        &self,
        store: &dyn Store,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        store
            .update_import_run(&RunUpdate {
                run_id: self.id,
                status,
                at: Utc::now(),
                next_token: self.next_token.as_deref(),
                // A dry run commits nothing; a real run's row only ever says what is committed.
                counters: if self.dry_run {
                    self.counters
                } else {
                    self.committed
                },
                duration_ms: self.duration_ms(),
                error,
            })
            .await
    }
}

/// What the lister hands the importer.
enum Listed {
    Page(Page),
    Failed(DirectoryError),
}

struct Importer {
    store: Arc<dyn Store>,
    kratos: KratosAdmin,
    mapping: Mapping,
    schema: Option<jsonschema::Validator>,
    batch_size: usize,
    progress: ProgressBar,
}

/// Users mapped but not yet sent, and failures not yet committed.
#[derive(Default)]
struct Pending {
    users: Vec<MappedUser>,
    failures: Vec<ImportFailure>,
}

impl Importer {
    async fn execute(
        &self,
        mut run: Run,
        directory: Arc<Directory>,
        options: &ImportOptions,
    ) -> Result<ImportSummary, ImportError> {
        let mut invalid = Vec::new();
        let outcome = self
            .import_pages(&mut run, directory, options, &mut invalid)
            .await;
        self.progress.finish_and_clear();
        let (status, error) = match &outcome {
            Ok(Stop::ListingDone) => (RunStatus::Completed, None),
            Ok(Stop::Limit) => (
                RunStatus::Interrupted,
                Some("stopped at --limit".to_owned()),
            ),
            Err(reason) => (RunStatus::Interrupted, Some(reason.clone())),
        };
        if run.dry_run {
            // A dry run is never resumed: it ends as completed, whatever stopped it.
            run.update(self.store.as_ref(), RunStatus::Completed, error.as_deref())
                .await?;
        } else {
            run.update(self.store.as_ref(), status, error.as_deref())
                .await?;
        }
        tracing::info!(
            run_id = run.id,
            status = status.as_str(),
            seen = run.counters.seen,
            created = run.counters.created,
            linked = run.counters.linked,
            skipped = run.counters.skipped,
            failed = run.counters.failed,
            invalid = run.counters.invalid,
            "import finished"
        );
        let stopped_at_limit = matches!(outcome, Ok(Stop::Limit));
        if let Err(reason) = outcome {
            return Err(ImportError::Interrupted {
                run_id: run.id,
                seen: run.counters.seen,
                reason,
            });
        }
        let failures = if run.dry_run {
            Vec::new()
        } else {
            self.store
                .import_failures(run.id, SUMMARY_EXAMPLES as i64)
                .await?
        };
        Ok(ImportSummary {
            run_id: run.id,
            dry_run: run.dry_run,
            status: if run.dry_run {
                RunStatus::Completed
            } else {
                status
            },
            counters: run.counters,
            duration: run.duration(),
            stopped_at_limit,
            failures,
            invalid,
        })
    }
}

/// Why the listing stopped without an error.
enum Stop {
    ListingDone,
    Limit,
}

impl Importer {
    /// List, map, send and commit until the listing ends; `Err` carries the reason a run
    /// was interrupted (everything taken before it is committed, except after Ctrl-C).
    async fn import_pages(
        &self,
        run: &mut Run,
        directory: Arc<Directory>,
        options: &ImportOptions,
        invalid: &mut Vec<InvalidExample>,
    ) -> Result<Stop, String> {
        if run.listing_complete {
            return Ok(Stop::ListingDone);
        }
        let groups = if self.mapping.wants_groups() {
            directory
                .group_memberships()
                .await
                .map_err(|error| error.to_string())?
        } else {
            HashMap::new()
        };
        // Room for two batches of pages, so listing goes on while a batch is sent.
        let capacity = 2 * self.batch_size.div_ceil(PAGE_SIZE as usize) + 2;
        let (sender, mut receiver) = mpsc::channel(capacity);
        let lister = tokio::spawn(list_pages(
            directory,
            run.next_token.clone(),
            options.limit,
            sender,
        ));
        let mut pending = Pending::default();
        let mut taken_token = run.next_token.clone();
        let mut stopped_by_signal = false;
        let listed: Result<(), String> = loop {
            let next = if options.stop_on_ctrl_c {
                tokio::select! {
                    next = receiver.recv() => next,
                    _ = tokio::signal::ctrl_c() => {
                        stopped_by_signal = true;
                        break Err("stopped by Ctrl-C".to_owned());
                    }
                }
            } else {
                receiver.recv().await
            };
            match next {
                None => break Ok(()),
                Some(Listed::Failed(error)) => break Err(error.to_string()),
                Some(Listed::Page(page)) => {
                    let token = page.next_token.clone();
                    if let Err(error) = self
                        .take_page(run, page, &groups, &mut pending, invalid)
                        .await
                    {
                        break Err(error.to_string());
                    }
                    taken_token = token;
                    let full = pending.users.len() >= self.batch_size;
                    // With nothing waiting, committing the token alone keeps --resume close.
                    if !run.dry_run
                        && (full || pending.users.is_empty())
                        && let Err(error) = self.flush(run, &mut pending, taken_token.clone()).await
                    {
                        lister.abort();
                        return Err(error);
                    }
                }
            }
        };
        lister.abort();
        if !run.dry_run && !stopped_by_signal {
            self.flush(run, &mut pending, taken_token.clone()).await?;
        }
        listed?;
        Ok(if taken_token.is_none() {
            Stop::ListingDone
        } else {
            Stop::Limit
        })
    }

    /// Map a page's users, skip those an earlier run imported, and queue the rest (in a dry
    /// run: check them against the identity schema).
    async fn take_page(
        &self,
        run: &mut Run,
        page: Page,
        groups: &HashMap<String, Vec<String>>,
        pending: &mut Pending,
        invalid: &mut Vec<InvalidExample>,
    ) -> Result<(), StoreError> {
        run.counters.pages += 1;
        run.counters.seen += page.users.len() as i64;
        self.progress.inc(page.users.len() as u64);
        let subs: Vec<&str> = page
            .users
            .iter()
            .filter_map(|user| user.attribute("sub"))
            .collect();
        let known = self.store.imported_external_ids(&subs).await?;
        for user in &page.users {
            let groups = self.mapping.wants_groups().then(|| {
                groups
                    .get(&user.username)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
            });
            let mapped = match self.mapping.map(user, groups) {
                Ok(mapped) => mapped,
                Err(error) => {
                    run.counters.failed += 1;
                    pending.failures.push(ImportFailure {
                        cognito_username: user.username.clone(),
                        external_id: None,
                        status: None,
                        reason: error.to_string(),
                    });
                    continue;
                }
            };
            if known.contains(&mapped.external_id) {
                run.counters.skipped += 1;
                continue;
            }
            match &self.schema {
                Some(schema) => {
                    let reasons = schema_problems(schema, &mapped.identity);
                    if reasons.is_empty() {
                        run.counters.created += 1;
                    } else {
                        run.counters.invalid += 1;
                        if invalid.len() < SUMMARY_EXAMPLES {
                            invalid.push(InvalidExample {
                                cognito_username: mapped.username,
                                reasons,
                            });
                        }
                    }
                }
                None => pending.users.push(mapped),
            }
        }
        Ok(())
    }

    /// Send what is pending in batches, then commit rows, failures, totals and `token`
    /// (where the listing continues) in one transaction.
    async fn flush(
        &self,
        run: &mut Run,
        pending: &mut Pending,
        token: Option<String>,
    ) -> Result<(), String> {
        let users = std::mem::take(&mut pending.users);
        let mut failures = std::mem::take(&mut pending.failures);
        let mut rows = Vec::with_capacity(users.len());
        let mut batch = BatchBody::new();
        let mut members: Vec<&MappedUser> = Vec::new();
        for user in &users {
            let body = serde_json::to_vec(&user.identity).expect("JSON values serialize");
            if BatchBody::new().size_with(&body) > MAX_BATCH_BODY_BYTES {
                run.counters.failed += 1;
                failures.push(failure(
                    user,
                    None,
                    "the identity is larger than Kratos's 5 MB request cap".to_owned(),
                ));
                continue;
            }
            if members.len() == self.batch_size || batch.size_with(&body) > MAX_BATCH_BODY_BYTES {
                let full = std::mem::take(&mut batch).finish();
                self.send_batch(run, &full, &members, &mut rows, &mut failures)
                    .await?;
                members.clear();
            }
            batch.push(&body);
            members.push(user);
        }
        if !members.is_empty() {
            let last = batch.finish();
            self.send_batch(run, &last, &members, &mut rows, &mut failures)
                .await?;
        }
        self.store
            .commit_import(&ImportCommit {
                run_id: run.id,
                at: Utc::now(),
                users: &rows,
                failures: &failures,
                next_token: token.as_deref(),
                counters: run.counters,
                duration_ms: run.duration_ms(),
            })
            .await
            .map_err(|error| error.to_string())?;
        run.committed = run.counters;
        run.next_token = token;
        Ok(())
    }

    /// One `PATCH /admin/identities`; conflicts are looked up by external id and linked.
    async fn send_batch(
        &self,
        run: &mut Run,
        batch: &BatchBody,
        members: &[&MappedUser],
        rows: &mut Vec<ImportedUser>,
        failures: &mut Vec<ImportFailure>,
    ) -> Result<(), String> {
        let results = with_retries("PATCH /admin/identities", || {
            self.kratos.batch_create(batch)
        })
        .await
        .map_err(|error| error.to_string())?;
        let mut conflicts = Vec::new();
        for (user, result) in members.iter().zip(results) {
            match result {
                ItemResult::Created { identity_id } => {
                    run.counters.created += 1;
                    rows.push(imported(user, identity_id));
                }
                ItemResult::Conflict => conflicts.push(*user),
                ItemResult::Failed { status, message } => {
                    run.counters.failed += 1;
                    tracing::warn!(user = %redact(&user.username), status, %message, "Kratos refused an identity");
                    failures.push(failure(user, status, message));
                }
            }
        }
        let lookups: Vec<_> = futures_util::stream::iter(conflicts)
            .map(|user| async move {
                let found = with_retries("GET /admin/identities/by/external", || {
                    self.kratos.identity_by_external_id(&user.external_id)
                })
                .await;
                (user, found)
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        for (user, found) in lookups {
            match found.map_err(|error| error.to_string())? {
                Some(identity_id) => {
                    run.counters.linked += 1;
                    rows.push(imported(user, identity_id));
                }
                None => {
                    run.counters.failed += 1;
                    failures.push(failure(
                        user,
                        Some(409),
                        "Kratos reports a conflict, but no identity has this external_id: another \
                         identity probably holds the same identifier (e-mail address)"
                            .to_owned(),
                    ));
                }
            }
        }
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

/// Retry transient Kratos errors a few times, doubling the pause.
async fn with_retries<T, F, Fut>(what: &'static str, send: F) -> Result<T, KratosError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, KratosError>>,
{
    let mut attempt = 1;
    loop {
        match send().await {
            Err(error) if error.is_transient() && attempt < KRATOS_ATTEMPTS => {
                tracing::warn!(what, attempt, %error, "Kratos unavailable; retrying");
                tokio::time::sleep(KRATOS_RETRY_BASE * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
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

/// Why the identity schema rejects an identity's traits: the path and the rule, never the
/// value (it may be personal data).
fn schema_problems(schema: &jsonschema::Validator, identity: &Value) -> Vec<String> {
    let document = json!({"traits": identity.get("traits").cloned().unwrap_or(Value::Null)});
    schema
        .iter_errors(&document)
        .take(3)
        .map(|error| {
            let path = error.instance_path().to_string();
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            format!("{path}: {}", error.masked())
        })
        .collect()
}
