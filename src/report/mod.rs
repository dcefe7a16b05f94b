//! Progress figures for the `report` command and the admin API alike: progress and import runs
//! as a table, JSON or CSV (here), the projected completion (`projection.rs`) and migrations
//! per day or hour (`timeline.rs`).

mod projection;
mod timeline;

pub use projection::{PROJECTION_WINDOW_DAYS, Projection};
pub use timeline::{MAX_BUCKETS, Timeline, TimelineError, TimelineRow};

use std::fmt::Write;

use clap::ValueEnum;

use serde::Serialize;

use crate::domain::UserState;
use crate::store::{ImportRun, Progress};

/// The newest import runs `report` lists.
pub const IMPORT_RUNS_SHOWN: i64 = 20;

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    progress: &'a Progress,
    /// Newest first.
    imports: &'a [ImportRun],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

pub fn render(progress: &Progress, imports: &[ImportRun], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => {
            serde_json::to_string_pretty(&Report { progress, imports }).expect("report serializes")
                + "\n"
        }
        ReportFormat::Csv => {
            let mut out = String::from("state,count\n");
            for (state, count) in states_in_order(progress) {
                let _ = writeln!(out, "{state},{count}");
            }
            let _ = writeln!(out, "total,{}", progress.total);
            let outbox = &progress.capture_outbox;
            let _ = writeln!(
                out,
                "\ncapture_outbox_depth,capture_outbox_oldest_age_secs\n{},{}",
                outbox.depth,
                outbox
                    .oldest_age_secs
                    .map_or(String::new(), |age| age.to_string())
            );
            if !imports.is_empty() {
                out.push_str(
                    "\nimport_run,started_at,status,dry_run,seen,created,linked,skipped,failed,invalid,duration_ms\n",
                );
                for run in imports {
                    let c = &run.counters;
                    let _ = writeln!(
                        out,
                        "{},{},{},{},{},{},{},{},{},{},{}",
                        run.id,
                        run.started_at.to_rfc3339(),
                        run.status.as_str(),
                        run.dry_run,
                        c.seen,
                        c.created,
                        c.linked,
                        c.skipped,
                        c.failed,
                        c.invalid,
                        run.duration_ms
                    );
                }
            }
            out
        }
        ReportFormat::Table => table(progress) + &imports_table(imports),
    }
}

