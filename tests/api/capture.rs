//! `POST /capture/password` (Strategy C) with moto as Cognito: the token checks (tokens minted
//! here with test keys published from a loopback JWKS, and moto's own tokens), the brute-force
//! guard and CORS; then the write-back into the real Kratos v1.3.1 (the next Kratos login is
//! native), the outbox while Kratos is down, a restart, and radioactivity. On SQLite and
//! Postgres where the store matters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{HttpResponse, web};
use cognito_bridge::domain::UserState;
use cognito_bridge::import::ImportOptions;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::import::{import_settings_with_public_url, run_import};
use crate::helpers::{
    AppOptions, Backend, TestApp, assert_no_match, capture_logs, serve_on_loopback, spawn_app,
};
use crate::moto::{self, Pool, REGION};
use crate::ory::{Kratos, MigrateHook};

const PASSWORD: &str = "Capture-Correct-Horse-7";
const TRAITS: &str = "[import]\nlist_rate = 30\n[import.traits]\nemail = \"email\"\n";
/// Nothing listens here: Kratos "down" for tests that never reach it.
const NO_KRATOS: &str = "http://127.0.0.1:9/";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The bridge with `[capture]` on for `pool`'s app client.
fn capture_options(options: AppOptions, pool: &Pool, jwks_url: &str, kratos: &str) -> AppOptions {
    options
        .with("COGNITO_BRIDGE__CAPTURE__ENABLED", true)
        .with("COGNITO_BRIDGE__CAPTURE__APP_CLIENT_IDS", &pool.client_id)
        .with("COGNITO_BRIDGE__CAPTURE__JWKS_URL", jwks_url)
        .with("COGNITO_BRIDGE__CAPTURE__BCRYPT_COST", 10)
        .with("COGNITO_BRIDGE__KRATOS__ADMIN_URL", kratos)
        // The write-back's lookup, GET and PUT against the real Kratos took over the default
        // 3 s once on this 2-core machine under a doubly loaded suite, and the capture was
        // queued instead of captured. The tests of the timeout itself set their own (later
        // settings win).
        .with("COGNITO_BRIDGE__CAPTURE__KRATOS_TIMEOUT_MS", 15_000)
}

