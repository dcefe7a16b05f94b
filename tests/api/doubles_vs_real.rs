//! The doubles against the real Kratos v1.3.1, so they cannot drift from it.
//!
//! The hook double (`kratos_double.rs`) stays for what a real Kratos cannot be made to do on
//! demand; here it and the real Kratos call the same scripted hook with the same answers, and
//! must end every login the same way after the same number of calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::API_KEY;
use crate::kratos_double::{KratosDouble, KratosOutcome};
use crate::ory::{Kratos, Login, MigrateHook};

#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestShape {
    method: String,
    body_keys: Vec<String>,
    headers: Vec<(String, Option<String>)>,
}

/// Headers the bridge reads, with their values where they are not per-call ids.
fn shape_of(request: &actix_web::HttpRequest, body: &[u8]) -> RequestShape {
    let mut body_keys: Vec<String> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    body_keys.sort();
    let headers = [
        ("authorization", true),
        ("content-type", true),
        ("ory-webhook-request-id", false),
        ("ory-webhook-trigger-id", false),
    ]
    .into_iter()
    .filter_map(|(name, keep_value)| {
        let value = request.headers().get(name)?.to_str().ok()?;
        Some((
            name.to_owned(),
            keep_value.then(|| value.split(';').next().unwrap_or_default().to_owned()),
        ))
    })
    .collect();
    RequestShape {
        method: request.method().to_string(),
        body_keys,
        headers,
    }
}

/// A migration hook that answers what it is told and counts its calls.
struct ScriptedHook {
    url: String,
    calls: Arc<AtomicUsize>,
    answer: Arc<Mutex<(u16, String)>>,
    /// What the last call looked like: its body's keys and the headers the bridge reads.
    last_request: Arc<Mutex<Option<RequestShape>>>,
    server: actix_web::dev::ServerHandle,
}

impl ScriptedHook {
    async fn start() -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(Mutex::new((200, String::new())));
        let last_request = Arc::new(Mutex::new(None));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hooks/password-migration",
            listener.local_addr().unwrap()
        );
        let shared = (calls.clone(), answer.clone(), last_request.clone());
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(
                move |request: actix_web::HttpRequest, body: web::Bytes| {
                    let (counted, scripted, last) = shared.clone();
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        *last.lock().unwrap() = Some(shape_of(&request, &body));
                        let (status, body) = scripted.lock().unwrap().clone();
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                            .content_type("application/json")
                            .body(body)
                    }
                },
            ))
        })
        .listen(listener)
        .unwrap()
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url,
            calls,
            answer,
            last_request,
            server: handle,
        }
    }

    fn script(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
        self.calls.store(0, Ordering::SeqCst);
    }

    fn last_request(&self) -> Option<RequestShape> {
        self.last_request.lock().unwrap().take()
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The real Kratos's login, in the double's terms.
fn outcome_of(login: &Login) -> KratosOutcome {
    if login.status == StatusCode::OK && login.session_token().is_some() {
        KratosOutcome::PasswordStored
    } else if login.status == StatusCode::BAD_REQUEST && login.message_ids().contains(&4_000_006) {
        KratosOutcome::InvalidCredentials
    } else {
        assert_eq!(
            login.status,
            StatusCode::BAD_GATEWAY,
            "neither a session, nor invalid credentials, nor a bad gateway: {:#}",
            login.body
        );
        KratosOutcome::BadGateway
    }
}

#[tokio::test]
async fn the_hook_double_ends_logins_like_the_real_kratos() {
    let hook = ScriptedHook::start().await;
    let kratos = Kratos::start(&MigrateHook {
        url: hook.url.clone(),
        api_key: API_KEY.to_owned(),
    })
    .await;
    let mut double = KratosDouble::new(&hook.url, API_KEY);
    // The pauses do not change the count of attempts; keep the test short.
    double.backoff = [Duration::from_millis(50), Duration::from_millis(50)];
    // As v1.3.x does (the double's default is the current line's header set).
    double.sends_trigger_id = false;

    let match_body = r#"{"status":"password_match"}"#;
    let scenarios: [(u16, &str); 8] = [
        (200, match_body),
        (200, r#"{"status":"password_no_match"}"#),
        (200, "not json"),
        (403, r#"{"status":"password_no_match"}"#),
        (424, r#"{"status":"unavailable"}"#),
        (429, r#"{"status":"slow_down"}"#),
        (500, r#"{"error":"boom"}"#),
        (501, r#"{"error":"not implemented"}"#),
    ];
    let mut differences = Vec::new();
    for (n, (status, body)) in scenarios.into_iter().enumerate() {
        // A fresh flagged identity each time: a stored password would bypass the hook.
        let email = format!("scenario-{n}@example.com");
        let (created, answer) = kratos
            .create_identity(&json!({
                "schema_id": "default",
                "traits": {"email": email},
                "credentials": {"password": {"config": {"use_password_migration_hook": true}}},
            }))
            .await;
        assert_eq!(created, StatusCode::CREATED, "{answer}");

        hook.script(status, body);
        let real = outcome_of(&kratos.login(&email, "some-password").await);
        let real_calls = hook.calls();
        let real_request = hook.last_request();

        hook.script(status, body);
        let doubled = double.login(&email, "some-password").await;
        let double_calls = hook.calls();
        assert_eq!(double_calls, doubled.attempt_count());
        let double_request = hook.last_request();
        if real_request != double_request {
            differences.push(format!(
                "the hook request: real Kratos {real_request:?}, the double {double_request:?}"
            ));
        }

        println!(
            "hook {status} {body}: real {real:?} after {real_calls} call(s), double {:?} after {double_calls}",
            doubled.outcome
        );
        if (real, real_calls) != (doubled.outcome, double_calls) {
            differences.push(format!(
                "hook {status} {body}: real Kratos {real:?} after {real_calls} call(s), \
                 the double {:?} after {double_calls}",
                doubled.outcome
            ));
        }
    }
    hook.server.stop(false).await;
    assert!(differences.is_empty(), "{differences:#?}");
}
