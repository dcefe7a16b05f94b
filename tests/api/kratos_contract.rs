//! Contract 1 end to end: the Kratos double logs users in through the real app (moto or the
//! Cognito fake behind it); and the double itself is checked against a scripted stub hook.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cognito_bridge::domain::UserState;
use cognito_bridge::hook::HookRequest;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::doubles::kratos_hook_caller::{self, KratosDouble, KratosOutcome};
use crate::helpers::{API_KEY, AppOptions, Backend, spawn_app};
use crate::moto;

const PASSWORD: &str = "Correct-Horse-9";

// --- the double against the real app ------------------------------------------------------

#[tokio::test]
async fn right_password_is_stored_by_kratos() {
    let pool = moto::Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    let app = spawn_app(AppOptions::for_pool(Backend::Sqlite, &pool).await).await;
    let kratos = KratosDouble::new(&app.hook_url(), API_KEY);

    let login = kratos.login("alice", PASSWORD).await;

    assert_eq!(login.outcome, KratosOutcome::PasswordStored, "{login:?}");
    assert_eq!(login.attempt_count(), 1);
    let user = app.store.user("alice").await.unwrap().unwrap();
    assert_eq!(user.state, UserState::Migrated);
}

#[tokio::test]
async fn wrong_password_is_invalid_credentials() {
    let pool = moto::Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    let app = spawn_app(AppOptions::for_pool(Backend::Sqlite, &pool).await).await;
    let kratos = KratosDouble::new(&app.hook_url(), API_KEY);

    for (identifier, password) in [("alice", "Wrong-Horse-9"), ("nobody", PASSWORD)] {
        let login = kratos.login(identifier, password).await;

        assert_eq!(
            login.outcome,
            KratosOutcome::InvalidCredentials,
            "{login:?}"
        );
        assert_eq!(login.outcome.message_id(), Some(4_000_006));
        assert_eq!(login.attempt_count(), 1);
        assert_eq!(login.last_status(), Some(StatusCode::FORBIDDEN));
    }
}

#[tokio::test]
async fn cognito_unavailable_is_a_502_after_exactly_one_attempt() {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    fake.user("hangs", PASSWORD, Script::Hang);
    fake.user(
        "misrouted",
        PASSWORD,
        Script::error("ResourceNotFoundException"),
    );
    let mut options = AppOptions::new(
        Backend::Sqlite,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    );
    // One Cognito attempt fills the whole deadline, so any Kratos retry would show as a second call.
    options.deadline_ms = 1000;
    options.cognito_timeout_ms = 2000;
    let app = spawn_app(options).await;
    let kratos = KratosDouble::new(&app.hook_url(), API_KEY);

    for user in ["hangs", "misrouted"] {
        let login = kratos.login(user, PASSWORD).await;

        assert_eq!(
            login.outcome,
            KratosOutcome::BadGateway,
            "{user}: {login:?}"
        );
        assert_eq!(
            login.attempt_count(),
            1,
            "{user}: Kratos must not retry a 424"
        );
        assert_eq!(login.last_status(), Some(StatusCode::FAILED_DEPENDENCY));
        assert_eq!(fake.calls(user), 1, "{user}");
    }
}

