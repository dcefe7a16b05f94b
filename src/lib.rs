//! cognito-bridge: moves an AWS Cognito user pool into Ory Kratos: `import` creates the
//! identities, and the password migration hook verifies each password against Cognito.
#![forbid(unsafe_code)]

pub mod capture;
pub mod check;
pub mod cli;
pub mod clients;
pub mod cognito;
pub mod config;
pub mod confirm;
pub mod domain;
pub mod finalize;
pub mod hook;
pub mod http;
pub mod hydra;
pub mod import;
pub mod kratos;
pub mod metrics;
mod outbound;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod run_summary;
pub mod startup;
pub mod store;
pub mod telemetry;
