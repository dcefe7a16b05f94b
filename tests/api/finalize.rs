//! `finalize` (the cutover) against the real Kratos v1.3.1, with the bridge serving the hook:
//! stragglers lose the migration flag (and the hook is never called for them again), migrated
//! users are untouched, admin recovery codes go to a 0600 file and work in Kratos's recovery
//! flow, a dry run changes nothing, recent hook calls make it refuse (unless --yes), and a run
//! that dies midway is finished by a rerun without doing anything twice. The binary: `--help`,
//! usage errors, exit 4, and no code in any output or log line at TRACE.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use cognito_bridge::config::Settings;
use cognito_bridge::domain::UserState;
use cognito_bridge::finalize::{self, FinalizeError, FinalizeOptions, RecoveryChoice};
use cognito_bridge::import::ImportOptions;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::import::{import_settings_with_public_url, run_import};
use crate::helpers::{
    API_KEY, AppOptions, Backend, TestApp, bridge, bridge_with_test_credentials, spawn_app,
};
use crate::kratos_real_import::CrashingProxy;
use crate::moto::{self, Pool};
use crate::ory::{ConfirmHooks, Kratos, Login, MigrateHook};

const PASSWORD: &str = "Correct-Horse-Battery-9";
const TEMPORARY: &str = "Temp-Pass-4321";
/// Kratos's "The provided credentials are invalid" (text/message_validation.go).
const INVALID_CREDENTIALS: u64 = 4000006;
pub(crate) const TRAITS: &str = "[import]\nlist_rate = 30\n[import.traits]\nemail = \"email\"\n";
/// Prefix of the locked hash `finalize` writes in place of the flag.
const LOCKED: &str = "$2b$12$CognitoBridge.Finalize";

/// A moto pool of `usernames` (`<name>@example.com`, one password; carol's is temporary), the
/// bridge serving the hook, a real Kratos with recovery on calling it, the pool imported.
struct World {
    app: TestApp,
    kratos: Kratos,
    settings: Settings,
}

async fn world(backend: Backend, usernames: &[&str]) -> World {
    let pool = Pool::create(false).await;
    for name in usernames {
        let email = format!("{name}@example.com");
        if *name == "carol" {
            pool.add_user_with_temporary_password(name, &email, TEMPORARY)
                .await;
        } else {
            pool.add_user(name, &email, PASSWORD).await;
        }
    }
    let moto = moto::endpoint().await;
    let app = spawn_app(AppOptions::new(backend, &moto, &pool.id, &pool.client_id)).await;
    let kratos = Kratos::start_with_recovery(
        &MigrateHook {
            url: app.hook_url(),
            api_key: API_KEY.to_owned(),
        },
        &ConfirmHooks::to_bridge(&app.address, API_KEY),
    )
    .await;
    let settings = import_settings_with_public_url(
        &app.database.url,
        &moto,
        &pool.id,
        kratos.admin_url.as_str(),
        kratos.public_url.as_str(),
        TRAITS,
    );
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .expect("the import into the real Kratos");
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    World {
        app,
        kratos,
        settings,
    }
}

