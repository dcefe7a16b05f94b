//! cognito-bridge: moves an AWS Cognito user pool into Ory Kratos by verifying each password
//! against Cognito when Kratos's password migration hook calls us.
#![forbid(unsafe_code)]

pub mod cli;
pub mod cognito;
pub mod config;
pub mod domain;
pub mod hook;
pub mod http;
pub mod report;
pub mod store;
pub mod telemetry;