/// `POST /capture/password`: the status, `Retry-After`, and the JSON body.
async fn capture(app: &TestApp, token: Option<&str>, password: &str) -> (StatusCode, Value) {
    let mut request = app
        .client
        .post(format!("{}/capture/password", app.address))
        .json(&json!({ "password": password }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn error_code(answer: &(StatusCode, Value)) -> (StatusCode, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or_default())
}

/// A counter of a family in `/metrics` (all series summed).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A test signing key and its public JWK.
struct TestKey {
    encoding: EncodingKey,
    public_pem: Vec<u8>,
    jwk: Value,
}

fn test_key(file: &str, kid: &str) -> TestKey {
    let path = format!("{}/tests/support/jwt/{file}", env!("CARGO_MANIFEST_DIR"));
    let pem = std::fs::read(path).unwrap();
    let encoding = EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    let public_pem = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(format!(
            "{}/tests/support/jwt/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap()
        .stdout;
    TestKey {
        encoding,
        public_pem,
        jwk: serde_json::to_value(jwk).unwrap(),
    }
}

fn sign(key: &TestKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// A loopback JWKS whose keys the test changes, counting its fetches.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(keys: Vec<Value>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (keys.clone(), fetches.clone());
        let (url, _handle) = serve_on_loopback(move || {
            let (served, counted) = (served.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let keys = served.lock().unwrap().clone();
                HttpResponse::Ok().json(json!({ "keys": keys }))
            }
        });
        Self {
            url: format!("{url}/jwks.json"),
            keys,
            fetches,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// Claims of a Cognito ID token for `username` in `pool`, logged in `age` seconds ago.
fn id_claims(pool: &Pool, username: &str, sub: &str, age: i64) -> Value {
    json!({
        "sub": sub,
        "aud": pool.client_id,
        "token_use": "id",
        "auth_time": now() - age,
        "iss": format!("https://cognito-idp.{REGION}.amazonaws.com/{}", pool.id),
        "cognito:username": username,
        "exp": now() + 3600,
        "iat": now() - age,
        "email": format!("{username}@example.com"),
    })
}

fn with(mut claims: Value, changes: &[(&str, Value)]) -> Value {
    for (name, value) in changes {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(*name);
        } else {
            claims[*name] = value.clone();
        }
    }
    claims
}

#[tokio::test]
async fn tokens_are_checked_before_anything_else() {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    pool.add_user("bob", "bob@example.com", "Bobs-Own-Passw0rd!")
        .await;
    let sub = pool.sub_of("alice").await;
    let one = test_key("signing-key-1.pem", "key-1");
    let two = test_key("signing-key-2.pem", "key-2");
    // moto's own key too, so its tokens verify here as well.
    let moto_keys: JwkSet = reqwest::get(pool.jwks_url().await)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut published = vec![one.jwk.clone()];
    published.extend(
        moto_keys
            .keys
            .iter()
            .map(|key| serde_json::to_value(key).unwrap()),
    );
    let jwks = JwksServer::start(published);
    let options = capture_options(
        AppOptions::for_pool(Backend::Sqlite, &pool).await,
        &pool,
        &jwks.url,
        NO_KRATOS,
    )
    .with("COGNITO_BRIDGE__CAPTURE__JWKS_REFRESH_SECS", 2)
    .with("COGNITO_BRIDGE__CAPTURE__KRATOS_TIMEOUT_MS", 2000);
    let app = spawn_app(options).await;
    let good = id_claims(&pool, "alice", &sub, 5);
    let cognito_calls = || {
        metric(
            &app,
            "cognito_bridge_cognito_request_duration_seconds_count",
        )
    };

    // Refused before Cognito is asked: each case names what is wrong.
    let hs256 = jsonwebtoken::encode(
        &Header {
            kid: Some("key-1".to_owned()),
            ..Header::new(Algorithm::HS256)
        },
        &good,
        &EncodingKey::from_secret(&one.public_pem).unwrap(),
    )
    .unwrap();
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(good.to_string())
        )
    };
    let other_pool = format!("https://cognito-idp.{REGION}.amazonaws.com/{REGION}_Other");
    let access_without_client = with(
        good.clone(),
        &[("token_use", json!("access")), ("aud", Value::Null)],
    );
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no header", None, "token_missing"),
        ("not a JWT", Some("not-a-jwt".into()), "token_malformed"),
        ("alg none", Some(unsigned), "token_malformed"),
        (
            "HS256 with the public key as secret",
            Some(hs256),
            "token_malformed",
        ),
        (
            "signed by another key under key-1's id",
            Some(sign(&two, "key-1", &good)),
            "token_bad_signature",
        ),
        (
            "expired",
            Some(sign(
                &one,
                "key-1",
                &with(good.clone(), &[("exp", json!(now() - 60))]),
            )),
            "token_expired",
        ),
        (
            "another pool",
            Some(sign(
                &one,
                "key-1",
                &with(good.clone(), &[("iss", json!(other_pool))]),
            )),
            "token_wrong_issuer",
        ),
        (
            "another app client",
            Some(sign(
                &one,
                "key-1",
                &with(good.clone(), &[("aud", json!("not-ours"))]),
            )),
            "token_wrong_client",
        ),
        (
            "an access token carries client_id, not aud",
            Some(sign(&one, "key-1", &access_without_client)),
            "token_wrong_client",
        ),
        (
            "a refresh-style token_use",
            Some(sign(
                &one,
                "key-1",
                &with(good.clone(), &[("token_use", json!("refresh"))]),
            )),
            "token_wrong_use",
        ),
        (
            "a login older than max_token_age_secs",
            Some(sign(
                &one,
                "key-1",
                &with(good.clone(), &[("auth_time", json!(now() - 400))]),
            )),
            "token_too_old",
        ),
        (
            "no username",
            Some(sign(
                &one,
                "key-1",
                &with(good.clone(), &[("cognito:username", Value::Null)]),
            )),
            "token_missing_claim",
        ),
    ];
    for (case, token, code) in cases {
        let answer = capture(&app, token.as_deref(), PASSWORD).await;
        assert_eq!(
            error_code(&answer),
            (StatusCode::UNAUTHORIZED, code),
            "{case}: {answer:?}"
        );
    }
    assert_eq!(cognito_calls().await, 0.0, "no token reached Cognito");

    // Good tokens pass: the ID token, the access token, and the pool's "updated" issuer.
    // (Kratos is down here, so a verified capture is queued.)
    let access = with(
        good.clone(),
        &[
            ("token_use", json!("access")),
            ("aud", Value::Null),
            ("client_id", json!(pool.client_id)),
            ("cognito:username", Value::Null),
            ("username", json!("alice")),
        ],
    );
    let updated_issuer = with(
        good.clone(),
        &[(
            "iss",
            json!(format!(
                "https://issuer-cognito-idp.{REGION}.amazonaws.com/{}",
                pool.id
            )),
        )],
    );
    for token in [
        sign(&one, "key-1", &good),
        sign(&one, "key-1", &access),
        sign(&one, "key-1", &updated_issuer),
    ] {
        let (status, body) = capture(&app, Some(&token), PASSWORD).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body, json!({"status": "queued"}));
    }
    assert_eq!(cognito_calls().await, 3.0);

    // The username comes from the token: alice's token with bob's password is a 403.
    let (moto_id_token, _) = pool.sign_in("alice", PASSWORD).await;
    let (status, body) = capture(&app, Some(&moto_id_token), "Bobs-Own-Passw0rd!").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"status": "password_no_match"})
        )
    );
    let (status, _) = capture(&app, Some(&moto_id_token), PASSWORD).await;
    assert_eq!(status, StatusCode::ACCEPTED, "moto's own ID token");

    // An unknown key id: the keys are fetched again, once; within jwks_refresh_secs another
    // unknown key makes no fetch.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let before = jwks.fetches();
    let rotated = sign(&two, "key-2", &good);
    let answer = capture(&app, Some(&rotated), PASSWORD).await;
    assert_eq!(
        error_code(&answer),
        (StatusCode::UNAUTHORIZED, "token_unknown_key")
    );
    assert_eq!(jwks.fetches(), before + 1, "one fetch for the unknown key");
    let answer = capture(&app, Some(&rotated), PASSWORD).await;
    assert_eq!(
        error_code(&answer),
        (StatusCode::UNAUTHORIZED, "token_unknown_key")
    );
    assert_eq!(
        jwks.fetches(),
        before + 1,
        "no second fetch within the interval"
    );
    // The pool rotates to key-2: once the interval has passed, the new key is fetched.
    jwks.keys.lock().unwrap().push(two.jwk.clone());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, _) = capture(&app, Some(&rotated), PASSWORD).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(jwks.fetches(), before + 2);
}

