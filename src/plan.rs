//! `cognito-bridge plan`: reads the live pool (`DescribeUserPool`, `ListIdentityProviders`,
//! `ListGroups`, the app clients) and writes a migration plan into a directory: the Kratos identity schema
//! (`plan/schema.rs`), the `cognito-bridge.toml` fragment, the Kratos hook skeletons and
//! `PLAN.md` (`plan/render.rs`) with the users who have MFA counted (`plan/mfa.rs`,
//! `plan/sample.rs`, `plan/mfa_text.rs`). Reads only; never overwrites a file unless told to.

mod mfa;
mod mfa_text;
mod render;
mod sample;
mod schema;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_credential_types::provider::SharedCredentialsProvider;

use crate::clients::CLIENT_READ_RATE;
use crate::cognito::directory::{Backoff, Directory, DirectoryError};
use crate::cognito::{AppClient, PoolDescription};
use crate::config::{CognitoPool, ConfigError, Settings};

pub use mfa::{
    DEFAULT_RATE as DEFAULT_MFA_RATE, DEFAULT_SAMPLE as DEFAULT_MFA_SAMPLE, Estimate, MfaCount,
    MfaOptions, MfaScope, MfaTally, USER_READ_QUOTA,
};
pub use mfa_text::MfaPlan;
pub use render::{Nearest, config_fragment, hooks_yaml, nearest, plan_markdown, warnings};
pub use sample::{Reservoir, Z_95, wilson};
pub use schema::{
    AttributePlan, GROUPS_TRAIT, SignIn, Target, attribute_plans, identity_schema, trait_type,
};

/// The files a plan consists of, in the order they are written.
pub const PLAN_FILES: [&str; 4] = [
    "identity.schema.json",
    "cognito-bridge.toml",
    "kratos-hooks.yml",
    "PLAN.md",
];

/// Requests per second of the plan's reads, which share one token bucket: the app clients
/// (`CLIENT_READ_RATE`: UserPoolClientRead, 5 per pool) and `ListGroups` (UserPoolResourceRead:
/// 20 per account, at most 5 per pool and operation, not adjustable; both shared with the live
/// apps). The lower of the two keeps every read under its quota.
const PLAN_READ_RATE: f64 = CLIENT_READ_RATE.min(GROUP_READ_RATE);

/// `ListGroups` requests per second: below UserPoolResourceRead's 5 per pool.
const GROUP_READ_RATE: f64 = 4.0;

/// The default `--out`.
pub const DEFAULT_OUT: &str = "plan";

