//! The hook against moto, through the real HTTP server, on SQLite and Postgres.

use cognito_bridge::domain::UserState;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{API_KEY, AppOptions, Backend, assert_match, assert_no_match, spawn_app};
use crate::moto::Pool;

const PASSWORD: &str = "Correct-Horse-Battery-9";

on_both_backends!(
    verdicts_and_rows,
    temporary_password_allowed_by_policy,
    bad_requests_are_refused_and_nothing_recorded_is_lost,
    stored_usernames_resolve_other_spellings,
);

async fn verdicts_and_rows(backend: Backend) {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    pool.add_user("bob", "bob@example.com", PASSWORD).await;
    pool.disable("bob").await;
    pool.add_user_with_temporary_password("carol", "carol@example.com", "Temp-Pass-123")
        .await;
    let app = spawn_app(AppOptions::for_pool(backend, &pool).await).await;

    assert_match(&app.login("alice", PASSWORD).await);
    assert_no_match(&app.login("alice", "not-the-password").await);
    assert_no_match(&app.login("nobody", PASSWORD).await);
    assert_no_match(&app.login("bob", PASSWORD).await);
    assert_no_match(&app.login("carol", "Temp-Pass-123").await);

    let alice = app
        .store
        .user("alice")
        .await
        .unwrap()
        .expect("alice has a row");
    assert_eq!(alice.state, UserState::Migrated);
    assert_eq!(alice.migrated_via.as_deref(), Some("hook"));
    assert!(alice.migrated_at.is_some());
    assert!(!alice.mfa_dropped);
    // NotAuthorizedException does not prove the user exists, so it creates no row.
    assert!(app.store.user("bob").await.unwrap().is_none());
    let carol = app
        .store
        .user("carol")
        .await
        .unwrap()
        .expect("carol has a row");
    assert_eq!(carol.state, UserState::NeedsRecovery);
    assert!(
        app.store.user("nobody").await.unwrap().is_none(),
        "unknown users get no row"
    );

    let attempts = app.store.recent_attempts(10).await.unwrap();
    let outcomes: Vec<&str> = attempts.iter().rev().map(|a| a.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "verified",
            "not_authorized",
            "unknown_user",
            "not_authorized",
            "temporary_password_denied"
        ]
    );
    assert_eq!(attempts.len(), 5, "{attempts:?}");
    assert!(attempts.iter().all(|a| a.cognito_calls == 1));
    assert!(attempts.iter().all(|a| a.cognito_latency_ms.is_some()));
    assert!(attempts.iter().all(|a| {
        a.request_id
            .as_deref()
            .is_some_and(|id| id.starts_with("req-"))
    }));

    let progress = app.store.progress().await.unwrap();
    assert_eq!(progress.total, 2);
    assert_eq!(progress.states["migrated"], 1);
    assert_eq!(progress.states["pending"], 0);
    assert_eq!(progress.states["needs_recovery"], 1);
    assert_eq!(progress.attempts.total, 5);

    // A migrated user stays migrated whatever comes later.
    assert_no_match(&app.login("alice", "wrong-again").await);
    let alice = app.store.user("alice").await.unwrap().unwrap();
    assert_eq!(alice.state, UserState::Migrated);
}

async fn temporary_password_allowed_by_policy(backend: Backend) {
    let pool = Pool::create(false).await;
    pool.add_user_with_temporary_password("carol", "carol@example.com", "Temp-Pass-123")
        .await;
    let mut options = AppOptions::for_pool(backend, &pool).await;
    options.temporary_password_policy = "allow";
    let app = spawn_app(options).await;

    assert_no_match(&app.login("carol", "wrong").await);
    assert_match(&app.login("carol", "Temp-Pass-123").await);
    let carol = app.store.user("carol").await.unwrap().unwrap();
    assert_eq!(carol.state, UserState::Migrated);
}

async fn bad_requests_are_refused_and_nothing_recorded_is_lost(backend: Backend) {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    let app = spawn_app(AppOptions::for_pool(backend, &pool).await).await;
    assert_match(&app.login("alice", PASSWORD).await);
    let bearer = format!("Bearer {API_KEY}");
    let valid = serde_json::to_vec(&json!({"identifier": "alice", "password": PASSWORD})).unwrap();

    // (case, body, Authorization header, expected status, expected error code)
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no key",
            valid.clone(),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong key",
            valid.clone(),
            Some("Bearer nope"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "basic auth",
            valid.clone(),
            Some("Basic YTpi"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "malformed JSON",
            b"{\"identifier\": \"alice\",".to_vec(),
            Some(&bearer),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "missing password",
            b"{\"identifier\": \"alice\"}".to_vec(),
            Some(&bearer),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "missing identifier",
            b"{\"password\": \"x\"}".to_vec(),
            Some(&bearer),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "wrong types",
            b"{\"identifier\": 1, \"password\": true}".to_vec(),
            Some(&bearer),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "empty body",
            Vec::new(),
            Some(&bearer),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "1 MB body",
            vec![b' '; 1024 * 1024],
            Some(&bearer),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "1 MB body without key",
            vec![b' '; 1024 * 1024],
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ];
    for (name, body, authorization, status, code) in cases {
        let answer = app.post_hook_raw(body, authorization).await;
        assert_eq!(answer.status, status, "{name}: {answer:?}");
        assert_eq!(answer.body["error"], code, "{name}: {answer:?}");
        assert!(
            answer.body_len < 300,
            "{name}: body of {} bytes",
            answer.body_len
        );
    }
    // A body over the limit sent in chunks (no Content-Length) is refused too.
    let chunks =
        futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 16 * 1024])));
    let response = app
        .client
        .post(app.hook_url())
        .header("Authorization", &bearer)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (status, body) = app.get("/no/such/path").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = app.get("/hooks/password-migration").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );

    // Nothing was recorded for refused requests, and the earlier migration is intact.
    assert_eq!(app.store.recent_attempts(100).await.unwrap().len(), 1);
    let alice = app.store.user("alice").await.unwrap().unwrap();
    assert_eq!(alice.state, UserState::Migrated);
    // The server still serves.
    assert_match(&app.login("alice", PASSWORD).await);
}

async fn stored_usernames_resolve_other_spellings(backend: Backend) {
    let pool = Pool::create(false).await;
    pool.add_user("Alice.Smith", "alice@example.com", PASSWORD)
        .await;
    let app = spawn_app(AppOptions::for_pool(backend, &pool).await).await;

    // Unknown to the store yet: the identifier as typed goes to Cognito.
    assert_match(&app.login("Alice.Smith", PASSWORD).await);
    // Now the store knows the user; other case and surrounding blanks resolve to it.
    assert_match(&app.login("  alice.smith ", PASSWORD).await);
    let attempts = app.store.recent_attempts(10).await.unwrap();
    let asked: Vec<Option<&str>> = attempts
        .iter()
        .map(|a| a.cognito_username.as_deref())
        .collect();
    assert_eq!(asked, [Some("Alice.Smith"); 2], "{attempts:?}");
    assert_eq!(app.store.progress().await.unwrap().total, 1);
}

#[tokio::test]
async fn health_endpoints_answer() {
    let pool = Pool::create(false).await;
    let app = spawn_app(AppOptions::for_pool(Backend::Sqlite, &pool).await).await;
    assert_eq!(
        app.get("/health/alive").await,
        (StatusCode::OK, json!({"status": "alive"}))
    );
    assert_eq!(
        app.get("/health/ready").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
}
