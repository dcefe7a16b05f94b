//! What a reconcile run found and did ([`ReconcileSummary`]), and how the command line prints
//! it: a table, or JSON for machines.

use serde::Serialize;

pub use crate::run_summary::Example;
use crate::run_summary::{self, SummaryFormat};

pub type ReconcileFormat = SummaryFormat;

/// The counts of a run. In a dry run, `corrected` is what a real run would move.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileCounts {
    /// Identities Kratos listed.
    pub identities: u64,
    /// Identities that belong to one of our rows.
    pub matched: u64,
    /// Rows moved from `pending`/`needs_recovery` to `migrated` via `kratos`.
    pub corrected: u64,
    /// Rows already `migrated` (unchanged).
    pub already_migrated: u64,
    /// Rows `pending`/`needs_recovery` whose identity has no password yet (unchanged).
    pub still_pending: u64,
    /// Rows `inactive` or `skipped` (unchanged, whatever their identity holds).
    pub other_states: u64,
    /// Identities no row of ours belongs to (count only).
    pub unknown_identities: u64,
    /// Rows pointing at an identity Kratos does not have.
    pub gone: u64,
    /// Rows with no identity id that no identity matched.
    pub missing_in_kratos: u64,
    /// Identities read one by one because the list showed their password credential without
    /// its config (0 on Kratos v1.3.x and v25.4.0+).
    pub read_one_by_one: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Examples {
    pub corrected: Vec<Example>,
    pub gone: Vec<Example>,
    pub missing_in_kratos: Vec<Example>,
}

/// What a run found and did.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileSummary {
    pub dry_run: bool,
    pub kratos_line: String,
    pub kratos_version: Option<String>,
    #[serde(flatten)]
    pub counts: ReconcileCounts,
    pub examples: Examples,
    pub duration_ms: u64,
}

impl ReconcileSummary {
    pub fn render(&self, format: ReconcileFormat) -> String {
        match format {
            ReconcileFormat::Json => run_summary::json(self),
            ReconcileFormat::Table => self.table(),
        }
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let c = &self.counts;
        let mut out = String::new();
        run_summary::heading(
            &mut out,
            "reconcile",
            self.dry_run,
            &self.kratos_line,
            self.kratos_version.as_deref(),
            self.duration_ms,
        );
        let moved = if self.dry_run {
            "would move to migrated (via kratos)"
        } else {
            "moved to migrated (via kratos)"
        };
        let rows: [(&str, u64); 9] = [
            ("identities in Kratos", c.identities),
            ("  ours", c.matched),
            ("  not ours (unknown)", c.unknown_identities),
            (moved, c.corrected),
            ("already migrated (unchanged)", c.already_migrated),
            ("still pending (unchanged)", c.still_pending),
            ("inactive or skipped (unchanged)", c.other_states),
            ("gone from Kratos", c.gone),
            ("missing in Kratos", c.missing_in_kratos),
        ];
        run_summary::counts(&mut out, &rows);
        if c.read_one_by_one > 0 {
            let _ = writeln!(
                out,
                "{} identities were listed without their password config and read one by one",
                c.read_one_by_one
            );
        }
        let sections = [
            (moved, &self.examples.corrected[..], c.corrected),
            ("gone from Kratos", &self.examples.gone[..], c.gone),
            (
                "missing in Kratos",
                &self.examples.missing_in_kratos[..],
                c.missing_in_kratos,
            ),
        ];
        run_summary::examples(&mut out, &sections);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(dry_run: bool) -> ReconcileSummary {
        ReconcileSummary {
            dry_run,
            kratos_line: "v1.3.x".into(),
            kratos_version: Some("v1.3.1".into()),
            counts: ReconcileCounts {
                identities: 12,
                matched: 11,
                corrected: 2,
                already_migrated: 3,
                still_pending: 5,
                other_states: 1,
                unknown_identities: 1,
                gone: 1,
                missing_in_kratos: 0,
                read_one_by_one: 0,
            },
            examples: Examples {
                corrected: vec![Example {
                    cognito_username: "alice".into(),
                    kratos_identity_id: Some("id-a".into()),
                    error: None,
                }],
                gone: vec![Example {
                    cognito_username: "bob".into(),
                    kratos_identity_id: Some("id-b".into()),
                    error: None,
                }],
                missing_in_kratos: Vec::new(),
            },
            duration_ms: 1500,
        }
    }

    #[test]
    fn the_json_summary_has_flat_counts_and_bounded_examples() {
        let json: serde_json::Value =
            serde_json::from_str(&summary(false).render(ReconcileFormat::Json)).unwrap();
        assert_eq!(json["corrected"], 2);
        assert_eq!(json["gone"], 1);
        assert_eq!(json["unknown_identities"], 1);
        assert_eq!(json["kratos_line"], "v1.3.x");
        assert_eq!(json["examples"]["gone"][0]["cognito_username"], "bob");
        assert!(
            json["examples"]["missing_in_kratos"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_table_says_whether_anything_changed() {
        let real = summary(false).render(ReconcileFormat::Table);
        assert!(real.contains("moved to migrated (via kratos)"), "{real}");
        assert!(real.contains("alice (identity id-a)"), "{real}");
        let dry = summary(true).render(ReconcileFormat::Table);
        assert!(dry.contains("dry run: nothing changed"), "{dry}");
        assert!(dry.contains("would move to migrated"), "{dry}");
    }
}
