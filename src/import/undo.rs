//! `cognito-bridge import undo --run ID`: deletes the Kratos identities one import run
//! created and that never migrated, and their rows; keeps everything else and says why.
//!
//! Only identities the run **created** are candidates (`users.created_by_run`, written by the
//! import since this command exists): an identity the run linked was there before it, and a
//! run older than the column is refused as unknown ground (nothing of it is marked). Of those,
//! a user whose row is `migrated`, or whose identity holds a password in Kratos (a migration
//! the bridge did not see: `reconcile` records it), is kept. The import lease is held
//! throughout, so no import runs beside it; a rerun finishes what an interrupted one left
//! (each user is one Kratos delete, then one row delete).

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::ImportError;
use super::lease::{Lease, LeaseTiming};
use crate::config::Settings;
use crate::domain::UserState;
use crate::kratos::{KratosAdmin, PasswordState};
use crate::store::{self, CreatedByRun, Store};

/// Users read per store page.
const PAGE: i64 = 500;
/// Examples kept per kind of kept user.
const EXAMPLES: usize = 10;

#[derive(Debug, Clone)]
pub struct UndoOptions {
    pub run_id: i64,
    /// Change nothing: count what a real run would delete and keep.
    pub dry_run: bool,
    /// Draw a progress bar (the command line sets it on a terminal).
    pub progress: bool,
    pub lease: LeaseTiming,
}

impl UndoOptions {
    pub fn new(run_id: i64) -> Self {
        Self {
            run_id,
            dry_run: false,
            progress: false,
            lease: LeaseTiming::default(),
        }
    }
}

/// What an undo did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UndoSummary {
    pub run_id: i64,
    pub dry_run: bool,
    /// Identities the run created, as recorded on our rows when the undo started.
    pub created_by_run: u64,
    /// Identity and row deleted.
    pub deleted: u64,
    /// The identity was gone from Kratos already; the row was deleted.
    pub already_gone: u64,
    /// Kept: the user migrated (our row says so).
    pub kept_migrated: u64,
    /// Kept: the identity holds a password in Kratos though our row does not say migrated.
    pub kept_password_in_kratos: u64,
    /// Identities the run linked (there before it): never touched.
    pub linked_by_run: i64,
    /// The first users kept, with why.
    pub kept_examples: Vec<KeptUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptUser {
    pub cognito_username: String,
    pub why: &'static str,
}

impl UndoSummary {
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let _ = writeln!(
            out,
            "import undo of run {}{}",
            self.run_id,
            if self.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        );
        let rows: [(String, u64); 5] = [
            ("identities the run created".to_owned(), self.created_by_run),
            (format!("  {verb} (identity and row)"), self.deleted),
            (
                format!("  {verb} (row; identity already gone)"),
                self.already_gone,
            ),
            ("  kept: migrated".to_owned(), self.kept_migrated),
            (
                "  kept: password in Kratos".to_owned(),
                self.kept_password_in_kratos,
            ),
        ];
        let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
        for (label, count) in rows {
            let _ = writeln!(out, "{label:<width$}  {count:>8}");
        }
        let _ = writeln!(
            out,
            "identities the run linked (there before it, never touched): {}",
            self.linked_by_run
        );
        if !self.kept_examples.is_empty() {
            let _ = writeln!(out, "kept (first {}):", self.kept_examples.len());
            for kept in &self.kept_examples {
                let _ = writeln!(out, "  {} ({})", kept.cognito_username, kept.why);
            }
        }
        if self.kept_password_in_kratos > 0 {
            let _ = writeln!(
                out,
                "`cognito-bridge reconcile` records the users with a password in Kratos as migrated"
            );
        }
        out
    }
}

