//! The binary itself: configuration errors, `migrate`, `report`, and `serve` end to end.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    API_KEY, AppOptions, Backend, SpawnGuarded, assert_match, assert_no_match, bridge, serving_log,
    serving_port, spawn_app, wait_for_exit,
};
use crate::moto::{self, Pool};

#[test]
fn serve_refuses_to_start_without_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let output = bridge(
        &dir,
        &["serve"],
        &[
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc"),
            ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a configuration error: {stderr}"
    );
    assert!(stderr.contains("hooks.api_keys"), "{stderr}");
}

#[test]
fn serve_refuses_a_weak_or_placeholder_api_key_by_position() {
    for (weak, position) in [
        ("short-key-0123456789", "hooks.api_keys[1]"),
        ("change-me-to-a-long-random-key", "hooks.api_keys[1]"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let keys = format!("{API_KEY},{weak}");
        let output = bridge(
            &dir,
            &["serve"],
            &[
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc"),
                ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
                ("COGNITO_BRIDGE__HOOKS__API_KEYS", &keys),
            ],
        )
        .output()
        .unwrap();
        assert_eq!(output.status.code(), Some(2), "a configuration error");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(position), "{weak}: {stderr}");
        assert!(stderr.contains("openssl rand -hex 32"), "{weak}: {stderr}");
        assert!(
            !stderr.contains(weak) && !stderr.contains(API_KEY),
            "a key reached stderr: {stderr}"
        );
        assert!(
            !dir.path().join("cognito-bridge.db").exists(),
            "refused before opening the database"
        );
    }
}

