//! Passwords are radioactive: after hook calls with a known password, it appears nowhere in
//! the captured logs (TRACE level, every crate) nor in the database.

use serde_json::json;

use crate::helpers::{
    API_KEY, AppOptions, Backend, assert_match, assert_no_match, capture_logs, spawn_app,
};
use crate::moto::Pool;

const KNOWN_PASSWORD: &str = "Radioactive-Pa55word-7f3a9c";

async fn known_password_leaves_no_trace(backend: Backend) {
    let logs = capture_logs();
    let pool = Pool::create(false).await;
    pool.add_user("rita", "rita@example.com", KNOWN_PASSWORD)
        .await;
    pool.add_user_with_temporary_password("tim", "tim@example.com", KNOWN_PASSWORD)
        .await;
    pool.add_user("ruth", "ruth@example.com", KNOWN_PASSWORD)
        .await;
    let app = spawn_app(
        AppOptions::for_pool(backend, &pool)
            .await
            .with("COGNITO_BRIDGE__COGNITO__SEND_CONTEXT_DATA", true)
            // The capture endpoint too, with Kratos down: its password paths end in the outbox.
            .with("COGNITO_BRIDGE__CAPTURE__ENABLED", true)
            .with("COGNITO_BRIDGE__CAPTURE__APP_CLIENT_IDS", &pool.client_id)
            .with("COGNITO_BRIDGE__CAPTURE__JWKS_URL", pool.jwks_url().await)
            .with("COGNITO_BRIDGE__CAPTURE__BCRYPT_COST", 10)
            .with("COGNITO_BRIDGE__KRATOS__ADMIN_URL", "http://127.0.0.1:9/"),
    )
    .await;
    let bearer = format!("Bearer {API_KEY}");

    assert_match(&app.login("rita", KNOWN_PASSWORD).await);
    assert_no_match(&app.login("rita", &format!("{KNOWN_PASSWORD}-wrong")).await);
    assert_no_match(&app.login("nobody", KNOWN_PASSWORD).await);
    assert_no_match(&app.login("tim", KNOWN_PASSWORD).await);
    assert_no_match(&app.login("has space", KNOWN_PASSWORD).await);
    let extended = json!({
        "identifier": "rita", "password": KNOWN_PASSWORD, "identity_id": "id-1",
        "external_id": "sub-1", "client_ip": "203.0.113.7", "user_agent": "UA/1"
    });
    assert_match(&app.post_hook(&extended).await);
    // Kratos's request id reaches the span (so every log line of the call) and the row.
    let tagged = app
        .client
        .post(app.hook_url())
        .bearer_auth(API_KEY)
        .header("Ory-Webhook-Request-ID", "radioactive-request-42")
        .json(&json!({"identifier": "rita", "password": KNOWN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
    let newest = app.store.recent_attempts(1).await.unwrap();
    assert_eq!(
        newest[0].request_id.as_deref(),
        Some("radioactive-request-42")
    );
    // The brute-force guard's refusal path, with the password as the last guess.
    for guess in 0..5 {
        assert_no_match(
            &app.login("tim-not", &format!("{KNOWN_PASSWORD}{guess}"))
                .await,
        );
    }
    assert_no_match(&app.login("tim-not", KNOWN_PASSWORD).await);
    assert_eq!(
        app.store.recent_attempts(1).await.unwrap()[0].outcome,
        "refused_locally"
    );
    // Refused bodies that carry the password.
    let truncated = format!("{{\"identifier\":\"rita\",\"password\":\"{KNOWN_PASSWORD}\"");
    assert_eq!(
        app.post_hook_raw(truncated.into_bytes(), Some(&bearer))
            .await
            .status,
        400
    );
    let wrong_type = format!(
        "{{\"identifier\":[\"{KNOWN_PASSWORD}\"],\"password\":{{\"{KNOWN_PASSWORD}\":1}}}}"
    );
    assert_eq!(
        app.post_hook_raw(wrong_type.into_bytes(), Some(&bearer))
            .await
            .status,
        400
    );
    let unauthenticated = format!("{{\"identifier\":\"rita\",\"password\":\"{KNOWN_PASSWORD}\"}}");
    assert_eq!(
        app.post_hook_raw(unauthenticated.into_bytes(), Some("Bearer wrong"))
            .await
            .status,
        401
    );

    // The capture endpoint's password paths: queued (a hash in the outbox), not verified,
    // no token, a broken body and a password Kratos could not check, each carrying it.
    let (token, _) = pool.sign_in("ruth", KNOWN_PASSWORD).await;
    let capture_url = format!("{}/capture/password", app.address);
    for (password, token, status) in [
        (KNOWN_PASSWORD.to_owned(), Some(&token), 202),
        (format!("{KNOWN_PASSWORD}-wrong"), Some(&token), 403),
        (KNOWN_PASSWORD.to_owned(), None, 401),
        (
            format!("{KNOWN_PASSWORD}{}", "x".repeat(60)),
            Some(&token),
            400,
        ),
    ] {
        let mut request = app
            .client
            .post(&capture_url)
            .json(&json!({ "password": password }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), status);
    }
    let broken = app
        .client
        .post(&capture_url)
        .bearer_auth(&token)
        .body(format!("{{\"password\":\"{KNOWN_PASSWORD}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);

    let (_, metrics) = app.get_text("/metrics").await;
    assert!(metrics.contains("cognito_bridge_guard_refusals_total"));
    assert!(
        !metrics.contains(KNOWN_PASSWORD),
        "the password reached /metrics"
    );
    assert!(!metrics.contains("rita"), "a username reached /metrics");

    let captured = logs.contents();
    assert!(
        captured
            .lines()
            .any(|line| line.contains("password migration hook answered")
                && line.contains("radioactive-request-42")),
        "the request id must be on the hook's log line (its span)"
    );
    assert!(
        captured.contains("password migration hook answered"),
        "the log capture must see the hook's own lines"
    );
    assert!(
        captured.contains(r#""level":"TRACE""#),
        "the log capture must run at TRACE"
    );
    assert!(
        !captured.contains(KNOWN_PASSWORD),
        "the password reached the logs"
    );
    assert!(!captured.contains(API_KEY), "the API key reached the logs");
    assert!(
        !captured.contains("rita@example.com"),
        "a full e-mail address reached the logs"
    );

    assert!(
        !captured.contains(&token),
        "a capture token reached the logs"
    );
    assert!(
        !captured.contains("ruth@example.com"),
        "the e-mail in the capture token reached the logs"
    );

    let dump = app.database.dump().await;
    assert!(dump.contains("rita"), "the dump must see the rows: {dump}");
    assert!(
        dump.contains("$2b$10$"),
        "the queued capture's hash is in the outbox"
    );
    assert!(
        !dump.contains(KNOWN_PASSWORD),
        "the password reached the database: {dump}"
    );
    for file in app.database.sqlite_files() {
        let bytes = std::fs::read(&file).unwrap();
        let found = bytes
            .windows(KNOWN_PASSWORD.len())
            .any(|w| w == KNOWN_PASSWORD.as_bytes());
        assert!(!found, "the password is in {}", file.display());
    }
}

#[tokio::test]
async fn known_password_leaves_no_trace_on_sqlite() {
    known_password_leaves_no_trace(Backend::Sqlite).await;
}

#[tokio::test]
async fn known_password_leaves_no_trace_on_postgres() {
    known_password_leaves_no_trace(Backend::Postgres).await;
}
