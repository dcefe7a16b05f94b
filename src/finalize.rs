//! `cognito-bridge finalize`: the cutover step before the hook is switched off. Every user we
//! still hold as `pending` or `needs_recovery` (not finalized yet) loses its identity's
//! password migration flag in Kratos (`kratos::password`: the GET with the password and the
//! full PUT, every other field echoed, a locked hash in place of the flag), optionally gets an
//! admin recovery code or link (`kratos::recovery`) written to a 0600 CSV file for the team's
//! mailer, and its row moves to `needs_recovery` with `finalized_at`.
//!
//! One row at a time, in username order, and each step is safe to repeat: the flag removal
//! recognises its own locked hash, the file line is flushed to disk before the row is marked,
//! and a marked row is never walked again. A crash loses nothing; at worst a user whose line
//! was written but whose row was not marked gets a second (also valid) code on the rerun.
//! What a run did, and how it is printed, is in `finalize/summary.rs`.
//!
//! Just over 400 lines: one user's steps (flag off, recovery line, row) read in the order a
//! run takes them; the unit tests below the code are a few dozen of them.

mod summary;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, Settings};
use crate::kratos::{
    FlagRemoval, KratosAdmin, KratosError, KratosLine, LineSource, RecoveryGrant, RecoveryKind,
};
use crate::store::{self, FinalizeRow, Store, StoreError};

pub use summary::{Example, Examples, FinalizeCounts, FinalizeFormat, FinalizeSummary};

/// Examples kept per finding.
pub const EXAMPLES: usize = 10;
/// Rows read per statement.
const ROWS_PER_PAGE: i64 = 500;
/// Default of `--quiet-minutes`.
pub const DEFAULT_QUIET_MINUTES: u32 = 10;

/// Which recovery each finalized user gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RecoveryChoice {
    /// None: the users start Kratos's recovery flow themselves.
    #[default]
    None,
    /// An admin recovery code, with the link of the flow to type it into.
    Code,
    /// An admin recovery link (Kratos's `link` method must be enabled).
    Link,
}

impl RecoveryChoice {
    fn kind(self) -> Option<RecoveryKind> {
        match self {
            RecoveryChoice::None => None,
            RecoveryChoice::Code => Some(RecoveryKind::Code),
            RecoveryChoice::Link => Some(RecoveryKind::Link),
        }
    }

