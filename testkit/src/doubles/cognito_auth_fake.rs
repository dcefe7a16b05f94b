//! A loopback Cognito for the error paths moto cannot produce: `AdminInitiateAuth` over the
//! AWS JSON 1.1 protocol, scripted per username, counting every call that reached it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const POOL_ID: &str = "us-east-1_fake";
pub const CLIENT_ID: &str = "fake-client";
const TARGET: &str = "AWSCognitoIdentityProviderService.AdminInitiateAuth";
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How the fake answers one user's `AdminInitiateAuth`, after the password (and the secret
/// hash, when the fake has a client secret) is checked where Cognito would check it.
#[derive(Debug, Clone)]
pub enum Script {
    /// `AuthenticationResult` when the password is right, `NotAuthorizedException` otherwise.
    Authenticate,
    /// A challenge (`ChallengeName`) when the password is right.
    Challenge(&'static str),
    /// This error whatever the password: Cognito refuses before checking it.
    Error { code: &'static str, status: u16 },
    /// The error for the user's first `times` calls, then `then` (whose call count restarts).
    FailTimes {
        times: usize,
        code: &'static str,
        status: u16,
        then: Box<Script>,
    },
    /// Wait, then answer as the inner script.
    Delay(Duration, Box<Script>),
    /// Read the request and never answer.
    Hang,
    /// Read the request and close the connection without an answer.
    DropConnection,
}

impl Script {
    /// The error with Cognito's status for it: 500 for `InternalErrorException`, else 400.
    pub fn error(code: &'static str) -> Self {
        Script::Error {
            code,
            status: status_for(code),
        }
    }

    /// `code` for the first `times` calls, then `then`.
    pub fn fail_times(times: usize, code: &'static str, then: Script) -> Self {
        Script::FailTimes {
            times,
            code,
            status: status_for(code),
            then: Box::new(then),
        }
    }

    pub fn delay(by: Duration, then: Script) -> Self {
        Script::Delay(by, Box::new(then))
    }
}

fn status_for(code: &str) -> u16 {
    if code == "InternalErrorException" {
        500
    } else {
        400
    }
}

/// What the fake is: its pool, app client and, optionally, the client's secret.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub user_pool_id: String,
    pub client_id: String,
    /// When set, `SECRET_HASH` must be `base64(HMAC_SHA256(secret, USERNAME + ClientId))`.
    pub client_secret: Option<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            user_pool_id: POOL_ID.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: None,
        }
    }
}

impl FakeConfig {
    pub fn with_client_secret(secret: &str) -> Self {
        Self {
            client_secret: Some(secret.to_owned()),
            ..Self::default()
        }
    }
}

struct FakeUser {
    password: String,
    script: Script,
}

#[derive(Default)]
struct State {
    users: HashMap<String, FakeUser>,
    /// Every `AdminInitiateAuth` that reached the fake, by `USERNAME`, in arrival order.
    calls: HashMap<String, Vec<Instant>>,
    /// Requests that were not a well-formed `AdminInitiateAuth`.
    malformed: usize,
    /// A fake-wide outage: while set, every call is answered by this script instead of the
    /// user's own (after being counted), as a Cognito that is down for everyone would.
    outage: Option<Script>,
}

