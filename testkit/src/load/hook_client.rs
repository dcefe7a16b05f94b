//! The password migration hook as Kratos calls it, for load runs: the server's configuration
//! (environment keys) and one call per request number, cycling through the fake's users with
//! the right password.

use std::sync::Arc;

use cognito_bridge::http::HOOK_PATH;

use super::fast_cognito;
use super::open_loop::{Call, Outcome};
use super::raw_http::{self, RawClient};

/// At least 32 characters, as `serve` requires of `hooks.api_keys`.
pub const API_KEY: &str = "load-hook-key-0123456789abcdef0123456789";
const MATCH_BODY: &[u8] = br#"{"status":"password_match"}"#;

/// Keys that lift the Cognito quota guard (`cognito.max_rps`, `cognito.burst`,
/// `cognito.max_concurrency`): load runs measure the bridge, not its quota.
pub const UNLIMITED_QUOTA: [(&str, &str); 3] = [
    ("COGNITO_BRIDGE__COGNITO__MAX_RPS", "1000000"),
    ("COGNITO_BRIDGE__COGNITO__BURST", "1000000"),
    ("COGNITO_BRIDGE__COGNITO__MAX_CONCURRENCY", "1024"),
];

/// `serve`'s configuration against the fast fake: only `COGNITO_BRIDGE__…` keys, defaults
/// for everything else but the quota (see [`UNLIMITED_QUOTA`]).
pub fn serve_env(
    cognito_endpoint: &str,
    database_url: &str,
    log_level: &str,
) -> Vec<(String, String)> {
    [
        ("COGNITO_BRIDGE__DATABASE__URL", database_url),
        (
            "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
            fast_cognito::POOL_ID,
        ),
        (
            "COGNITO_BRIDGE__COGNITO__CLIENT_ID",
            fast_cognito::CLIENT_ID,
        ),
        ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", cognito_endpoint),
        ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY),
        ("COGNITO_BRIDGE__LOG__LEVEL", log_level),
    ]
    .into_iter()
    .chain(UNLIMITED_QUOTA)
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

/// Request `i`: Kratos's default body for user `i % users` with the right password; ok
/// when the answer is 200 `{"status":"password_match"}`.
pub fn hook_call(client: Arc<RawClient>, users: usize) -> Call {
    let authorization = format!("Bearer {API_KEY}");
    Arc::new(move |i| {
        let client = client.clone();
        let body = format!(
            r#"{{"identifier":"{}","password":"{}"}}"#,
            fast_cognito::username(i as usize % users),
            fast_cognito::PASSWORD
        );
        let request_id = format!("load-{i}");
        let request = raw_http::post(
            client.address(),
            HOOK_PATH,
            &[
                ("Authorization", &authorization),
                ("Content-Type", "application/json"),
                ("Ory-Webhook-Request-ID", &request_id),
            ],
            body.as_bytes(),
        );
        Box::pin(async move {
            match client.send(&request).await {
                Ok(response) if response.status == 200 && response.body == MATCH_BODY => {
                    Outcome::Ok
                }
                Ok(response) if response.status == 200 => {
                    Outcome::Failed("200 without password_match".to_owned())
                }
                Ok(response) => Outcome::Failed(format!("status {}", response.status)),
                Err(error) => Outcome::Failed(error.kind()),
            }
        })
    })
}
