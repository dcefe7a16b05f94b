//! `check` on a finished migration in the test rig (moto, the real Kratos v1.3.1 calling a
//! spawned bridge's hook, the real Hydra v2.3.0; SQLite and Postgres): every line passes; then each line made to fail on purpose (wrong
//! password, a trigger without its hook, an identity deleted from Kratos, a Hydra client
//! deleted), through the binary with `--format json` and exit status 1, and no secret in any
//! output at `RUST_LOG=trace`; the command line's help and usage errors.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::LambdaConfigType;
use cognito_bridge::check::{self, CheckOptions, CheckStatus, CheckSummary, Credentials};
use cognito_bridge::clients::{self, ClientsOptions};
use cognito_bridge::config::Settings;
use cognito_bridge::domain::UserState;
use cognito_bridge::import::ImportOptions;
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::bridge_output;
use crate::helpers::bridge_with_test_credentials;
use crate::helpers::import::{import_settings_with_public_url, run_import};
use crate::helpers::oauth::{MACHINE, moto_pool_env, with_hydra};
use crate::helpers::{API_KEY, AppOptions, Backend, spawn_app};
use crate::moto::{self, Pool, SeedUser};
use crate::ory::{Hydra, Kratos, MigrateHook};

const TRAITS: &str = "[import]\nlist_rate = 30\n[import.traits]\nemail = \"email\"\n";

const PASSWORD: &str = "Check-Sample-Pw-81723";

/// A Kratos configuration with a web hook after password logins (PostAuthentication's place).
const KRATOS_YML: &str = "selfservice:\n  flows:\n    login:\n      after:\n        password:\n\
     \x20         hooks:\n            - hook: web_hook\n              config: {url: \"http://app/after\", method: POST}\n";

fn credentials(id: &str, secret: &str) -> Option<Credentials> {
    Some(Credentials {
        id: id.to_owned(),
        secret: SecretString::from(secret.to_owned()),
    })
}

fn statuses(summary: &CheckSummary) -> Vec<(String, CheckStatus)> {
    summary
        .lines
        .iter()
        .map(|line| (line.check.clone(), line.status))
        .collect()
}

fn status_of(summary: &CheckSummary, check: &str) -> CheckStatus {
    summary
        .line(check)
        .unwrap_or_else(|| panic!("no line {check}: {summary:#?}"))
        .status
}

on_both_backends!(check_passes_on_a_finished_migration_and_each_line_fails_on_purpose);

