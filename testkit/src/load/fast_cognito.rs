//! A fast loopback Cognito for load runs: `AdminInitiateAuth` only, over the AWS JSON 1.1
//! protocol, with HTTP/1.1 keep-alive (unlike `doubles/cognito_auth_fake.rs`, which closes every
//! connection so it can script drops), an optional fixed delay before each answer, and
//! `users` synthetic users (`load-user-00000`, …) who all have the same password.
//!
//! It serves from its own thread (`cognito-fake`, a single-threaded tokio runtime), so its
//! CPU can be told apart from the load generator's and it keeps answering while the caller's
//! runtime is busy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const POOL_ID: &str = "us-east-1_load";
pub const CLIENT_ID: &str = "load-client";
pub const PASSWORD: &str = "Load-Password-123";
/// The name of the thread the fake serves from.
pub const THREAD_NAME: &str = "cognito-fake";
const TARGET: &str = "AWSCognitoIdentityProviderService.AdminInitiateAuth";
const MAX_REQUEST_BYTES: usize = 64 * 1024;
const AUTHENTICATED: &str = r#"{"AuthenticationResult":{"AccessToken":"a","ExpiresIn":3600,"IdToken":"i","RefreshToken":"r","TokenType":"Bearer"},"ChallengeParameters":{}}"#;

/// The synthetic user `i`.
pub fn username(i: usize) -> String {
    format!("load-user-{i:05}")
}

#[derive(Debug, Clone)]
pub struct FastCognitoOptions {
    /// Users `0..users` exist, each with [`PASSWORD`].
    pub users: usize,
    /// How long each answer waits (zero: answer at once).
    pub delay: Duration,
}

pub struct FastCognito {
    /// `http://127.0.0.1:<port>`, for `cognito.endpoint_url`.
    pub endpoint: String,
    counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Counters {
    authenticated: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
    /// When each request answered with an `AuthenticationResult` was read in full, on
    /// this process's clock.
    arrivals: Mutex<Vec<Instant>>,
}

impl FastCognito {
    /// Listen on a free loopback port; serves until dropped.
    pub fn start(options: FastCognitoOptions) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fast fake");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = counters.clone();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the fake's runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("a tokio listener");
                    let options = Arc::new(options);
                    let accept = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                continue;
                            };
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(serve(stream, options.clone(), served.clone()));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends every open connection.
            })
            .expect("start the fake's thread");
        Self {
            endpoint,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `AuthenticationResult` answers so far.
    pub fn authenticated(&self) -> u64 {
        self.counters.authenticated.load(Ordering::Relaxed)
    }

    /// `NotAuthorizedException` / `UserNotFoundException` answers so far.
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Requests that were not a well-formed `AdminInitiateAuth` for this pool and client.
    pub fn malformed(&self) -> u64 {
        self.counters.malformed.load(Ordering::Relaxed)
    }

    /// When each request answered with an `AuthenticationResult` so far arrived (read in
    /// full), in order. Readiness probes (refused users) are not among them.
    pub fn authenticated_arrivals(&self) -> Vec<Instant> {
        let mut arrivals = self.counters.arrivals.lock().unwrap().clone();
        arrivals.sort();
        arrivals
    }
}

impl Drop for FastCognito {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthRequest {
    user_pool_id: String,
    client_id: String,
    auth_flow: String,
    auth_parameters: HashMap<String, String>,
}

/// Requests on one connection, one after the other, until the client closes it.
async fn serve(mut stream: TcpStream, options: Arc<FastCognitoOptions>, counters: Arc<Counters>) {
    let mut buffer = Vec::with_capacity(4096);
    loop {
        let Some((head_end, body_len, expects_continue)) =
            read_head(&mut stream, &mut buffer).await
        else {
            return;
        };
        if expects_continue
            && stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let total = head_end + body_len;
        while buffer.len() < total {
            if read_more(&mut stream, &mut buffer).await.unwrap_or(0) == 0 {
                return;
            }
        }
        let arrived = Instant::now();
        let (kind, body) = answer(&buffer[..head_end], &buffer[head_end..total], &options);
        if matches!(kind, Kind::Authenticated) {
            counters.arrivals.lock().unwrap().push(arrived);
        }
        let (counter, status) = match kind {
            Kind::Authenticated => (&counters.authenticated, 200),
            Kind::Refused => (&counters.refused, 400),
            Kind::Malformed => (&counters.malformed, 400),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        buffer.drain(..total);
        if !options.delay.is_zero() {
            tokio::time::sleep(options.delay).await;
        }
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\n\
             Content-Type: application/x-amz-json-1.1\r\n\
             Content-Length: {}\r\n\
             x-amzn-RequestId: load-fake\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Read until a whole head is buffered: its end, the body length and whether the client
/// waits for `100 Continue`. `None` when the client left.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(usize, usize, bool)> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_REQUEST_BYTES {
            return None;
        }
        if read_more(stream, buffer).await.ok()? == 0 {
            return None;
        }
    };
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let mut body_len = 0;
    let mut expects_continue = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value.trim().parse().ok()?;
        } else if name.eq_ignore_ascii_case("expect") {
            expects_continue = value.trim().eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The SDK sends JSON bodies with a length; anything else is not for this fake.
            return None;
        }
    }
    (body_len <= MAX_REQUEST_BYTES).then_some((head_end, body_len, expects_continue))
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let read = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..read]);
    Ok(read)
}

enum Kind {
    Authenticated,
    /// A decided refusal: unknown user, wrong password.
    Refused,
    /// Not a well-formed call for this pool and client.
    Malformed,
}

fn error(kind: Kind, code: &str) -> (Kind, String) {
    (
        kind,
        format!(r#"{{"__type":"{code}","message":"fast fake: {code}"}}"#),
    )
}

/// Check what Cognito would check, in its order; the password last.
fn answer(head: &[u8], body: &[u8], options: &FastCognitoOptions) -> (Kind, String) {
    let head = String::from_utf8_lossy(head);
    let has_header = |name: &str, expected: &str| {
        head.split("\r\n").any(|line| {
            line.split_once(':').is_some_and(|(n, v)| {
                n.eq_ignore_ascii_case(name) && v.trim().starts_with(expected)
            })
        })
    };
    if !has_header("x-amz-target", TARGET)
        || !has_header("content-type", "application/x-amz-json-1.1")
    {
        return error(Kind::Malformed, "UnknownOperationException");
    }
    let Ok(request) = serde_json::from_slice::<AuthRequest>(body) else {
        return error(Kind::Malformed, "InvalidParameterException");
    };
    if request.user_pool_id != POOL_ID || request.client_id != CLIENT_ID {
        return error(Kind::Malformed, "ResourceNotFoundException");
    }
    if request.auth_flow != "ADMIN_USER_PASSWORD_AUTH" {
        return error(Kind::Malformed, "InvalidParameterException");
    }
    let known = request
        .auth_parameters
        .get("USERNAME")
        .and_then(|name| name.strip_prefix("load-user-"))
        .and_then(|index| index.parse::<usize>().ok())
        .is_some_and(|index| index < options.users);
    if !known {
        return error(Kind::Refused, "UserNotFoundException");
    }
    if request.auth_parameters.get("PASSWORD").map(String::as_str) != Some(PASSWORD) {
        return error(Kind::Refused, "NotAuthorizedException");
    }
    (Kind::Authenticated, AUTHENTICATED.to_owned())
}
