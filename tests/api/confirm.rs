//! Kratos's confirmation hooks (`/hooks/login-after`, `/hooks/settings-after`): the store's
//! state changes on both backends, and the endpoints' contract (key, body, answers).
//! Through the real Kratos: `confirm_kratos.rs`.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use cognito_bridge::domain::{Outcome, UserState};
use cognito_bridge::store::{ConfirmOutcome, KratosIdentityRef, Store, UserRecord};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::doubles::cognito_auth_fake;
use crate::helpers::{
    API_KEY, AppOptions, Backend, ROTATED_OUT_KEY, TestApp, attempt, capture_logs, import_users,
    spawn_app,
};

pub const LOGIN_AFTER: &str = "/hooks/login-after";
pub const SETTINGS_AFTER: &str = "/hooks/settings-after";

const PENDING_ID: &str = "0b7c6d2e-1111-4c5e-9a3b-000000000001";
const RECOVERY_ID: &str = "0b7c6d2e-1111-4c5e-9a3b-000000000002";
const HOOKED_ID: &str = "0b7c6d2e-1111-4c5e-9a3b-000000000003";
const SUBBED_ID: &str = "0b7c6d2e-1111-4c5e-9a3b-000000000004";
const UNKNOWN_ID: &str = "0b7c6d2e-1111-4c5e-9a3b-0000000000ff";

on_both_backends!(
    a_native_login_migrates_confirms_and_notes_the_user,
    a_password_set_in_kratos_migrates_via_reset,
    a_hook_match_written_after_the_login_after_keeps_via_hook,
    the_endpoints_record_and_answer_small_json,
);

/// The app, with no Cognito behind it (these hooks never ask Cognito).
async fn app(backend: Backend) -> TestApp {
    spawn_app(AppOptions::new(
        backend,
        "http://127.0.0.1:9",
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    ))
    .await
}

/// pending (`pending`), needs_recovery (`recovery`), migrated via hook (`hooked`), and a
/// pending row known by its `sub` only to a newer identity (`subbed`).
async fn users(store: &dyn Store) -> DateTime<Utc> {
    import_users(
        store,
        &[
            ("pending", None, "sub-pending", PENDING_ID),
            ("recovery", None, "sub-recovery", RECOVERY_ID),
            ("hooked", None, "sub-hooked", HOOKED_ID),
            ("subbed", None, "sub-subbed", "identity-replaced-since"),
        ],
    )
    .await;
    let before = now() - Duration::hours(1);
    store
        .record_attempt(&attempt("recovery", before, Outcome::ResetRequired))
        .await
        .unwrap();
    store
        .record_attempt(&attempt("hooked", before, Outcome::Verified))
        .await
        .unwrap();
    before
}

/// Times as both databases keep them (Postgres: microseconds).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn identity(identity_id: &str) -> KratosIdentityRef<'_> {
    KratosIdentityRef {
        identity_id,
        external_id: None,
    }
}

async fn row(store: &dyn Store, username: &str) -> UserRecord {
    store.user(username).await.unwrap().expect(username)
}

