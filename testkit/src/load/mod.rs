//! Load runs of the hook: `serve` as a measured child process, a fast Cognito fake, a lean
//! HTTP client and an open-loop generator. Used by the 60 s load test (`tests/api/load.rs`)
//! and `benches/hook_load.rs`.

pub mod bridge_process;
pub mod fast_cognito;
pub mod hook_client;
pub mod open_loop;
pub mod raw_http;
