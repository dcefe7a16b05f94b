//! What a finished run reports: [`ImportSummary`], gathered from the run's ledger and the
//! store, and rendered as the command line prints it.

use std::time::Duration;

use super::ledger::Ledger;
use crate::store::{ImportCounters, ImportFailure, RunStatus, Store, StoreError};

/// How many failures and invalid examples the summary shows.
pub(super) const SUMMARY_EXAMPLES: usize = 5;

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

impl ImportSummary {
    /// The summary of a run that ended with `status`; a real run's first failures come from
    /// the store, where all of them are.
    pub(super) async fn gather(
        store: &dyn Store,
        ledger: &Ledger,
        status: RunStatus,
        stopped_at_limit: bool,
        invalid: Vec<InvalidExample>,
    ) -> Result<Self, StoreError> {
        let failures = if ledger.dry_run {
            Vec::new()
        } else {
            store
                .import_failures(ledger.id, SUMMARY_EXAMPLES as i64)
                .await?
        };
        Ok(Self {
            run_id: ledger.id,
            dry_run: ledger.dry_run,
            status,
            counters: ledger.committed_counters(),
            duration: ledger.duration(),
            stopped_at_limit,
            failures,
            invalid,
        })
    }

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
