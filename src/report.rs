//! `report`: migration progress as a table, JSON or CSV.

use std::fmt::Write;

use clap::ValueEnum;

use crate::domain::UserState;
use crate::store::Progress;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

pub fn render(progress: &Progress, format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(progress).expect("progress serializes") + "\n"
        }
        ReportFormat::Csv => {
            let mut out = String::from("state,count\n");
            for (state, count) in states_in_order(progress) {
                let _ = writeln!(out, "{state},{count}");
            }
            let _ = writeln!(out, "total,{}", progress.total);
            out
        }
        ReportFormat::Table => table(progress),
    }
}

/// States in migration order (pending first), not alphabetical.
fn states_in_order(progress: &Progress) -> impl Iterator<Item = (&'static str, i64)> + '_ {
    UserState::ALL.into_iter().map(|state| {
        let name = state.as_str();
        (name, progress.states.get(name).copied().unwrap_or(0))
    })
}

fn table(progress: &Progress) -> String {
    let mut out = String::new();
    let percent = |count: i64| {
        if progress.total == 0 {
            0.0
        } else {
            count as f64 * 100.0 / progress.total as f64
        }
    };
    let _ = writeln!(out, "{:<16} {:>10} {:>7}", "state", "users", "share");
    for (state, count) in states_in_order(progress) {
        let _ = writeln!(out, "{state:<16} {count:>10} {:>6.1}%", percent(count));
    }
    let _ = writeln!(out, "{:<16} {:>10}", "total", progress.total);
    if progress.mfa_dropped > 0 {
        let _ = writeln!(
            out,
            "\n{} migrated user(s) had Cognito MFA that Kratos does not carry over (hooks.mfa_policy = allow).",
            progress.mfa_dropped
        );
    }
    let _ = writeln!(out, "\nhook attempts: {}", progress.attempts.total);
    for (outcome, count) in &progress.attempts.by_outcome {
        let _ = writeln!(out, "  {outcome:<28} {count:>10}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AttemptCounts;

    fn progress() -> Progress {
        Progress {
            total: 4,
            states: [
                ("inactive", 0),
                ("migrated", 3),
                ("needs_recovery", 0),
                ("pending", 1),
                ("skipped", 0),
            ]
            .into_iter()
            .collect(),
            mfa_dropped: 1,
            attempts: AttemptCounts {
                total: 5,
                by_outcome: [("verified".to_owned(), 3), ("not_authorized".to_owned(), 2)]
                    .into_iter()
                    .collect(),
            },
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let json: serde_json::Value =
            serde_json::from_str(&render(&progress(), ReportFormat::Json)).unwrap();
        assert_eq!(json["total"], 4);
        assert_eq!(json["states"]["migrated"], 3);
        assert_eq!(json["states"]["pending"], 1);
        assert_eq!(json["states"]["needs_recovery"], 0);
        assert_eq!(json["attempts"]["by_outcome"]["not_authorized"], 2);
    }

    #[test]
    fn table_and_csv_show_every_state() {
        let table = render(&progress(), ReportFormat::Table);
        assert!(
            table.contains("migrated") && table.contains("75.0%"),
            "{table}"
        );
        let csv = render(&progress(), ReportFormat::Csv);
        assert!(
            csv.contains("migrated,3\n") && csv.contains("total,4\n"),
            "{csv}"
        );
    }
}
