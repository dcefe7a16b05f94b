//! The brute-force guard and the Cognito quota guard, through the real server and the
//! loopback Cognito fake (which counts the calls that reach it).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::helpers::{
    AppOptions, Backend, HookAnswer, TestApp, assert_match, assert_no_match, import_users,
    spawn_app,
};

const PASSWORD: &str = "Right-Password-1";
const WRONG: &str = "Wrong-Password-1";

on_both_backends!(
    the_sixth_attempt_after_five_failures_is_refused_without_cognito,
    failures_expire_with_the_window,
    a_match_clears_the_identifier_count,
    spellings_of_one_user_share_a_count,
    an_imported_users_email_and_username_share_a_count,
    the_client_ip_limit_spans_users,
    spoofed_forwarded_entries_do_not_escape_the_ip_limit,
    an_ipv6_client_counts_by_its_slash_64,
    thirty_concurrent_wrong_guesses_reach_cognito_at_most_five_times,
);

fn options(backend: Backend, fake: &CognitoFake) -> AppOptions {
    AppOptions::new(
        backend,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    )
}

async fn fake_with(users: &[&str]) -> CognitoFake {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    for user in users {
        fake.user(user, PASSWORD, Script::Authenticate);
    }
    fake
}

/// A 403 from the guard: Kratos's "no match" body, like any refusal.
fn assert_refused(answer: &HookAnswer) {
    assert_no_match(answer);
}

async fn outcomes(app: &TestApp) -> Vec<String> {
    let mut attempts = app.store.recent_attempts(100).await.unwrap();
    attempts.reverse();
    attempts.into_iter().map(|a| a.outcome).collect()
}

async fn the_sixth_attempt_after_five_failures_is_refused_without_cognito(backend: Backend) {
    let fake = fake_with(&["alice"]).await;
    let app = spawn_app(options(backend, &fake)).await;

    for _ in 0..5 {
        assert_no_match(&app.login("alice", WRONG).await);
    }
    assert_eq!(fake.calls("alice"), 5);
    // The right password now: refused locally, Cognito not asked (its own lockout would
    // count a sixth failure otherwise, and this could be a guesser who got lucky).
    assert_refused(&app.login("alice", PASSWORD).await);
    assert_eq!(
        fake.calls("alice"),
        5,
        "the guard must refuse before Cognito"
    );
    assert_eq!(
        outcomes(&app).await.last().map(String::as_str),
        Some("refused_locally")
    );
    // Refusals do not extend the lockout: still five counted failures, no more calls.
    assert_refused(&app.login("alice", WRONG).await);
    assert_eq!(fake.calls("alice"), 5);
    // Another user is unaffected.
    fake.user("bob", PASSWORD, Script::Authenticate);
    assert_match(&app.login("bob", PASSWORD).await);

    let (status, metrics) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "cognito_bridge_guard_refusals_total{limit=\"identifier\"} 2",
        "cognito_bridge_hook_answers_total{outcome=\"refused_locally\",status=\"403\"} 2",
        "cognito_bridge_hook_answers_total{outcome=\"not_authorized\",status=\"403\"} 5",
        "cognito_bridge_hook_answers_total{outcome=\"verified\",status=\"200\"} 1",
        "cognito_bridge_cognito_request_duration_seconds_count{result=\"not_authorized\"} 5",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(!metrics.contains(PASSWORD) && !metrics.contains("alice"));
}

async fn failures_expire_with_the_window(backend: Backend) {
    let fake = fake_with(&["carol"]).await;
    let app = spawn_app(
        options(backend, &fake)
            .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 3)
            .with("COGNITO_BRIDGE__GUARD__WINDOW_SECS", 2),
    )
    .await;

    for _ in 0..3 {
        assert_no_match(&app.login("carol", WRONG).await);
    }
    assert_refused(&app.login("carol", PASSWORD).await);
    assert_eq!(fake.calls("carol"), 3);
    // The 2 s window plus 600 ms: the failures' times are stamped by the store (the database's
    // clock on Postgres) a little after this test sent them, so 100 ms of margin was not
    // enough on a loaded machine. Only a lower bound: a slower wait cannot break it.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_match(&app.login("carol", PASSWORD).await);
    assert_eq!(fake.calls("carol"), 4);
}

