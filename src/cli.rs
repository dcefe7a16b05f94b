//! The command line: `cognito-bridge [--config FILE] <serve|migrate|import|report|reconcile|plan|clients|check|finalize>`.
//!
//! Over 400 lines: mostly each command's `--help` text (the long_about strings), kept beside
//! the arguments it explains; the dispatch below them is short.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::check::{self, CheckFormat, CheckOptions};
use crate::clients::{self, ClientsFormat, ClientsOptions};
use crate::config::Settings;
use crate::finalize::{self, FinalizeFormat, FinalizeOptions, RecoveryChoice};
use crate::import::{self, ImportOptions};
use crate::plan::{self, PlanOptions};
use crate::reconcile::{self, ReconcileFormat, ReconcileOptions};
use crate::report::{self, ReportFormat};
use crate::startup::Application;
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
    /// Create a Kratos identity for every Cognito user, flagged for the password migration
    /// hook (no password), and record each user as `pending`. A rerun is the delta sync:
    /// users imported before are skipped without any Kratos call.
    #[command(
        long_about = "Create a Kratos identity for every Cognito user, flagged for the \
        password migration hook (no password), and record each user as `pending`.\n\n\
        Pages through Cognito ListUsers at `import.list_rate` requests/s (default 10; the quota \
        is 30/s and shared with your live apps) and sends batches of `import.batch_size` \
        identities to `PATCH /admin/identities` at `kratos.admin_url`. An identity that already \
        exists (same external_id = Cognito sub) is linked, not duplicated. Progress is \
        committed after every batch: an interrupted run continues with --resume, under the \
        same run id, retrying the users it failed (each counts once). A rerun without \
        --resume is the delta sync: users imported before cost no Kratos call.\n\n\
        One import at a time: while an import runs (or resumes), another one against the same \
        database is refused at once, naming the running run, its host and pid, and sends \
        nothing to Kratos. The running import holds a lease in the database, renewed every 5 s; \
        if it is killed, the lease expires after 60 s and the next import takes over. A \
        --dry-run is never refused and never blocks an import.\n\n\
        Exit status: 0 when every user is imported, 3 when the run completed but some users \
        failed (listed; a rerun retries them), 1 when the run was interrupted, 2 for a \
        configuration error, 4 when another import is running.\n\n\
        `cognito-bridge import undo --run ID` deletes what one run created (see its --help).",
        args_conflicts_with_subcommands = true
    )]
    Import {
        #[command(subcommand)]
        action: Option<ImportAction>,
        /// Map every user and check it against the identity schema (from `kratos.public_url`
        /// or `import.schema_file`); write nothing to Kratos.
        #[arg(long, conflicts_with = "resume")]
        dry_run: bool,
        /// Continue the newest interrupted run from its last committed page (same run id;
        /// its failed users are retried).
        #[arg(long)]
        resume: bool,
        /// Stop after N users; `--resume` continues from there.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Draw no progress bar (it is only drawn on a terminal anyway).
        #[arg(long)]
        no_progress: bool,
    },
    /// Print migration progress: users per state, hook outcomes and import runs.
    Report {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Read every Kratos identity with its password credential and correct our states: a
    /// user `pending` or `needs_recovery` whose identity has a password hash and no migration
    /// flag becomes `migrated` (via `kratos`). Reports what does not line up.
    #[command(
        long_about = "Read every Kratos identity with its password credential and correct our \
        states.\n\n\
        Pages through `GET /admin/identities?include_credential=password` at `kratos.admin_url` \
        (keyset pages of 250, the next one named by the `Link` header; Kratos v1.3.x and \
        v25.4.0+ alike, the line read from `GET /admin/version`). Each identity is matched to \
        our row by its id (`kratos_identity_id`), else by its external_id (v25.4.0+) or its \
        `metadata_admin.cognito.sub` (the Cognito sub the import wrote). A user we hold as \
        `pending` or `needs_recovery` whose identity has a password hash and no migration flag \
        becomes `migrated` via `kratos` (one database transaction per page); nothing is ever \
        written to Kratos, and no hash is ever printed or logged.\n\n\
        Reports, with counts and the first examples: users moved; identities our rows point at \
        that Kratos no longer has (gone); users Kratos lacks; identities we do not know (count \
        only); users already migrated, still pending, inactive or skipped (unchanged).\n\n\
        Exit status: 0 when the run completed (findings included), 1 when it failed (Kratos or \
        the database unreachable; the pages done so far stay corrected, a rerun is safe), 2 for \
        a usage or configuration error."
    )]
    Reconcile {
        /// Change nothing: print what a real run would change.
        #[arg(long)]
        dry_run: bool,
        /// Draw no progress bar (it is only drawn on a terminal anyway).
        #[arg(long)]
        no_progress: bool,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value_t = ReconcileFormat::Table)]
        format: ReconcileFormat,
    },
    /// Read the live pool and write a migration plan into --out: a Kratos identity schema,
    /// the `[import.traits]`, `[import.trait_types]` and `[capture]` settings, Kratos hook
    /// skeletons for the Lambda triggers, and PLAN.md with what does not map.
    #[command(
        long_about = "Read the live pool and write a migration plan into --out (default \
        ./plan, created when missing).\n\n\
        Reads DescribeUserPool, ListIdentityProviders, ListGroups, ListUserPoolClients and \
        DescribeUserPoolClient per app client (at most 4 requests/s) and writes: \
        identity.schema.json (a Kratos identity schema with one trait per attribute, standard \
        and custom: a Number is an integer with Cognito's bounds as minimum and maximum, a \
        Boolean a boolean; a `groups` trait, an array of names, when the pool has groups; the \
        login identifiers from UsernameAttributes and AliasAttributes; e-mail verification and \
        recovery), cognito-bridge.toml (`[import.traits]` for every attribute, \
        `[import.trait_types]` for the Number and Boolean ones, `import.groups_trait` when the \
        pool has groups, and `[capture] app_client_ids`), kratos-hooks.yml (a web_hook skeleton at the nearest \
        Kratos hook of each Lambda trigger, or a comment saying there is none) and PLAN.md (user \
        estimate, attributes and their traits, groups, app clients, triggers, MFA, and what does \
        not map, the IAM roles of groups included). The import converts each typed trait from \
        Cognito's string; a value that does not convert fails that user alone. Writes nothing \
        to Cognito.\n\n\
        Users with MFA: unless MfaConfiguration is OFF (then 0, and no per-user call), PLAN.md \
        counts the users who have a second factor (UserMFASettingList or the legacy \
        MFAOptions: SMS, TOTP, e-mail OTP), who will meet `hooks.mfa_policy` at their first \
        login (deny, the default: `needs_recovery`; allow: migrated with the factor dropped, \
        `mfa_dropped`). Every user is listed with ListUsers (60 a page at `import.list_rate`, \
        default 10 pages/s: about 28 minutes for a million users) while a uniform random \
        sample of --mfa-users N users is drawn; each sampled user is then read with \
        AdminGetUser at --mfa-rate requests/s (Cognito's UserRead quota, 120/s per account \
        and region, is shared with your apps' GetUser). A pool no larger than N is counted \
        exactly (\"exactly K of M users\"); a larger one is estimated from the sample (\"about \
        K of M users (sample of N, 95 % interval a–b)\", a Wilson interval). The default \
        sample of 1000 at 20/s takes about 50 s after the listing; `all` reads every user \
        (a million users at 20/s: about 14 hours); `none` reads nobody and lists nothing. A \
        user deleted meanwhile is counted as gone.\n\n\
        Refuses to overwrite any of these files unless --force.\n\n\
        Exit status: 0 when the plan was written, 1 when Cognito could not be read or a file \
        could not be written, 2 for a usage or configuration error (files already there \
        included)."
    )]
    Plan {
        /// The directory the plan's files go to.
        #[arg(long, value_name = "DIR", default_value = plan::DEFAULT_OUT)]
        out: PathBuf,
        /// Replace the files of an earlier plan.
        #[arg(long)]
        force: bool,
        /// Users to read with AdminGetUser for the MFA count: `all` (exact; one call per
        /// user), N (a uniform random sample of N users; exact in a pool no larger), or
        /// `none`.
        #[arg(long, value_name = "all|N|none", default_value_t = plan::MfaScope::default())]
        mfa_users: plan::MfaScope,
        /// AdminGetUser requests per second for the MFA count (Cognito's UserRead quota,
        /// 120/s per account and region, is shared with your apps).
        #[arg(
            long,
            value_name = "N",
            default_value_t = plan::DEFAULT_MFA_RATE,
            value_parser = clap::value_parser!(u32).range(1..)
        )]
        mfa_rate: u32,
        /// Draw no progress bar (it is only drawn on a terminal anyway).
        #[arg(long)]
        no_progress: bool,
    },
    /// Create or update one Hydra OAuth2 client per Cognito app client (same client_id,
    /// redirect and logout URIs, grant types, scopes, token lifetimes, secret).
    #[command(
        long_about = "Create or update one Hydra OAuth2 client per Cognito app client, with \
        the same client_id.\n\n\
        Reads the pool's app clients (ListUserPoolClients, then DescribeUserPoolClient per \
        client, at most 4 requests/s) and the Hydra client of each id at `hydra.admin_url` \
        (GET /admin/clients/{id}). A missing client is created (POST /admin/clients); one whose \
        managed fields differ is replaced (PUT /admin/clients/{id}, other fields kept); the \
        rest is left unchanged. Mapped: name, CallbackURLs → redirect_uris, LogoutURLs → \
        post_logout_redirect_uris, AllowedOAuthFlows → grant and response types, \
        AllowedOAuthScopes → scope, token validities (in TokenValidityUnits) → per-grant \
        lifespans, a secret → client_secret_basic (none without). URIs Hydra would refuse (a \
        logout URL whose scheme, host and port match no callback URL; a '#' in a callback URL) \
        are left out and reported; the rest of the client is written. App clients without OAuth \
        flows (SDK sign-in only) are skipped.\n\n\
        Cognito's secret is copied, so apps keep working. With --new-secrets, clients created \
        by this run get a new random secret instead, written only to --secrets-out (mode 0600, \
        one JSON object per line), never to the terminal or the log.\n\n\
        Exit status: 0 when every app client is created, updated, unchanged or skipped, 1 when \
        some were refused or failed (or Cognito or Hydra was unreachable), 2 for a usage or \
        configuration error."
    )]
    Clients {
        /// Change nothing: print what a real run would create and update.
        #[arg(long)]
        dry_run: bool,
        /// Give clients created by this run new random secrets instead of Cognito's.
        #[arg(long, requires = "secrets_out")]
        new_secrets: bool,
        /// Where new secrets go (mode 0600); only with --new-secrets.
        #[arg(long, value_name = "FILE", requires = "new_secrets")]
        secrets_out: Option<PathBuf>,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value_t = ClientsFormat::Table)]
        format: ClientsFormat,
    },
    /// The migration guide's validation checklist: user counts, a sample login through Kratos,
    /// Hydra's tokens, Kratos hooks for the Lambda triggers, Hydra clients for the app
    /// clients; each line pass or fail.
    #[command(
        long_about = "The migration guide's validation checklist, each line pass or fail with \
        its numbers. Reads only.\n\n\
        users: every user ListUsers gives has a row (by sub), the store has no more rows than \
        Cognito has users (the import writes one per user, federated and disabled ones \
        included), and Kratos holds at least as many identities as the store has rows; \
        EstimatedNumberOfUsers is shown, not compared.\n\
        login: the sample user (COGNITO_BRIDGE_CHECK_USER, COGNITO_BRIDGE_CHECK_PASSWORD from \
        the environment) logs in through Kratos's public API (kratos.public_url). Unset, the \
        line fails unless --skip-login.\n\
        hydra discovery: /.well-known/openid-configuration and /.well-known/jwks.json answer \
        at hydra.public_url.\n\
        hydra token: a client_credentials token of COGNITO_BRIDGE_CHECK_CLIENT_ID \
        (COGNITO_BRIDGE_CHECK_CLIENT_SECRET) verifies against that JWKS. Unset, the line fails \
        unless --skip-token.\n\
        trigger <name>: each Lambda trigger of the pool has its web_hook in --kratos-yml \
        (UserMigration: the password migrate_hook); a trigger with no Kratos equivalent is a \
        warning that does not fail.\n\
        app clients: each app client with OAuth flows has the Hydra client `clients` made.\n\n\
        Passwords and secrets are taken from the environment only, and never printed or \
        logged.\n\n\
        Exit status: 0 when every line passes (warnings and skipped lines included), 1 when \
        any fails, 2 for a usage or configuration error (an unreadable --kratos-yml included)."
    )]
    Check {
        /// The Kratos configuration to look for the triggers' web hooks in.
        #[arg(long, value_name = "FILE")]
        kratos_yml: Option<PathBuf>,
        /// Without COGNITO_BRIDGE_CHECK_USER/_PASSWORD, skip the login line instead of failing it.
        #[arg(long)]
        skip_login: bool,
        /// Without COGNITO_BRIDGE_CHECK_CLIENT_ID/_SECRET, skip the token line instead of failing it.
        #[arg(long)]
        skip_token: bool,
        /// Output format of the checklist.
        #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
        format: CheckFormat,
    },
    /// The cutover, before the hook is switched off: remove the password migration flag of
    /// every user still `pending` or `needs_recovery` (their way in becomes Kratos's account
    /// recovery), optionally with an admin recovery code or link for a mailer, and mark them
    /// `needs_recovery` (finalized).
    #[command(
        long_about = "The cutover, before the hook is switched off: remove the password \
        migration flag of every user still `pending` or `needs_recovery`, so that Kratos never \
        calls the hook for them again, and move them to `needs_recovery` (finalized).\n\n\
        For each user (in username order, one at a time): `GET /admin/identities/{id}?\
        include_credential=password`, then `PUT /admin/identities/{id}` echoing every field \
        (traits, metadata, state, and external_id on v25.4.0+) with a locked password hash in \
        place of the flag: a bcrypt-shaped value that is the hash of no password, so no \
        password logs in; the user's way in is Kratos's account recovery. An identity that \
        already has a real password is left alone (run `reconcile`). With --recovery code or \
        link, Kratos's admin API issues a recovery code (with the link of the flow to type it \
        into) or a link for each user, appended to --recovery-out as CSV (cognito_username, \
        email, identity_id, recovery_code, recovery_link, expires_at), a file created with mode \
        0600; codes and links are never printed or logged. Kratos sends no e-mail for them: \
        that is the mailer's job.\n\n\
        Refused while hook calls are still arriving (an attempt in the last --quiet-minutes, \
        default 10) unless --yes. Resumable: a rerun skips finalized users and recognises a \
        flag an interrupted run removed; a crash loses nothing (at worst a user gets a second \
        valid code). --dry-run reads Kratos and changes nothing.\n\n\
        Exit status: 0 when every user was handled, 3 when the run completed but Kratos refused \
        some users (listed; a rerun retries them), 4 when refused because hook calls are still \
        arriving, 1 when it failed (Kratos or the database unavailable; a rerun resumes), 2 \
        for a usage or configuration error."
    )]
    Finalize {
        /// Change nothing: read Kratos and print what a real run would do.
        #[arg(long)]
        dry_run: bool,
        /// Run even though hook calls arrived in the last --quiet-minutes.
        #[arg(long)]
        yes: bool,
        /// Minutes without any hook call before a run goes ahead without --yes.
        #[arg(long, value_name = "N", default_value_t = finalize::DEFAULT_QUIET_MINUTES)]
        quiet_minutes: u32,
        /// A recovery for each finalized user, issued by Kratos's admin API.
        #[arg(long, value_enum, default_value_t = RecoveryChoice::None)]
        recovery: RecoveryChoice,
        /// The CSV file the codes or links are appended to (mode 0600; required with
        /// --recovery code|link).
        #[arg(long, value_name = "FILE", required_if_eq_any = [("recovery", "code"), ("recovery", "link")])]
        recovery_out: Option<PathBuf>,
        /// How long codes and links stay valid, in Kratos's syntax (digits and one unit:
        /// 72h, 90m) [default: Kratos's configured lifespan].
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Draw no progress bar (it is only drawn on a terminal anyway).
        #[arg(long)]
        no_progress: bool,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value_t = FinalizeFormat::Table)]
        format: FinalizeFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportAction {
    /// Delete the Kratos identities one import run created that never migrated, and their
    /// rows (`report` lists the runs).
    #[command(
        long_about = "Delete the Kratos identities one import run created that never \
        migrated, and their rows, for an import that went wrong (wrong pool, wrong schema, \
        wrong Kratos).\n\n\
        Only identities the run created are touched: one it linked (same Cognito sub, there \
        before the run) is never deleted. Of those it created, a user whose row is `migrated` \
        is kept, and so is one whose identity holds a password in Kratos (checked with \
        `GET /admin/identities/{id}?include_credential=password` just before the delete; \
        `reconcile` records such users). Each identity is deleted with \
        `DELETE /admin/identities/{id}`, then its row; an interrupted undo is finished by \
        running it again. The import lease is held throughout: no import runs beside it, \
        and it waits for none (exit 4 while one runs). A user logging in through the hook \
        while their identity is being deleted is the one race left: undo before the hook \
        sees traffic for these users, or expect a few to be reported as migrated during the \
        undo.\n\n\
        Runs from before cognito-bridge recorded which identities a run created are refused \
        (nothing of theirs is marked).\n\n\
        Exit status: 0 when the undo completed (users kept included), 1 when it failed \
        (Kratos or the database unreachable; a rerun finishes it), 2 for a usage or \
        configuration error or a run that cannot be undone, 4 when an import is running."
    )]
    Undo {
        /// The import run (its id in `report`).
        #[arg(long, value_name = "ID")]
        run: i64,
        /// Change nothing: count what a real undo would delete and keep.
        #[arg(long)]
        dry_run: bool,
        /// Draw no progress bar (it is only drawn on a terminal anyway).
        #[arg(long)]
        no_progress: bool,
    },
}

