//! The API tests' helpers. `spawn_app` (the real HTTP app on port 0 with a fresh database) and
//! its typed helpers live in `testkit::app`, the binary as a child process in
//! `testkit::process`; the benchmarks share both, and they are re-exported here. Running an
//! import in the test process is in [`import`].

use std::process::{Command, Stdio};

pub mod import;
pub mod oauth;
pub mod raw;

pub use testkit::app::*;
use testkit::process::KillOnDrop;
pub use testkit::process::{SpawnGuarded, serving_log, serving_port, wait_for_exit};

use crate::doubles::cognito_auth_fake;

/// This build's `cognito-bridge` (the debug build under `cargo test`).
pub const BINARY: &str = testkit::bridge_binary!();

/// The binary in an empty working directory with only the given environment.
pub fn bridge(dir: &tempfile::TempDir, args: &[&str], environment: &[(&str, &str)]) -> Command {
    testkit::process::command(BINARY, dir.path(), args, environment)
}

/// [`bridge`] for tokio, with test AWS credentials ([`testkit::process::TEST_CREDENTIALS`]).
pub fn bridge_with_test_credentials(
    dir: &tempfile::TempDir,
    args: &[&str],
    environment: &[(&str, &str)],
) -> tokio::process::Command {
    testkit::process::command_with_test_credentials(BINARY, dir.path(), args, environment)
}

/// The binary in an empty folder with `environment` and test AWS credentials, run to its end
/// within 60 s: a command's `--help`, usage errors and exit statuses.
pub async fn bridge_output(args: &[&str], environment: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        bridge_with_test_credentials(&dir, args, environment).output(),
    )
    .await
    .expect("the binary ends within 60 s")
    .unwrap()
}

/// `serve` as a child process against the Cognito auth fake at `endpoint`, with JSON logs on a
/// pipe and `extra` settings; killed when the guard is dropped. The guard and the port.
pub fn serve_against_auth_fake(
    dir: &tempfile::TempDir,
    endpoint: &str,
    extra: &[(&str, &str)],
) -> (KillOnDrop, u16) {
    let mut environment = vec![
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("COGNITO_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
        (
            "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
            cognito_auth_fake::POOL_ID,
        ),
        (
            "COGNITO_BRIDGE__COGNITO__CLIENT_ID",
            cognito_auth_fake::CLIENT_ID,
        ),
        ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", endpoint),
        ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY),
        ("COGNITO_BRIDGE__LOG__FORMAT", "json"),
    ];
    environment.extend_from_slice(extra);
    let mut child = bridge(dir, &["serve"], &environment)
        .stderr(Stdio::piped())
        .kill_on_drop_guard();
    let port = serving_port(child.0.stderr.take().unwrap());
    (child, port)
}

/// A verified-or-not hook attempt by `username` at `at`, as the hook records it (one
/// Cognito call of 20 ms, allowed to create the user's row), for tests that write the attempt
/// log through the store.
pub fn attempt(
    username: &str,
    at: chrono::DateTime<chrono::Utc>,
    outcome: cognito_bridge::domain::Outcome,
) -> cognito_bridge::store::Attempt {
    cognito_bridge::store::Attempt {
        key: uuid::Uuid::new_v4(),
        at,
        cognito_username: Some(username.to_owned()),
        outcome,
        cognito_latency_ms: Some(20),
        cognito_calls: 1,
        request_id: None,
        trigger_id: None,
        identity_id: None,
        creates_row: true,
        client_ip: None,
    }
}
