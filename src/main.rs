#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use cognito_bridge::cli::{self, Cli};
use cognito_bridge::config::Settings;
use cognito_bridge::telemetry;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("cognito-bridge: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    match cli::run(cli.command, settings).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("cognito-bridge: {error:#}");
            ExitCode::FAILURE
        }
    }
}