async fn a_match_clears_the_identifier_count(backend: Backend) {
    let fake = fake_with(&["dave"]).await;
    let app = spawn_app(options(backend, &fake)).await;

    for _ in 0..4 {
        assert_no_match(&app.login("dave", WRONG).await);
    }
    assert_match(&app.login("dave", PASSWORD).await);
    // Four more failures are allowed: the count restarted at the match.
    for _ in 0..4 {
        assert_no_match(&app.login("dave", WRONG).await);
    }
    assert_eq!(fake.calls("dave"), 9);
    assert_no_match(&app.login("dave", WRONG).await);
    assert_eq!(fake.calls("dave"), 10);
    assert_refused(&app.login("dave", PASSWORD).await);
    assert_eq!(fake.calls("dave"), 10);
}

async fn spellings_of_one_user_share_a_count(backend: Backend) {
    let fake = fake_with(&["erin"]).await;
    let app = spawn_app(options(backend, &fake)).await;

    for identifier in ["ERIN", " erin ", "Erin", "erin", "eRiN"] {
        assert_no_match(&app.login(identifier, WRONG).await);
    }
    assert_refused(&app.login("erin", PASSWORD).await);
    assert_eq!(fake.total_calls(), 5);
}

/// README "Protection": for an imported user, the e-mail and the username are one identifier
/// to the per-user count: failures typed as either add up, and Cognito is asked under the
/// username each time.
async fn an_imported_users_email_and_username_share_a_count(backend: Backend) {
    let fake = fake_with(&["frank"]).await;
    let app = spawn_app(options(backend, &fake)).await;
    import_users(
        app.store.as_ref(),
        &[(
            "frank",
            Some("frank@example.com"),
            "sub-frank",
            "identity-frank",
        )],
    )
    .await;

    for identifier in [
        "frank",
        "frank@example.com",
        "Frank@Example.com",
        "frank",
        "frank@example.com",
    ] {
        assert_no_match(&app.login(identifier, WRONG).await);
    }
    assert_refused(&app.login("frank@example.com", PASSWORD).await);
    assert_refused(&app.login("frank", PASSWORD).await);
    assert_eq!(fake.calls("frank"), 5);
    assert_eq!(
        fake.total_calls(),
        5,
        "Cognito was asked under the username only"
    );
}

/// A login whose body forwards `address` as the client's (`client_ip`, read like one
/// `X-Forwarded-For` value).
async fn login_from(app: &TestApp, user: &str, password: &str, address: &str) -> HookAnswer {
    app.post_hook(&json!({
        "identifier": user, "password": password, "client_ip": address, "user_agent": "UA/1"
    }))
    .await
}

async fn the_client_ip_limit_spans_users(backend: Backend) {
    let users = ["u1", "u2", "u3", "u4", "u5"];
    let fake = fake_with(&users).await;
    let app = spawn_app(
        options(backend, &fake)
            .with("COGNITO_BRIDGE__GUARD__IP_FAILURES", 3)
            .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 100)
            .with("COGNITO_BRIDGE__HOOKS__TRUSTED_PROXIES", "10.0.0.0/8"),
    )
    .await;
    for user in &users[..3] {
        assert_no_match(&login_from(&app, user, WRONG, "203.0.113.9").await);
    }
    // A fourth user from the same address: refused, even with the right password.
    assert_refused(&login_from(&app, "u4", PASSWORD, "203.0.113.9").await);
    assert_eq!(fake.calls("u4"), 0);
    // The same client behind a trusted proxy.
    assert_refused(&login_from(&app, "u5", PASSWORD, "203.0.113.9, 10.0.0.7").await);
    // Another address is not affected; neither is a body without one.
    assert_match(&login_from(&app, "u4", PASSWORD, "198.51.100.1").await);
    assert_match(&app.login("u5", PASSWORD).await);
    let (_, metrics) = app.get_text("/metrics").await;
    assert!(
        metrics.contains("cognito_bridge_guard_refusals_total{limit=\"ip\"} 2"),
        "{metrics}"
    );
}

