//! `scripts/demo --no-wait`: the README's demo, end to end (moto, the real Kratos v1.3.1 on a
//! fresh Postgres database, this binary), and that it leaves nothing behind.
//!
//! It needs what the demo needs: `.venv` with moto, Go (for `scripts/build-ory kratos`, a no-op
//! once built; `scripts/test` builds Kratos before the tests) and PostgreSQL. It never skips.
//! Kratos's database is named like the other real-Kratos tests' (`scripts/test` drops one a
//! killed run left behind).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::helpers::BINARY;
use crate::ory::{DATABASE_PREFIX_ENV, postgres_admin_url};

/// The demo takes about 10 s once everything is built; this bounds a hung one.
const DEMO_TIME_LIMIT: Duration = Duration::from_secs(240);

/// The demo users' password, which the demo prints on purpose.
const DEMO_PASSWORD: &str = "Demo-Passw0rd";

struct DemoRun {
    success: bool,
    output: String,
}

/// Run `scripts/demo --no-wait` with this build's binary; on a time-out, stop it the way
/// Ctrl-C would (its trap stops what it started), then fail.
fn run_demo() -> DemoRun {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new(format!("{root}/scripts/demo"))
        .arg("--no-wait")
        .current_dir(root)
        .env("COGNITO_BRIDGE_DEMO_BIN", BINARY)
        .env(
            "COGNITO_BRIDGE_DEMO_POSTGRES_ADMIN_URL",
            postgres_admin_url(),
        )
        .env("COGNITO_BRIDGE_DEMO_DB_PREFIX", database_prefix())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scripts/demo");
    let output = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut stream| {
        let output = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                output
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        })
    })
    .collect();

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEMO_TIME_LIMIT {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let stopping = Instant::now();
            while child.try_wait().unwrap().is_none()
                && stopping.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scripts/demo --no-wait did not finish within {DEMO_TIME_LIMIT:?}:\n{}",
                output.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for reader in readers {
        reader.join().unwrap();
    }
    let output = output.lock().unwrap().clone();
    DemoRun {
        success: status.success(),
        output,
    }
}

/// Kratos's database starts with this: the real-Kratos tests' prefix, then `demo`.
fn database_prefix() -> String {
    let prefix = std::env::var(DATABASE_PREFIX_ENV).unwrap_or_else(|_| "ory_test".into());
    format!("{prefix}_demo")
}

/// The command lines of the running processes that mention `text`.
fn processes_naming(text: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry.file_name().to_str()?.parse::<u32>().ok()?;
            let command_line = std::fs::read(entry.path().join("cmdline")).ok()?;
            let command_line = String::from_utf8_lossy(&command_line).replace('\0', " ");
            command_line.contains(text).then_some(command_line)
        })
        .collect()
}

/// The users count of a state in `report`'s table (`migrated    1   20.0%`).
fn report_count(output: &str, state: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(state)).then(|| words.next()?.parse().ok())?
    })
}

/// The text between `before` and the next `after` on the line that holds `before`.
fn between<'a>(output: &'a str, before: &str, after: char) -> &'a str {
    let start = output
        .find(before)
        .unwrap_or_else(|| panic!("no `{before}` in:\n{output}"))
        + before.len();
    let rest = &output[start..];
    &rest[..rest.find(after).unwrap_or(rest.len())]
}

#[tokio::test]
async fn scripts_demo_no_wait_migrates_alice_shows_the_refusals_and_cleans_up() {
    let DemoRun { success, output } = run_demo();
    assert!(success, "scripts/demo --no-wait failed:\n{output}");
    let has = |text: &str| {
        assert!(output.contains(text), "no `{text}` in:\n{output}");
    };

    // Everything came up on loopback, and import created every user in the real Kratos.
    has("Kratos v1.3.1 on http://127.0.0.1:");
    has("5 users listed, 5 created");
    has(", 0 failed");
    // alice migrated through Kratos's own login API; her second login never reached us.
    has("Kratos: 200, session token received (not shown)");
    has(
        "the bridge: verified (Cognito accepted the password), Kratos stored it; alice's row: migrated",
    );
    has("again: 200; Kratos checked its own copy of the password, the bridge was not asked");
    // The refused users, each with the bridge's verdict and row.
    has("bob    the bridge said mfa_denied, row needs_recovery");
    has("carol  the bridge said not_authorized, row inactive");
    has("dave   the bridge said temporary_password_denied, row needs_recovery");
    // The report agrees.
    for (state, count) in [
        ("pending", 1),
        ("migrated", 1),
        ("needs_recovery", 2),
        ("inactive", 1),
        ("total", 5),
    ] {
        assert_eq!(
            report_count(&output, state),
            Some(count),
            "{state} in the report:\n{output}"
        );
    }
    // The curl lines to try more, with the demo password printed on purpose and said so.
    has("/self-service/login/api | jq -r .id)");
    has("-H 'Content-Type: application/json'");
    has(&format!("login erin@example.com {DEMO_PASSWORD}"));
    has(&format!("login dave@example.com {DEMO_PASSWORD}"));
    has("throwaway Cognito emulator");
    // No secret beyond the demo password: no session token, no hook key (64 hex characters).
    assert!(
        !output.contains("ory_st_"),
        "a session token leaked:\n{output}"
    );
    let hex_run = output
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(
        hex_run < 64,
        "something like the hook key leaked:\n{output}"
    );

    // Stopped and removed: no process of the run is left (each one names the run's folder on
    // its command line), the folder and the database are gone.
    has("demo: stopped: moto, Kratos, cognito-bridge; removed database ");
    let folder = between(&output, "(SQLite in ", ')');
    assert!(folder.contains("cognito-bridge-demo."), "{folder}");
    let left_running = processes_naming(folder);
    assert!(
        left_running.is_empty(),
        "still running after the demo ended: {left_running:?}"
    );
    assert!(!Path::new(folder).exists(), "{folder} was not removed");
    let database = between(&output, ", database ", '\n');
    assert!(database.starts_with(&database_prefix()), "{database}");
    let mut connection = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("connect to PostgreSQL");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(database)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(left, 0, "Kratos's database {database} was not dropped");
}
