#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use cognito_bridge::check::CheckError;
use cognito_bridge::cli::{self, Cli};
use cognito_bridge::clients::ClientsError;
use cognito_bridge::config::{ConfigError, Settings};
use cognito_bridge::finalize::FinalizeError;
use cognito_bridge::import::ImportError;
use cognito_bridge::plan::PlanError;
use cognito_bridge::reconcile::ReconcileError;
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
            if is_config_error(&error) {
                ExitCode::from(2)
            } else if is_already_running(&error) {
                ExitCode::from(cli::EXIT_IMPORT_ALREADY_RUNNING)
            } else if is_hook_active(&error) {
                ExitCode::from(cli::EXIT_FINALIZE_HOOK_ACTIVE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Settings that load but do not suit the command (a missing pool id, say) exit like
/// settings that do not load.
fn is_config_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<ConfigError>()
            || matches!(
                cause.downcast_ref::<ImportError>(),
                Some(ImportError::Config(_) | ImportError::NoSuchRun(_))
            )
            || matches!(
                cause.downcast_ref::<ReconcileError>(),
                Some(ReconcileError::Config(_))
            )
            || matches!(
                cause.downcast_ref::<ClientsError>(),
                Some(ClientsError::Config(_) | ClientsError::Usage(_))
            )
            || matches!(
                cause.downcast_ref::<PlanError>(),
                Some(PlanError::Config(_) | PlanError::Usage(_))
            )
            || matches!(
                cause.downcast_ref::<CheckError>(),
                Some(CheckError::Config(_) | CheckError::Usage(_))
            )
            || matches!(
                cause.downcast_ref::<FinalizeError>(),
                Some(FinalizeError::Config(_) | FinalizeError::Usage(_))
            )
    })
}

/// Another import holds the lease: this one did nothing.
fn is_already_running(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ImportError>(),
            Some(ImportError::AlreadyRunning(_))
        )
    })
}

/// `finalize` refused: hook calls are still arriving. It did nothing.
fn is_hook_active(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<FinalizeError>(),
            Some(FinalizeError::HookActive { .. })
        )
    })
}