#[tokio::test]
async fn bad_bodies_are_small_json_errors_that_echo_nothing() {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    let app = spawn_app(capture_options(
        AppOptions::for_pool(Backend::Sqlite, &pool).await,
        &pool,
        &pool.jwks_url().await,
        NO_KRATOS,
    ))
    .await;
    let (token, _) = pool.sign_in("alice", PASSWORD).await;
    let url = format!("{}/capture/password", app.address);
    for (body, status) in [
        (
            r#"{"password":"Leaky-Secret-1","user":"x"}"#.to_owned(),
            400,
        ),
        (r#"{"password":""}"#.to_owned(), 400),
        (r#"["Leaky-Secret-1"]"#.to_owned(), 400),
        (format!(r#"{{"password":"{}"}}"#, "L".repeat(73)), 400),
        (format!(r#"{{"password":"{}"}}"#, "L".repeat(5000)), 413),
    ] {
        let response = app
            .client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body:.40}");
        let text = response.text().await.unwrap();
        assert!(text.len() < 300, "{text}");
        assert!(!text.contains("Leaky") && !text.contains("LLLL"), "{text}");
        let json: Value = serde_json::from_str(&text).unwrap();
        assert!(json["error"].is_string(), "{text}");
    }
}

#[tokio::test]
async fn the_guard_counts_capture_attempts() {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    let options = capture_options(
        AppOptions::for_pool(Backend::Sqlite, &pool).await,
        &pool,
        &pool.jwks_url().await,
        NO_KRATOS,
    )
    .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 3)
    .with("COGNITO_BRIDGE__GUARD__WINDOW_SECS", 600);
    let app = spawn_app(options).await;
    let (token, _) = pool.sign_in("alice", PASSWORD).await;
    let cognito_calls = || {
        metric(
            &app,
            "cognito_bridge_cognito_request_duration_seconds_count",
        )
    };
    for guess in 0..3 {
        let (status, body) = capture(&app, Some(&token), &format!("Wrong-Guess-{guess}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    assert_eq!(cognito_calls().await, 3.0);
    for guess in 3..8 {
        let response = app
            .client
            .post(format!("{}/capture/password", app.address))
            .bearer_auth(&token)
            .json(&json!({ "password": format!("Wrong-Guess-{guess}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "600");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "too_many_attempts");
    }
    assert_eq!(
        cognito_calls().await,
        3.0,
        "the burst stopped reaching Cognito"
    );
    // The hook shares the count: alice's right password through Kratos is refused as well.
    assert_no_match(&app.login("alice", PASSWORD).await);
    assert_eq!(cognito_calls().await, 3.0);
}

#[tokio::test]
async fn cors_only_for_the_allowed_origins() {
    let pool = Pool::create(false).await;
    let jwks = pool.jwks_url().await;
    let app = spawn_app(
        capture_options(
            AppOptions::for_pool(Backend::Sqlite, &pool).await,
            &pool,
            &jwks,
            NO_KRATOS,
        )
        .with(
            "COGNITO_BRIDGE__CAPTURE__ALLOWED_ORIGINS",
            "https://app.example.com",
        ),
    )
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/capture/password", app.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());

    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // The actual request from the allowed origin carries the header on any answer.
    let answer = app
        .client
        .post(format!("{}/capture/password", app.address))
        .header("Origin", "https://app.example.com")
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );

    // Without allowed origins there are no CORS headers at all.
    let plain = spawn_app(capture_options(
        AppOptions::for_pool(Backend::Sqlite, &pool).await,
        &pool,
        &jwks,
        NO_KRATOS,
    ))
    .await;
    let preflight = plain
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/capture/password", plain.address),
        )
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn the_endpoint_is_off_unless_enabled() {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    let app = spawn_app(AppOptions::for_pool(Backend::Sqlite, &pool).await).await;
    let (token, _) = pool.sign_in("alice", PASSWORD).await;
    let answer = capture(&app, Some(&token), PASSWORD).await;
    assert_eq!(error_code(&answer), (StatusCode::NOT_FOUND, "not_found"));
}

/// Kratos answering 500, or not at all within `capture.kratos_timeout_ms`: the hash is queued;
/// and an entry whose user migrates another way meanwhile is dropped, never written.
#[tokio::test]
async fn a_failing_or_hanging_kratos_queues_and_a_user_migrated_meanwhile_is_dropped() {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    pool.add_user("bob", "bob@example.com", PASSWORD).await;
    let kratos_calls = Arc::new(AtomicUsize::new(0));
    let counted = kratos_calls.clone();
    let (failing, _failing) = serve_on_loopback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            HttpResponse::InternalServerError()
                .json(json!({"error": {"code": 500, "message": "database is down"}}))
        }
    });
    let (hanging, _hanging) = serve_on_loopback(|| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        HttpResponse::Ok().finish()
    });
    let jwks = pool.jwks_url().await;
    let failing_app = spawn_app(capture_options(
        AppOptions::for_pool(Backend::Sqlite, &pool).await,
        &pool,
        &jwks,
        &failing,
    ))
    .await;
    let (alice, _) = pool.sign_in("alice", PASSWORD).await;
    let answer = capture(&failing_app, Some(&alice), PASSWORD).await;
    assert_eq!(answer, (StatusCode::ACCEPTED, json!({"status": "queued"})));
    assert!(kratos_calls.load(Ordering::SeqCst) >= 1, "Kratos was asked");

    // Alice then logs in through the hook: she is migrated via `hook`, and her queued hash is
    // dropped at its next delivery attempt instead of overwriting what Kratos now holds.
    crate::helpers::assert_match(&failing_app.login("alice", PASSWORD).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while failing_app
        .store
        .progress()
        .await
        .unwrap()
        .capture_outbox
        .depth
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not dropped within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dropped = metric(
        &failing_app,
        "cognito_bridge_capture_outbox_deliveries_total{result=\"dropped_migrated\"}",
    )
    .await;
    assert_eq!(dropped, 1.0);
    let row = failing_app.store.user("alice").await.unwrap().unwrap();
    assert_eq!(row.migrated_via.as_deref(), Some("hook"));

    // A Kratos that does not answer: queued once capture.kratos_timeout_ms has passed, well
    // before the client would give up.
    let hanging_app = spawn_app(
        capture_options(
            AppOptions::for_pool(Backend::Sqlite, &pool).await,
            &pool,
            &jwks,
            &hanging,
        )
        .with("COGNITO_BRIDGE__CAPTURE__KRATOS_TIMEOUT_MS", 500),
    )
    .await;
    let (bob, _) = pool.sign_in("bob", PASSWORD).await;
    let started = std::time::Instant::now();
    let answer = capture(&hanging_app, Some(&bob), PASSWORD).await;
    assert_eq!(answer, (StatusCode::ACCEPTED, json!({"status": "queued"})));
    // 500 ms of Kratos budget plus a Cognito call and a cost-10 hash; the margin holds on a
    // loaded 2-core machine and is still far below the hanging Kratos's 30 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A migrate hook that counts Kratos's calls and refuses every password.
struct HookSpy {
    url: String,
    calls: Arc<AtomicUsize>,
}

impl HookSpy {
    fn start() -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let (url, _handle) = serve_on_loopback(move |_: web::Bytes| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                HttpResponse::Forbidden().json(json!({"status": "password_no_match"}))
            }
        });
        Self { url, calls }
    }

    fn hook(&self) -> MigrateHook {
        MigrateHook {
            url: format!("{}/hooks/password-migration", self.url),
            api_key: "spy-hook-key-0123456789abcdef0123456789".into(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// A moto pool (alice, bob) imported into a real Kratos whose migrate hook is a spy.
struct World {
    pool: Pool,
    kratos: Kratos,
    spy: HookSpy,
    moto: String,
}

async fn world() -> World {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    pool.add_user("bob", "bob@example.com", PASSWORD).await;
    let spy = HookSpy::start();
    let kratos = Kratos::start(&spy.hook()).await;
    World {
        pool,
        kratos,
        spy,
        moto: moto::endpoint().await,
    }
}

impl World {
    async fn import(&self, app: &TestApp) {
        let settings = import_settings_with_public_url(
            &app.database.url,
            &self.moto,
            &self.pool.id,
            self.kratos.admin_url.as_str(),
            self.kratos.public_url.as_str(),
            TRAITS,
        );
        let summary = run_import(&settings, ImportOptions::default())
            .await
            .expect("the import into the real Kratos");
        assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    }

    /// The identity of `email`, with its password credential.
    async fn identity(&self, email: &str) -> Value {
        let listed = self.kratos.identity_by_email(email).await.expect(email);
        self.kratos.identity(listed["id"].as_str().unwrap()).await
    }

    async fn logs_in_natively(&self, email: &str) {
        let before = self.spy.calls();
        let login = self.kratos.login(email, PASSWORD).await;
        assert!(login.session_token().is_some(), "{email}: {:?}", login.body);
        assert_eq!(
            self.spy.calls(),
            before,
            "{email}: the migrate hook was called"
        );
    }
}

fn password_config(identity: &Value) -> &Value {
    &identity["credentials"]["password"]["config"]
}

async fn capture_writes_the_hash_and_the_next_kratos_login_is_native(backend: Backend) {
    let world = world().await;
    let pool = &world.pool;
    let app = spawn_app(capture_options(
        AppOptions::new(backend, &world.moto, &pool.id, &pool.client_id),
        pool,
        &pool.jwks_url().await,
        world.kratos.admin_url.as_str(),
    ))
    .await;
    world.import(&app).await;
    let before = world.identity("alice@example.com").await;
    assert_eq!(
        password_config(&before)["use_password_migration_hook"],
        true
    );
    // A flagged identity without a captured password cannot log in natively: Kratos asks the
    // (spy) hook, which refuses.
    let login = world.kratos.login("alice@example.com", PASSWORD).await;
    assert!(login.session_token().is_none());
    assert_eq!(world.spy.calls(), 1);

    let (id_token, _) = pool.sign_in("alice", PASSWORD).await;
    let (status, body) = capture(&app, Some(&id_token), PASSWORD).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "captured"}))
    );
    let row = app.store.user("alice").await.unwrap().unwrap();
    assert_eq!(row.state, UserState::Migrated);
    assert_eq!(row.migrated_via.as_deref(), Some("capture"));

    // What Kratos holds: a bcrypt hash at the configured cost, the flag gone, every other
    // field as it was (the PUT echoed them).
    let after = world.identity("alice@example.com").await;
    let hash = password_config(&after)["hashed_password"]
        .as_str()
        .expect("a hashed password")
        .to_owned();
    assert!(hash.starts_with("$2b$10$"), "cost 10 as configured");
    assert!(bcrypt::verify(PASSWORD, &hash).unwrap());
    assert!(
        password_config(&after)
            .get("use_password_migration_hook")
            .is_none_or(|flag| flag != true)
    );
    for field in [
        "traits",
        "metadata_admin",
        "metadata_public",
        "schema_id",
        "state",
    ] {
        assert_eq!(after[field], before[field], "{field} kept");
    }
    world.logs_in_natively("alice@example.com").await;

    // Already migrated: nothing is written, not even the same password again.
    let (status, body) = capture(&app, Some(&id_token), PASSWORD).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "already_migrated"}))
    );
    let again = world.identity("alice@example.com").await;
    assert_eq!(password_config(&again)["hashed_password"], hash.as_str());

    // An access token works as well.
    let (_, access_token) = pool.sign_in("bob", PASSWORD).await;
    let (status, body) = capture(&app, Some(&access_token), PASSWORD).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "captured"}))
    );
    world.logs_in_natively("bob@example.com").await;
    let report = app.store.progress().await.unwrap();
    assert_eq!(report.states["migrated"], 2);
    assert_eq!(report.capture_outbox.depth, 0);
}

