//! What the summaries of the commands that walk our rows against Kratos (`reconcile`,
//! `finalize`) share: the output format, the example users, the heading, the aligned table
//! of counts and the example sections. Each command keeps its own counts and labels.

use std::fmt::Write;

use clap::ValueEnum;
use serde::Serialize;

/// How a summary is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Table,
    Json,
}

/// One user in a finding's examples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    pub cognito_username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kratos_identity_id: Option<String>,
    /// Why it failed (Kratos's status and message; never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The summary as pretty JSON, with a final newline.
pub(crate) fn json(summary: &impl Serialize) -> String {
    serde_json::to_string_pretty(summary).expect("the summary serializes") + "\n"
}

/// `"{command} (dry run: nothing changed) against Kratos {line} ({version}) in {s} s"`.
pub(crate) fn heading(
    out: &mut String,
    command: &str,
    dry_run: bool,
    kratos_line: &str,
    kratos_version: Option<&str>,
    duration_ms: u64,
) {
    let version = kratos_version.unwrap_or("unknown version");
    let dry = if dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{command}{dry} against Kratos {kratos_line} ({version}) in {:.1} s",
        duration_ms as f64 / 1000.0
    );
}

/// One line per count, labels padded to the longest.
pub(crate) fn counts(out: &mut String, rows: &[(&str, u64)]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, count) in rows {
        let _ = writeln!(out, "{label:<width$}  {count:>8}");
    }
}

/// For each finding with examples: its title (with "first N of M" when there were more) and
/// one line per user, with the identity id and the error when known.
pub(crate) fn examples(out: &mut String, sections: &[(&str, &[Example], u64)]) {
    for &(title, examples, total) in sections {
        if examples.is_empty() {
            continue;
        }
        let more = if total as usize > examples.len() {
            format!(" (first {} of {total})", examples.len())
        } else {
            String::new()
        };
        let _ = writeln!(out, "{title}{more}:");
        for example in examples {
            let _ = write!(out, "  {}", example.cognito_username);
            if let Some(id) = &example.kratos_identity_id {
                let _ = write!(out, " (identity {id})");
            }
            if let Some(error) = &example.error {
                let _ = write!(out, ": {error}");
            }
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str, id: Option<&str>, error: Option<&str>) -> Example {
        Example {
            cognito_username: name.into(),
            kratos_identity_id: id.map(str::to_owned),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn counts_line_up_under_the_longest_label() {
        let mut out = String::new();
        counts(&mut out, &[("a", 1), ("longer label", 12345)]);
        assert_eq!(out, "a                    1\nlonger label     12345\n");
    }

    #[test]
    fn sections_say_when_they_show_only_the_first_examples() {
        let shown = [
            example("alice", Some("id-a"), None),
            example("bob", None, Some("Kratos answered 400")),
        ];
        let mut out = String::new();
        examples(
            &mut out,
            &[
                ("gone", &shown, 5),
                ("empty", &[], 3),
                ("all", &shown[..1], 1),
            ],
        );
        assert_eq!(
            out,
            "gone (first 2 of 5):\n  alice (identity id-a)\n  bob: Kratos answered 400\n\
             all:\n  alice (identity id-a)\n"
        );
    }

    #[test]
    fn the_heading_names_a_dry_run_and_an_unknown_version() {
        let mut out = String::new();
        heading(&mut out, "reconcile", true, "v1.3.x", None, 1500);
        assert_eq!(
            out,
            "reconcile (dry run: nothing changed) against Kratos v1.3.x (unknown version) in 1.5 s\n"
        );
    }

    #[test]
    fn json_has_no_empty_optional_fields() {
        let text = json(&example("carol", None, None));
        assert_eq!(text, "{\n  \"cognito_username\": \"carol\"\n}\n");
    }
}
