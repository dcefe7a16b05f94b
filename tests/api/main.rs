//! Integration tests through the real HTTP server: moto as Cognito, a loopback fake for what
//! moto cannot do, a Kratos double, SQLite and Postgres.

/// Generate `sqlite` and `postgres` tests from each `async fn name(backend: Backend)`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(crate::helpers::Backend::Postgres).await;
            }
        }
    )+};
}

mod admin;
mod attempt_groups;
mod binding;
mod capture;
mod check;
mod cli;
mod clients;
mod confirm;
mod confirm_kratos;
mod dashboard;
mod demo;
mod doubles;
mod finalize;
mod finalize_current_line;
mod guard;
mod helpers;
mod hook_moto;
mod import;
mod import_cli;
mod import_undo;
mod load;
mod migrations;
mod moto_seed;
mod ory;
mod ory_servers;
mod plan;
mod plan_mfa;
mod radioactivity;
mod reconcile;
mod retention;
mod server;
mod shared_quota;

mod faults;
mod fuzz;
mod store_outage;
mod user_counts;

mod cognito_errors;
mod doubles_vs_real;
mod kratos_contract;
mod kratos_e2e;
mod kratos_real_import;

// The shared test support (`testkit`), where the tests expect it: `crate::moto`.
use testkit::moto;