pub struct CognitoFake {
    /// `http://127.0.0.1:<port>`, for `cognito.endpoint_url`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl CognitoFake {
    /// Listen on a free loopback port; the server lives as long as the test's runtime.
    pub async fn start(config: FakeConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server_config = Arc::new(config);
        let state = Arc::new(Mutex::new(State::default()));
        let server_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve_connection(
                    stream,
                    server_config.clone(),
                    server_state.clone(),
                ));
            }
        });
        Self { endpoint, state }
    }

    /// Add (or replace) a user with their password and how Cognito answers them.
    pub fn user(&self, name: &str, password: &str, script: Script) -> &Self {
        self.state.lock().unwrap().users.insert(
            name.to_owned(),
            FakeUser {
                password: password.to_owned(),
                script,
            },
        );
        self
    }

    /// How many `AdminInitiateAuth` calls for `name` reached the fake.
    pub fn calls(&self, name: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(name)
            .map_or(0, Vec::len)
    }

    /// When each call for `name` arrived.
    pub fn call_instants(&self, name: &str) -> Vec<Instant> {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// When the latest call, for any username, arrived.
    pub fn last_call(&self) -> Option<Instant> {
        self.state
            .lock()
            .unwrap()
            .calls
            .values()
            .filter_map(|calls| calls.last().copied())
            .max()
    }

    /// Calls for every username together.
    pub fn total_calls(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Requests that were not a well-formed `AdminInitiateAuth` (wrong target, bad JSON).
    pub fn malformed_requests(&self) -> usize {
        self.state.lock().unwrap().malformed
    }

    /// Start (`Some`) or end (`None`) a fake-wide outage: every call that arrives while it
    /// lasts is counted and answered by `script`, whoever the user is. Calls already in
    /// progress keep the script they started with.
    pub fn set_outage(&self, script: Option<Script>) {
        self.state.lock().unwrap().outage = script;
    }
}

/// A port on which nothing listens: bound, then released.
pub async fn unused_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

/// What the fake does with one request.
enum Reply {
    Json { status: u16, body: Value },
    Hang,
    Drop,
}

fn error_reply(code: &str, status: u16) -> Reply {
    Reply::Json {
        status,
        body: json!({"__type": code, "message": format!("fake Cognito: {code}")}),
    }
}

/// One request per connection (`Connection: close`), so the client never reuses a socket
/// the fake has decided to drop.
async fn serve_connection(
    mut stream: TcpStream,
    config: Arc<FakeConfig>,
    state: Arc<Mutex<State>>,
) {
    let Some((headers, body)) = read_request(&mut stream).await else {
        return;
    };
    let reply = decide(&headers, &body, &config, &state).await;
    match reply {
        Reply::Json { status, body } => {
            let body = body.to_string();
            let reason = if status == 200 { "OK" } else { "Error" };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\n\
                 Content-Type: application/x-amz-json-1.1\r\n\
                 Content-Length: {}\r\n\
                 x-amzn-RequestId: fake-{:08x}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len(),
                rand::random::<u32>(),
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Reply::Hang => {
            // Keep the socket open; the test's runtime ends it.
            std::future::pending::<()>().await;
        }
        Reply::Drop => drop(stream),
    }
}

/// Headers (lower-cased names) and a `Content-Length` body; `None` when the peer left early.
pub async fn read_request(stream: &mut TcpStream) -> Option<(HashMap<String, String>, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(2048);
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_REQUEST_BYTES {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST_BYTES);
    let mut body = buffer[header_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(length);
    Some((headers, body))
}

async fn decide(
    headers: &HashMap<String, String>,
    body: &[u8],
    config: &FakeConfig,
    state: &Mutex<State>,
) -> Reply {
    let well_formed_call = headers.get("x-amz-target").map(String::as_str) == Some(TARGET)
        && headers
            .get("content-type")
            .is_some_and(|value| value.starts_with("application/x-amz-json-1.1"));
    let request: Option<Value> = serde_json::from_slice(body).ok();
    let (Some(request), true) = (request, well_formed_call) else {
        state.lock().unwrap().malformed += 1;
        return error_reply("UnknownOperationException", 400);
    };
    let text = |pointer: &str| request.pointer(pointer).and_then(Value::as_str);
    let Some(username) = text("/AuthParameters/USERNAME") else {
        state.lock().unwrap().malformed += 1;
        return error_reply("InvalidParameterException", 400);
    };

    // From here on the call counts as having reached Cognito.
    let (script, call_index, password, outage) = {
        let mut state = state.lock().unwrap();
        let calls = state.calls.entry(username.to_owned()).or_default();
        calls.push(Instant::now());
        let call_index = calls.len() - 1;
        let user = state.users.get(username);
        (
            user.map(|user| user.script.clone()),
            call_index,
            user.map(|user| user.password.clone()),
            state.outage.clone(),
        )
    };
    let typed = text("/AuthParameters/PASSWORD").unwrap_or_default();
    if let Some(outage) = outage {
        // A Cognito that is down says nothing about pools, users or passwords.
        let password_right = password.as_deref() == Some(typed);
        return play(&outage, call_index, password_right).await;
    }

    if text("/UserPoolId") != Some(config.user_pool_id.as_str()) {
        return error_reply("ResourceNotFoundException", 400);
    }
    if text("/ClientId") != Some(config.client_id.as_str()) {
        return error_reply("ResourceNotFoundException", 400);
    }
    if text("/AuthFlow") != Some("ADMIN_USER_PASSWORD_AUTH") {
        return error_reply("InvalidParameterException", 400);
    }
    if let Some(secret) = &config.client_secret {
        let expected = secret_hash(secret, username, &config.client_id);
        if text("/AuthParameters/SECRET_HASH") != Some(expected.as_str()) {
            return error_reply("NotAuthorizedException", 400);
        }
    }
    let (Some(script), Some(password)) = (script, password) else {
        return error_reply("UserNotFoundException", 400);
    };
    play(&script, call_index, typed == password).await
}

async fn play(script: &Script, call_index: usize, password_right: bool) -> Reply {
    let mut script = script.clone();
    let mut call_index = call_index;
    loop {
        match script {
            Script::Error { code, status } => return error_reply(code, status),
            Script::FailTimes {
                times,
                code,
                status,
                then,
            } => {
                if call_index < times {
                    return error_reply(code, status);
                }
                call_index -= times;
                script = *then;
            }
            Script::Delay(by, then) => {
                tokio::time::sleep(by).await;
                script = *then;
            }
            Script::Hang => return Reply::Hang,
            Script::DropConnection => return Reply::Drop,
            Script::Authenticate | Script::Challenge(_) if !password_right => {
                return error_reply("NotAuthorizedException", 400);
            }
            Script::Authenticate => {
                return Reply::Json {
                    status: 200,
                    body: json!({
                        "AuthenticationResult": {
                            "AccessToken": "a",
                            "IdToken": "i",
                            "RefreshToken": "r",
                            "ExpiresIn": 3600,
                            "TokenType": "Bearer"
                        },
                        "ChallengeParameters": {}
                    }),
                };
            }
            Script::Challenge(name) => {
                return Reply::Json {
                    status: 200,
                    body: json!({
                        "ChallengeName": name,
                        "Session": "s",
                        "ChallengeParameters": {}
                    }),
                };
            }
        }
    }
}

/// Computed here independently of the crate, so a wrong construction there is caught.
fn secret_hash(secret: &str, username: &str, client_id: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    mac.update(client_id.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}