/// The review's scenario: a client sprays guesses, each with a fresh address of its own in
/// `X-Forwarded-For` and `True-Client-Ip`; the address the proxies appended is what counts.
async fn spoofed_forwarded_entries_do_not_escape_the_ip_limit(backend: Backend) {
    let users = ["s1", "s2", "s3", "s4"];
    let fake = fake_with(&users).await;
    let app = spawn_app(
        options(backend, &fake)
            .with("COGNITO_BRIDGE__GUARD__IP_FAILURES", 3)
            .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 100)
            .with("COGNITO_BRIDGE__HOOKS__TRUSTED_PROXIES", "10.0.0.0/8"),
    )
    .await;
    for (n, user) in users.iter().enumerate() {
        let spoof = format!("198.51.100.{}", n + 1);
        let answer = app
            .post_hook(&json!({
                "identifier": user,
                "password": if n < 3 { WRONG } else { PASSWORD },
                "client_headers": {
                    "x-forwarded-for": [format!("{spoof}, 203.0.113.50"), "10.0.0.7"],
                    "true-client-ip": [spoof],
                },
            }))
            .await;
        if n < 3 {
            assert_no_match(&answer);
        } else {
            assert_refused(&answer);
        }
    }
    assert_eq!(fake.calls("s4"), 0);
    // A client-sent True-Client-Ip counts only when `hooks.client_ip_header` names it.
    let attempts = outcomes(&app).await;
    assert_eq!(attempts.last().map(String::as_str), Some("refused_locally"));
}

/// IPv6 clients hold whole /64s: four addresses of one /64 are one client.
async fn an_ipv6_client_counts_by_its_slash_64(backend: Backend) {
    let users = ["v1", "v2", "v3", "v4"];
    let fake = fake_with(&users).await;
    let app = spawn_app(
        options(backend, &fake)
            .with("COGNITO_BRIDGE__GUARD__IP_FAILURES", 3)
            .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 100),
    )
    .await;
    assert_no_match(&login_from(&app, "v1", WRONG, "2001:db8:1:2::a").await);
    assert_no_match(&login_from(&app, "v2", WRONG, "2001:db8:1:2:ffff::b").await);
    assert_no_match(&login_from(&app, "v3", WRONG, "[2001:db8:1:2::c]:4431").await);
    assert_refused(&login_from(&app, "v4", PASSWORD, "2001:db8:1:2::d").await);
    assert_eq!(fake.calls("v4"), 0);
    assert_match(&login_from(&app, "v4", PASSWORD, "2001:db8:1:3::d").await);
}

/// Send `count` wrong guesses for `user` at once, spread over `apps`; Cognito answers each
/// only after 1 s, so every guess is in flight before any is answered even when a loaded
/// machine takes a few hundred ms to send 30 requests (with 300 ms, late guesses found the
/// first ones settled, and the test no longer tested the reservation).
async fn concurrent_wrong_guesses(apps: &[&TestApp], user: &str, count: usize) -> Vec<HookAnswer> {
    join_all((0..count).map(|i| apps[i % apps.len()].login(user, WRONG))).await
}

fn slow_fake_user(fake: &CognitoFake, user: &str) {
    fake.user(
        user,
        PASSWORD,
        Script::delay(Duration::from_secs(1), Script::Authenticate),
    );
}

/// The guard reserves before Cognito is asked: of 30 wrong guesses sent at once, at most
/// `guard.identifier_failures` reach Cognito (and push the real user toward Cognito's own
/// lockout); the rest are refused.
async fn thirty_concurrent_wrong_guesses_reach_cognito_at_most_five_times(backend: Backend) {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    slow_fake_user(&fake, "grace");
    let app = spawn_app(options(backend, &fake)).await;

    let answers = concurrent_wrong_guesses(&[&app], "grace", 30).await;
    for answer in &answers {
        assert_no_match(answer);
    }
    assert!(
        fake.calls("grace") <= 5,
        "{} guesses reached Cognito",
        fake.calls("grace")
    );
    assert!(fake.calls("grace") >= 1);
    // Every attempt has its row, none is left in flight.
    let outcomes = outcomes(&app).await;
    assert_eq!(outcomes.len(), 30, "{outcomes:?}");
    assert!(!outcomes.iter().any(|o| o == "in_flight"), "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| *o == "not_authorized").count(),
        fake.calls("grace")
    );
    // And the right password is refused too now: five failures are on record.
    assert_refused(&app.login("grace", PASSWORD).await);
    assert!(fake.calls("grace") <= 5);
}