/// Undo one import run with `settings`.
pub async fn run(settings: &Settings, options: UndoOptions) -> Result<UndoSummary, ImportError> {
    let kratos = KratosAdmin::new(&settings.kratos)?;
    let store = store::open_for_command(&settings.database).await?;
    let run = store.import_run(options.run_id).await?.ok_or_else(|| {
        ImportError::NoSuchRun(format!("there is no import run {}", options.run_id))
    })?;
    if run.dry_run {
        return Err(ImportError::NoSuchRun(format!(
            "import run {} was a dry run: it created nothing",
            options.run_id
        )));
    }
    // A dry run changes nothing, so it neither waits for nor blocks an import.
    let lease = if options.dry_run {
        None
    } else {
        let lease = Lease::acquire(store.clone(), options.lease).await?;
        Some(lease)
    };
    let result = undo(&kratos, store, &options, run.counters.linked).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    let summary = result?;
    if summary.created_by_run == 0 && run.counters.created > 0 {
        return Err(ImportError::NoSuchRun(format!(
            "import run {} created {} identities, but none is marked as created by it (it ran \
             before cognito-bridge recorded that); nothing was deleted",
            options.run_id, run.counters.created
        )));
    }
    Ok(summary)
}

async fn undo(
    kratos: &KratosAdmin,
    store: Arc<dyn Store>,
    options: &UndoOptions,
    linked_by_run: i64,
) -> Result<UndoSummary, ImportError> {
    let mut summary = UndoSummary {
        run_id: options.run_id,
        dry_run: options.dry_run,
        linked_by_run,
        ..UndoSummary::default()
    };
    let bar = if options.progress {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} users weighed, {msg} [{elapsed}]")
                .expect("the template parses"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut after = String::new();
    loop {
        let page = store.created_by_run(options.run_id, &after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.cognito_username.clone();
        for user in page {
            summary.created_by_run += 1;
            weigh(kratos, store.as_ref(), options, &user, &mut summary).await?;
            bar.inc(1);
            bar.set_message(format!("{} deleted", summary.deleted));
        }
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// Keep the user (and say why) or delete the identity, then the row.
async fn weigh(
    kratos: &KratosAdmin,
    store: &dyn Store,
    options: &UndoOptions,
    user: &CreatedByRun,
    summary: &mut UndoSummary,
) -> Result<(), ImportError> {
    let keep = |why: &'static str, summary: &mut UndoSummary| {
        if summary.kept_examples.len() < EXAMPLES {
            summary.kept_examples.push(KeptUser {
                cognito_username: user.cognito_username.clone(),
                why,
            });
        }
    };
    if user.state == UserState::Migrated {
        summary.kept_migrated += 1;
        keep("migrated", summary);
        return Ok(());
    }
    let exists = match &user.kratos_identity_id {
        Some(id) => match kratos.password_state(id).await? {
            None => false,
            Some(PasswordState::Hash | PasswordState::HashFlagged) => {
                summary.kept_password_in_kratos += 1;
                keep("password in Kratos", summary);
                return Ok(());
            }
            Some(_) => true,
        },
        None => false,
    };
    if options.dry_run {
        if exists {
            summary.deleted += 1;
        } else {
            summary.already_gone += 1;
        }
        return Ok(());
    }
    // The identity first: a crash between the two leaves a row whose identity is gone, which
    // a rerun deletes (a row deleted first would leave an identity nobody undoes).
    let existed = match (&user.kratos_identity_id, exists) {
        (Some(id), true) => kratos.delete_identity(id).await?,
        _ => false,
    };
    if store
        .delete_unmigrated(options.run_id, &user.cognito_username)
        .await?
    {
        if existed {
            summary.deleted += 1;
        } else {
            summary.already_gone += 1;
        }
    } else {
        // The user migrated between our read and the delete (a hook call beside the undo):
        // the identity is gone now; the row stays for `reconcile` to report.
        summary.kept_migrated += 1;
        keep(
            "migrated during the undo; its identity was deleted",
            summary,
        );
        tracing::warn!(
            user = %crate::domain::redact(&user.cognito_username),
            "a user migrated while the undo deleted their identity"
        );
    }
    Ok(())
}
