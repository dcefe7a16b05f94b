//! `cognito-bridge import`: Cognito users become Kratos identities flagged for the password
//! migration hook (DESIGN.md step 1). Resumable page by page; a rerun is the delta sync.
//!
//! One task lists Cognito pages under the rate limit while another maps them, sends
//! batches to Kratos and commits rows, failures and the next page token together.

mod lease;
mod ledger;
mod mapping;
mod send;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use chrono::Utc;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub use lease::LeaseTiming;
pub use mapping::{MappedUser, Mapping, MappingError};

use crate::cognito::directory::{Backoff, Directory, DirectoryError, PAGE_SIZE, Page};
use crate::config::{CognitoPool, ConfigError, Settings};
use crate::domain::redact;
use crate::kratos::{
    BatchBody, ItemResult, KratosAdmin, KratosError, KratosLine, LineSource, MAX_BATCH_BODY_BYTES,
};
use crate::store::{
    self, ImportCommit, ImportCounters, ImportFailure, ImportedUser, LeaseHolder, RunStatus, Store,
    StoreError,
};
use lease::Lease;
use ledger::Ledger;

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
    /// The lease that keeps a second real import from running beside this one.
    pub lease: LeaseTiming,
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
    /// Another real import holds the lease; this one did nothing.
    #[error("{}", lease::refusal(.0))]
    AlreadyRunning(LeaseHolder),
    #[error("import lease: {0}")]
    Lease(String),
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
    /// The failing path and rule (`/traits/tenant: value does not match …`), never the
    /// value itself.
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
    // One task reads and writes, one statement at a time: two connections are plenty (and
    // every SQLite connection has its own page cache).
    let store = store::connect(
        &settings.database.url,
        settings.database.max_connections.min(2),
    )
    .await?;
    store.migrate().await?;
    // A dry run writes nothing to Kratos: it neither waits for a real import nor blocks one.
    let lease = if options.dry_run {
        None
    } else {
        Some(Lease::acquire(store.clone(), options.lease).await?)
    };
    let outcome = async {
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

        let ledger = if options.resume {
            Ledger::resume(store.as_ref()).await?
        } else {
            let estimated = match directory.estimated_users().await {
                Ok(estimate) => Some(estimate),
                Err(error) => {
                    tracing::warn!(%error, "no user estimate from DescribeUserPool; the progress bar has no ETA");
                    None
                }
            };
            Ledger::start(store.as_ref(), options.dry_run, estimated).await?
        };
        if let Some(lease) = &lease {
            lease.attach(ledger.id).await?;
        }
        tracing::info!(
            run_id = ledger.id,
            dry_run = options.dry_run,
            resume = options.resume,
            user_pool_id = %pool.user_pool_id,
            kratos = %crate::kratos::display_url(&settings.kratos.admin_url),
            list_rate = settings.import.list_rate,
            batch_size = settings.import.batch_size,
            "import started"
        );
        let check_known = options.resume || store.any_imported_user().await?;
        let importer = Importer {
            check_known,
            store: store.clone(),
            kratos,
            mapping,
            schema,
            batch_size: settings.import.batch_size,
            progress: progress_bar(
                options.progress,
                ledger.estimated_users,
                ledger.listing.seen,
            ),
        };
        let stop = stop_signal(options.stop_on_ctrl_c, lease.as_ref());
        importer.execute(ledger, directory, &options, stop).await
    }
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    outcome
}

/// Why a run stops early: Ctrl-C (when asked to listen for it), or the lease taken over.
type StopSignal = Pin<Box<dyn Future<Output = String> + Send>>;