#[tokio::test]
async fn a_wrong_api_key_is_a_502_after_one_attempt_and_never_reaches_cognito() {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    fake.user("alice", PASSWORD, Script::Authenticate);
    let app = spawn_app(AppOptions::new(
        Backend::Sqlite,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    ))
    .await;
    let kratos = KratosDouble::new(&app.hook_url(), "not-the-configured-key");

    let login = kratos.login("alice", PASSWORD).await;

    assert_eq!(login.outcome, KratosOutcome::BadGateway, "{login:?}");
    assert_eq!(login.attempt_count(), 1);
    assert_eq!(login.last_status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(login.last_body()["error"], "unauthorized");
    assert_eq!(fake.total_calls(), 0);
    assert!(app.store.recent_attempts(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn extended_bodies_are_stored() {
    let pool = moto::Pool::create(false).await;
    pool.add_user("carol", "carol@example.com", PASSWORD).await;
    pool.add_user("dave", "dave@example.com", PASSWORD).await;
    let app = spawn_app(AppOptions::for_pool(Backend::Sqlite, &pool).await).await;
    let kratos = KratosDouble::new(&app.hook_url(), API_KEY);

    let (carol_identity, carol_external) = (
        kratos_hook_caller::uuid_like(),
        kratos_hook_caller::uuid_like(),
    );
    let (dave_identity, dave_external) = (
        kratos_hook_caller::uuid_like(),
        kratos_hook_caller::uuid_like(),
    );
    // What kratos-hooks/password-migration.jsonnet produces.
    let flat = json!({
        "identifier": "carol",
        "password": PASSWORD,
        "identity_id": carol_identity,
        "external_id": carol_external,
        "client_ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    });
    // A body that passes Kratos's context through (identity, flow, headers) unflattened.
    let nested = json!({
        "identifier": "dave",
        "password": PASSWORD,
        "identity": {
            "id": dave_identity,
            "external_id": dave_external,
            "traits": {"email": "dave@example.com"},
        },
        "flow": {"id": kratos_hook_caller::uuid_like(), "type": "browser"},
        "request_headers": {"User-Agent": ["curl/8"], "X-Forwarded-For": ["198.51.100.4"]},
        "request_url": "https://auth.example.com/self-service/login?flow=x",
    });

    for (user, body, identity_id, external_id) in [
        ("carol", flat, &carol_identity, &carol_external),
        ("dave", nested, &dave_identity, &dave_external),
    ] {
        // Both shapes give the bridge the ids that were sent...
        let parsed = HookRequest::from_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.identity_id(), Some(identity_id.as_str()), "{user}");
        assert_eq!(parsed.external_id(), Some(external_id.as_str()), "{user}");

        let login = kratos.login_with_body(&body).await;

        assert_eq!(
            login.outcome,
            KratosOutcome::PasswordStored,
            "{user}: {login:?}"
        );
        assert_eq!(login.attempt_count(), 1);
        let record = app.store.user(user).await.unwrap().unwrap();
        assert_eq!(record.state, UserState::Migrated, "{user}");
        // ...and the attempt row records the identity that logged in.
        assert_eq!(
            last_attempt_identity(&app.database.url).await.as_ref(),
            Some(identity_id),
            "{user}"
        );
    }
}

/// The `identity_id` of the newest attempt row (SQLite), which `recent_attempts` leaves out.
async fn last_attempt_identity(sqlite_url: &str) -> Option<String> {
    use sqlx::Connection;
    let mut connection = sqlx::SqliteConnection::connect(sqlite_url).await.unwrap();
    sqlx::query_scalar("SELECT identity_id FROM attempts ORDER BY id DESC LIMIT 1")
        .fetch_one(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn kratos_request_ids_are_recorded_in_attempts() {
    let pool = moto::Pool::create(false).await;
    pool.add_user("erin", "erin@example.com", PASSWORD).await;
    let app = spawn_app(AppOptions::for_pool(Backend::Sqlite, &pool).await).await;
    let kratos = KratosDouble::new(&app.hook_url(), API_KEY);

    let wrong = kratos.login("erin", "Wrong-Horse-9").await;
    let right = kratos.login("erin", PASSWORD).await;
    assert_eq!(wrong.outcome, KratosOutcome::InvalidCredentials);
    assert_eq!(right.outcome, KratosOutcome::PasswordStored);

    let recorded: Vec<(Option<String>, String)> = app
        .store
        .recent_attempts(10)
        .await
        .unwrap()
        .into_iter()
        .map(|attempt| (attempt.request_id, attempt.outcome))
        .collect();
    assert_eq!(
        recorded,
        [
            (Some(right.request_ids()[0].clone()), "verified".to_owned()),
            (
                Some(wrong.request_ids()[0].clone()),
                "not_authorized".to_owned()
            ),
        ]
    );
}

// --- the double itself, against a scripted stub hook --------------------------------------

/// What the stub saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A hook that answers from a queue of `(status, body)`; an empty queue drops the connection.
struct StubHook {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StubHook {
    async fn start(answers: Vec<(u16, &'static str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some((headers, body)) = cognito_auth_fake::read_request(&mut stream).await
                else {
                    continue;
                };
                record.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    headers,
                    body,
                });
                let Some((status, body)) = answers.lock().unwrap().pop_front() else {
                    continue;
                };
                let response = format!(
                    "HTTP/1.1 {status} Stub\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A double with short pauses, for the rows that are about outcomes, not timing.
fn quick_double(url: &str) -> KratosDouble {
    let mut kratos = KratosDouble::new(url, "stub-key");
    kratos.backoff = [Duration::from_millis(10), Duration::from_millis(20)];
    kratos
}

/// The stub's answers, then what Kratos should conclude and after how many attempts.
type StubCase = (Vec<(u16, &'static str)>, KratosOutcome, usize);

#[tokio::test]
async fn the_double_reads_answers_like_kratos() {
    const MATCH: &str = r#"{"status":"password_match"}"#;
    let cases: [StubCase; 11] = [
        (vec![(200, MATCH)], KratosOutcome::PasswordStored, 1),
        (
            vec![(200, r#"{"status":"password_match","extra":1} trailing"#)],
            KratosOutcome::PasswordStored,
            1,
        ),
        (
            vec![(200, r#"{"status":"password_no_match"}"#)],
            KratosOutcome::InvalidCredentials,
            1,
        ),
        (
            vec![(200, "password_match")],
            KratosOutcome::InvalidCredentials,
            1,
        ),
        (vec![(200, "")], KratosOutcome::InvalidCredentials, 1),
        (vec![(403, MATCH)], KratosOutcome::InvalidCredentials, 1),
        (vec![(501, MATCH)], KratosOutcome::BadGateway, 1),
        (
            vec![(424, "{}"), (200, MATCH)],
            KratosOutcome::BadGateway,
            1,
        ),
        (
            vec![(401, "{}"), (200, MATCH)],
            KratosOutcome::BadGateway,
            1,
        ),
        (
            vec![(503, "{}"), (429, "{}"), (200, MATCH)],
            KratosOutcome::PasswordStored,
            3,
        ),
        (
            vec![(500, "{}"), (502, "{}"), (504, "{}"), (200, MATCH)],
            KratosOutcome::BadGateway,
            3,
        ),
    ];
    for (answers, outcome, attempts) in cases {
        let label = format!("{answers:?}");
        let stub = StubHook::start(answers).await;

        let login = quick_double(&stub.url).login("someone", "pw").await;

        assert_eq!(login.outcome, outcome, "{label}");
        assert_eq!(login.attempt_count(), attempts, "{label}");
        assert_eq!(stub.seen().len(), attempts, "{label}");
    }
}

#[tokio::test]
async fn the_double_retries_like_kratos_with_the_same_trigger_id() {
    // No answer at all: a connection error each time; real pauses of 1 s then 2 s.
    let stub = StubHook::start(Vec::new()).await;
    let kratos = KratosDouble::new(&stub.url, "stub-key");

    let login = kratos.login("Someone@Example.com ", "pw").await;

    assert_eq!(login.outcome, KratosOutcome::BadGateway);
    assert_eq!(login.attempt_count(), 3);
    let seen = stub.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(1));
    assert!(seen[2].at - seen[1].at >= Duration::from_secs(2));
    let request_ids: Vec<&str> = seen
        .iter()
        .map(|s| s.headers["ory-webhook-request-id"].as_str())
        .collect();
    assert_eq!(request_ids, login.request_ids());
    assert!(request_ids[0] != request_ids[1] && request_ids[1] != request_ids[2]);
    for request in &seen {
        assert_eq!(request.headers["ory-webhook-trigger-id"], login.trigger_id);
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.headers["authorization"], "Bearer stub-key");
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        // Kratos sends the identifier exactly as typed.
        assert_eq!(
            body,
            json!({"identifier": "Someone@Example.com ", "password": "pw"})
        );
    }
}

#[test]
fn only_the_first_1024_bytes_count() {
    let padding = " ".repeat(1024);
    let late = format!(r#"{padding}{{"status":"password_match"}}"#);
    assert!(!kratos_hook_caller::says_password_match(late.as_bytes()));
    let early = format!(r#"{{"status":"password_match"}}{padding}"#);
    assert!(kratos_hook_caller::says_password_match(early.as_bytes()));
    assert!(kratos_hook_caller::says_password_match(
        br#"{"Status":"password_match"}"#
    ));
    assert!(!kratos_hook_caller::says_password_match(
        br#"["password_match"]"#
    ));
}