/// A TCP switch in front of Kratos's admin port: while off, connections are dropped at once.
struct Switch {
    url: String,
    on: Arc<AtomicBool>,
}

impl Switch {
    async fn start(target: &url::Url) -> Self {
        let target: SocketAddr =
            format!("{}:{}", target.host_str().unwrap(), target.port().unwrap())
                .parse()
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let on = Arc::new(AtomicBool::new(false));
        let switch = on.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !switch.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { url, on }
    }
}

async fn kratos_down_queues_the_hash_and_a_restart_loses_nothing(backend: Backend) {
    let logs = capture_logs();
    let world = world().await;
    let pool = &world.pool;
    let switch = Switch::start(&world.kratos.admin_url).await;
    let options = capture_options(
        AppOptions::new(backend, &world.moto, &pool.id, &pool.client_id),
        pool,
        &pool.jwks_url().await,
        &switch.url,
    );
    let first = spawn_app(options.clone()).await;
    world.import(&first).await;

    // Kratos down: the hash waits in the outbox (a hash, never the password).
    let (alice_token, _) = pool.sign_in("alice", PASSWORD).await;
    let (status, body) = capture(&first, Some(&alice_token), PASSWORD).await;
    assert_eq!(
        (status, body),
        (StatusCode::ACCEPTED, json!({"status": "queued"}))
    );
    let dump = first.database.dump().await;
    assert!(dump.contains("$2b$10$"), "the hash is in the outbox");
    assert!(!dump.contains(PASSWORD));

    // The bridge restarts while Kratos is still down; the entry survives and another capture
    // joins it.
    let database = first.stop().await;
    let mut restarted = options.clone();
    restarted.shared_database = Some(database.url.clone());
    let second = spawn_app(restarted).await;
    let (bob_token, _) = pool.sign_in("bob", PASSWORD).await;
    let (status, _) = capture(&second, Some(&bob_token), PASSWORD).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let progress = second.store.progress().await.unwrap();
    assert_eq!(progress.capture_outbox.depth, 2);
    assert!(progress.capture_outbox.oldest_age_secs.is_some());
    assert_eq!(
        metric(&second, "cognito_bridge_capture_outbox_depth").await,
        2.0
    );
    assert_eq!(
        progress.states["pending"], 2,
        "not migrated until Kratos has it"
    );

    // Kratos back: the worker delivers both, empties the outbox, and both log in natively.
    switch.on.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let progress = second.store.progress().await.unwrap();
        if progress.capture_outbox.depth == 0 && progress.states["migrated"] == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered within 60 s: {progress:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for user in ["alice", "bob"] {
        let row = second.store.user(user).await.unwrap().unwrap();
        assert_eq!(row.migrated_via.as_deref(), Some("capture"), "{user}");
    }
    world.logs_in_natively("alice@example.com").await;
    world.logs_in_natively("bob@example.com").await;
    assert_eq!(
        metric(&second, "cognito_bridge_capture_outbox_depth").await,
        0.0
    );

    // Radioactivity: the password is in no log line and no database byte; after delivery no
    // hash remains either.
    let hash = password_config(&world.identity("alice@example.com").await)["hashed_password"]
        .as_str()
        .unwrap()
        .to_owned();
    let dump = database.dump().await;
    assert!(!dump.contains(PASSWORD), "password in the database");
    assert!(
        !dump.contains("$2b$"),
        "a hash left in the database:\n{dump}"
    );
    let logs = logs.contents();
    assert!(logs.contains("capture"), "the capture was logged at all");
    assert!(!logs.contains(PASSWORD), "password in the logs");
    assert!(!logs.contains(&hash), "hash in the logs");
    assert!(!logs.contains(&alice_token), "token in the logs");
}

on_both_backends!(
    capture_writes_the_hash_and_the_next_kratos_login_is_native,
    kratos_down_queues_the_hash_and_a_restart_loses_nothing,
);
