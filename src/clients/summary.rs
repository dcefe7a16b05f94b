//! What a `clients` run did per app client ([`ClientsSummary`]), and how the command line
//! prints it: a table, or JSON for machines. Never a secret.

use clap::ValueEnum;
use serde::Serialize;

use super::mapping::Dropped;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientsFormat {
    Table,
    Json,
}

/// What happened to one app client (in a dry run: what would).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// Hydra refused the client (400), or a client with its id is not ours.
    Refused,
    /// Hydra answered something else than a decision (5xx, unreadable).
    Failed,
    /// No Hydra client for it (SDK sign-in only).
    Skipped,
}

/// One app client's line.
#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    pub client_id: String,
    pub client_name: String,
    pub outcome: Outcome,
    /// Updated: the Hydra fields that changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Refused, failed or skipped: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// URIs left out because Hydra would refuse them.
    pub dropped: Vec<Dropped>,
    pub notes: Vec<String>,
    /// A new secret for it went to `--secrets-out`.
    pub new_secret: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientsCounts {
    pub app_clients: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub refused: u64,
    pub failed: u64,
    pub skipped: u64,
    /// URIs left out, over all clients.
    pub dropped_uris: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct ClientsSummary {
    pub dry_run: bool,
    pub user_pool_id: String,
    pub hydra: String,
    #[serde(flatten)]
    pub counts: ClientsCounts,
    pub clients: Vec<ClientReport>,
    /// Where new secrets went (`--secrets-out`), if any were written.
    pub secrets_out: Option<String>,
}

impl ClientsSummary {
    pub fn new(dry_run: bool, user_pool_id: String, hydra: String) -> Self {
        Self {
            dry_run,
            user_pool_id,
            hydra,
            counts: ClientsCounts::default(),
            clients: Vec::new(),
            secrets_out: None,
        }
    }

    pub fn push(&mut self, report: ClientReport) {
        let c = &mut self.counts;
        c.app_clients += 1;
        c.dropped_uris += report.dropped.len() as u64;
        *match report.outcome {
            Outcome::Created => &mut c.created,
            Outcome::Updated => &mut c.updated,
            Outcome::Unchanged => &mut c.unchanged,
            Outcome::Refused => &mut c.refused,
            Outcome::Failed => &mut c.failed,
            Outcome::Skipped => &mut c.skipped,
        } += 1;
        self.clients.push(report);
    }

    /// Every app client handled: none refused, none failed (exit status 0).
    pub fn all_done(&self) -> bool {
        self.counts.refused == 0 && self.counts.failed == 0
    }

    pub fn render(&self, format: ClientsFormat) -> String {
        match format {
            ClientsFormat::Json => {
                serde_json::to_string_pretty(self).expect("the summary serializes") + "\n"
            }
            ClientsFormat::Table => self.table(),
        }
    }

    fn outcome_text(&self, outcome: Outcome) -> &'static str {
        match (self.dry_run, outcome) {
            (false, Outcome::Created) => "created",
            (true, Outcome::Created) => "would create",
            (false, Outcome::Updated) => "updated",
            (true, Outcome::Updated) => "would update",
            (_, Outcome::Unchanged) => "unchanged",
            (false, Outcome::Refused) => "refused",
            (true, Outcome::Refused) => "would be refused",
            (_, Outcome::Failed) => "failed",
            (_, Outcome::Skipped) => "skipped",
        }
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let c = &self.counts;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "clients{}: {} app clients of {} → Hydra at {}",
            if self.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            },
            c.app_clients,
            self.user_pool_id,
            self.hydra
        );
        let id_width = self
            .clients
            .iter()
            .map(|client| client.client_id.len())
            .max()
            .unwrap_or(0);
        let name_width = self
            .clients
            .iter()
            .map(|client| client.client_name.len())
            .max()
            .unwrap_or(0);
        for client in &self.clients {
            let mut line = format!(
                "{:<id_width$}  {:<name_width$}  {}",
                client.client_id,
                client.client_name,
                self.outcome_text(client.outcome)
            );
            if !client.fields.is_empty() {
                let _ = write!(line, ": {}", client.fields.join(", "));
            }
            if let Some(reason) = &client.reason {
                let _ = write!(line, ": {reason}");
            }
            if client.new_secret {
                line.push_str(if self.dry_run {
                    " (would get a new secret)"
                } else {
                    " (new secret in the secrets file)"
                });
            }
            let _ = writeln!(out, "{line}");
            for dropped in &client.dropped {
                let _ = writeln!(
                    out,
                    "    left out of {}: {} ({})",
                    dropped.field, dropped.uri, dropped.reason
                );
            }
            for note in &client.notes {
                let _ = writeln!(out, "    note: {note}");
            }
        }
        let _ = writeln!(
            out,
            "created {}, updated {}, unchanged {}, refused {}, failed {}, skipped {}, URIs left out {}",
            c.created, c.updated, c.unchanged, c.refused, c.failed, c.skipped, c.dropped_uris
        );
        if let Some(path) = &self.secrets_out {
            let _ = writeln!(out, "new secrets written to {path} (mode 0600)");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(dry_run: bool) -> ClientsSummary {
        let mut summary = ClientsSummary::new(dry_run, "us-east-1_x".into(), "http://h/".into());
        summary.push(ClientReport {
            client_id: "web-id".into(),
            client_name: "web".into(),
            outcome: Outcome::Updated,
            fields: vec!["redirect_uris".into(), "scope".into()],
            reason: None,
            dropped: vec![Dropped {
                field: "post_logout_redirect_uris",
                uri: "https://elsewhere.example.com/bye".into(),
                reason: "no match",
            }],
            notes: Vec::new(),
            new_secret: false,
        });
        summary.push(ClientReport {
            client_id: "sdk-id".into(),
            client_name: "sdk".into(),
            outcome: Outcome::Skipped,
            fields: Vec::new(),
            reason: Some("SDK sign-in only".into()),
            dropped: Vec::new(),
            notes: Vec::new(),
            new_secret: false,
        });
        summary
    }

    #[test]
    fn the_table_says_per_client_what_happened() {
        let table = summary(false).render(ClientsFormat::Table);
        assert!(table.contains("updated: redirect_uris, scope"), "{table}");
        assert!(table.contains("skipped: SDK sign-in only"), "{table}");
        assert!(
            table.contains("left out of post_logout_redirect_uris"),
            "{table}"
        );
        let dry = summary(true).render(ClientsFormat::Table);
        assert!(dry.contains("would update"), "{dry}");
        assert!(summary(true).all_done());
    }

    #[test]
    fn the_json_summary_has_flat_counts_and_one_entry_per_client() {
        let json: serde_json::Value =
            serde_json::from_str(&summary(false).render(ClientsFormat::Json)).unwrap();
        assert_eq!(json["updated"], 1);
        assert_eq!(json["skipped"], 1);
        assert_eq!(json["dropped_uris"], 1);
        assert_eq!(json["clients"][0]["outcome"], "updated");
        assert_eq!(json["clients"][0]["fields"][1], "scope");
        assert_eq!(json["clients"][1]["reason"], "SDK sign-in only");
    }
}