#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The directory the files go to (created when missing).
    pub out: PathBuf,
    /// Replace files a previous plan left there.
    pub force: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from(DEFAULT_OUT),
            force: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Cognito(#[from] DirectoryError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// What a plan run wrote.
#[derive(Debug, Clone)]
pub struct PlanSummary {
    pub user_pool_id: String,
    pub files: Vec<PathBuf>,
    pub estimated_users: i64,
    pub attributes: usize,
    pub app_clients: usize,
    pub groups: usize,
    pub triggers: usize,
    /// The users with MFA (`--mfa-users`).
    pub mfa: MfaCount,
    pub warnings: Vec<String>,
}

impl PlanSummary {
    pub fn render(&self) -> String {
        let mut out = format!(
            "plan for user pool {}: about {} users, {} attributes, {} app clients, {} groups, {} \
             Lambda triggers, {} warnings\n",
            self.user_pool_id,
            self.estimated_users,
            self.attributes,
            self.app_clients,
            self.groups,
            self.triggers,
            self.warnings.len()
        );
        for file in &self.files {
            out.push_str(&format!("  wrote {}\n", file.display()));
        }
        out.push_str(&format!("  {}\n", self.mfa.summary()));
        out
    }
}

/// The four files' contents for `pool` and its app clients; `schema_path` is where the
/// schema will be, for the configuration fragment's comment.
pub fn generate(
    pool: &PoolDescription,
    apps: &[AppClient],
    schema_path: &str,
    mfa: &MfaPlan,
) -> [String; 4] {
    let plans = attribute_plans(pool);
    let sign_in = SignIn::of(pool);
    let schema = identity_schema(pool, &plans, &sign_in);
    [
        format!(
            "{}\n",
            serde_json::to_string_pretty(&schema).expect("a JSON value serialises")
        ),
        config_fragment(pool, &plans, apps, schema_path),
        hooks_yaml(pool),
        plan_markdown(pool, &plans, &sign_in, apps, mfa),
    ]
}

fn existing(out: &Path) -> Vec<String> {
    PLAN_FILES
        .iter()
        .map(|name| out.join(name))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect()
}

/// Run `plan` with `settings` and the default MFA count (a sample of
/// [`DEFAULT_MFA_SAMPLE`] users, no progress bar); `credentials` overrides the AWS chain
/// (tests, emulators).
pub async fn run(
    settings: &Settings,
    options: PlanOptions,
    credentials: Option<SharedCredentialsProvider>,
) -> Result<PlanSummary, PlanError> {
    run_with_mfa(settings, options, MfaOptions::default(), credentials).await
}

/// [`run`], counting the users with MFA as `mfa` says.
pub async fn run_with_mfa(
    settings: &Settings,
    options: PlanOptions,
    mfa: MfaOptions,
    credentials: Option<SharedCredentialsProvider>,
) -> Result<PlanSummary, PlanError> {
    if mfa.rate == 0 {
        return Err(PlanError::Usage(
            "--mfa-rate must be at least 1 request/s".to_owned(),
        ));
    }
    let pool = CognitoPool::from_settings(&settings.cognito)?;
    if !options.force {
        let found = existing(&options.out);
        if !found.is_empty() {
            return Err(PlanError::Usage(format!(
                "refusing to overwrite {} (use --force, or another --out)",
                found.join(", ")
            )));
        }
    }
    let directory = Directory::new(
        &pool,
        PLAN_READ_RATE,
        Backoff::default(),
        credentials.clone(),
    )
    .await;
    let mut description = directory.describe_pool().await?;
    description.groups = directory.groups().await?;
    let apps = directory.app_clients().await?;
    // ListUsers at the import's rate (UserList quota), AdminGetUser at its own (UserRead).
    let listing = Directory::new(
        &pool,
        settings.import.list_rate,
        Backoff::default(),
        credentials.clone(),
    )
    .await;
    let reading = Directory::new(&pool, f64::from(mfa.rate), Backoff::default(), credentials).await;
    let count = mfa::count(
        &listing,
        &reading,
        &description.mfa_configuration,
        description.estimated_users,
        &mfa,
    )
    .await?;
    let mfa_plan = MfaPlan {
        count,
        policy: settings.hooks.mfa_policy,
    };
    tracing::info!(
        user_pool_id = %pool.user_pool_id,
        attributes = description.attributes.len(),
        app_clients = apps.len(),
        groups = description.groups.len(),
        triggers = description.triggers.len(),
        "pool read for the plan"
    );
    std::fs::create_dir_all(&options.out).map_err(|source| PlanError::Write {
        path: options.out.display().to_string(),
        source,
    })?;
    let schema_path = options.out.join(PLAN_FILES[0]);
    let contents = generate(
        &description,
        &apps,
        &schema_path.display().to_string(),
        &mfa_plan,
    );
    let mut files = Vec::new();
    for (name, text) in PLAN_FILES.iter().zip(contents) {
        let path = options.out.join(name);
        write(&path, &text, options.force).map_err(|source| PlanError::Write {
            path: path.display().to_string(),
            source,
        })?;
        files.push(path);
    }
    let plans = attribute_plans(&description);
    Ok(PlanSummary {
        user_pool_id: pool.user_pool_id,
        files,
        estimated_users: description.estimated_users,
        attributes: description.attributes.len(),
        app_clients: apps.len(),
        groups: description.groups.len(),
        triggers: description.triggers.len(),
        mfa: count,
        warnings: warnings(&description, &plans, &SignIn::of(&description), &mfa_plan),
    })
}

/// Writes `text` to `path`; without `force`, only as a new file (a file that appeared since
/// the check is not overwritten either).
fn write(path: &Path, text: &str, force: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())
}
