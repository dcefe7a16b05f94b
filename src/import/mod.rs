//! `cognito-bridge import`: Cognito users become Kratos identities flagged for the password
//! migration hook, so the first login through Kratos verifies the password against Cognito
//! and keeps it. Resumable page by page; a rerun is the delta sync.
//!
//! This module owns the options, the errors and [`run`], which sets a run up and hands it to
//! the loop in `pipeline`; `summary` says what it did, `schema` checks a dry run's identities.

mod batch;
mod lease;
mod ledger;
mod mapping;
mod pipeline;
mod schema;
mod send;
mod summary;
pub mod undo;

use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;

pub use lease::LeaseTiming;
pub use mapping::{MappedUser, Mapping, MappingError};
pub use pipeline::Interruption;
pub use schema::SchemaError;
pub use summary::{ImportSummary, InvalidExample};

use crate::cognito::directory::{Backoff, Directory};
use crate::config::{CognitoPool, ConfigError, Settings};
use crate::kratos::{KratosAdmin, KratosError};
use crate::store::{self, LeaseHolder, StoreError};
use lease::{Lease, LeaseError};
use ledger::{Ledger, ResumeError};
use pipeline::{Ended, Importer};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Map and validate against the identity schema; write nothing to Kratos.
    pub dry_run: bool,
    /// Continue the newest interrupted run from its last committed page.
    pub resume: bool,
    /// Stop after this many users (the run stays resumable).
    pub limit: Option<u64>,
    /// Draw a progress bar on standard error (only when it is a terminal).
    pub progress: bool,
    /// Stop cleanly on Ctrl-C (the command line sets this; tests do not).
    pub stop_on_ctrl_c: bool,
    pub backoff: Backoff,
    /// The lease that keeps a second real import from running beside this one.
    pub lease: LeaseTiming,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Kratos(#[from] KratosError),
    #[error("nothing to resume: {0}")]
    NothingToResume(String),
    /// `import undo` named a run it cannot undo.
    #[error("{0}")]
    NoSuchRun(String),
    #[error("identity schema for the dry run: {0}")]
    Schema(SchemaError),
    /// Another real import holds the lease; this one did nothing.
    #[error("{}", lease::refusal(.0))]
    AlreadyRunning(LeaseHolder),
    #[error("import lease: {0}")]
    Lease(String),
    /// The run stopped early and can be resumed. The message states the reason, so `reason`
    /// is not also this error's `source()`: the command line prints the whole chain, and
    /// would print it twice.
    #[error(
        "import run {run_id} interrupted after {seen} users: {reason}\n\
         `cognito-bridge import --resume` continues from the last committed page"
    )]
    Interrupted {
        run_id: i64,
        seen: i64,
        reason: Interruption,
    },
}

impl From<LeaseError> for ImportError {
    fn from(error: LeaseError) -> Self {
        match error {
            LeaseError::AlreadyRunning(holder) => ImportError::AlreadyRunning(holder),
            LeaseError::Store(error) => ImportError::Store(error),
            other => ImportError::Lease(other.to_string()),
        }
    }
}

impl From<ResumeError> for ImportError {
    fn from(error: ResumeError) -> Self {
        match error {
            ResumeError::Store(error) => ImportError::Store(error),
            nothing => ImportError::NothingToResume(nothing.to_string()),
        }
    }
}

/// Run one import with `settings`; `credentials` overrides the AWS chain (tests, emulators).
pub async fn run(
    settings: &Settings,
    options: ImportOptions,
    credentials: Option<SharedCredentialsProvider>,
) -> Result<ImportSummary, ImportError> {
    if options.dry_run && options.resume {
        return Err(ImportError::NothingToResume(
            "a dry run writes nothing, so there is nothing to resume; drop --resume".to_owned(),
        ));
    }
    let pool = CognitoPool::from_settings(&settings.cognito)?;
    let mapping = Mapping::new(&settings.import, &settings.kratos.schema_id)?;
    let kratos = KratosAdmin::new(&settings.kratos)?;
    let store = store::open_for_command(&settings.database).await?;
    // A dry run writes nothing to Kratos: it neither waits for a real import nor blocks one.
    let lease = if options.dry_run {
        None
    } else {
        Some(Lease::acquire(store.clone(), options.lease).await?)
    };
    let outcome = async {
        let schema = if options.dry_run {
            Some(
                schema::load(settings, &kratos)
                    .await
                    .map_err(ImportError::Schema)?,
            )
        } else {
            None
        };
        let directory = Arc::new(
            Directory::new(
                &pool,
                settings.import.list_rate,
                options.backoff,
                credentials,
            )
            .await,
        );

        let mut ledger = if options.resume {
            Ledger::resume(store.as_ref()).await?
        } else {
            let estimated = match directory.estimated_users().await {
                Ok(estimate) => Some(estimate),
                Err(error) => {
                    tracing::warn!(%error, "no user estimate from DescribeUserPool; the progress bar has no ETA");
                    None
                }
            };
            Ledger::start(store.as_ref(), options.dry_run, estimated).await?
        };
        if let Some(lease) = &lease {
            lease.attach(ledger.id).await?;
        }
        tracing::info!(
            run_id = ledger.id,
            dry_run = options.dry_run,
            resume = options.resume,
            user_pool_id = %pool.user_pool_id,
            kratos = %crate::kratos::display_url(&settings.kratos.admin_url),
            list_rate = settings.import.list_rate,
            batch_size = settings.import.batch_size,
            "import started"
        );
        let check_known = options.resume || store.any_imported_user().await?;
        let importer = Importer {
            check_known,
            store: store.clone(),
            kratos,
            mapping,
            schema,
            batch_size: settings.import.batch_size,
            progress: pipeline::progress_bar(
                options.progress,
                ledger.estimated_users,
                ledger.listing.seen,
            ),
        };
        let stop = pipeline::stop_signal(options.stop_on_ctrl_c, lease.as_ref());
        let outcome = importer
            .execute(&mut ledger, directory, options.limit, stop)
            .await?;
        match outcome.ended {
            Err(reason) => Err(ImportError::Interrupted {
                run_id: ledger.id,
                seen: ledger.committed_counters().seen,
                reason,
            }),
            Ok(ended) => Ok(ImportSummary::gather(
                store.as_ref(),
                &ledger,
                outcome.status,
                ended == Ended::Limit,
                outcome.invalid,
            )
            .await?),
        }
    }
    .await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_run_prints_its_reason_once_then_the_way_to_resume() {
        let error = anyhow::Error::from(ImportError::Interrupted {
            run_id: 7,
            seen: 300,
            reason: Interruption::CtrlC,
        });
        assert_eq!(
            format!("{error:#}"),
            "import run 7 interrupted after 300 users: stopped by Ctrl-C\n\
             `cognito-bridge import --resume` continues from the last committed page"
        );
    }
}
