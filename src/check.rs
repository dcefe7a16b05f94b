//! `cognito-bridge check`: the migration guide's validation checklist. Each line passes or
//! fails with its numbers: user counts (Cognito, the store, Kratos), a sample login through
//! Kratos's public API, Hydra's discovery and a client-credentials token verified against its
//! JWKS, a Kratos `web_hook` for every Lambda trigger, and a Hydra client for every Cognito app
//! client with OAuth flows. Reads only (the one side effect: like every command, a SQLite
//! `database.url` naming a missing file creates it empty, and the users line then fails).
//!
//! The sample password and client secret come from the environment (never the command line)
//! and are sent only to Kratos and Hydra: never printed, never logged.

mod probes;
mod summary;
mod triggers;

use std::path::PathBuf;

use aws_credential_types::provider::SharedCredentialsProvider;
use secrecy::SecretString;

use crate::clients;
use crate::cognito::directory::{Backoff, Directory, DirectoryError};
use crate::config::{CognitoPool, ConfigError, Settings};
use crate::hydra::HydraAdmin;
use crate::kratos::{KratosAdmin, LIST_PAGE_SIZE};
use crate::store;

pub use summary::{CheckFormat, CheckLine, CheckStatus, CheckSummary};
pub use triggers::{KratosHooks, TriggerVerdict, trigger_verdict};

/// The sample user's identifier (`COGNITO_BRIDGE_CHECK_USER`).
pub const ENV_USER: &str = "COGNITO_BRIDGE_CHECK_USER";
/// The sample user's password (`COGNITO_BRIDGE_CHECK_PASSWORD`).
pub const ENV_PASSWORD: &str = "COGNITO_BRIDGE_CHECK_PASSWORD";
/// A mapped client's id (`COGNITO_BRIDGE_CHECK_CLIENT_ID`).
pub const ENV_CLIENT_ID: &str = "COGNITO_BRIDGE_CHECK_CLIENT_ID";
/// That client's secret (`COGNITO_BRIDGE_CHECK_CLIENT_SECRET`).
pub const ENV_CLIENT_SECRET: &str = "COGNITO_BRIDGE_CHECK_CLIENT_SECRET";

/// Requests per second to Cognito: ListUsers' quota (30/s) and the app clients' (5/s) are
/// shared with the live apps; a check is no hurry.
const READ_RATE: f64 = 4.0;

/// A login or client identity and its secret, from the environment.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub id: String,
    pub secret: SecretString,
}

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The sample user for the login line (`None`: not set).
    pub login: Option<Credentials>,
    /// The client for the token line (`None`: not set).
    pub client: Option<Credentials>,
    /// Without a sample user, the login line is "skipped" and passes instead of failing.
    pub skip_login: bool,
    /// Without a client, the token line is "skipped" and passes instead of failing.
    pub skip_token: bool,
    /// The Kratos configuration whose web hooks the trigger lines look for.
    pub kratos_yml: Option<PathBuf>,
}

