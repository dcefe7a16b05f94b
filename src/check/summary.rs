//! The checklist's lines and their rendering (a table or JSON).

use std::collections::BTreeMap;

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Table,
    Json,
}

/// A line's verdict. `Warn` and `Skipped` do not fail the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Warn,
    Skipped,
}

impl CheckStatus {
    fn text(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Warn => "warn",
            CheckStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckLine {
    pub check: String,
    pub status: CheckStatus,
    pub detail: String,
    /// The figures behind the verdict (counts), by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub numbers: BTreeMap<String, i64>,
}

impl CheckLine {
    fn new(check: &str, status: CheckStatus, detail: String) -> Self {
        Self {
            check: check.to_owned(),
            status,
            detail,
            numbers: BTreeMap::new(),
        }
    }

    pub fn pass(check: &str, detail: String) -> Self {
        Self::new(check, CheckStatus::Pass, detail)
    }

    pub fn fail(check: &str, detail: String) -> Self {
        Self::new(check, CheckStatus::Fail, detail)
    }

    pub fn warn(check: &str, detail: String) -> Self {
        Self::new(check, CheckStatus::Warn, detail)
    }

    pub fn skipped(check: &str, detail: String) -> Self {
        Self::new(check, CheckStatus::Skipped, detail)
    }

    pub fn number(mut self, name: &str, value: i64) -> Self {
        self.numbers.insert(name.to_owned(), value);
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    pub user_pool_id: String,
    /// Every line passed (warnings and skipped lines included).
    pub passed: bool,
    pub failed: usize,
    pub lines: Vec<CheckLine>,
}

impl CheckSummary {
    pub fn new(user_pool_id: String) -> Self {
        Self {
            user_pool_id,
            passed: true,
            failed: 0,
            lines: Vec::new(),
        }
    }

    pub fn push(&mut self, line: CheckLine) {
        if line.status == CheckStatus::Fail {
            self.failed += 1;
            self.passed = false;
        }
        self.lines.push(line);
    }

    pub fn passed(&self) -> bool {
        self.passed
    }

    /// The line named `check` (the first, for trigger lines named alike).
    pub fn line(&self, check: &str) -> Option<&CheckLine> {
        self.lines.iter().find(|line| line.check == check)
    }

    pub fn render(&self, format: CheckFormat) -> String {
        match format {
            CheckFormat::Json => {
                serde_json::to_string_pretty(self).expect("the summary serializes") + "\n"
            }
            CheckFormat::Table => self.table(),
        }
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "check: user pool {}", self.user_pool_id);
        let width = self
            .lines
            .iter()
            .map(|line| line.check.len())
            .max()
            .unwrap_or(0);
        for line in &self.lines {
            let _ = writeln!(
                out,
                "  {:<7}  {:<width$}  {}",
                line.status.text(),
                line.check,
                line.detail
            );
        }
        let _ = writeln!(
            out,
            "{}",
            if self.passed {
                "all checks passed".to_owned()
            } else {
                format!("{} of {} checks failed", self.failed, self.lines.len())
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_skipped_lines_pass_a_fail_does_not_and_both_formats_show_it() {
        let mut summary = CheckSummary::new("us-east-1_abc".to_owned());
        summary.push(CheckLine::pass("users", "4 users".to_owned()).number("store_total", 4));
        summary.push(CheckLine::warn(
            "trigger CustomMessage",
            "no equivalent".to_owned(),
        ));
        summary.push(CheckLine::skipped("login", "not run".to_owned()));
        assert!(summary.passed());
        assert!(
            summary
                .render(CheckFormat::Table)
                .ends_with("all checks passed\n")
        );

        summary.push(CheckLine::fail("app clients", "0 of 1".to_owned()));
        assert!(!summary.passed());
        let table = summary.render(CheckFormat::Table);
        assert!(table.contains("FAIL     app clients"), "{table}");
        assert!(table.ends_with("1 of 4 checks failed\n"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&summary.render(CheckFormat::Json)).unwrap();
        assert_eq!(json["passed"], false);
        assert_eq!(json["failed"], 1);
        assert_eq!(json["lines"][0]["numbers"]["store_total"], 4);
        assert_eq!(json["lines"][1]["status"], "warn");
        assert!(json["lines"][1].get("numbers").is_none());
        assert_eq!(json["lines"][3]["status"], "fail");
    }
}