/// Hook calls answered so far (the bridge's `/metrics`).
async fn hook_calls(app: &TestApp) -> u64 {
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text.lines()
        .filter(|line| {
            line.strip_prefix("cognito_bridge_hook_answers_total")
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn identity_id(app: &TestApp, username: &str) -> String {
    app.store
        .user(username)
        .await
        .unwrap()
        .unwrap()
        .kratos_identity_id
        .unwrap()
}

async fn row(app: &TestApp, username: &str) -> (UserState, bool) {
    let row = app.store.user(username).await.unwrap().unwrap();
    (row.state, row.finalized_at.is_some())
}

fn password_config(identity: &Value) -> &Value {
    &identity["credentials"]["password"]["config"]
}

pub(crate) fn flagged(identity: &Value) -> bool {
    password_config(identity)["use_password_migration_hook"] == true
}

/// Everything of an identity `finalize` must keep: all but the password config and the
/// update time.
fn kept_fields(identity: &Value) -> Value {
    let mut kept = identity.clone();
    let object = kept.as_object_mut().unwrap();
    object.remove("updated_at");
    object.remove("credentials");
    kept
}

/// `name`'s identity `now` is `before` with a locked hash in place of the flag, every other
/// field kept.
pub(crate) fn assert_only_the_flag_went(name: &str, before: &Value, now: &Value) {
    assert!(!flagged(now), "{name}: {now:#}");
    assert!(
        password_config(now)["hashed_password"]
            .as_str()
            .is_some_and(|hash| hash.starts_with(LOCKED)),
        "{name}: a locked hash in place of the flag: {now:#}"
    );
    assert_eq!(kept_fields(now), kept_fields(before), "{name}");
}

fn assert_invalid_credentials(login: &Login) {
    assert_eq!(login.status, StatusCode::BAD_REQUEST, "{:#}", login.body);
    assert!(login.session_token().is_none());
    assert!(
        login.message_ids().contains(&INVALID_CREDENTIALS),
        "{:#}",
        login.body
    );
}

/// The recovery file's lines, by username: (email, identity id, code, link, expires).
fn recovery_lines(path: &Path) -> Vec<[String; 6]> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "cognito_username",
            "email",
            "identity_id",
            "recovery_code",
            "recovery_link",
            "expires_at"
        ]
    );
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            std::array::from_fn(|i| record[i].to_owned())
        })
        .collect()
}

fn options(yes: bool, dry_run: bool) -> FinalizeOptions {
    FinalizeOptions {
        yes,
        dry_run,
        ..FinalizeOptions::default()
    }
}

on_both_backends!(
    finalize_unflags_stragglers_with_working_recovery_codes_and_leaves_migrated_users_alone,
    finalize_resumes_after_kratos_fails_midway_without_doing_anything_twice,
    finalize_with_links_leaves_passwords_and_rows_without_identity_and_reconcile_agrees,
);