impl CheckOptions {
    /// The sample user and client from the environment (both parts of a pair or nothing).
    pub fn from_env(mut self) -> Self {
        let pair = |id: &str, secret: &str| match (std::env::var(id), std::env::var(secret)) {
            (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => Some(Credentials {
                id,
                secret: SecretString::from(secret),
            }),
            _ => None,
        };
        self.login = pair(ENV_USER, ENV_PASSWORD);
        self.client = pair(ENV_CLIENT_ID, ENV_CLIENT_SECRET);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
}

/// Run every line of the checklist. Unreachable services fail their lines, not the run;
/// only settings and arguments that cannot work are errors.
pub async fn run(
    settings: &Settings,
    options: CheckOptions,
    credentials: Option<SharedCredentialsProvider>,
) -> Result<CheckSummary, CheckError> {
    let pool = CognitoPool::from_settings(&settings.cognito)?;
    let hooks = match &options.kratos_yml {
        Some(path) => Some(KratosHooks::read(path).map_err(CheckError::Usage)?),
        None => None,
    };
    // Each with its service's time budget (`kratos.timeout_ms`, `hydra.timeout_ms`).
    let client_error = |error| CheckError::Usage(format!("cannot build an HTTP client: {error}"));
    let kratos_http = probes::http_client(settings.kratos.timeout()).map_err(client_error)?;
    let hydra_http = probes::http_client(settings.hydra.timeout()).map_err(client_error)?;
    let directory = Directory::new(&pool, READ_RATE, Backoff::default(), credentials).await;
    let mut summary = CheckSummary::new(pool.user_pool_id.clone());

    let description = directory.describe_pool().await;
    summary.push(users_line(settings, &directory, description.as_ref().ok()).await);
    summary.push(match &options.login {
        Some(user) => probes::login(&kratos_http, &settings.kratos.public_url, user).await,
        None if options.skip_login => CheckLine::skipped(
            "login",
            format!("not run (--skip-login): set {ENV_USER} and {ENV_PASSWORD} to run it"),
        ),
        None => CheckLine::fail(
            "login",
            format!("not run: set {ENV_USER} and {ENV_PASSWORD} (or pass --skip-login)"),
        ),
    });
    let discovery = probes::hydra_discovery(&hydra_http, &settings.hydra.public_url).await;
    summary.push(discovery.line());
    summary.push(match (&options.client, discovery.keys()) {
        (Some(client), Some((issuer, jwks))) => {
            probes::hydra_token(
                &hydra_http,
                &settings.hydra.public_url,
                client,
                issuer,
                jwks,
            )
            .await
        }
        (Some(_), None) => CheckLine::fail(
            "hydra token",
            "not run: Hydra's discovery or JWKS did not answer".to_owned(),
        ),
        (None, _) if options.skip_token => CheckLine::skipped(
            "hydra token",
            format!(
                "not run (--skip-token): set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} to run it"
            ),
        ),
        (None, _) => CheckLine::fail(
            "hydra token",
            format!("not run: set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} (or pass --skip-token)"),
        ),
    });
    match &description {
        Ok(description) => {
            let names: Vec<&str> = description
                .triggers
                .iter()
                .map(|(name, _)| name.as_str())
                .collect();
            for line in triggers::lines(&names, hooks.as_ref()) {
                summary.push(line);
            }
        }
        Err(error) => summary.push(CheckLine::fail(
            "triggers",
            format!("DescribeUserPool failed: {error}"),
        )),
    }
    summary.push(app_clients_line(settings, &directory).await);
    tracing::info!(
        user_pool_id = %pool.user_pool_id,
        passed = summary.passed(),
        lines = summary.lines.len(),
        "check finished"
    );
    Ok(summary)
}

/// Line 1. Every Cognito user has a row: each `sub` ListUsers gives is in the store (one
/// query per page, as the import asks), and the store has no more rows than ListUsers has
/// users. The import writes a row for every user it can map, federated and disabled ones
/// included (states `skipped` and `inactive`), so none are subtracted. Every row has its
/// identity: Kratos holds at least as many identities as the store has rows (identities
/// registered in Kratos since are not ours to count). `EstimatedNumberOfUsers` is shown, not
/// compared: Cognito calls it an estimate.
async fn users_line(
    settings: &Settings,
    directory: &Directory,
    description: Option<&crate::cognito::PoolDescription>,
) -> CheckLine {
    let name = "users";
    let store = match store::connect(&settings.database.url, 1).await {
        Ok(store) => store,
        Err(error) => return CheckLine::fail(name, format!("the store: {error}")),
    };
    let (listed, without_row) = match count_cognito_users(directory, store.as_ref()).await {
        Ok(counts) => counts,
        Err(error) => return CheckLine::fail(name, error),
    };
    let progress = match store.progress().await {
        Ok(progress) => progress,
        Err(error) => return CheckLine::fail(name, format!("the store: {error}")),
    };
    let kratos = match count_kratos_identities(settings).await {
        Ok(count) => count,
        Err(error) => return CheckLine::fail(name, format!("Kratos: {error}")),
    };
    let counts = format!(
        "{listed} users in Cognito, {} rows in the store, {kratos} identities in Kratos",
        progress.total
    );
    let mut line = if without_row > 0 {
        CheckLine::fail(
            name,
            format!("{counts}: {without_row} Cognito users have no row; run `import`"),
        )
    } else if progress.total > listed {
        CheckLine::fail(
            name,
            format!(
                "{counts}: {} rows for users Cognito no longer lists",
                progress.total - listed
            ),
        )
    } else if kratos < progress.total {
        CheckLine::fail(
            name,
            format!(
                "{counts}: {} rows without their identity; run `reconcile`, then `import`",
                progress.total - kratos
            ),
        )
    } else {
        CheckLine::pass(name, counts)
    };
    if let Some(description) = description {
        line = line.number("cognito_estimated", description.estimated_users);
    }
    line = line
        .number("cognito_listed", listed)
        .number("cognito_without_row", without_row)
        .number("store_total", progress.total)
        .number("kratos_identities", kratos);
    for (state, count) in &progress.states {
        line = line.number(&format!("store_{state}"), *count);
    }
    line
}

/// ListUsers' count, and how many of those users have no row (by `sub`).
async fn count_cognito_users(
    directory: &Directory,
    store: &dyn store::Store,
) -> Result<(i64, i64), String> {
    let mut listed = 0;
    let mut without_row = 0;
    let mut token = None;
    loop {
        let page = directory
            .list_users(token.as_deref(), 60)
            .await
            .map_err(|error: DirectoryError| format!("ListUsers failed: {error}"))?;
        listed += page.users.len() as i64;
        let subs: Vec<&str> = page
            .users
            .iter()
            .filter_map(|user| user.attribute("sub"))
            .collect();
        let known = store
            .imported_external_ids(&subs)
            .await
            .map_err(|error| format!("the store: {error}"))?;
        without_row += page.users.len() as i64 - known.len() as i64;
        match page.next_token {
            Some(next) => token = Some(next),
            None => return Ok((listed, without_row)),
        }
    }
}

async fn count_kratos_identities(settings: &Settings) -> Result<i64, String> {
    let kratos = KratosAdmin::new(&settings.kratos).map_err(|error| error.to_string())?;
    let mut count = 0;
    let mut token = None;
    loop {
        let page = kratos
            .identities_page(token.as_deref(), LIST_PAGE_SIZE, false)
            .await
            .map_err(|error| error.to_string())?;
        count += page.identities.len() as i64;
        match page.next_token {
            Some(next) => token = Some(next),
            None => return Ok(count),
        }
    }
}

/// Line 5: every app client with OAuth flows (the ones `clients` maps) has a Hydra client of
/// the same `client_id` that `clients` created.
async fn app_clients_line(settings: &Settings, directory: &Directory) -> CheckLine {
    let name = "app clients";
    let apps = match directory.app_clients().await {
        Ok(apps) => apps,
        Err(error) => return CheckLine::fail(name, format!("listing app clients failed: {error}")),
    };
    let hydra = match HydraAdmin::new(&settings.hydra) {
        Ok(hydra) => hydra,
        Err(error) => return CheckLine::fail(name, error.to_string()),
    };
    let mut mapped = 0;
    let mut present = 0;
    let mut problems = Vec::new();
    for app in &apps {
        if clients::skip_reason(app).is_some() {
            continue;
        }
        mapped += 1;
        match hydra.client(&app.client_id).await {
            Ok(Some(client)) if clients::is_ours(&client) => present += 1,
            Ok(Some(_)) => problems.push(format!(
                "{}: Hydra's client was not created by `clients`",
                app.client_id
            )),
            Ok(None) => problems.push(format!("{}: no Hydra client", app.client_id)),
            Err(error) => problems.push(format!("{}: {error}", app.client_id)),
        }
    }
    let skipped = apps.len() as i64 - mapped;
    let line = if problems.is_empty() {
        CheckLine::pass(
            name,
            format!(
                "{present} of {mapped} app clients with OAuth flows have their Hydra client \
                 ({skipped} without OAuth flows need none)"
            ),
        )
    } else {
        CheckLine::fail(
            name,
            format!(
                "{present} of {mapped} app clients with OAuth flows have their Hydra client \
                 (run `clients`): {}",
                problems.join("; ")
            ),
        )
    };
    line.number("app_clients", apps.len() as i64)
        .number("with_oauth", mapped)
        .number("in_hydra", present)
}
