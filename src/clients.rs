//! `cognito-bridge clients`: one Hydra OAuth2 client per Cognito app client, with the same
//! `client_id`. Reads the pool's app clients (`cognito::Directory::app_clients`), maps each
//! (`clients/mapping.rs`, compared in `clients/compare.rs`), reads the Hydra client of that id and creates it, replaces it when
//! a managed field differs, or leaves it. A rerun changes only what changed in Cognito.
//!
//! Secrets: Cognito's secret is copied into Hydra when the client is created (apps keep
//! working); Hydra never returns it again, so a rerun does not compare it. With
//! `--new-secrets`, clients created (or turned confidential) get a new random secret instead,
//! written only to the `--secrets-out` file (mode 0600). No secret is logged or printed.

mod compare;
mod mapping;
mod summary;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_credential_types::provider::SharedCredentialsProvider;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::cognito::AppClient;
use crate::cognito::directory::{Backoff, Directory, DirectoryError};
use crate::config::{CognitoPool, ConfigError, Settings};
use crate::hydra::{HydraAdmin, HydraError, Written};

pub use compare::is_ours;
pub use mapping::{
    ACCESS_LIFESPANS, Dropped, ID_LIFESPANS, METADATA_KEY, REFRESH_LIFESPANS, auth_method,
    go_duration, grants_for, parse_go_duration, skip_reason, validity_seconds,
};
pub use summary::{ClientReport, ClientsCounts, ClientsFormat, ClientsSummary, Outcome};

/// Requests per second to `ListUserPoolClients`/`DescribeUserPoolClient`: Cognito allows 5 per
/// pool for that category (not adjustable), shared with the live apps' console and tooling.
pub const CLIENT_READ_RATE: f64 = 4.0;

/// Fields of a Hydra client that a replacement must not send back.
const READ_ONLY_FIELDS: [&str; 6] = [
    "client_secret",
    "created_at",
    "updated_at",
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
];