#[test]
fn serve_and_import_refuse_a_plain_http_cognito_endpoint_unless_allowed() {
    for command in ["serve", "import"] {
        let dir = tempfile::tempdir().unwrap();
        let output = bridge(
            &dir,
            &[command],
            &[
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc"),
                ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
                (
                    "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
                    "http://127.0.0.1:9",
                ),
                ("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY),
            ],
        )
        .output()
        .unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{command}: a configuration error"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("cognito.endpoint_url"),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains("cognito.allow_insecure_endpoint"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn commands_that_call_aws_refuse_log_signable_body() {
    for command in ["serve", "import", "clients", "check"] {
        let dir = tempfile::tempdir().unwrap();
        let output = bridge(
            &dir,
            &[command],
            &[
                ("LOG_SIGNABLE_BODY", "true"),
                ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc"),
                ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
                ("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY),
            ],
        )
        .output()
        .unwrap();
        assert_eq!(output.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("LOG_SIGNABLE_BODY"), "{command}: {stderr}");
        assert!(
            !dir.path().join("cognito-bridge.db").exists(),
            "{command}: refused before opening the database"
        );
    }
    // Commands that never call AWS are not concerned.
    let dir = tempfile::tempdir().unwrap();
    let output = bridge(&dir, &["migrate"], &[("LOG_SIGNABLE_BODY", "true")])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn serve_warns_at_start_about_a_guard_limit_set_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bridge(
        &dir,
        &["serve"],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("COGNITO_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc"),
            ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
            ("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY),
            ("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", "0"),
            ("COGNITO_BRIDGE__LOG__FORMAT", "json"),
        ],
    )
    .stderr(Stdio::piped())
    .kill_on_drop_guard();
    let (_, log) = serving_log(child.0.stderr.take().unwrap());
    let warned: Vec<&str> = log
        .iter()
        .filter(|line| line["level"] == "WARN")
        .filter_map(|line| line["fields"]["key"].as_str())
        .collect();
    assert_eq!(warned, ["guard.identifier_failures"], "{log:#?}");
    drop(child);
}

#[test]
fn serve_names_missing_cognito_settings() {
    let dir = tempfile::tempdir().unwrap();
    let output = bridge(
        &dir,
        &["serve"],
        &[("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY)],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a configuration error: {stderr}"
    );
    assert!(stderr.contains("cognito.user_pool_id"), "{stderr}");
}

#[test]
fn invalid_values_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = bridge(
        &dir,
        &["report"],
        &[("COGNITO_BRIDGE__HOOKS__DEADLINE_MS", "soon")],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("deadline_ms"));

    let output = bridge(&dir, &["--config", "missing.toml", "report"], &[])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));

    std::fs::write(
        dir.path().join("cognito-bridge.toml"),
        "[hooks]\nmfa_policy = \"sometimes\"\n",
    )
    .unwrap();
    let output = bridge(&dir, &["report"], &[]).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "the default file is read when present"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("mfa_policy"));
}

#[test]
fn migrate_creates_the_default_sqlite_database_and_report_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = bridge(&dir, &["report"], &[]).output().unwrap();
    // A runtime error (1), not a configuration error (2).
    assert_eq!(
        output.status.code(),
        Some(1),
        "report does not create tables: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("cognito-bridge migrate"));

    let output = bridge(&dir, &["migrate"], &[]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("cognito-bridge.db").exists());

    let output = bridge(&dir, &["report", "--format", "csv"], &[])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("state,count\n") && stdout.contains("total,0"),
        "{stdout}"
    );

    let output = bridge(&dir, &["--help"], &[]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for word in ["serve", "migrate", "report", "COGNITO_BRIDGE__"] {
        assert!(help.contains(word), "--help mentions {word}: {help}");
    }
}

async fn report_json_counts(backend: Backend) {
    let pool = Pool::create(false).await;
    pool.add_user("ann", "ann@example.com", "Pass-word-1").await;
    pool.add_user("ben", "ben@example.com", "Pass-word-2").await;
    pool.add_user_with_temporary_password("cid", "cid@example.com", "Temp-word-3")
        .await;
    let app = spawn_app(AppOptions::for_pool(backend, &pool).await).await;
    assert_match(&app.login("ann", "Pass-word-1").await);
    assert_no_match(&app.login("ben", "wrong").await);
    assert_no_match(&app.login("cid", "Temp-word-3").await);

    let dir = tempfile::tempdir().unwrap();
    let output = bridge(
        &dir,
        &["report", "--format", "json"],
        &[("COGNITO_BRIDGE__DATABASE__URL", &app.database.url)],
    )
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    // A wrong password proves nothing about the user, so `ben` has no row yet.
    assert_eq!(report["total"], 2);
    assert_eq!(report["states"]["migrated"], 1);
    assert_eq!(report["states"]["pending"], 0);
    assert_eq!(report["states"]["needs_recovery"], 1);
    assert_eq!(report["states"]["inactive"], 0);
    assert_eq!(report["states"]["skipped"], 0);
    assert_eq!(report["attempts"]["total"], 3);
}

#[tokio::test]
async fn report_json_counts_on_sqlite() {
    report_json_counts(Backend::Sqlite).await;
}

#[tokio::test]
async fn report_json_counts_on_postgres() {
    report_json_counts(Backend::Postgres).await;
}

/// `serve` as a user starts it: settings from the environment, AWS credentials from the
/// standard chain, the default SQLite file created in the working directory.
#[tokio::test]
async fn serve_runs_end_to_end_against_moto() {
    let pool = Pool::create(false).await;
    pool.add_user("dora", "dora@example.com", "Pass-word-4")
        .await;
    let endpoint = moto::endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = bridge(
        &dir,
        &["serve"],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("COGNITO_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", &pool.id),
            ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", &pool.client_id),
            ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", &endpoint),
            ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
            ("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY),
            ("COGNITO_BRIDGE__LOG__FORMAT", "json"),
        ],
    )
    .stderr(Stdio::piped())
    .kill_on_drop_guard();
    let port = serving_port(child.0.stderr.take().unwrap());

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let ready = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let answer = client
        .post(format!("{base}/hooks/password-migration"))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"identifier": "dora", "password": "Pass-word-4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(dir.path().join("cognito-bridge.db").exists());
    drop(child);
}

/// README "The server": on SIGTERM `serve` lets a hook call in flight finish (its answer, a
/// 424 when Cognito hangs, still arrives), but waits for calls in flight at most
/// `hooks.deadline_ms` + 2 s: a client that sent a request head and never its body (it
/// would hold its call for `server.request_timeout_ms`, 30 s here) does not keep it alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_calls_finish_but_waits_at_most_the_deadline_plus_two_seconds() {
    use tokio::io::AsyncWriteExt;

    use crate::doubles::cognito_auth_fake::{CognitoFake, FakeConfig, Script};
    use crate::helpers::serve_against_auth_fake;

    const DEADLINE: Duration = Duration::from_secs(2);
    /// On top of the bound: the process's own exit (the attempt rows are flushed, SQLite is
    /// closed) and this test's 50 ms polling, on a loaded two-core machine.
    const MARGIN: Duration = Duration::from_millis(1500);
    let fake = CognitoFake::start(FakeConfig::default()).await;
    fake.user("hangs", "Hanging-Horse-1", Script::Hang);
    let dir = tempfile::tempdir().unwrap();
    let deadline_ms = DEADLINE.as_millis().to_string();
    let (mut child, port) = serve_against_auth_fake(
        &dir,
        &fake.endpoint,
        &[
            ("COGNITO_BRIDGE__SERVER__REQUEST_TIMEOUT_MS", "30000"),
            ("COGNITO_BRIDGE__HOOKS__DEADLINE_MS", &deadline_ms),
        ],
    );
    let hook_url = format!("http://127.0.0.1:{port}/hooks/password-migration");

    // A call whose body never comes: in flight until the request timeout (30 s).
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stalled
        .write_all(
            format!(
                "POST /hooks/password-migration HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // A call Cognito never answers: in flight until the hook's deadline.
    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .post(&hook_url)
            .bearer_auth(API_KEY)
            .json(&serde_json::json!({"identifier": "hangs", "password": "Hanging-Horse-1"}))
            .send(),
    );
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while fake.calls("hangs") == 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the call never reached Cognito"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let signalled = std::time::Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = wait_for_exit(&mut child.0, Duration::from_secs(30), "serve after SIGTERM").await;
    let took = signalled.elapsed();
    println!("serve exited {took:?} after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    assert!(
        took <= DEADLINE + Duration::from_secs(2) + MARGIN,
        "serve took {took:?} to stop; the bound is the deadline ({DEADLINE:?}) + 2 s"
    );
    let answer = in_flight
        .await
        .unwrap()
        .expect("the call in flight is answered, not cut");
    assert_eq!(answer.status(), reqwest::StatusCode::FAILED_DEPENDENCY);
    drop(stalled);
}
