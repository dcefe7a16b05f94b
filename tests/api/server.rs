//! The server around the hook: graceful shutdown with hooks in flight, slow clients.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::helpers::{
    API_KEY, AppOptions, Backend, serve_against_auth_fake, spawn_app, wait_for_exit,
};

const PASSWORD: &str = "Right-Password-1";

#[tokio::test]
async fn sigterm_lets_hooks_in_flight_finish() {
    stop_with_a_hook_in_flight("-TERM").await;
}

#[tokio::test]
async fn sigint_lets_hooks_in_flight_finish() {
    stop_with_a_hook_in_flight("-INT").await;
}

/// A signal while a hook call waits on Cognito: the call still gets its 200, the process
/// then exits cleanly, and the port is closed.
async fn stop_with_a_hook_in_flight(signal: &str) {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    fake.user(
        "slow",
        PASSWORD,
        Script::delay(Duration::from_millis(1500), Script::Authenticate),
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = serve_against_auth_fake(&dir, &fake.endpoint, &[]);
    let url = format!("http://127.0.0.1:{port}/hooks/password-migration");

    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(API_KEY)
            .json(&serde_json::json!({"identifier": "slow", "password": PASSWORD}))
            .send()
            .await
            .map(|response| response.status())
    });
    let waiting_since = Instant::now();
    while fake.calls("slow") == 0 {
        assert!(waiting_since.elapsed() < Duration::from_secs(10), "no call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    let status = in_flight
        .await
        .unwrap()
        .expect("the call in flight is answered");
    assert_eq!(status, 200);
    let exit = wait_for_exit(
        &mut child.0,
        Duration::from_secs(10),
        &format!("serve after {signal}"),
    )
    .await;
    assert!(exit.success(), "{exit:?}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "the port must be closed after shutdown"
    );
}

/// What the server answers on a raw connection within `within`; empty when it closed.
async fn raw_exchange(address: &str, request: &[u8], within: Duration) -> (String, Duration) {
    let mut stream = TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// A client that sends half a request and stalls is cut off after
/// `server.request_timeout_ms`, with a 408 and no Cognito call; others are served.
#[tokio::test]
async fn slow_clients_time_out() {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    fake.user("sloth", PASSWORD, Script::Authenticate);
    let app = spawn_app(
        AppOptions::new(
            Backend::Sqlite,
            &fake.endpoint,
            cognito_auth_fake::POOL_ID,
            cognito_auth_fake::CLIENT_ID,
        )
        .with("COGNITO_BRIDGE__SERVER__REQUEST_TIMEOUT_MS", 1000),
    )
    .await;

    let answer = app.login("sloth", PASSWORD).await;
    assert_eq!(answer.status, 200, "before: {answer:?}");
    // Idle on a kept-alive connection for longer than the timeout: still served.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let answer = app.login("sloth", PASSWORD).await;
    assert_eq!(answer.status, 200, "idle: {answer:?}");

    let calls_before = fake.total_calls();
    // The body never finishes arriving.
    let body = format!(r#"{{"identifier":"sloth","password":"{PASSWORD}"}}"#);
    let head = format!(
        "POST /hooks/password-migration HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut partial = head.into_bytes();
    partial.extend_from_slice(&body.as_bytes()[..10]);
    let (answer, elapsed) = raw_exchange(&app.address, &partial, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer:?}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");

    // The head never finishes arriving.
    let (answer, elapsed) = raw_exchange(
        &app.address,
        b"POST /hooks/password-migration HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert_eq!(
        fake.total_calls(),
        calls_before,
        "no Cognito call for cut-off requests"
    );

    // The server still serves.
    for attempt in 0..3 {
        let fresh = reqwest::Client::new()
            .post(app.hook_url())
            .bearer_auth(API_KEY)
            .json(&serde_json::json!({"identifier": "sloth", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(fresh.status(), 200, "fresh connection {attempt}");
    }
    let answer = app.login("sloth", PASSWORD).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}