fn stop_signal(stop_on_ctrl_c: bool, lease: Option<&Lease>) -> StopSignal {
    let lost = lease.map(Lease::lost);
    Box::pin(async move {
        let ctrl_c = async {
            if stop_on_ctrl_c {
                let _ = tokio::signal::ctrl_c().await;
            } else {
                std::future::pending::<()>().await;
            }
            "stopped by Ctrl-C".to_owned()
        };
        match lost {
            Some(lost) => tokio::select! {
                reason = ctrl_c => reason,
                reason = lost => reason,
            },
            None => ctrl_c.await,
        }
    })
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

/// What the lister hands the importer.
enum Listed {
    Page(Page),
    Failed(DirectoryError),
}

/// Why the listing stopped without an error.
enum Stop {
    ListingDone,
    Limit,
}

/// A mapped user waiting to be sent, its create body serialised once.
struct Queued {
    user: MappedUser,
    body: Vec<u8>,
}

struct Importer {
    store: Arc<dyn Store>,
    /// Whether users may already be imported. Not on a first import into an empty store:
    /// the per-page lookup is a quarter of that import's CPU, and a user listed twice (pages
    /// shifting while users sign up) still ends linked, through Kratos's 409.
    check_known: bool,
    kratos: KratosAdmin,
    mapping: Mapping,
    schema: Option<jsonschema::Validator>,
    batch_size: usize,
    progress: ProgressBar,
}

impl Importer {
    async fn execute(
        &self,
        mut ledger: Ledger,
        directory: Arc<Directory>,
        options: &ImportOptions,
        stop: StopSignal,
    ) -> Result<ImportSummary, ImportError> {
        let mut invalid = Vec::new();
        let outcome = self
            .import_pages(&mut ledger, directory, options, stop, &mut invalid)
            .await;
        self.progress.finish_and_clear();
        let (status, error) = match &outcome {
            Ok(Stop::ListingDone) => (RunStatus::Completed, None),
            // A dry run is never resumed: it ends as completed, whatever stopped it.
            Ok(Stop::Limit) if ledger.dry_run => (RunStatus::Completed, None),
            Ok(Stop::Limit) => (
                RunStatus::Interrupted,
                Some("stopped at --limit".to_owned()),
            ),
            Err(reason) if ledger.dry_run => (RunStatus::Completed, Some(reason.clone())),
            Err(reason) => (RunStatus::Interrupted, Some(reason.clone())),
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
        let stopped_at_limit = matches!(outcome, Ok(Stop::Limit));
        if let Err(reason) = outcome {
            return Err(ImportError::Interrupted {
                run_id: ledger.id,
                seen: counters.seen,
                reason,
            });
        }
        let failures = if ledger.dry_run {
            Vec::new()
        } else {
            self.store
                .import_failures(ledger.id, SUMMARY_EXAMPLES as i64)
                .await?
        };
        Ok(ImportSummary {
            run_id: ledger.id,
            dry_run: ledger.dry_run,
            status,
            counters,
            duration: ledger.duration(),
            stopped_at_limit,
            failures,
            invalid,
        })
    }

    /// List, map, send and commit until the listing ends; `Err` carries the reason a run
    /// was interrupted (everything taken before it is sent and committed, except after
    /// Ctrl-C, a lost lease, or when Kratos or the database is the problem).
    async fn import_pages(
        &self,
        ledger: &mut Ledger,
        directory: Arc<Directory>,
        options: &ImportOptions,
        mut stop: StopSignal,
        invalid: &mut Vec<InvalidExample>,
    ) -> Result<Stop, String> {
        if ledger.listing_complete {
            return Ok(Stop::ListingDone);
        }
        // A dry run writes nothing, and the traits it checks are the same on every line.
        let line = if ledger.dry_run {
            KratosLine::Current
        } else {
            self.kratos_line()
                .await
                .map_err(|error| error.to_string())?
        };
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
            ledger.token.clone(),
            options.limit,
            sender,
        ));
        let mut queue = VecDeque::new();
        let mut last_token = ledger.token.clone();
        let mut stopped = false;
        // One listener for the whole run, so a Ctrl-C during a send is not lost.
        let listed: Result<(), String> = loop {
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
                Some(Listed::Failed(error)) => break Err(explain_listing_failure(&error, ledger)),
                Some(Listed::Page(page)) => page,
            };
            last_token = page.next_token.clone();
            if let Err(error) = self
                .take_page(ledger, page, &groups, line, &mut queue, invalid)
                .await
            {
                break Err(error.to_string());
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
                Ok::<_, String>(())
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
            Stop::ListingDone
        } else {
            Stop::Limit
        })
    }

    /// Which Kratos line the admin API belongs to (DESIGN.md's Contract 3), read once per
    /// run: `GET /admin/version`, else a probe of the lookup route.
    async fn kratos_line(&self) -> Result<KratosLine, KratosError> {
        let (line, source) =
            with_retries("GET /admin/version", || self.kratos.detect_line()).await?;
        match source {
            LineSource::Version(version) => {
                tracing::info!(%line, %version, "Kratos line from GET /admin/version");
            }
            LineSource::Probe { version } => tracing::info!(
                %line,
                version = version.as_deref().unwrap_or("none"),
                "Kratos line from a probe of GET /admin/identities/by/external (no release \
                 version at GET /admin/version)"
            ),
        }
        Ok(line)
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
                let reasons = schema_problems(schema, &mapped.identity);
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
    ) -> Result<(), String> {
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
        let mut rows = Vec::with_capacity(members.len());
        let mut failures = Vec::new();
        self.send_batch(ledger, line, &batch, &members, &mut rows, &mut failures)
            .await?;
        ledger.sent(members.len());
        self.commit(ledger, rows, failures).await
    }

    /// Rows, failures, totals and the page token (moved past every fully sent page) in one
    /// transaction. Without rows or failures, only when the token moved.
    async fn commit(
        &self,
        ledger: &mut Ledger,
        rows: Vec<ImportedUser>,
        mut failures: Vec<ImportFailure>,
    ) -> Result<(), String> {
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
            .await
            .map_err(|error| error.to_string())?;
        ledger.failures_stored(failed);
        Ok(())
    }

    /// One `PATCH /admin/identities` (on Kratos v1.3.x, with its creates checked and re-sent
    /// after a rollback); conflicts are looked up and linked. Counted only once every answer
    /// is in: a batch that fails half way is not committed, and `--resume` sends (and counts)
    /// its users again.
    async fn send_batch(
        &self,
        ledger: &mut Ledger,
        line: KratosLine,
        batch: &BatchBody,
        members: &[Queued],
        rows: &mut Vec<ImportedUser>,
        failures: &mut Vec<ImportFailure>,
    ) -> Result<(), String> {
        let bodies: Vec<&[u8]> = members
            .iter()
            .map(|member| member.body.as_slice())
            .collect();
        let results = send::create_batch(&self.kratos, line, batch, &bodies)
            .await
            .map_err(|error| error.to_string())?;
        let mut conflicts = Vec::new();
        let mut created = 0;
        let members = members.iter().map(|member| &member.user);
        for (user, result) in members.zip(results) {
            match result {
                ItemResult::Created { identity_id } => {
                    created += 1;
                    rows.push(imported(user, identity_id));
                }
                ItemResult::Conflict => conflicts.push(user),
                ItemResult::Failed { status, message } => {
                    // Kratos's message may quote trait values: it goes to the store, not the log.
                    tracing::warn!(user = %redact(&user.username), status, "Kratos refused an identity");
                    failures.push(failure(user, status, message));
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
        let mut linked = 0;
        for (user, found) in lookups {
            match found.map_err(|error| error.to_string())? {
                Some(identity_id) => {
                    linked += 1;
                    rows.push(imported(user, identity_id));
                }
                None => {
                    let which = if line.accepts_external_id() {
                        "no identity has this external_id, and none holding this user's \
                         identifiers has its sub (metadata_admin.cognito.sub)"
                    } else {
                        "no identity holding this user's identifiers has its sub \
                         (metadata_admin.cognito.sub)"
                    };
                    failures.push(failure(
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
        ledger.sending.created += created;
        ledger.sending.linked += linked;
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
fn explain_listing_failure(error: &DirectoryError, ledger: &Ledger) -> String {
    let resumed_from_token =
        ledger.token.is_some() && ledger.listing.pages == ledger.committed_pages();
    match error {
        DirectoryError::Refused { code, .. }
            if resumed_from_token && code == "InvalidParameterException" =>
        {
            format!(
                "{error}; the stored page token may have expired: run `cognito-bridge import` \
                 without --resume (the delta sync skips every user imported so far without \
                 Kratos calls)"
            )
        }
        _ => error.to_string(),
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

/// A user listed twice in one batch (pages shifting while users sign up) is created once and
/// linked once; one row each, the last, or Postgres refuses to upsert a row twice in one
/// statement.
fn last_row_per_user(rows: Vec<ImportedUser>) -> Vec<ImportedUser> {
    let mut seen = std::collections::HashSet::new();
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

impl ImportSummary {
    /// The summary as printed at the end of `import`.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let c = &self.counters;
        let mut out = String::new();
        let seconds = self.duration.as_secs_f64();
        let rate = if seconds > 0.0 {
            c.seen as f64 / seconds
        } else {
            0.0
        };
        if self.dry_run {
            let _ = writeln!(
                out,
                "dry run {} ({} users in {seconds:.1} s): {} would be created, {} invalid for the \
                 identity schema, {} already imported, {} not mappable; nothing was written to Kratos",
                self.run_id, c.seen, c.created, c.invalid, c.skipped, c.failed
            );
            for example in &self.invalid {
                let _ = writeln!(
                    out,
                    "  invalid: {}: {}",
                    example.cognito_username,
                    example.reasons.join("; ")
                );
            }
            return out;
        }
        let _ = writeln!(
            out,
            "import run {} {} in {seconds:.1} s ({rate:.0} users/s): {} users listed, {} created, \
             {} linked to existing identities, {} skipped (imported before), {} failed",
            self.run_id,
            self.status.as_str(),
            c.seen,
            c.created,
            c.linked,
            c.skipped,
            c.failed
        );
        if self.stopped_at_limit {
            let _ = writeln!(
                out,
                "stopped at --limit; `cognito-bridge import --resume` continues"
            );
        }
        if c.failed > 0 {
            let _ = writeln!(
                out,
                "{} user(s) failed (the first below; all are stored in the import_failures \
                 table); a rerun retries them:",
                c.failed
            );
            for failure in &self.failures {
                let status = failure
                    .status
                    .map_or_else(String::new, |status| format!(" [{status}]"));
                let _ = writeln!(
                    out,
                    "  {}{status}: {}",
                    failure.cognito_username, failure.reason
                );
            }
        }
        out
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