fn imports_table(imports: &[ImportRun]) -> String {
    let mut out = String::from("\nimport runs (newest first):\n");
    if imports.is_empty() {
        out.push_str("  none yet: `cognito-bridge import` creates the Kratos identities\n");
        return out;
    }
    let _ = writeln!(
        out,
        "  {:>4} {:<20} {:<12} {:>9} {:>9} {:>8} {:>9} {:>7} {:>9}",
        "run",
        "started (UTC)",
        "status",
        "seen",
        "created",
        "linked",
        "skipped",
        "failed",
        "duration"
    );
    for run in imports {
        let c = &run.counters;
        let status = if run.dry_run {
            format!("{} (dry)", run.status.as_str())
        } else {
            run.status.as_str().to_owned()
        };
        let _ = writeln!(
            out,
            "  {:>4} {:<20} {:<12} {:>9} {:>9} {:>8} {:>9} {:>7} {:>8.1}s",
            run.id,
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            status,
            c.seen,
            c.created,
            c.linked,
            c.skipped,
            c.failed,
            run.duration_ms as f64 / 1000.0
        );
        if let Some(error) = &run.error {
            let _ = writeln!(out, "       {error}");
        }
    }
    out
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
    let outbox = &progress.capture_outbox;
    match outbox.oldest_age_secs {
        Some(age) => {
            let _ = writeln!(
                out,
                "\ncapture outbox: {} password hash(es) waiting for Kratos, the oldest for {age} s",
                outbox.depth
            );
        }
        None => {
            let _ = writeln!(out, "\ncapture outbox: empty");
        }
    }
    let _ = writeln!(
        out,
        "\nhook attempts in the last {} hours: {}",
        crate::store::ATTEMPTS_WINDOW_HOURS,
        progress.attempts.total
    );
    for (outcome, count) in &progress.attempts.by_outcome {
        let _ = writeln!(out, "  {outcome:<28} {count:>10}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AttemptCounts, ImportCounters, OutboxStatus, RunStatus};

    fn run() -> ImportRun {
        ImportRun {
            id: 7,
            dry_run: false,
            status: RunStatus::Interrupted,
            started_at: chrono::Utc::now(),
            finished_at: None,
            next_token: Some("secret-ish-token".into()),
            counters: ImportCounters {
                pages: 1,
                seen: 60,
                created: 40,
                linked: 10,
                skipped: 5,
                failed: 5,
                invalid: 0,
            },
            estimated_users: Some(100),
            duration_ms: 1500,
            error: Some("Kratos down".into()),
        }
    }

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
                since: chrono::Utc::now() - chrono::Duration::hours(24),
                total: 5,
                by_outcome: [("verified".to_owned(), 3), ("not_authorized".to_owned(), 2)]
                    .into_iter()
                    .collect(),
            },
            capture_outbox: OutboxStatus::new(
                2,
                Some(chrono::Utc::now() - chrono::Duration::seconds(90)),
                chrono::Utc::now(),
            ),
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let json: serde_json::Value =
            serde_json::from_str(&render(&progress(), &[run()], ReportFormat::Json)).unwrap();
        assert_eq!(json["total"], 4);
        assert_eq!(json["states"]["migrated"], 3);
        assert_eq!(json["states"]["pending"], 1);
        assert_eq!(json["states"]["needs_recovery"], 0);
        assert_eq!(json["attempts"]["by_outcome"]["not_authorized"], 2);
        assert_eq!(json["imports"][0]["id"], 7);
        assert_eq!(json["imports"][0]["status"], "interrupted");
        assert_eq!(json["imports"][0]["created"], 40);
        assert!(json["imports"][0].get("next_token").is_none());
        assert_eq!(json["capture_outbox"]["depth"], 2);
        assert_eq!(json["capture_outbox"]["oldest_age_secs"], 90);
    }

    #[test]
    fn the_capture_outbox_shows_in_the_table_and_csv() {
        let table = render(&progress(), &[], ReportFormat::Table);
        assert!(
            table.contains(
                "capture outbox: 2 password hash(es) waiting for Kratos, the oldest for 90 s"
            ),
            "{table}"
        );
        let csv = render(&progress(), &[], ReportFormat::Csv);
        assert!(
            csv.contains("capture_outbox_depth,capture_outbox_oldest_age_secs\n2,90\n"),
            "{csv}"
        );
        let (empty, _) = progress_with_every_state();
        assert!(render(&empty, &[], ReportFormat::Table).contains("capture outbox: empty"));
        assert!(
            render(&empty, &[], ReportFormat::Csv).contains("capture_outbox_oldest_age_secs\n0,\n")
        );
    }

    /// Every state with a count of its own (and its share of 15), so a row that shows another
    /// state's count, or no row, is seen.
    fn progress_with_every_state() -> (Progress, [(&'static str, i64, &'static str); 5]) {
        let expected = [
            ("pending", 4, "26.7%"),
            ("migrated", 3, "20.0%"),
            ("needs_recovery", 2, "13.3%"),
            ("inactive", 1, "6.7%"),
            ("skipped", 5, "33.3%"),
        ];
        let progress = Progress {
            total: 15,
            states: expected
                .iter()
                .map(|(state, count, _)| (*state, *count))
                .collect(),
            mfa_dropped: 2,
            attempts: AttemptCounts::default(),
            capture_outbox: OutboxStatus::default(),
        };
        (progress, expected)
    }

    #[test]
    fn table_and_csv_show_every_state_with_its_count() {
        let (progress, expected) = progress_with_every_state();
        assert_eq!(
            expected.map(|(state, ..)| state),
            UserState::ALL.map(UserState::as_str),
            "one expected row per state, in migration order"
        );

        let table = render(&progress, &[], ReportFormat::Table);
        let state_rows: Vec<Vec<String>> = table
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|row| row.len() == 3 && row[2].ends_with('%'))
            .collect();
        let want: Vec<Vec<String>> = expected
            .iter()
            .map(|(state, count, share)| {
                vec![state.to_string(), count.to_string(), share.to_string()]
            })
            .collect();
        assert_eq!(state_rows, want, "{table}");
        assert!(
            table
                .lines()
                .any(|line| line.split_whitespace().eq(["total", "15"])),
            "{table}"
        );
        assert!(
            table.contains("2 migrated user(s) had Cognito MFA that Kratos does not carry over"),
            "mfa_dropped is reported: {table}"
        );

        let csv = render(&progress, &[], ReportFormat::Csv);
        let mut want = String::from("state,count\n");
        for (state, count, _) in expected {
            want += &format!("{state},{count}\n");
        }
        want += "total,15\n\ncapture_outbox_depth,capture_outbox_oldest_age_secs\n0,\n";
        assert_eq!(csv, want);

        let json: serde_json::Value =
            serde_json::from_str(&render(&progress, &[], ReportFormat::Json)).unwrap();
        for (state, count, _) in expected {
            assert_eq!(json["states"][state], count, "{state}: {json}");
        }
        assert_eq!(json["mfa_dropped"], 2, "{json}");
    }

    #[test]
    fn table_and_csv_show_shares_and_import_runs() {
        let table = render(&progress(), &[run()], ReportFormat::Table);
        assert!(
            table.contains("migrated") && table.contains("75.0%"),
            "{table}"
        );
        assert!(
            table.contains("interrupted") && table.contains("Kratos down"),
            "{table}"
        );
        let csv = render(&progress(), &[run()], ReportFormat::Csv);
        assert!(
            csv.contains("migrated,3\n") && csv.contains("total,4\n"),
            "{csv}"
        );
        assert!(csv.contains(",interrupted,false,60,40,"), "{csv}");
        let empty = render(&progress(), &[], ReportFormat::Table);
        assert!(empty.contains("none yet"), "{empty}");
    }
}