async fn a_native_login_migrates_confirms_and_notes_the_user(backend: Backend) {
    let app = app(backend).await;
    let store = app.store.as_ref();
    let hooked_at = users(store).await;
    let t1 = now();
    let t2 = t1 + Duration::seconds(5);

    // pending: Kratos let the user in with a password we never saw.
    let outcome = store.confirm_login(identity(PENDING_ID), t1).await.unwrap();
    assert_eq!(outcome, ConfirmOutcome::Migrated);
    let user = row(store, "pending").await;
    assert_eq!(user.state, UserState::Migrated);
    assert_eq!(user.migrated_via.as_deref(), Some("kratos"));
    assert_eq!(
        (user.migrated_at, user.confirmed_at, user.last_seen_at),
        (Some(t1), Some(t1), Some(t1))
    );

    // Later logins: only last_seen_at, which never goes back.
    let outcome = store.confirm_login(identity(PENDING_ID), t2).await.unwrap();
    assert_eq!(outcome, ConfirmOutcome::Seen);
    let outcome = store
        .confirm_login(identity(PENDING_ID), t1 - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(outcome, ConfirmOutcome::Seen, "a late call, out of order");
    let user = row(store, "pending").await;
    assert_eq!(
        (user.migrated_at, user.confirmed_at, user.last_seen_at),
        (Some(t1), Some(t1), Some(t2))
    );

    // needs_recovery: the login proves Kratos has a password too.
    let outcome = store
        .confirm_login(identity(RECOVERY_ID), t1)
        .await
        .unwrap();
    assert_eq!(outcome, ConfirmOutcome::Migrated);
    let user = row(store, "recovery").await;
    assert_eq!(
        (user.state, user.migrated_via.as_deref()),
        (UserState::Migrated, Some("kratos"))
    );

    // Migrated by the hook: confirmed once, keeps how and when.
    let outcome = store.confirm_login(identity(HOOKED_ID), t1).await.unwrap();
    assert_eq!(outcome, ConfirmOutcome::Confirmed);
    let outcome = store.confirm_login(identity(HOOKED_ID), t2).await.unwrap();
    assert_eq!(outcome, ConfirmOutcome::Seen);
    let user = row(store, "hooked").await;
    assert_eq!(user.migrated_via.as_deref(), Some("hook"));
    assert_eq!(
        (user.migrated_at, user.confirmed_at, user.last_seen_at),
        (Some(hooked_at), Some(t1), Some(t2))
    );

    // The external id finds a row whose identity id is not this one (v25.4+ bodies).
    let by_sub = KratosIdentityRef {
        identity_id: SUBBED_ID,
        external_id: Some("sub-subbed"),
    };
    assert_eq!(
        store.confirm_login(by_sub, t1).await.unwrap(),
        ConfirmOutcome::Migrated
    );

    // Nobody, and ids naming two users: nothing written.
    assert_eq!(
        store.confirm_login(identity(UNKNOWN_ID), t1).await.unwrap(),
        ConfirmOutcome::NoMatch
    );
    let split = KratosIdentityRef {
        identity_id: HOOKED_ID,
        external_id: Some("sub-pending"),
    };
    let before = (row(store, "hooked").await, row(store, "pending").await);
    assert_eq!(
        store
            .confirm_login(split, t2 + Duration::seconds(9))
            .await
            .unwrap(),
        ConfirmOutcome::IdentityMismatch
    );
    let after = (row(store, "hooked").await, row(store, "pending").await);
    assert_eq!(before.0.last_seen_at, after.0.last_seen_at);
    assert_eq!(before.1.last_seen_at, after.1.last_seen_at);

    let progress = store.progress().await.unwrap();
    assert_eq!(progress.states["migrated"], 4);
    assert_eq!(progress.states["pending"], 0);
}

async fn a_password_set_in_kratos_migrates_via_reset(backend: Backend) {
    let app = app(backend).await;
    let store = app.store.as_ref();
    let hooked_at = users(store).await;
    let t1 = now();

    for (id, username) in [(PENDING_ID, "pending"), (RECOVERY_ID, "recovery")] {
        let outcome = store
            .password_set_in_kratos(identity(id), t1)
            .await
            .unwrap();
        assert_eq!(outcome, ConfirmOutcome::Migrated, "{username}");
        let user = row(store, username).await;
        assert_eq!(user.state, UserState::Migrated);
        assert_eq!(user.migrated_via.as_deref(), Some("reset"));
        assert_eq!((user.migrated_at, user.last_seen_at), (Some(t1), Some(t1)));
        assert_eq!(user.confirmed_at, None, "a password change is not a login");
    }

    // A migrated user who changes the password keeps how and when they migrated.
    let t2 = t1 + Duration::seconds(3);
    let outcome = store
        .password_set_in_kratos(identity(HOOKED_ID), t2)
        .await
        .unwrap();
    assert_eq!(outcome, ConfirmOutcome::Seen);
    let user = row(store, "hooked").await;
    assert_eq!(user.migrated_via.as_deref(), Some("hook"));
    assert_eq!(user.migrated_at, Some(hooked_at));
    assert_eq!(user.last_seen_at, Some(t2));

    assert_eq!(
        store
            .password_set_in_kratos(identity(UNKNOWN_ID), t2)
            .await
            .unwrap(),
        ConfirmOutcome::NoMatch
    );
}

/// Kratos calls the login-after hook for the very login the migrate hook answered, and may
/// reach us before the hook's outcome is written: the row says `kratos` for a moment, and the
/// hook's match then says how the password got there.
async fn a_hook_match_written_after_the_login_after_keeps_via_hook(backend: Backend) {
    let app = app(backend).await;
    let store = app.store.as_ref();
    users(store).await;
    let hook_at = now();
    let login_after_at = hook_at + Duration::milliseconds(40);

    store
        .confirm_login(identity(PENDING_ID), login_after_at)
        .await
        .unwrap();
    assert_eq!(
        row(store, "pending").await.migrated_via.as_deref(),
        Some("kratos")
    );
    store
        .record_attempt(&attempt("pending", hook_at, Outcome::Verified))
        .await
        .unwrap();
    let user = row(store, "pending").await;
    assert_eq!(user.state, UserState::Migrated);
    assert_eq!(user.migrated_via.as_deref(), Some("hook"));
    assert_eq!(user.migrated_at, Some(hook_at));
    assert_eq!(user.confirmed_at, Some(login_after_at));

    // Anything but a match leaves `kratos` alone; other vias are never replaced.
    store
        .confirm_login(identity(RECOVERY_ID), login_after_at)
        .await
        .unwrap();
    store
        .record_attempt(&attempt("recovery", hook_at, Outcome::NotAuthorized))
        .await
        .unwrap();
    assert_eq!(
        row(store, "recovery").await.migrated_via.as_deref(),
        Some("kratos")
    );
    let by_sub = KratosIdentityRef {
        identity_id: SUBBED_ID,
        external_id: Some("sub-subbed"),
    };
    store
        .password_set_in_kratos(by_sub, login_after_at)
        .await
        .unwrap();
    store
        .record_attempt(&attempt("subbed", hook_at, Outcome::Verified))
        .await
        .unwrap();
    assert_eq!(
        row(store, "subbed").await.migrated_via.as_deref(),
        Some("reset")
    );
}

/// POST to a confirmation hook; the status and the JSON body.
pub async fn post(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
    authorization: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.expect("the hook answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn body(identity_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "identity_id": identity_id,
        "external_id": null,
        "traits": {"email": "someone@example.com"}
    }))
    .unwrap()
}

