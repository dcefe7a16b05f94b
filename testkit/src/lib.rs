//! The test support that `tests/api/` and `benches/` share, compiled once as a crate of its own.
//!
//! Why a crate: a bench is a crate of its own and cannot `use` the API test binary's modules;
//! it used to include their files with `#[path = "../tests/api/…"]`, which compiled them a
//! second time, with copies of whatever a file needed but could not import. As a
//! (dev-only, unpublished) dependency of cognito-bridge, this crate is built against the same
//! `cognito_bridge` library as the tests and benches, so its types are theirs.
//!
//! Why the code lives here rather than under `tests/api/`: a crate's files belong in its own
//! folder; a `[lib] path` reaching into `tests/api/` would mix two crates' files in one folder,
//! where `crate::` means one thing in one file and another in the next. `tests/api/doubles/`
//! and `tests/api/helpers.rs` re-export what the tests use, so they still find the doubles
//! and helpers where the house style puts them. The doubles' own tests are unit tests here,
//! beside the code they check (`scripts/test` runs them: this crate is a default member of
//! the workspace).
//!
//! - [`app`]: `spawn_app` (the real app in-process on port 0 with a fresh database) and typed
//!   helpers.
//! - [`moto`]: moto as Cognito.
//! - [`doubles`]: the stand-ins for Cognito and Kratos.
//! - [`load`]: the open-loop load generator, its HTTP client and fast Cognito fake, and
//!   `serve` as a measured child process.
//! - [`process`]: the `cognito-bridge` binary as a child process (its path, a clean
//!   environment, a guard that kills it).

pub mod app;
pub mod doubles;
pub mod load;
pub mod moto;
pub mod process;

/// The checkout's root (this crate's parent folder): `.venv`, `tests/support` and, beside it,
/// `../shared`.
pub const REPOSITORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Whether the tests run under CI (`.ci/run` sets `CI=true`; other CI systems set `1`): any
/// value but empty, `0` or `false`. Tests that need `../shared` fail under CI where they would
/// otherwise skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.trim(), "" | "0" | "false"))
}
