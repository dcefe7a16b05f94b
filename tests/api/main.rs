//! Integration tests through the real HTTP server: moto as Cognito, a loopback fake for what
//! moto cannot do, a Kratos double, SQLite and Postgres.

mod cli;
mod helpers;
mod hook_moto;
mod moto;
mod radioactivity;

mod cognito_errors;
mod cognito_fake;
mod kratos_contract;
mod kratos_double;