async fn the_endpoints_record_and_answer_small_json(backend: Backend) {
    let app = app(backend).await;
    users(app.store.as_ref()).await;
    let key = format!("Bearer {API_KEY}");

    // The hook keys, checked as for the migrate hook: none, wrong, rotated, right.
    for path in [LOGIN_AFTER, SETTINGS_AFTER] {
        for wrong in [None, Some("Bearer not-a-key"), Some(API_KEY)] {
            let (status, answer) = post(&app, path, body(PENDING_ID), wrong).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {wrong:?}");
            assert_eq!(answer["error"], "unauthorized");
        }
    }
    assert_eq!(
        row(app.store.as_ref(), "pending").await.state,
        UserState::Pending,
        "nothing written without the key"
    );

    // Bad bodies: 400 (413 over hooks.max_body_bytes), small JSON, no value echoed.
    let bad: [&[u8]; 5] = [
        b"",
        b"{not json",
        b"[]",
        br#"{"identity_id": "someone@example.com"}"#,
        br#"{"external_id": "sub-pending"}"#,
    ];
    for raw in bad {
        let (status, answer) = post(&app, LOGIN_AFTER, raw.to_vec(), Some(&key)).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(answer["error"], "bad_request");
        assert!(!answer.to_string().contains("someone@"), "{answer}");
    }
    let huge = format!(
        r#"{{"identity_id":"{PENDING_ID}","traits":{{"x":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    let (status, answer) = post(&app, LOGIN_AFTER, huge.into_bytes(), Some(&key)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"], "payload_too_large");
    let response = app
        .client
        .get(format!("{}{LOGIN_AFTER}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Unknown identity: 200, nothing matched (Kratos must never see an error for it).
    let (status, answer) = post(&app, LOGIN_AFTER, body(UNKNOWN_ID), Some(&key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"status": "no_match"}));

    // Each key of the rotation works; each answer says what happened.
    let rotated = format!("Bearer {ROTATED_OUT_KEY}");
    let (status, answer) = post(&app, LOGIN_AFTER, body(PENDING_ID), Some(&rotated)).await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({"status": "migrated"}))
    );
    let (_, answer) = post(&app, LOGIN_AFTER, body(PENDING_ID), Some(&key)).await;
    assert_eq!(answer, json!({"status": "seen"}));
    let (_, answer) = post(&app, LOGIN_AFTER, body(HOOKED_ID), Some(&key)).await;
    assert_eq!(answer, json!({"status": "confirmed"}));
    let (_, answer) = post(&app, SETTINGS_AFTER, body(RECOVERY_ID), Some(&key)).await;
    assert_eq!(answer, json!({"status": "migrated"}));
    let split = serde_json::to_vec(&json!({"identity_id": HOOKED_ID, "external_id": "sub-subbed"}))
        .unwrap();
    let (_, answer) = post(&app, SETTINGS_AFTER, split, Some(&key)).await;
    assert_eq!(
        answer,
        json!({"status": "no_match", "reason": "identity_mismatch"})
    );

    let store = app.store.as_ref();
    assert_eq!(
        row(store, "pending").await.migrated_via.as_deref(),
        Some("kratos")
    );
    assert_eq!(
        row(store, "recovery").await.migrated_via.as_deref(),
        Some("reset")
    );
    assert!(row(store, "hooked").await.confirmed_at.is_some());
    assert_eq!(row(store, "subbed").await.state, UserState::Pending);
    // No attempt rows: these are not password checks.
    let attempts = store.recent_attempts(100).await.unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");

    // Counted by hook and result; refused calls (key, body) are not.
    let (status, metrics) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let series: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("cognito_bridge_confirmations_total{"))
        .collect();
    let mut expected = vec![
        r#"cognito_bridge_confirmations_total{hook="login_after",result="no_match"} 1"#,
        r#"cognito_bridge_confirmations_total{hook="login_after",result="migrated"} 1"#,
        r#"cognito_bridge_confirmations_total{hook="login_after",result="seen"} 1"#,
        r#"cognito_bridge_confirmations_total{hook="login_after",result="confirmed"} 1"#,
        r#"cognito_bridge_confirmations_total{hook="settings_after",result="migrated"} 1"#,
        r#"cognito_bridge_confirmations_total{hook="settings_after",result="identity_mismatch"} 1"#,
    ];
    let mut series = series;
    series.sort();
    expected.sort();
    assert_eq!(series, expected, "{metrics}");
}

