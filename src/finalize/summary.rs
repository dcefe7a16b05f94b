//! What a finalize run did ([`FinalizeSummary`]), and how the command line prints it: a
//! table, or JSON for machines. No code or link is ever part of it.

use serde::Serialize;

pub use crate::run_summary::Example;
use crate::run_summary::{self, SummaryFormat};

pub type FinalizeFormat = SummaryFormat;

/// The counts of a run. In a dry run, `finalized` and `flag_removed` are what a real run
/// would do, and no recovery is issued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FinalizeCounts {
    /// Rows `pending` or `needs_recovery` not finalized yet, walked by this run.
    pub rows: u64,
    /// Rows moved to `needs_recovery` with `finalized_at`.
    pub finalized: u64,
    /// Identities whose migration flag was removed.
    pub flag_removed: u64,
    /// Identities an earlier, interrupted run had already unflagged (not written again).
    pub already_unflagged: u64,
    /// Identities with neither flag nor password (nothing to remove).
    pub no_flag: u64,
    /// Recovery codes or links written to the file.
    pub recovery_issued: u64,
    /// Identities with a real password (set in Kratos some way we did not see): left alone,
    /// rows unchanged (`reconcile` moves them to `migrated`).
    pub has_password: u64,
    /// Rows whose identity Kratos does not have (unchanged).
    pub gone: u64,
    /// Rows without a Kratos identity id (never imported; unchanged).
    pub no_identity: u64,
    /// Rows the hook (or a confirmation) moved while the run was on them (unchanged).
    pub changed_meanwhile: u64,
    /// Rows Kratos refused (unchanged; a rerun retries them).
    pub failed: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Examples {
    pub has_password: Vec<Example>,
    pub gone: Vec<Example>,
    pub no_identity: Vec<Example>,
    pub failed: Vec<Example>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct FinalizeSummary {
    pub dry_run: bool,
    pub kratos_line: String,
    pub kratos_version: Option<String>,
    /// `none`, `code` or `link`.
    pub recovery: String,
    /// Where the codes or links went (a real run with recovery only).
    pub recovery_out: Option<String>,
    /// Attempt rows (hook calls) in the last `quiet_minutes` when the run started.
    pub recent_attempts: i64,
    pub quiet_minutes: u32,
    #[serde(flatten)]
    pub counts: FinalizeCounts,
    pub examples: Examples,
    pub duration_ms: u64,
}

impl FinalizeSummary {
    pub fn render(&self, format: FinalizeFormat) -> String {
        match format {
            FinalizeFormat::Json => run_summary::json(self),
            FinalizeFormat::Table => self.table(),
        }
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let c = &self.counts;
        let mut out = String::new();
        run_summary::heading(
            &mut out,
            "finalize",
            self.dry_run,
            &self.kratos_line,
            self.kratos_version.as_deref(),
            self.duration_ms,
        );
        let _ = writeln!(
            out,
            "hook calls in the last {} minutes: {}",
            self.quiet_minutes, self.recent_attempts
        );
        let (finalized, removed, issued) = if self.dry_run {
            (
                "would move to needs_recovery (finalized)",
                "  flag would be removed",
                "recovery (none issued in a dry run)",
            )
        } else {
            (
                "moved to needs_recovery (finalized)",
                "  flag removed",
                "recovery codes/links written",
            )
        };
        let rows: [(&str, u64); 11] = [
            ("rows to finalize", c.rows),
            (finalized, c.finalized),
            (removed, c.flag_removed),
            ("  already unflagged (earlier run)", c.already_unflagged),
            ("  no flag, no password", c.no_flag),
            (issued, c.recovery_issued),
            ("password in Kratos (unchanged)", c.has_password),
            ("gone from Kratos (unchanged)", c.gone),
            ("no identity (unchanged)", c.no_identity),
            ("moved by the hook meanwhile", c.changed_meanwhile),
            ("failed (a rerun retries)", c.failed),
        ];
        run_summary::counts(&mut out, &rows);
        if let Some(path) = &self.recovery_out {
            let _ = writeln!(out, "recovery {} for the mailer: {path}", self.recovery);
        }
        let sections = [
            (
                "password in Kratos (run reconcile)",
                &self.examples.has_password[..],
                c.has_password,
            ),
            ("gone from Kratos", &self.examples.gone[..], c.gone),
            ("no identity", &self.examples.no_identity[..], c.no_identity),
            ("failed", &self.examples.failed[..], c.failed),
        ];
        run_summary::examples(&mut out, &sections);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(dry_run: bool) -> FinalizeSummary {
        FinalizeSummary {
            dry_run,
            kratos_line: "v1.3.x".into(),
            kratos_version: Some("v1.3.1".into()),
            recovery: "code".into(),
            recovery_out: (!dry_run).then(|| "/tmp/codes.csv".into()),
            recent_attempts: 0,
            quiet_minutes: 10,
            counts: FinalizeCounts {
                rows: 4,
                finalized: 2,
                flag_removed: 2,
                recovery_issued: if dry_run { 0 } else { 2 },
                gone: 1,
                failed: 1,
                ..FinalizeCounts::default()
            },
            examples: Examples {
                gone: vec![Example {
                    cognito_username: "bob".into(),
                    kratos_identity_id: Some("id-b".into()),
                    error: None,
                }],
                failed: vec![Example {
                    cognito_username: "carol".into(),
                    kratos_identity_id: Some("id-c".into()),
                    error: Some("Kratos answered PUT with 400".into()),
                }],
                ..Examples::default()
            },
            duration_ms: 1500,
        }
    }

    #[test]
    fn the_json_summary_has_flat_counts_and_examples() {
        let json: serde_json::Value =
            serde_json::from_str(&summary(false).render(FinalizeFormat::Json)).unwrap();
        assert_eq!(json["finalized"], 2);
        assert_eq!(json["recovery_issued"], 2);
        assert_eq!(json["recovery"], "code");
        assert_eq!(json["examples"]["gone"][0]["cognito_username"], "bob");
        assert_eq!(
            json["examples"]["failed"][0]["error"],
            "Kratos answered PUT with 400"
        );
    }

    #[test]
    fn the_table_says_whether_anything_changed() {
        let real = summary(false).render(FinalizeFormat::Table);
        assert!(real.contains("moved to needs_recovery"), "{real}");
        assert!(
            real.contains("carol (identity id-c): Kratos answered"),
            "{real}"
        );
        assert!(real.contains("/tmp/codes.csv"), "{real}");
        let dry = summary(true).render(FinalizeFormat::Table);
        assert!(dry.contains("dry run: nothing changed"), "{dry}");
        assert!(dry.contains("would move to needs_recovery"), "{dry}");
    }
}