async fn finalize_unflags_stragglers_with_working_recovery_codes_and_leaves_migrated_users_alone(
    backend: Backend,
) {
    let World {
        app,
        kratos,
        settings,
    } = world(backend, &["alice", "bob", "carol", "dave"]).await;
    // alice migrates through the hook; carol's temporary password sends her to recovery.
    let login = kratos.login("alice@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{:#}", login.body);
    assert_invalid_credentials(&kratos.login("carol@example.com", TEMPORARY).await);
    assert_eq!(hook_calls(&app).await, 2);
    assert_eq!(row(&app, "alice").await.0, UserState::Migrated);
    assert_eq!(row(&app, "carol").await.0, UserState::NeedsRecovery);
    let alice = identity_id(&app, "alice").await;
    let alice_before = kratos.identity(&alice).await;
    let mut before = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let identity = kratos.identity(&identity_id(&app, name).await).await;
        assert!(flagged(&identity), "{identity:#}");
        before.push(identity);
    }

    // Hook calls just arrived: a real run is refused and changes nothing.
    let refused = finalize::run(&settings, options(false, false)).await;
    assert!(
        matches!(refused, Err(FinalizeError::HookActive { attempts, minutes: 10 }) if attempts >= 2),
        "{refused:?}"
    );
    // A dry run is not refused, reads Kratos, and changes nothing either.
    let dry = finalize::run(&settings, options(false, true))
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert!(dry.recent_attempts >= 2, "{dry:?}");
    assert_eq!((dry.counts.rows, dry.counts.finalized), (3, 3), "{dry:?}");
    assert_eq!(dry.counts.flag_removed, 3, "{dry:?}");
    assert_eq!(dry.counts.recovery_issued, 0);
    for (name, identity) in ["bob", "carol", "dave"].iter().zip(&before) {
        let now = kratos.identity(identity["id"].as_str().unwrap()).await;
        assert_eq!(&now, identity, "{name}: a dry run writes nothing to Kratos");
        assert!(!row(&app, name).await.1, "{name}");
    }
    assert_eq!(row(&app, "bob").await, (UserState::Pending, false));

    // The binary, logging at TRACE: refused without --yes (exit 4), then --yes with codes.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("codes.csv");
    let environment = [
        ("COGNITO_BRIDGE__DATABASE__URL", app.database.url.as_str()),
        (
            "COGNITO_BRIDGE__KRATOS__ADMIN_URL",
            kratos.admin_url.as_str(),
        ),
        ("RUST_LOG", "trace"),
    ];
    let out_arg = out.to_str().unwrap();
    let run_binary = |args: &'static [&'static str]| {
        let mut all: Vec<&str> = vec!["finalize", "--recovery", "code", "--recovery-out", out_arg];
        all.extend_from_slice(args);
        let command = bridge_with_test_credentials(&dir, &all, &environment);
        async move {
            let mut command = command;
            tokio::time::timeout(Duration::from_secs(120), command.output())
                .await
                .expect("finalize ends within 120 s")
                .unwrap()
        }
    };
    let output = run_binary(&[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(!out.exists(), "a refused run writes no file");

    let output = run_binary(&["--yes", "--format", "json"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("finalize"),
        "TRACE logging was on: {stderr}"
    );
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["finalized"], 3, "{printed}");
    assert_eq!(printed["flag_removed"], 3, "{printed}");
    assert_eq!(printed["recovery_issued"], 3, "{printed}");
    assert_eq!(printed["recovery"], "code", "{printed}");

    // The file: 0600, one line per straggler; no code or link in any output.
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let lines = recovery_lines(&out);
    let mut names: Vec<&str> = lines.iter().map(|line| line[0].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["bob", "carol", "dave"]);
    for line in &lines {
        let [name, email, id, code, link, expires] = line;
        assert_eq!(email, &format!("{name}@example.com"));
        assert_eq!(id, &identity_id(&app, name).await);
        assert!(!code.is_empty() && link.contains("flow="), "{name}");
        assert!(!expires.is_empty(), "{name}");
        for secret in [code, link] {
            assert!(
                !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
                "{name}'s recovery reached the output or the log"
            );
        }
    }
    assert!(!stderr.contains(LOCKED) && !stdout.contains(LOCKED));

    // Kratos: the stragglers lost the flag and nothing else; alice is byte for byte the same.
    for (name, identity) in ["bob", "carol", "dave"].iter().zip(&before) {
        let now = kratos.identity(identity["id"].as_str().unwrap()).await;
        assert_only_the_flag_went(name, identity, &now);
        assert_eq!(
            row(&app, name).await,
            (UserState::NeedsRecovery, true),
            "{name}"
        );
    }
    assert_eq!(kratos.identity(&alice).await, alice_before);
    assert_eq!(row(&app, "alice").await, (UserState::Migrated, false));

    // bob's Cognito password no longer reaches the hook: Kratos answers alone.
    assert_invalid_credentials(&kratos.login("bob@example.com", PASSWORD).await);
    assert_invalid_credentials(&kratos.login("bob@example.com", LOCKED).await);
    assert_eq!(hook_calls(&app).await, 2, "no hook call after finalize");
    let again = kratos.login("alice@example.com", PASSWORD).await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);

    // bob's code works in the recovery flow its link names (an admin flow of type browser
    // that skips the CSRF check); a wrong one is refused there.
    let bob = lines.iter().find(|line| line[0] == "bob").unwrap();
    let (status, wrong) = kratos.submit_recovery_code(&bob[4], "00000000").await;
    assert_eq!(status, StatusCode::OK, "{wrong:#}");
    assert_eq!(wrong["ui"]["messages"][0]["id"], 4060006, "{wrong:#}");
    let (status, accepted) = kratos.submit_recovery_code(&bob[4], &bob[3]).await;
    // Accepted: on to the settings flow, where bob sets a new password.
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{accepted:#}");
    assert_eq!(accepted["error"]["id"], "browser_location_change_required");
    assert!(
        accepted["redirect_browser_to"]
            .as_str()
            .is_some_and(|to| to.contains("settings?flow=")),
        "{accepted:#}"
    );

    // A rerun has nothing left: every straggler is finalized.
    let rerun = finalize::run(&settings, options(true, false))
        .await
        .unwrap();
    assert_eq!(rerun.counts.rows, 0, "{rerun:?}");
}

async fn finalize_resumes_after_kratos_fails_midway_without_doing_anything_twice(backend: Backend) {
    let users = ["ann", "ben", "cat", "dan"];
    let World {
        app,
        kratos,
        mut settings,
    } = world(backend, &users).await;
    let proxy = CrashingProxy::start(kratos.admin_url.as_str()).await;
    settings.kratos.admin_url = proxy.url.parse().unwrap();
    // The second flag removal reaches Kratos, then Kratos "fails": the run stops there.
    proxy.crash_from(actix_web::http::Method::PUT, 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("codes.csv");
    let with_codes = || FinalizeOptions {
        recovery: RecoveryChoice::Code,
        recovery_out: Some(out.clone()),
        expires_in: Some("72h".to_owned()),
        ..FinalizeOptions::default()
    };
    let crashed = finalize::run(&settings, with_codes()).await;
    assert!(
        matches!(crashed, Err(FinalizeError::Kratos(_))),
        "{crashed:?}"
    );
    assert_eq!(row(&app, "ann").await, (UserState::NeedsRecovery, true));
    assert_eq!(
        row(&app, "ben").await,
        (UserState::Pending, false),
        "not marked"
    );
    let ben = kratos.identity(&identity_id(&app, "ben").await).await;
    assert!(!flagged(&ben), "the crashed write reached Kratos: {ben:#}");
    assert_eq!(recovery_lines(&out).len(), 1, "ann's code only");
    assert_eq!(proxy.forwarded("PUT"), 2);

    proxy.heal();
    let rerun = finalize::run(&settings, with_codes()).await.unwrap();
    assert_eq!(rerun.counts.rows, 3, "ann is not walked again: {rerun:?}");
    assert_eq!(rerun.counts.finalized, 3, "{rerun:?}");
    assert_eq!(rerun.counts.already_unflagged, 1, "ben: {rerun:?}");
    assert_eq!(rerun.counts.flag_removed, 2, "cat and dan: {rerun:?}");
    assert_eq!(proxy.forwarded("PUT"), 4, "no identity written twice");
    assert_eq!(proxy.forwarded("POST"), 4, "one recovery code per user");
    let lines = recovery_lines(&out);
    let mut names: Vec<&str> = lines.iter().map(|line| line[0].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, users, "each user once in the file");
    for name in users {
        assert_eq!(
            row(&app, name).await,
            (UserState::NeedsRecovery, true),
            "{name}"
        );
        let identity = kratos.identity(&identity_id(&app, name).await).await;
        assert!(!flagged(&identity), "{name}");
    }
    assert_eq!(hook_calls(&app).await, 0);
}

/// `--recovery link`; a user whose identity got a real password outside the bridge and a row
/// without identity are reported and left alone; `reconcile` afterwards moves the former and
/// does not take the locked hash for a password; the rollup counts agree.
async fn finalize_with_links_leaves_passwords_and_rows_without_identity_and_reconcile_agrees(
    backend: Backend,
) {
    let World {
        app,
        kratos,
        settings,
    } = world(backend, &["eve", "fay", "gus"]).await;
    let fay = identity_id(&app, "fay").await;
    kratos.set_password(&fay, "Set-By-An-Operator-1").await;
    crate::reconcile::execute(
        &app.database,
        &[
            "INSERT INTO users (cognito_username, username_normalized, state, created_at, \
           updated_at) VALUES ('hook-only', 'hook-only', 'pending', \
           '2026-11-30T10:00:00Z', '2026-11-30T10:00:00Z')",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("links.csv");
    let summary = finalize::run(
        &settings,
        FinalizeOptions {
            recovery: RecoveryChoice::Link,
            recovery_out: Some(out.clone()),
            expires_in: Some("48h".to_owned()),
            ..FinalizeOptions::default()
        },
    )
    .await
    .unwrap();
    let c = &summary.counts;
    assert_eq!(
        (c.rows, c.finalized, c.flag_removed),
        (4, 2, 2),
        "{summary:?}"
    );
    assert_eq!(
        (c.has_password, c.no_identity, c.recovery_issued),
        (1, 1, 2),
        "{summary:?}"
    );
    assert_eq!(summary.examples.has_password[0].cognito_username, "fay");
    assert_eq!(
        summary.examples.no_identity[0].cognito_username,
        "hook-only"
    );
    assert_eq!(row(&app, "fay").await, (UserState::Pending, false));
    assert_eq!(row(&app, "hook-only").await, (UserState::Pending, false));
    let fay_identity = kratos.identity(&fay).await;
    assert!(
        !password_config(&fay_identity)["hashed_password"]
            .as_str()
            .unwrap()
            .starts_with(LOCKED)
    );

    // Links: no code, a link with its own token that opens a session (a 303 onwards).
    let lines = recovery_lines(&out);
    assert_eq!(lines.len(), 2);
    let eve = lines.iter().find(|line| line[0] == "eve").unwrap();
    assert!(eve[3].is_empty(), "no code with a link");
    let expires = chrono::DateTime::parse_from_rfc3339(&eve[5]).unwrap();
    assert!(
        expires > chrono::Utc::now() + chrono::Duration::hours(47),
        "{expires}"
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects.get(&eve[4]).send().await.unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let session_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|cookie| cookie.to_str().unwrap_or_default().contains("session"));
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert!(location.contains("settings"), "{location}");
    assert!(
        session_cookie,
        "the link signs eve in for the settings flow"
    );

    // reconcile: fay (a real password) becomes migrated; eve and gus stay finalized stragglers.
    let reconciled = cognito_bridge::reconcile::run(
        &settings,
        cognito_bridge::reconcile::ReconcileOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(reconciled.counts.corrected, 1, "{reconciled:?}");
    assert_eq!(row(&app, "fay").await.0, UserState::Migrated);
    for name in ["eve", "gus"] {
        assert_eq!(
            row(&app, name).await,
            (UserState::NeedsRecovery, true),
            "{name}"
        );
    }
    let progress = app.store.progress().await.unwrap();
    assert_eq!(
        progress.states.get("needs_recovery").copied(),
        Some(2),
        "{progress:?}"
    );
    assert_eq!(
        progress.states.get("pending").copied(),
        Some(1),
        "{progress:?}"
    );
    assert_eq!(
        progress.states.get("migrated").copied(),
        Some(1),
        "{progress:?}"
    );
}

on_both_backends!(the_finalize_store_walks_and_marks_only_unfinalized_stragglers);

/// The store methods themselves: the keyset walk, the attempt count, the guarded mark (and
/// the rollup's counts after it).
async fn the_finalize_store_walks_and_marks_only_unfinalized_stragglers(backend: Backend) {
    let database = crate::helpers::TestDatabase::new(backend).await;
    let store = crate::helpers::import::open_store(&database).await;
    store.migrate().await.unwrap();
    let at = "'2026-11-30T10:00:00Z'";
    let mut statements: Vec<String> = [
        ("a", "pending", "'id-a'", "NULL"),
        ("b", "needs_recovery", "'id-b'", "NULL"),
        ("c", "migrated", "'id-c'", "NULL"),
        ("d", "inactive", "'id-d'", "NULL"),
        ("e", "skipped", "NULL", "NULL"),
        ("f", "needs_recovery", "'id-f'", at),
        ("g", "pending", "NULL", "NULL"),
    ]
    .iter()
    .map(|(name, state, id, finalized)| {
        format!(
            "INSERT INTO users (cognito_username, username_normalized, email_normalized, \
             kratos_identity_id, state, finalized_at, created_at, updated_at) \
             VALUES ('{name}', '{name}', '{name}@example.com', {id}, '{state}', {finalized}, \
             {at}, {at})"
        )
    })
    .collect();
    statements.push(format!(
        "INSERT INTO attempts (at, cognito_username, outcome, cognito_calls) \
         VALUES ({at}, 'a', 'no_match', 1)"
    ));
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    crate::reconcile::execute(&database, &statements).await;

    let first = store.rows_to_finalize(None, 2).await.unwrap();
    let names = |rows: &[cognito_bridge::store::FinalizeRow]| {
        rows.iter()
            .map(|row| row.cognito_username.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first[0].email.as_deref(), Some("a@example.com"));
    assert_eq!(first[0].kratos_identity_id.as_deref(), Some("id-a"));
    assert_eq!(first[1].state, UserState::NeedsRecovery);
    let second = store.rows_to_finalize(Some("b"), 2).await.unwrap();
    assert_eq!(
        names(&second),
        ["g"],
        "f is finalized; c, d, e are not stragglers"
    );
    assert!(
        store
            .rows_to_finalize(Some("g"), 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_to_finalize().await.unwrap(), 3);

    let ten = chrono::DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        store
            .attempts_since(ten - chrono::Duration::minutes(10))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .attempts_since(ten + chrono::Duration::minutes(1))
            .await
            .unwrap(),
        0
    );

    let now = chrono::Utc::now();
    assert!(store.mark_finalized("a", now).await.unwrap());
    assert!(!store.mark_finalized("a", now).await.unwrap(), "once");
    assert!(
        !store.mark_finalized("c", now).await.unwrap(),
        "a migrated row stays"
    );
    assert!(
        !store.mark_finalized("f", now).await.unwrap(),
        "finalized before"
    );
    assert!(!store.mark_finalized("nobody", now).await.unwrap());
    let a = store.user("a").await.unwrap().unwrap();
    assert_eq!(a.state, UserState::NeedsRecovery);
    assert!((a.finalized_at.unwrap() - now).num_seconds().abs() < 2);
    assert_eq!(store.user("c").await.unwrap().unwrap().finalized_at, None);
    assert_eq!(store.count_to_finalize().await.unwrap(), 2);
    let progress = store.progress().await.unwrap();
    assert_eq!(progress.states["pending"], 1, "{progress:?}");
    assert_eq!(progress.states["needs_recovery"], 3, "{progress:?}");
}

#[test]
fn finalize_help_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let output = bridge(&dir, &["finalize", "--help"], &[]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    for words in [
        "--dry-run",
        "--yes",
        "--quiet-minutes",
        "--recovery <RECOVERY>",
        "--recovery-out",
        "--expires-in",
        "--format",
        "0600",
        "Exit status",
    ] {
        assert!(help.contains(words), "{words}: {help}");
    }
    for args in [
        &["finalize", "--recovery", "code"][..],
        &["finalize", "--recovery", "link"],
        &["finalize", "--recovery", "email"],
        &["finalize", "--quiet-minutes", "soon"],
        &["finalize", "--format", "xml"],
        &["finalize", "--no-such-flag"],
    ] {
        let output = bridge(&dir, args, &[]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    // A malformed duration is refused before anything is read or written.
    let output = bridge(
        &dir,
        &[
            "finalize",
            "--recovery",
            "code",
            "--recovery-out",
            "x.csv",
            "--expires-in",
            "3 days",
        ],
        &[],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--expires-in"), "{stderr}");
    assert!(!dir.path().join("x.csv").exists());
}