    fn name(self) -> &'static str {
        match self {
            RecoveryChoice::None => "none",
            RecoveryChoice::Code => "code",
            RecoveryChoice::Link => "link",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FinalizeOptions {
    /// Read and report; change nothing (no Kratos write, no row, no file).
    pub dry_run: bool,
    /// Run even though hook calls arrived in the last `quiet_minutes`.
    pub yes: bool,
    /// Minutes without any attempt row before a real run goes ahead.
    pub quiet_minutes: u32,
    pub recovery: RecoveryChoice,
    /// The CSV file the codes or links are appended to (required with a recovery).
    pub recovery_out: Option<PathBuf>,
    /// Kratos's duration syntax (`72h`); `None`: Kratos's configured lifespan.
    pub expires_in: Option<String>,
    /// Draw a progress bar on standard error.
    pub progress: bool,
}

impl Default for FinalizeOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            yes: false,
            quiet_minutes: DEFAULT_QUIET_MINUTES,
            recovery: RecoveryChoice::None,
            recovery_out: None,
            expires_in: None,
            progress: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(
        "refusing to finalize: {attempts} hook call(s) arrived in the last {minutes} minutes, \
         so Kratos is still sending logins to the hook; wait until it is quiet, or pass --yes \
         (a user who logs in meanwhile may end up with a recovery they do not need)"
    )]
    HookActive { attempts: i64, minutes: u32 },
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Kratos(#[from] KratosError),
    #[error("recovery file {path}: {reason}")]
    RecoveryOut { path: String, reason: String },
}

/// Run one finalize with `settings`.
pub async fn run(
    settings: &Settings,
    options: FinalizeOptions,
) -> Result<FinalizeSummary, FinalizeError> {
    let started = Instant::now();
    let kind = options.recovery.kind();
    if kind.is_some() && options.recovery_out.is_none() {
        return Err(FinalizeError::Usage(
            "--recovery code|link needs --recovery-out FILE (codes are never printed)".into(),
        ));
    }
    if let Some(expires_in) = &options.expires_in
        && !is_kratos_duration(expires_in)
    {
        return Err(FinalizeError::Usage(format!(
            "--expires-in {expires_in:?} is not a duration like 72h, 90m or 3600s"
        )));
    }
    let kratos = KratosAdmin::new(&settings.kratos)?;
    let store = store::open_for_command(&settings.database).await?;
    let since = Utc::now() - chrono::Duration::minutes(i64::from(options.quiet_minutes));
    let recent_attempts = store.attempts_since(since).await?;
    if recent_attempts > 0 && !options.yes && !options.dry_run {
        return Err(FinalizeError::HookActive {
            attempts: recent_attempts,
            minutes: options.quiet_minutes,
        });
    }
    let (line, source) = kratos.detect_line().await?;
    let version = match source {
        LineSource::Version(version) => Some(version),
        LineSource::Probe { version } => version,
    };
    let out = match (&options.recovery_out, kind, options.dry_run) {
        (Some(path), Some(_), false) => Some(RecoveryFile::open(path)?),
        _ => None,
    };
    tracing::info!(
        kratos = %crate::kratos::display_url(&settings.kratos.admin_url),
        %line,
        dry_run = options.dry_run,
        recovery = options.recovery.name(),
        recent_attempts,
        "finalize started"
    );
    let estimate = store.count_to_finalize().await?;
    let mut run = Run {
        store: store.as_ref(),
        kratos: &kratos,
        line,
        dry_run: options.dry_run,
        kind,
        expires_in: options.expires_in.as_deref(),
        out,
        counts: FinalizeCounts::default(),
        examples: Examples::default(),
        progress: progress_bar(options.progress, estimate),
    };
    let outcome = run.execute().await;
    run.progress.finish_and_clear();
    tracing::info!(counts = ?run.counts, dry_run = options.dry_run, ok = outcome.is_ok(), "finalize finished");
    outcome?;
    Ok(FinalizeSummary {
        dry_run: options.dry_run,
        kratos_line: line.to_string(),
        kratos_version: version,
        recovery: options.recovery.name().to_owned(),
        recovery_out: run.out.as_ref().map(|out| out.path.clone()),
        recent_attempts,
        quiet_minutes: options.quiet_minutes,
        counts: run.counts,
        examples: run.examples,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}

/// Kratos's `expires_in` pattern for links: digits and one unit.
fn is_kratos_duration(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && ["ns", "us", "ms", "s", "m", "h"].contains(&&text[digits..])
}

fn progress_bar(enabled: bool, estimate: i64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::try_from(estimate).unwrap_or(0)).with_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} users, {per_sec} {msg}",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The mailer's CSV: created 0600 (refused if it exists readable by others), appended to, a
/// header only when empty, every line flushed to disk before its row is marked.
struct RecoveryFile {
    path: String,
    file: File,
}

impl RecoveryFile {
    const HEADER: &'static str =
        "cognito_username,email,identity_id,recovery_code,recovery_link,expires_at\n";

    fn open(path: &Path) -> Result<Self, FinalizeError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let shown = display_path(path);
        let failed = |reason: String| FinalizeError::RecoveryOut {
            path: shown.clone(),
            reason,
        };
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|error| failed(error.to_string()))?;
        let metadata = file.metadata().map_err(|error| failed(error.to_string()))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(failed(format!(
                "mode {mode:o} lets others read it; it must be 0600 (chmod 600, or a new file)"
            )));
        }
        let mut out = Self { path: shown, file };
        if metadata.len() == 0 {
            out.append(Self::HEADER.as_bytes())?;
        }
        Ok(out)
    }

    fn write(
        &mut self,
        row: &FinalizeRow,
        id: &str,
        grant: &RecoveryGrant,
    ) -> Result<(), FinalizeError> {
        let mut line = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        let code = grant.code.as_ref().map(|code| code.expose_secret());
        let written = line.write_record([
            row.cognito_username.as_str(),
            row.email.as_deref().unwrap_or(""),
            id,
            code.unwrap_or(""),
            grant.link.expose_secret(),
            grant.expires_at.as_deref().unwrap_or(""),
        ]);
        // The line holds the code: wiped once written.
        let bytes = written
            .ok()
            .and_then(|()| line.into_inner().ok())
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| FinalizeError::RecoveryOut {
                path: self.path.clone(),
                reason: "a line could not be formatted".into(),
            })?;
        self.append(&bytes)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), FinalizeError> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|error| FinalizeError::RecoveryOut {
                path: self.path.clone(),
                reason: error.to_string(),
            })
    }
}