async fn check_passes_on_a_finished_migration_and_each_line_fails_on_purpose(backend: Backend) {
    let pool = Pool::create(false).await;
    // The sample user, who migrates through the bridge's hook below.
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    for i in 0..3 {
        let user = SeedUser {
            tenant: None,
            ..SeedUser::numbered(i)
        };
        pool.add_seed_user(&user).await;
    }
    pool.client
        .update_user_pool()
        .user_pool_id(&pool.id)
        .lambda_config(
            LambdaConfigType::builder()
                .post_authentication("arn:aws:lambda:us-east-1:123456789012:function:after")
                .build(),
        )
        .send()
        .await
        .expect("set a trigger");
    let (client_id, client_secret) = MACHINE.create(&pool).await;
    let client_secret = client_secret.unwrap();

    let moto_url = moto::endpoint().await;
    let app = spawn_app(AppOptions::new(
        backend,
        &moto_url,
        &pool.id,
        &pool.client_id,
    ))
    .await;
    let kratos = Kratos::start(&MigrateHook {
        url: app.hook_url(),
        api_key: API_KEY.to_owned(),
    })
    .await;
    let hydra = Hydra::start().await;
    let database = &app.database;
    let settings = with_hydra(
        import_settings_with_public_url(
            &database.url,
            &moto_url,
            &pool.id,
            kratos.admin_url.as_str(),
            kratos.public_url.as_str(),
            TRAITS,
        ),
        &hydra,
    );

    let imported = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(imported.counters.failed, 0);
    let clients = clients::run(
        &settings,
        ClientsOptions::default(),
        Some(moto::test_credentials()),
    )
    .await
    .unwrap();
    assert!(clients.all_done());
    // The sample user logs in through Kratos once: the hook asks Cognito, Kratos keeps the
    // password, the row becomes `migrated`.
    let login = kratos.login("alice@example.com", PASSWORD).await;
    assert!(login.session_token().is_some(), "{:#}", login.body);
    let store = &app.store;
    let alice = store.user("alice").await.unwrap().unwrap();
    assert_eq!(alice.state, UserState::Migrated);
    let email = "alice@example.com".to_owned();

    let dir = tempfile::tempdir().unwrap();
    let with_hooks = dir.path().join("kratos.yml");
    std::fs::write(&with_hooks, KRATOS_YML).unwrap();
    let without_hooks = dir.path().join("bare.yml");
    std::fs::write(&without_hooks, "selfservice: {flows: {}}\n").unwrap();
    let options = |password: &str, yml: &std::path::Path| CheckOptions {
        login: credentials(&email, password),
        client: credentials(&client_id, &client_secret),
        kratos_yml: Some(yml.to_owned()),
        ..CheckOptions::default()
    };
    let run = |options: CheckOptions| run_check(&settings, options);

    // All pass.
    let summary = run(options(PASSWORD, &with_hooks)).await;
    assert!(
        summary.passed(),
        "{}",
        summary.render(check::CheckFormat::Table)
    );
    let names: Vec<String> = statuses(&summary)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        [
            "users",
            "login",
            "hydra discovery",
            "hydra token",
            "trigger PostAuthentication",
            "app clients"
        ]
    );
    let users = summary.line("users").unwrap();
    assert_eq!(users.numbers["cognito_listed"], 4);
    assert_eq!(users.numbers["cognito_estimated"], 4);
    assert_eq!(users.numbers["cognito_without_row"], 0);
    assert_eq!(users.numbers["store_total"], 4);
    assert_eq!(users.numbers["store_migrated"], 1);
    assert_eq!(users.numbers["kratos_identities"], 4);
    assert_eq!(summary.line("app clients").unwrap().numbers["in_hydra"], 1);

    // Wrong password; a trigger without its hook; without a sample user or client.
    let summary = run(options("not-the-password", &with_hooks)).await;
    assert_eq!(status_of(&summary, "login"), CheckStatus::Fail);
    assert_eq!(summary.failed, 1, "{summary:#?}");
    let summary = run(options(PASSWORD, &without_hooks)).await;
    assert_eq!(
        status_of(&summary, "trigger PostAuthentication"),
        CheckStatus::Fail
    );
    assert_eq!(summary.failed, 1, "{summary:#?}");
    let summary = run(CheckOptions {
        kratos_yml: Some(with_hooks.clone()),
        ..CheckOptions::default()
    })
    .await;
    assert_eq!(status_of(&summary, "login"), CheckStatus::Fail);
    assert_eq!(status_of(&summary, "hydra token"), CheckStatus::Fail);
    let summary = run(CheckOptions {
        kratos_yml: Some(with_hooks.clone()),
        skip_login: true,
        skip_token: true,
        ..CheckOptions::default()
    })
    .await;
    assert!(summary.passed(), "{summary:#?}");
    assert_eq!(status_of(&summary, "login"), CheckStatus::Skipped);

    // A user signed up in Cognito after the import: no row.
    pool.add_seed_user(&SeedUser {
        tenant: None,
        ..SeedUser::numbered(9)
    })
    .await;
    let summary = run(options(PASSWORD, &with_hooks)).await;
    let users = summary.line("users").unwrap();
    assert_eq!(users.status, CheckStatus::Fail);
    assert_eq!(users.numbers["cognito_without_row"], 1);
    assert_eq!(users.numbers["cognito_listed"], 5);
    assert_eq!(summary.failed, 1, "{summary:#?}");

    // One identity deleted from Kratos, the Hydra client deleted: the binary exits 1 with the
    // two lines failing in its JSON, and no secret in any of its output at trace level.
    let other = store
        .user("seed-0001")
        .await
        .unwrap()
        .unwrap()
        .kratos_identity_id
        .unwrap();
    kratos.delete_identity(&other).await;
    let deleted = reqwest::Client::new()
        .delete(
            hydra
                .admin_url
                .join(&format!("admin/clients/{client_id}"))
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);

    let yml = with_hooks.to_str().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        bridge_with_test_credentials(
            &dir,
            &["check", "--format", "json", "--kratos-yml", yml],
            &[
                moto_pool_env(&pool.id, &moto_url).as_slice(),
                &[
                    ("RUST_LOG", "trace"),
                    ("COGNITO_BRIDGE__DATABASE__URL", database.url.as_str()),
                    (
                        "COGNITO_BRIDGE__KRATOS__ADMIN_URL",
                        kratos.admin_url.as_str(),
                    ),
                    (
                        "COGNITO_BRIDGE__KRATOS__PUBLIC_URL",
                        kratos.public_url.as_str(),
                    ),
                    ("COGNITO_BRIDGE__HYDRA__ADMIN_URL", hydra.admin_url.as_str()),
                    (
                        "COGNITO_BRIDGE__HYDRA__PUBLIC_URL",
                        hydra.public_url.as_str(),
                    ),
                    (check::ENV_USER, email.as_str()),
                    (check::ENV_PASSWORD, PASSWORD),
                    (check::ENV_CLIENT_ID, client_id.as_str()),
                    (check::ENV_CLIENT_SECRET, client_secret.as_str()),
                ],
            ]
            .concat(),
        )
        .output(),
    )
    .await
    .expect("check ends within 120 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(json["passed"], false);
    let failing: Vec<&str> = json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["status"] == "fail")
        .map(|line| line["check"].as_str().unwrap())
        .collect();
    // The token line fails too: the client is gone from Hydra.
    assert_eq!(failing, ["users", "hydra token", "app clients"], "{stdout}");
    assert_eq!(json["lines"][0]["numbers"]["kratos_identities"], 3);
    assert_eq!(json["lines"][1]["status"], "pass", "{stdout}");
    assert!(stderr.len() > 1000, "trace logging on: {stderr}");
    for secret in [PASSWORD, client_secret.as_str()] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
}