/// The same across two replicas on one Postgres: the claim is atomic in the database.
#[tokio::test]
async fn thirty_concurrent_wrong_guesses_across_two_instances_reach_cognito_at_most_five_times() {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    slow_fake_user(&fake, "heidi");
    let first = spawn_app(options(Backend::Postgres, &fake)).await;
    let mut second_options = options(Backend::Postgres, &fake);
    second_options.shared_database = Some(first.database.url.clone());
    let second = spawn_app(second_options).await;

    let answers = concurrent_wrong_guesses(&[&first, &second], "heidi", 30).await;
    for answer in &answers {
        assert_no_match(answer);
    }
    assert!(
        (1..=5).contains(&fake.calls("heidi")),
        "{} guesses reached Cognito",
        fake.calls("heidi")
    );
}

/// Replicas share the guard through the database: failures seen by one count on the other.
#[tokio::test]
async fn two_instances_on_one_postgres_share_the_count() {
    let fake = fake_with(&["frank"]).await;
    let first = spawn_app(options(Backend::Postgres, &fake)).await;
    let mut second_options = options(Backend::Postgres, &fake);
    second_options.shared_database = Some(first.database.url.clone());
    let second = spawn_app(second_options).await;

    for app in [&first, &second, &first, &second, &first] {
        assert_no_match(&app.login("frank", WRONG).await);
    }
    assert_refused(&second.login("frank", PASSWORD).await);
    assert_refused(&first.login("frank", PASSWORD).await);
    assert_eq!(fake.calls("frank"), 5);
}

/// `cognito_bridge_cognito_quota_refusals_total{limit="<limit>"}` from `/metrics` (0 when
/// the series is absent).
async fn quota_refusals(app: &TestApp, limit: &str) -> u64 {
    let (_, metrics) = app.get_text("/metrics").await;
    let prefix = format!("cognito_bridge_cognito_quota_refusals_total{{limit=\"{limit}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().expect("a counter value"))
}

/// `cognito.max_concurrency` (README "Protection"): with one slot, of four calls sent at once
/// for users Cognito never answers, one holds the slot until its deadline and the others,
/// whose deadlines end first, are refused with 424 `cognito_over_quota` without reaching
/// Cognito; each refusal is counted under `limit="concurrency"` and recorded `over_quota`.
/// With `max_rps = 1`, calls sent at once beyond the first token are refused under
/// `limit="rate"`.
#[tokio::test]
async fn the_quota_guard_refuses_over_max_concurrency_and_labels_each_limit() {
    const CALLS: usize = 4;
    let fake = CognitoFake::start(FakeConfig::default()).await;
    let users: Vec<String> = (0..CALLS).map(|i| format!("hangs-{i}")).collect();
    for user in &users {
        fake.user(user, PASSWORD, Script::Hang);
    }
    // 4 s: a waiter gives up `min_attempt` (200 ms) before the holder's Cognito deadline, so
    // every call that arrives within 200 ms of the first is refused; sent together, they do
    // even on a loaded machine.
    // A Cognito timeout past the deadline: an admitted call makes one call and no retry, so
    // every refusal the metric counts is one of the answers.
    let mut app_options = options(Backend::Sqlite, &fake)
        .with("COGNITO_BRIDGE__COGNITO__TIMEOUT_MS", 10_000)
        .with("COGNITO_BRIDGE__COGNITO__MAX_CONCURRENCY", 1)
        .with("COGNITO_BRIDGE__COGNITO__MAX_RPS", 10_000)
        .with("COGNITO_BRIDGE__COGNITO__BURST", 1_000);
    app_options.deadline_ms = 4000;
    let app = spawn_app(app_options).await;

    let answers = join_all(users.iter().map(|user| app.login(user, PASSWORD))).await;
    let refused = answers
        .iter()
        .filter(|answer| answer.body["error"] == "cognito_over_quota")
        .count();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::FAILED_DEPENDENCY, "{answer:?}");
        assert!(
            ["cognito_over_quota", "cognito_unavailable"]
                .contains(&answer.body["error"].as_str().unwrap_or("")),
            "{answer:?}"
        );
    }
    assert!(
        refused >= 1,
        "no call was refused for want of a slot: {answers:?}"
    );
    // Every call either reached Cognito (and timed out there) or was refused before it.
    assert_eq!(fake.total_calls() + refused, CALLS, "{answers:?}");
    assert_eq!(quota_refusals(&app, "concurrency").await, refused as u64);
    assert_eq!(quota_refusals(&app, "rate").await, 0);
    let attempts = app.store.recent_attempts(10).await.unwrap();
    assert_eq!(attempts.len(), CALLS);
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a.outcome == "over_quota" && a.cognito_calls == 0)
            .count(),
        refused,
        "{attempts:?}"
    );

    // The rate limit: one token a second, a 500 ms deadline; of three calls sent at once the
    // first takes the token and the others cannot get one within their deadline.
    let fake = fake_with(&["rate-a", "rate-b", "rate-c"]).await;
    let mut app_options = options(Backend::Sqlite, &fake)
        .with("COGNITO_BRIDGE__COGNITO__MAX_RPS", 1)
        .with("COGNITO_BRIDGE__COGNITO__BURST", 1);
    app_options.deadline_ms = 500;
    let app = spawn_app(app_options).await;
    let answers =
        join_all(["rate-a", "rate-b", "rate-c"].map(|user| app.login(user, PASSWORD))).await;
    let refused = answers
        .iter()
        .filter(|answer| answer.body["error"] == "cognito_over_quota")
        .count();
    assert!(refused >= 1, "{answers:?}");
    assert_eq!(fake.total_calls() + refused, 3, "{answers:?}");
    assert_eq!(quota_refusals(&app, "rate").await, refused as u64);
    assert_eq!(quota_refusals(&app, "concurrency").await, 0);
}

