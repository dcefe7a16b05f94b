//! The `cognito-bridge` binary as a child process: its path, a clean environment, a guard that
//! kills it, and reading the port `serve` logs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The path of the `cognito-bridge` binary cargo built for the calling test or bench target,
/// with its profile (the debug build under `cargo test`, the release build under
/// `cargo bench`). A macro because cargo sets `CARGO_BIN_EXE_…` only while it compiles the
/// main crate's tests and benches, not this library: `env!` must expand in their crate.
#[macro_export]
macro_rules! bridge_binary {
    () => {
        env!("CARGO_BIN_EXE_cognito-bridge")
    };
}

/// Dummy AWS credentials for a child that signs its calls to moto or a fake (neither checks
/// them).
pub const TEST_CREDENTIALS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
];

/// `binary args…` in `dir` with a clean environment: only `PATH`, no EC2 metadata lookups
/// (no AWS credentials chain reaching out), and `environment`.
pub fn command(
    binary: impl AsRef<Path>,
    dir: &Path,
    args: &[&str],
    environment: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(binary.as_ref());
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (name, value) in environment {
        command.env(name, value);
    }
    command
}

/// [`command`] for tokio, with [`TEST_CREDENTIALS`] (which `environment` may override).
pub fn command_with_test_credentials(
    binary: impl AsRef<Path>,
    dir: &Path,
    args: &[&str],
    environment: &[(&str, &str)],
) -> tokio::process::Command {
    let environment: Vec<(&str, &str)> = TEST_CREDENTIALS
        .iter()
        .chain(environment)
        .copied()
        .collect();
    command(binary, dir, args, &environment).into()
}

/// Kills the child when the test ends, passed or not.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub trait SpawnGuarded {
    /// Spawn, and kill the child when the guard is dropped.
    fn kill_on_drop_guard(&mut self) -> KillOnDrop;
}

impl SpawnGuarded for Command {
    fn kill_on_drop_guard(&mut self) -> KillOnDrop {
        KillOnDrop(self.spawn().expect("the binary starts"))
    }
}

/// Wait (polling, at most `within`) for the child to exit; its status.
pub async fn wait_for_exit(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(
            started.elapsed() < within,
            "{what}: no exit within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Read JSON log lines until the "serving" line, and return its port.
pub fn serving_port(stderr: ChildStderr) -> u16 {
    serving_log(stderr).0
}

/// Read JSON log lines until the "serving" line: its port, and the lines before it.
pub fn serving_log(stderr: ChildStderr) -> (u16, Vec<Value>) {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut before = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(json) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(port) = json["fields"]["port"].as_u64() {
                let _ = sender.send((port as u16, std::mem::take(&mut before)));
            } else {
                before.push(json);
            }
        }
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("serve logs its port within 20 s")
}