async fn run_check(settings: &Settings, options: CheckOptions) -> CheckSummary {
    check::run(settings, options, Some(moto::test_credentials()))
        .await
        .unwrap()
}

/// A `kratos.yml` with the hooks of `UserMigration` (the password `migrate_hook`) and
/// `PreSignUp` (a web hook before registration).
const KRATOS_YML_FOR_TRIGGERS: &str = r#"
selfservice:
  methods:
    password:
      config:
        migrate_hook:
          enabled: true
          config: {url: "http://bridge/hooks/password-migration", method: POST}
  flows:
    registration:
      before:
        hooks:
          - hook: web_hook
            config: {url: "http://app/pre-sign-up", method: POST}
"#;

/// The same places without those hooks: the migrate hook disabled, only a session hook after
/// registration.
const KRATOS_YML_WITHOUT: &str = r#"
selfservice:
  methods:
    password:
      config:
        migrate_hook:
          enabled: false
          config: {url: "http://bridge/hooks/password-migration", method: POST}
  flows:
    registration:
      after:
        hooks:
          - hook: session
"#;

/// The trigger lines of `check --format json` run by the binary against moto's pool `pool_id`
/// (Kratos and Hydra at a closed port; their lines fail, the trigger lines do not need them),
/// as (check, status, detail); and the exit status.
async fn trigger_lines(pool_id: &str, kratos_yml: Option<&str>) -> (Vec<[String; 3]>, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let moto_url = moto::endpoint().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", listener.local_addr().unwrap())
    };
    let mut args = vec!["check", "--format", "json", "--skip-login", "--skip-token"];
    let yml = dir.path().join("kratos.yml");
    if let Some(text) = kratos_yml {
        std::fs::write(&yml, text).unwrap();
        args.extend(["--kratos-yml", yml.to_str().unwrap()]);
    }
    let services = [
        "COGNITO_BRIDGE__KRATOS__ADMIN_URL",
        "COGNITO_BRIDGE__KRATOS__PUBLIC_URL",
        "COGNITO_BRIDGE__HYDRA__ADMIN_URL",
        "COGNITO_BRIDGE__HYDRA__PUBLIC_URL",
    ]
    .map(|key| (key, closed.as_str()));
    let environment = [moto_pool_env(pool_id, &moto_url).as_slice(), &services].concat();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        bridge_with_test_credentials(&dir, &args, &environment).output(),
    )
    .await
    .expect("check ends within 60 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "JSON on stdout ({error}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let lines = json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["check"].as_str().unwrap().starts_with("trigger"))
        .map(|line| ["check", "status", "detail"].map(|key| line[key].as_str().unwrap().to_owned()))
        .collect();
    (lines, output.status.code())
}