/// 200 concurrent hook calls against `max_rps = 20`: Cognito never sees more than the rate
/// plus the burst in any second, and every answer is a decision or a 424.
#[tokio::test]
async fn the_quota_guard_keeps_cognito_under_max_rps() {
    const MAX_RPS: usize = 20;
    const BURST: usize = 5;
    let fake = fake_with(&["busy"]).await;
    // 150 of the calls log one user in at once; the brute-force guard lets at most
    // `guard.identifier_failures` attempts of one user be in flight, so it is off here to
    // leave the decision to the quota guard.
    let app = spawn_app(
        options(Backend::Sqlite, &fake)
            .with("COGNITO_BRIDGE__COGNITO__MAX_RPS", MAX_RPS)
            .with("COGNITO_BRIDGE__COGNITO__BURST", BURST)
            .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 0),
    )
    .await;

    let started = Instant::now();
    let answers = join_all((0..200).map(|i| {
        let app = &app;
        async move {
            let password = if i % 4 == 0 { WRONG } else { PASSWORD };
            // Spread wrong guesses over identifiers the guard does not know yet, so that
            // the identifier limit does not decide for the quota guard.
            let identifier = if i % 4 == 0 {
                format!("nobody-{i}")
            } else {
                "busy".to_owned()
            };
            let answer = app.login(&identifier, password).await;
            (password, answer)
        }
    }))
    .await;
    let elapsed = started.elapsed();

    let mut statuses = std::collections::BTreeMap::new();
    for (password, answer) in &answers {
        *statuses.entry(answer.status.as_u16()).or_insert(0) += 1;
        match answer.status {
            StatusCode::OK => assert_eq!(*password, PASSWORD),
            StatusCode::FORBIDDEN => assert_eq!(*password, WRONG),
            StatusCode::FAILED_DEPENDENCY => {
                assert_eq!(answer.body["error"], "cognito_over_quota", "{answer:?}")
            }
            other => panic!("unexpected status {other}: {answer:?}"),
        }
    }
    let mut instants = fake.call_instants("busy");
    for i in (0..200).filter(|i| i % 4 == 0) {
        instants.extend(fake.call_instants(&format!("nobody-{i}")));
    }
    instants.sort();
    let calls = instants.len();
    assert_eq!(calls, fake.total_calls());
    let worst_second = instants
        .iter()
        .enumerate()
        .map(|(i, &from)| {
            instants[i..]
                .iter()
                .take_while(|&&at| at.duration_since(from) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    println!(
        "answers {statuses:?} in {elapsed:?}; Cognito saw {calls} calls, at most {worst_second} \
         in one second"
    );
    // GCRA admits at most BURST + MAX_RPS calls in any one second of the server's clock;
    // the fake stamps arrivals, and on a loaded two-core machine a call can reach it up to a
    // few hundred ms after it was admitted, pulling calls admitted later into one window.
    // Allow 250 ms of that (MAX_RPS / 4 calls): a limiter that does not limit lets all
    // 200 calls through within a second, far above it.
    const JITTER_CALLS: usize = MAX_RPS / 4;
    assert!(
        worst_second <= MAX_RPS + BURST + JITTER_CALLS,
        "{worst_second} calls in one second"
    );
    // All calls (every user) over the whole run stay within the rate plus the burst (this
    // test's `elapsed` spans every admission, so jitter does not matter here).
    let budget = BURST as f64 + MAX_RPS as f64 * elapsed.as_secs_f64();
    assert!(
        (calls as f64) <= budget + 1.0,
        "{calls} calls in {elapsed:?}"
    );
    assert!(
        statuses.get(&424).copied().unwrap_or(0) > 0,
        "200 calls within a 5 s deadline cannot all fit under 20/s: {statuses:?}"
    );
    assert!(
        statuses.get(&200).copied().unwrap_or(0) >= 40,
        "waiting callers must be served while the deadline allows: {statuses:?}"
    );
}

/// With `cognito.send_context_data`, `AdminInitiateAuth` carries the user's address and
/// user agent; without it, no `ContextData`.
#[tokio::test]
async fn context_data_is_sent_when_configured() {
    for send in [true, false] {
        let capture = CaptureServer::start().await;
        let app = spawn_app(
            AppOptions::new(
                Backend::Sqlite,
                &capture.endpoint,
                cognito_auth_fake::POOL_ID,
                cognito_auth_fake::CLIENT_ID,
            )
            .with("COGNITO_BRIDGE__COGNITO__SEND_CONTEXT_DATA", send)
            .with(
                "COGNITO_BRIDGE__COGNITO__CONTEXT_SERVER_NAME",
                "login.example.com",
            ),
        )
        .await;
        let answer = app
            .post_hook(&json!({
                "identifier": "grace", "password": PASSWORD,
                "client_ip": "[2001:db8::7]:443", "user_agent": "Mozilla/5.0 (Test)"
            }))
            .await;
        assert_no_match(&answer);
        let bodies = capture.bodies();
        assert_eq!(bodies.len(), 1);
        let request: Value = serde_json::from_slice(&bodies[0]).unwrap();
        if send {
            assert_eq!(
                request["ContextData"],
                json!({
                    "IpAddress": "2001:db8::7",
                    "ServerName": "login.example.com",
                    "ServerPath": "/self-service/login",
                    "HttpHeaders": [{"headerName": "User-Agent", "headerValue": "Mozilla/5.0 (Test)"}]
                }),
                "{request}"
            );
        } else {
            assert!(request.get("ContextData").is_none(), "{request}");
        }
        // Without a client address (no `client_ip`, no forwarded headers) there is no
        // ContextData to send, even when configured: the peer's address is Kratos's.
        let answer = app
            .post_hook(&json!({"identifier": "grace", "password": PASSWORD}))
            .await;
        assert_no_match(&answer);
        let bodies = capture.bodies();
        assert_eq!(bodies.len(), 2);
        let request: Value = serde_json::from_slice(&bodies[1]).unwrap();
        assert!(
            request.get("ContextData").is_none(),
            "send={send}: {request}"
        );
    }
}

/// A Cognito stand-in that keeps every request body and answers `NotAuthorizedException`.
struct CaptureServer {
    endpoint: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl CaptureServer {
    async fn start() -> Self {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let Some((_, body)) = cognito_auth_fake::read_request(&mut stream).await else {
                        return;
                    };
                    kept.lock().unwrap().push(body);
                    let answer = r#"{"__type":"NotAuthorizedException","message":"no"}"#;
                    let response = format!(
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { endpoint, bodies }
    }

    fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().unwrap().clone()
    }
}