/// Bodies carry the identity's traits: no full e-mail address reaches a log line, even at
/// TRACE; an unknown identity's is logged redacted, with Kratos's request id.
#[tokio::test]
async fn no_full_email_address_in_the_logs() {
    let logs = capture_logs();
    let app = app(Backend::Sqlite).await;
    users(app.store.as_ref()).await;
    let address = "radioactive.person@example.com";
    let key = format!("Bearer {API_KEY}");
    for (path, id) in [
        (LOGIN_AFTER, UNKNOWN_ID),
        (LOGIN_AFTER, PENDING_ID),
        (SETTINGS_AFTER, RECOVERY_ID),
    ] {
        let response = app
            .client
            .post(format!("{}{path}", app.address))
            .header("Authorization", &key)
            .header("Ory-Webhook-Request-ID", "confirm-request-7")
            .json(&json!({"identity_id": id, "traits": {"email": address}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let broken = format!(r#"{{"identity_id": "{address}", "traits": {{"email": "{address}"}}"#);
    let (status, _) = post(&app, LOGIN_AFTER, broken.into_bytes(), Some(&key)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let text = logs.contents();
    assert!(
        !text.contains("radioactive.person"),
        "a full address was logged"
    );
    let unknown = text
        .lines()
        .find(|line| line.contains("no user row for this Kratos identity"))
        .expect("the unknown identity's log line");
    assert!(unknown.contains("r***@example.com"), "{unknown}");
    assert!(unknown.contains("confirm-request-7"), "{unknown}");
}