/// The trigger lines end to end: a moto pool created with `UserMigration`, `PreSignUp` and
/// `DefineAuthChallenge` triggers, `check` run by the binary with and without the hooks in its
/// `--kratos-yml`, and without one.
#[tokio::test]
async fn check_judges_the_pools_lambda_triggers_against_kratos_yml_through_the_binary() {
    let arn = |name: &str| format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
    let client = moto::admin_client().await;
    let created = client
        .create_user_pool()
        .pool_name(format!("triggers-{}", rand::random::<u32>()))
        .lambda_config(
            LambdaConfigType::builder()
                .user_migration(arn("migrate"))
                .pre_sign_up(arn("pre-sign-up"))
                .define_auth_challenge(arn("define"))
                .build(),
        )
        .send()
        .await
        .expect("create a pool with triggers");
    let pool_id = created.user_pool().unwrap().id().unwrap().to_owned();
    let line = |check: &str, status: &str, detail: &str| [check, status, detail].map(str::to_owned);
    const NO_EQUIVALENT: &str = "no Kratos web hook equivalent; nearest: none (custom \
                                 authentication challenges have no Kratos method)";
    const MIGRATE: &str = "selfservice.methods.password.config.migrate_hook";
    const REGISTRATION: &str =
        "selfservice.flows.registration.before or selfservice.flows.registration.after";

    let (lines, status) = trigger_lines(&pool_id, Some(KRATOS_YML_FOR_TRIGGERS)).await;
    // The model's order: PreSignUp, DefineAuthChallenge, UserMigration.
    assert_eq!(
        lines,
        [
            line(
                "trigger PreSignUp",
                "pass",
                &format!("hook in {REGISTRATION}")
            ),
            line("trigger DefineAuthChallenge", "warn", NO_EQUIVALENT),
            line(
                "trigger UserMigration",
                "pass",
                &format!("hook in {MIGRATE}")
            ),
        ]
    );
    // Kratos and Hydra are not there: their lines fail the run.
    assert_eq!(status, Some(1));

    let (lines, _) = trigger_lines(&pool_id, Some(KRATOS_YML_WITHOUT)).await;
    assert_eq!(
        lines,
        [
            line(
                "trigger PreSignUp",
                "fail",
                &format!("no hook in {REGISTRATION}")
            ),
            line("trigger DefineAuthChallenge", "warn", NO_EQUIVALENT),
            line(
                "trigger UserMigration",
                "fail",
                &format!("no hook in {MIGRATE}")
            ),
        ]
    );

    let (lines, _) = trigger_lines(&pool_id, None).await;
    let not_run = |check: &str, place: &str| {
        line(
            check,
            "fail",
            &format!("not run: pass --kratos-yml FILE (looks for a web_hook in {place})"),
        )
    };
    assert_eq!(
        lines,
        [
            not_run("trigger PreSignUp", REGISTRATION),
            line("trigger DefineAuthChallenge", "warn", NO_EQUIVALENT),
            not_run("trigger UserMigration", MIGRATE),
        ]
    );
}

#[tokio::test]
async fn check_help_explains_the_lines_and_usage_errors_exit_2() {
    let output = bridge_output(&["check", "--help"], &[]).await;
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--kratos-yml",
        "--skip-login",
        "--skip-token",
        "--format",
        check::ENV_USER,
        check::ENV_PASSWORD,
        check::ENV_CLIENT_ID,
        check::ENV_CLIENT_SECRET,
        "hydra.public_url",
        "Exit status",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    let top = bridge_output(&["--help"], &[]).await;
    assert!(String::from_utf8_lossy(&top.stdout).contains("check"));

    for args in [
        &["check", "--format", "csv"][..],
        &["check", "--unknown"][..],
        &["check", "--kratos-yml"][..],
    ] {
        let output = bridge_output(args, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    // Configuration errors: no pool; a --kratos-yml that is missing or not YAML.
    let output = bridge_output(&["check"], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cognito.user_pool_id"), "{stderr}");
    let pool = [("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc")];
    let output = bridge_output(&["check", "--kratos-yml", "/nonexistent/kratos.yml"], &pool).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--kratos-yml"), "{stderr}");
    let output = bridge_output(
        &["check"],
        &[
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc"),
            ("COGNITO_BRIDGE__HYDRA__PUBLIC_URL", "ftp://hydra"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("hydra.public_url"), "{stderr}");
}
