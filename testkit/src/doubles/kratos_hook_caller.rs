//! Kratos's side of Contract 1, exactly as DESIGN.md reads it from Kratos's source: how the
//! password migration hook is called, retried, and how its answer becomes a login outcome.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

/// Kratos reads at most this many bytes of the hook's answer.
pub const ANSWER_READ_LIMIT: usize = 1024;
/// Attempts in all, and the pauses between them.
pub const MAX_ATTEMPTS: usize = 3;
pub const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the user's login ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KratosOutcome {
    /// Kratos hashes and stores the password; login continues.
    PasswordStored,
    /// "The provided credentials are invalid" (message id 4000006).
    InvalidCredentials,
    /// Kratos gives up on the hook and shows the user a 502.
    BadGateway,
}

impl KratosOutcome {
    /// Kratos's UI message id for the outcome, where it has one.
    pub fn message_id(self) -> Option<u32> {
        match self {
            KratosOutcome::InvalidCredentials => Some(4_000_006),
            _ => None,
        }
    }
}

/// One HTTP attempt as Kratos saw it.
#[derive(Debug, Clone)]
pub struct HookAttempt {
    pub request_id: String,
    /// `None` for a connection error or a timeout.
    pub status: Option<StatusCode>,
    /// The answer's first bytes, as Kratos reads them.
    pub body_head: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct LoginResult {
    pub outcome: KratosOutcome,
    pub trigger_id: String,
    pub attempts: Vec<HookAttempt>,
}

impl LoginResult {
    pub fn attempt_count(&self) -> usize {
        self.attempts.len()
    }

    pub fn request_ids(&self) -> Vec<String> {
        self.attempts.iter().map(|a| a.request_id.clone()).collect()
    }

    /// The last answer's body as JSON (`Null` when absent or not JSON).
    pub fn last_body(&self) -> Value {
        self.attempts
            .last()
            .and_then(|attempt| serde_json::from_slice(&attempt.body_head).ok())
            .unwrap_or(Value::Null)
    }

    pub fn last_status(&self) -> Option<StatusCode> {
        self.attempts.last().and_then(|attempt| attempt.status)
    }
}

/// The Kratos side of the hook, configured like `migrate_hook` in kratos.yml.
pub struct KratosDouble {
    hook_url: String,
    api_key: String,
    client: reqwest::Client,
    /// Pauses between attempts; Kratos's are 1 s then 2 s.
    pub backoff: [Duration; 2],
    pub attempt_timeout: Duration,
    /// `Ory-Webhook-Trigger-ID` (the same on every retry) is sent from Kratos v25.4.0 on;
    /// v1.3.x sends only `Ory-Webhook-Request-ID` (checked in `doubles_vs_real.rs`).
    pub sends_trigger_id: bool,
}

impl KratosDouble {
    pub fn new(hook_url: &str, api_key: &str) -> Self {
        Self {
            hook_url: hook_url.to_owned(),
            api_key: api_key.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            backoff: BACKOFF,
            attempt_timeout: ATTEMPT_TIMEOUT,
            sends_trigger_id: true,
        }
    }

    /// Kratos's default body: `{"identifier", "password"}`, the identifier as typed.
    pub async fn login(&self, identifier: &str, password: &str) -> LoginResult {
        self.login_with_body(&json!({"identifier": identifier, "password": password}))
            .await
    }

    /// A jsonnet-built body (kratos-hooks/password-migration.jsonnet).
    pub async fn login_with_body(&self, body: &Value) -> LoginResult {
        let body = serde_json::to_vec(body).unwrap();
        let trigger_id = uuid_like();
        let mut attempts = Vec::new();
        loop {
            let attempt = self.attempt(&body, &trigger_id).await;
            let verdict = verdict_of(&attempt);
            attempts.push(attempt);
            match verdict {
                Verdict::Done(outcome) => {
                    return LoginResult {
                        outcome,
                        trigger_id,
                        attempts,
                    };
                }
                Verdict::Retry if attempts.len() < MAX_ATTEMPTS => {
                    tokio::time::sleep(self.backoff[attempts.len() - 1]).await;
                }
                Verdict::Retry => {
                    return LoginResult {
                        outcome: KratosOutcome::BadGateway,
                        trigger_id,
                        attempts,
                    };
                }
            }
        }
    }

    async fn attempt(&self, body: &[u8], trigger_id: &str) -> HookAttempt {
        let request_id = uuid_like();
        let mut request = self
            .client
            .post(&self.hook_url)
            .timeout(self.attempt_timeout)
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {}", self.api_key))
            .header("Ory-Webhook-Request-ID", &request_id);
        if self.sends_trigger_id {
            request = request.header("Ory-Webhook-Trigger-ID", trigger_id);
        }
        let sent = request.body(body.to_vec()).send().await;
        let Ok(response) = sent else {
            return HookAttempt {
                request_id,
                status: None,
                body_head: Vec::new(),
            };
        };
        let status = response.status();
        // The whole body only for the size assertion; a broken body counts as empty.
        let bytes = response.bytes().await.unwrap_or_default();
        assert!(
            bytes.len() < ANSWER_READ_LIMIT,
            "the hook answered {status} with {} bytes; Kratos reads only {ANSWER_READ_LIMIT}",
            bytes.len()
        );
        HookAttempt {
            request_id,
            status: Some(status),
            body_head: bytes[..bytes.len().min(ANSWER_READ_LIMIT)].to_vec(),
        }
    }
}

enum Verdict {
    Done(KratosOutcome),
    Retry,
}

/// DESIGN.md's "How Kratos reads our answer" table.
fn verdict_of(attempt: &HookAttempt) -> Verdict {
    let Some(status) = attempt.status else {
        return Verdict::Retry;
    };
    match status.as_u16() {
        200 if says_password_match(&attempt.body_head) => {
            Verdict::Done(KratosOutcome::PasswordStored)
        }
        200 | 403 => Verdict::Done(KratosOutcome::InvalidCredentials),
        501 => Verdict::Done(KratosOutcome::BadGateway),
        429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Done(KratosOutcome::BadGateway),
    }
}

/// Go's `json.NewDecoder(io.LimitReader(body, 1024)).Decode(&struct{ Status string })`:
/// the first JSON value, an object whose `status` (matched case-insensitively, as Go does)
/// is the string `password_match`.
pub fn says_password_match(head: &[u8]) -> bool {
    let head = &head[..head.len().min(ANSWER_READ_LIMIT)];
    let Some(Ok(Value::Object(object))) = serde_json::Deserializer::from_slice(head)
        .into_iter::<Value>()
        .next()
    else {
        return false;
    };
    let status = object
        .get("status")
        .or_else(|| {
            object
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case("status"))
                .map(|(_, value)| value)
        })
        .and_then(Value::as_str);
    status == Some("password_match")
}

/// A random version-4-shaped UUID, like the ids Kratos puts in its webhook headers.
pub fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
