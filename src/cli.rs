//! The command line: `cognito-bridge [--config FILE] <serve|migrate|report>`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::http::Application;
use crate::report::{self, ReportFormat};
use crate::store;

#[derive(Debug, Parser)]
#[command(
    name = "cognito-bridge",
    version,
    about = "Move an AWS Cognito user pool into Ory Kratos without password resets",
    long_about = "Move an AWS Cognito user pool into Ory Kratos without password resets.\n\n\
        Kratos calls `serve`'s password migration hook when an imported user logs in; the bridge \
        checks the password against Cognito (AdminInitiateAuth) and answers Kratos, recording who \
        is migrated and who is left.\n\n\
        Settings come from a TOML file (--config, default ./cognito-bridge.toml when present) and \
        from environment variables COGNITO_BRIDGE__SECTION__KEY, which win \
        (e.g. COGNITO_BRIDGE__HOOKS__API_KEYS=key1,key2). AWS credentials come from the standard \
        AWS chain."
)]
pub struct Cli {
    /// TOML configuration file [default: ./cognito-bridge.toml when it exists]
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "COGNITO_BRIDGE_CONFIG"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server: the password migration hook and health checks (applies pending
    /// database migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print migration progress: users per state and hook outcomes.
    Report {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
}

/// Run one command with loaded settings.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let listen = settings.server.listen;
            let application = Application::build(settings).await?;
            tracing::info!(%listen, port = application.port(), "cognito-bridge is serving");
            application
                .run_until_stopped()
                .await
                .context("serving HTTP")?;
        }
        Command::Migrate => {
            let store = store::connect(&settings.database.url, settings.database.max_connections)
                .await
                .context("opening the database named by `database.url`")?;
            store.migrate().await?;
            println!("database migrations applied");
        }
        Command::Report { format } => {
            let store = store::connect(&settings.database.url, settings.database.max_connections)
                .await
                .context("opening the database named by `database.url`")?;
            let progress = store.progress().await.context(
                "reading progress (a new database needs `cognito-bridge migrate` or `serve` first)",
            )?;
            print!("{}", report::render(&progress, format));
        }
    }
    Ok(())
}
