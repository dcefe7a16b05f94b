//! The API tests' helpers. `spawn_app` (the real HTTP app on port 0 with a fresh database) and
//! its typed helpers live in `testkit::app`, the binary as a child process in
//! `testkit::process`; the benchmarks share both, and they are re-exported here. Running an
//! import in the test process is in [`import`].

use std::process::Command;

pub mod import;

pub use testkit::app::*;
pub use testkit::process::{SpawnGuarded, serving_log, serving_port, wait_for_exit};

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