#[derive(Debug, Clone, Default)]
pub struct ClientsOptions {
    /// Read Cognito and Hydra, write nothing: the plan.
    pub dry_run: bool,
    /// New random secrets instead of Cognito's, for the clients this run creates.
    pub new_secrets: bool,
    /// Where new secrets go (required with `new_secrets`).
    pub secrets_out: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Cognito(#[from] DirectoryError),
    #[error("{0}")]
    Hydra(#[from] HydraError),
    #[error("secrets file {path}: {source}")]
    SecretsOut {
        path: String,
        source: std::io::Error,
    },
}

/// Run `clients` with `settings`; `credentials` overrides the AWS chain (tests, emulators).
pub async fn run(
    settings: &Settings,
    options: ClientsOptions,
    credentials: Option<SharedCredentialsProvider>,
) -> Result<ClientsSummary, ClientsError> {
    if options.new_secrets && options.secrets_out.is_none() {
        return Err(ClientsError::Usage(
            "--new-secrets needs --secrets-out FILE: new secrets go nowhere else".to_owned(),
        ));
    }
    let pool = CognitoPool::from_settings(&settings.cognito)?;
    let hydra = HydraAdmin::new(&settings.hydra)?;
    // Opened before anything is written to Hydra: a path we cannot write stops the run first.
    let mut secrets = match (
        &options.secrets_out,
        options.new_secrets && !options.dry_run,
    ) {
        (Some(path), true) => Some(SecretsFile::create(path)?),
        _ => None,
    };
    let directory = Directory::new(&pool, CLIENT_READ_RATE, Backoff::default(), credentials).await;
    let apps = directory.app_clients().await?;
    tracing::info!(
        user_pool_id = %pool.user_pool_id,
        hydra = %crate::hydra::display_url(&settings.hydra.admin_url),
        app_clients = apps.len(),
        dry_run = options.dry_run,
        new_secrets = options.new_secrets,
        "clients started"
    );
    let mut summary = ClientsSummary::new(
        options.dry_run,
        pool.user_pool_id.clone(),
        crate::hydra::display_url(&settings.hydra.admin_url),
    );
    for app in &apps {
        let report = handle(&hydra, app, &pool.user_pool_id, &options, secrets.as_mut()).await?;
        tracing::info!(
            client_id = %report.client_id,
            outcome = ?report.outcome,
            fields = ?report.fields,
            dropped = report.dropped.len(),
            dry_run = options.dry_run,
            "app client handled"
        );
        summary.push(report);
    }
    if let Some(secrets) = secrets {
        summary.secrets_out = Some(secrets.finish()?);
    }
    Ok(summary)
}

/// One app client: map, compare with Hydra, write what differs.
async fn handle(
    hydra: &HydraAdmin,
    app: &AppClient,
    user_pool_id: &str,
    options: &ClientsOptions,
    secrets: Option<&mut SecretsFile>,
) -> Result<ClientReport, ClientsError> {
    let mut report = ClientReport {
        client_id: app.client_id.clone(),
        client_name: app.name.clone(),
        outcome: Outcome::Skipped,
        fields: Vec::new(),
        reason: None,
        dropped: Vec::new(),
        notes: Vec::new(),
        new_secret: false,
    };
    if let Some(reason) = mapping::skip_reason(app) {
        report.reason = Some(reason.to_owned());
        return Ok(report);
    }
    let mapped = mapping::map(app, user_pool_id);
    report.dropped = mapped.dropped.clone();
    report.notes = mapped.notes.clone();

    let existing = match hydra.client(&app.client_id).await {
        Ok(existing) => existing,
        Err(error @ HydraError::Unreachable { .. }) => return Err(error.into()),
        Err(error) => return Ok(failed(report, error)),
    };
    // The secret this write would send, when it sends one.
    let secret_for = |secrets: &Option<&mut SecretsFile>| -> Option<SecretString> {
        if !mapped.confidential {
            None
        } else if options.new_secrets && (secrets.is_some() || options.dry_run) {
            Some(new_secret())
        } else {
            app.secret.clone()
        }
    };
    let (body, outcome, secret) = match existing {
        None => {
            let mut body = Value::Object(mapped.fields.clone());
            body["client_id"] = json!(app.client_id);
            let secret = secret_for(&secrets);
            (body, Outcome::Created, secret)
        }
        Some(actual) if !compare::is_ours(&actual) => {
            report.outcome = Outcome::Refused;
            report.reason = Some(format!(
                "Hydra already has a client with this id that cognito-bridge did not create \
                 (no metadata.{METADATA_KEY}); left as it is"
            ));
            return Ok(report);
        }
        Some(actual) => {
            report.fields = compare::changed_fields(&mapped.fields, &actual);
            if report.fields.is_empty() {
                report.outcome = Outcome::Unchanged;
                return Ok(report);
            }
            let was_public = actual
                .get("token_endpoint_auth_method")
                .and_then(Value::as_str)
                == Some("none");
            let mut body = actual;
            if let Some(object) = body.as_object_mut() {
                for field in READ_ONLY_FIELDS {
                    object.remove(field);
                }
                object.extend(mapped.fields.clone());
            }
            // A public client turning confidential needs a secret; otherwise Hydra keeps its own.
            let secret = if was_public {
                secret_for(&secrets)
            } else {
                None
            };
            (body, Outcome::Updated, secret)
        }
    };
    report.outcome = outcome;
    let new_secret = secret.is_some() && options.new_secrets;
    if options.dry_run {
        report.new_secret = new_secret;
        return Ok(report);
    }
    let mut body = body;
    if let Some(secret) = &secret {
        body["client_secret"] = json!(secret.expose_secret());
    }
    let written = match outcome {
        Outcome::Created => hydra.create(&body).await,
        _ => hydra.replace(&app.client_id, &body).await,
    };
    drop(body);
    match written {
        Ok(Written::Done) => {
            if let (true, Some(secret), Some(file)) = (new_secret, &secret, secrets) {
                file.append(&app.client_id, secret)?;
                report.new_secret = true;
            }
            Ok(report)
        }
        Ok(Written::Refused { error, description }) => {
            report.outcome = Outcome::Refused;
            report.fields.clear();
            report.reason = Some(format!("Hydra refused it ({error}): {description}"));
            Ok(report)
        }
        Err(error @ HydraError::Unreachable { .. }) => Err(error.into()),
        Err(error) => Ok(failed(report, error)),
    }
}

fn failed(mut report: ClientReport, error: HydraError) -> ClientReport {
    report.outcome = Outcome::Failed;
    report.fields.clear();
    report.reason = Some(error.to_string());
    report
}

/// 32 random bytes, base64url: 43 characters (Hydra wants at least 6).
fn new_secret() -> SecretString {
    let mut bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    SecretString::from(secret)
}

/// `--secrets-out`: one JSON object per line, `{"client_id": …, "client_secret": …}`, mode
/// 0600, each line written as soon as Hydra has its client.
struct SecretsFile {
    path: String,
    file: File,
}

impl SecretsFile {
    fn create(path: &Path) -> Result<Self, ClientsError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let error = |source| ClientsError::SecretsOut {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(error)?;
        // A file that existed keeps its mode through `open`: narrow it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
        Ok(Self {
            path: path.display().to_string(),
            file,
        })
    }

    fn append(&mut self, client_id: &str, secret: &SecretString) -> Result<(), ClientsError> {
        let mut line = serde_json::to_string(&json!({
            "client_id": client_id,
            "client_secret": secret.expose_secret(),
        }))
        .expect("a JSON line");
        line.push('\n');
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        zeroize::Zeroize::zeroize(&mut line);
        written.map_err(|source| ClientsError::SecretsOut {
            path: self.path.clone(),
            source,
        })
    }

    fn finish(self) -> Result<String, ClientsError> {
        Ok(self.path)
    }
}