struct Run<'a> {
    store: &'a dyn Store,
    kratos: &'a KratosAdmin,
    line: KratosLine,
    dry_run: bool,
    kind: Option<RecoveryKind>,
    expires_in: Option<&'a str>,
    out: Option<RecoveryFile>,
    counts: FinalizeCounts,
    examples: Examples,
    progress: ProgressBar,
}

impl Run<'_> {
    async fn execute(&mut self) -> Result<(), FinalizeError> {
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .store
                .rows_to_finalize(after.as_deref(), ROWS_PER_PAGE)
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.cognito_username.clone());
            for row in &rows {
                self.counts.rows += 1;
                self.row(row).await?;
                self.progress.inc(1);
            }
        }
        Ok(())
    }

    /// One user: the flag, the recovery, the mark. Kratos refusing this user is counted and
    /// the run goes on; Kratos or the database unavailable ends the run (a rerun resumes).
    async fn row(&mut self, row: &FinalizeRow) -> Result<(), FinalizeError> {
        let Some(id) = row.kratos_identity_id.as_deref() else {
            self.counts.no_identity += 1;
            push(&mut self.examples.no_identity, row, None);
            return Ok(());
        };
        let go_on = match self.kratos_steps(row, id).await {
            Ok(go_on) => go_on,
            Err(FinalizeError::Kratos(error)) if !error.is_transient() => {
                tracing::warn!(user = %row.cognito_username, identity = id, %error, "finalize: Kratos refused a user");
                self.counts.failed += 1;
                push(&mut self.examples.failed, row, Some(error.to_string()));
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        if !go_on {
            return Ok(());
        }
        let moved = self.dry_run
            || self
                .store
                .mark_finalized(&row.cognito_username, Utc::now())
                .await?;
        if moved {
            self.counts.finalized += 1;
        } else {
            self.counts.changed_meanwhile += 1;
        }
        Ok(())
    }

    /// The flag, then the recovery (a real run); whether the row is to be marked.
    async fn kratos_steps(&mut self, row: &FinalizeRow, id: &str) -> Result<bool, FinalizeError> {
        match self
            .kratos
            .remove_migration_flag(self.line, id, self.dry_run)
            .await?
        {
            FlagRemoval::Removed => self.counts.flag_removed += 1,
            FlagRemoval::AlreadyLocked => self.counts.already_unflagged += 1,
            FlagRemoval::NoFlag => self.counts.no_flag += 1,
            FlagRemoval::HasPassword => {
                self.counts.has_password += 1;
                push(&mut self.examples.has_password, row, None);
                return Ok(false);
            }
            FlagRemoval::NoIdentity => {
                self.counts.gone += 1;
                push(&mut self.examples.gone, row, None);
                return Ok(false);
            }
        }
        if self.dry_run {
            return Ok(true);
        }
        if let (Some(kind), Some(out)) = (self.kind, self.out.as_mut()) {
            let Some(grant) = self
                .kratos
                .create_recovery(kind, id, self.expires_in)
                .await?
            else {
                self.counts.gone += 1;
                push(&mut self.examples.gone, row, None);
                return Ok(false);
            };
            out.write(row, id, &grant)?;
            self.counts.recovery_issued += 1;
        }
        Ok(true)
    }
}

fn push(examples: &mut Vec<Example>, row: &FinalizeRow, error: Option<String>) {
    if examples.len() < EXAMPLES {
        examples.push(Example {
            cognito_username: row.cognito_username.clone(),
            kratos_identity_id: row.kratos_identity_id.clone(),
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_kratos_s_digits_and_one_unit() {
        for good in ["72h", "90m", "3600s", "15m"] {
            assert!(is_kratos_duration(good), "{good}");
        }
        for bad in ["", "h", "3 days", "1d", "1h30m", "-5m", "72"] {
            assert!(!is_kratos_duration(bad), "{bad}");
        }
    }
}