/// Exit status of a finalize that completed with users Kratos refused.
pub const EXIT_FINALIZE_FAILURES: u8 = 3;
/// Exit status of a finalize refused because hook calls are still arriving.
pub const EXIT_FINALIZE_HOOK_ACTIVE: u8 = 4;

/// Exit status of an import that completed with users Kratos refused.
pub const EXIT_IMPORT_FAILURES: u8 = 3;
/// Exit status of an import refused because another one is running.
pub const EXIT_IMPORT_ALREADY_RUNNING: u8 = 4;

/// Run one command with loaded settings.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    if matches!(
        command,
        Command::Serve
            | Command::Import { .. }
            | Command::Plan { .. }
            | Command::Clients { .. }
            | Command::Check { .. }
    ) {
        crate::config::check_aws_environment(std::env::vars_os().map(|(name, _)| name))?;
    }
    match command {
        Command::Serve => {
            let listen = settings.server.listen;
            let application = Application::build(settings, None).await?;
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
        Command::Import {
            action:
                Some(ImportAction::Undo {
                    run,
                    dry_run,
                    no_progress,
                }),
            ..
        } => {
            let options = import::undo::UndoOptions {
                dry_run,
                progress: !no_progress && std::io::stderr().is_terminal(),
                ..import::undo::UndoOptions::new(run)
            };
            let summary = import::undo::run(&settings, options).await?;
            print!("{}", summary.render());
        }
        Command::Import {
            action: None,
            dry_run,
            resume,
            limit,
            no_progress,
        } => {
            if settings.import.list_rate > crate::config::LIST_USERS_QUOTA {
                eprintln!(
                    "warning: import.list_rate = {} is above Cognito's ListUsers quota (30/s per \
                     account and region, shared with your live apps); expect throttling",
                    settings.import.list_rate
                );
            }
            let options = ImportOptions {
                dry_run,
                resume,
                limit,
                progress: !no_progress && std::io::stderr().is_terminal(),
                stop_on_ctrl_c: true,
                ..ImportOptions::default()
            };
            let summary = import::run(&settings, options, None).await?;
            print!("{}", summary.render());
            if summary.counters.failed > 0 {
                return Ok(ExitCode::from(EXIT_IMPORT_FAILURES));
            }
        }
        Command::Report { format } => {
            let store = store::connect(&settings.database.url, settings.database.max_connections)
                .await
                .context("opening the database named by `database.url`")?;
            let progress = store.progress().await.context(
                "reading progress (a new database needs `cognito-bridge migrate` or `serve` first)",
            )?;
            let runs = store.import_runs(report::IMPORT_RUNS_SHOWN).await?;
            print!("{}", report::render(&progress, &runs, format));
        }
        Command::Reconcile {
            dry_run,
            no_progress,
            format,
        } => {
            let options = ReconcileOptions {
                dry_run,
                progress: !no_progress && std::io::stderr().is_terminal(),
                ..ReconcileOptions::default()
            };
            let summary = reconcile::run(&settings, options).await?;
            print!("{}", summary.render(format));
        }
        Command::Plan {
            out,
            force,
            mfa_users,
            mfa_rate,
            no_progress,
        } => {
            if mfa_rate > plan::USER_READ_QUOTA {
                eprintln!(
                    "warning: --mfa-rate {mfa_rate} is above Cognito's UserRead quota (120/s per \
                     account and region, shared with your live apps); expect throttling"
                );
            }
            let mfa = plan::MfaOptions {
                scope: mfa_users,
                rate: mfa_rate,
                progress: !no_progress && std::io::stderr().is_terminal(),
            };
            let summary =
                plan::run_with_mfa(&settings, PlanOptions { out, force }, mfa, None).await?;
            print!("{}", summary.render());
        }
        Command::Clients {
            dry_run,
            new_secrets,
            secrets_out,
            format,
        } => {
            let options = ClientsOptions {
                dry_run,
                new_secrets,
                secrets_out,
            };
            let summary = clients::run(&settings, options, None).await?;
            print!("{}", summary.render(format));
            if !summary.all_done() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Check {
            kratos_yml,
            skip_login,
            skip_token,
            format,
        } => {
            let options = CheckOptions {
                kratos_yml,
                skip_login,
                skip_token,
                ..CheckOptions::default()
            }
            .from_env();
            let summary = check::run(&settings, options, None).await?;
            print!("{}", summary.render(format));
            if !summary.passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Finalize {
            dry_run,
            yes,
            quiet_minutes,
            recovery,
            recovery_out,
            expires_in,
            no_progress,
            format,
        } => {
            let options = FinalizeOptions {
                dry_run,
                yes,
                quiet_minutes,
                recovery,
                recovery_out,
                expires_in,
                progress: !no_progress && std::io::stderr().is_terminal(),
            };
            let summary = finalize::run(&settings, options).await?;
            print!("{}", summary.render(format));
            if summary.counts.failed > 0 {
                return Ok(ExitCode::from(EXIT_FINALIZE_FAILURES));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
