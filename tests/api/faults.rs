//! Cognito faults under batches of concurrent hook calls: hangs, answers after twice the
//! deadline, 500s, dropped connections, flapping, and the circuit breaker. Whatever Cognito
//! does, every answer reaches the client within the deadline plus a loopback round trip, is
//! never 5xx, and never contradicts Cognito: 424 while it cannot decide.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::helpers::{AppOptions, Backend, TestApp, assert_match, assert_no_match, spawn_app};

const RIGHT: &str = "Faulty-Horse-7";
const WRONG: &str = "not-the-password";
const USERS: [&str; 4] = ["fault-ann", "fault-ben", "fault-cat", "fault-dan"];
const DEADLINE_MS: u64 = 800;
/// Below the deadline, so the hook has time to retry a slow call.
const COGNITO_TIMEOUT_MS: u64 = 300;
/// The loopback HTTP round trip on top of the hook's own deadline, measured at the client,
/// plus scheduling delays: 400 ms rather than 100 ms because these tests share two cores with
/// Kratos, Hydra, Postgres and compilers. Still below what a hook that waited for Cognito
/// would take (the slow outage answers at twice the deadline: 800 ms later).
const SLACK: Duration = Duration::from_millis(400);
/// Short, so recovery after each fault is seen quickly.
const CIRCUIT_OPEN_MS: u64 = 1000;
/// The attempt outcomes of a hook call Cognito could not decide.
const UNDECIDED_OUTCOMES: [&str; 3] = ["unavailable", "circuit_open", "over_quota"];
/// The 424 codes for them: Cognito failed, the circuit is open, or the quota guard had no
/// capacity within the deadline.
const UNDECIDED_CODES: [&str; 3] = [
    "cognito_unavailable",
    "cognito_circuit_open",
    "cognito_over_quota",
];

fn deadline() -> Duration {
    Duration::from_millis(DEADLINE_MS)
}

/// A fake that knows `USERS`, all with the password `RIGHT`.
async fn fake_with_users() -> CognitoFake {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    for user in USERS {
        fake.user(user, RIGHT, Script::Authenticate);
    }
    fake
}

/// A short deadline, and a brute-force guard high enough that the many wrong passwords of a
/// batch never lock a user out (a lockout would be a 403 for a right password, by design).
/// The quota guard keeps its defaults (50/s, 32 in flight).
fn options(fake: &CognitoFake) -> AppOptions {
    let mut options = AppOptions::new(
        Backend::Sqlite,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    );
    options.deadline_ms = DEADLINE_MS;
    options.cognito_timeout_ms = COGNITO_TIMEOUT_MS;
    options
        .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 1_000_000)
        .with("COGNITO_BRIDGE__GUARD__IP_FAILURES", 1_000_000)
        .with("COGNITO_BRIDGE__COGNITO__CIRCUIT_OPEN_MS", CIRCUIT_OPEN_MS)
}

/// One hook call as the client saw it.
#[derive(Debug)]
struct Observed {
    #[allow(dead_code)] // shown in failure messages
    user: &'static str,
    right_password: bool,
    status: StatusCode,
    body: Value,
    body_len: usize,
    started: Instant,
    finished: Instant,
}

impl Observed {
    fn elapsed(&self) -> Duration {
        self.finished - self.started
    }
}

async fn call(app: &TestApp, user: &'static str, right_password: bool) -> Observed {
    let started = Instant::now();
    let answer = app
        .login(user, if right_password { RIGHT } else { WRONG })
        .await;
    Observed {
        user,
        right_password,
        status: answer.status,
        body: answer.body,
        body_len: answer.body_len,
        started,
        finished: Instant::now(),
    }
}

/// `count` calls, `concurrency` in flight, over every user with right and wrong passwords.
async fn batch(app: &TestApp, count: usize, concurrency: usize) -> Vec<Observed> {
    let plan: Vec<(&'static str, bool)> = (0..count)
        .map(|i| (USERS[i % USERS.len()], (i / USERS.len()).is_multiple_of(2)))
        .collect();
    stream::iter(plan)
        .map(|(user, right)| call(app, user, right))
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// In time, never 5xx, small JSON, and never a verdict Cognito did not give.
fn assert_sound(observed: &[Observed]) {
    if let Some(slowest) = observed.iter().map(Observed::elapsed).max() {
        eprintln!("{} answers, the slowest after {slowest:?}", observed.len());
    }
    for seen in observed {
        assert!(!seen.status.is_server_error(), "5xx: {seen:?}");
        assert!(
            seen.elapsed() <= deadline() + SLACK,
            "answered after {:?} (deadline {DEADLINE_MS} ms + {SLACK:?}): {seen:?}",
            seen.elapsed()
        );
        assert!(seen.body_len < 1024, "{seen:?}");
        match (seen.right_password, seen.status) {
            (true, StatusCode::OK) => {
                assert_eq!(seen.body, json!({"status": "password_match"}), "{seen:?}")
            }
            (false, StatusCode::FORBIDDEN) => {
                assert_eq!(
                    seen.body,
                    json!({"status": "password_no_match"}),
                    "{seen:?}"
                )
            }
            (_, StatusCode::FAILED_DEPENDENCY) => {
                let code = seen.body["error"].as_str().unwrap_or_default();
                assert!(UNDECIDED_CODES.contains(&code), "{seen:?}");
                let text = seen.body.to_string();
                assert!(!text.contains(RIGHT) && !text.contains(WRONG), "{text}");
            }
            _ => panic!("wrong verdict: {seen:?}"),
        }
    }
}

/// Cognito healthy again: a right password gets 200 once any open circuit has let a probe
/// through, and a wrong one 403.
async fn assert_recovers(app: &TestApp, user: &'static str) {
    let give_up = Instant::now() + Duration::from_millis(CIRCUIT_OPEN_MS) + 4 * deadline();
    loop {
        let seen = call(app, user, true).await;
        assert_sound(std::slice::from_ref(&seen));
        if seen.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "no 200 after Cognito recovered: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_match(&app.login(user, WRONG).await);
}

/// Whether the circuit breaker may step in during a fault.
#[derive(Debug, Clone, Copy)]
enum Circuit {
    /// `cognito.circuit_failures` at its default: soon every call is a fast 424.
    Default,
    /// A threshold no batch reaches: every call meets the fault and retries to its deadline.
    Off,
}

/// The shared scenario: decided answers first (so the app and fake work), then Cognito fails
/// in one way for everyone while 16 concurrent and 6 sequential calls come in, then recovers.
async fn every_call_is_424_in_time_while(outage: Script, circuit: Circuit) {
    let fake = fake_with_users().await;
    let mut options = options(&fake);
    if let Circuit::Off = circuit {
        options = options.with("COGNITO_BRIDGE__COGNITO__CIRCUIT_FAILURES", 1_000_000);
    }
    let app = spawn_app(options).await;
    for user in USERS {
        assert_no_match(&app.login(user, WRONG).await);
    }
    let healthy_calls = fake.total_calls();
    assert_eq!(healthy_calls, USERS.len());

    fake.set_outage(Some(outage));
    let mut observed = batch(&app, 16, 16).await;
    observed.extend(batch(&app, 6, 1).await);

    assert_sound(&observed);
    for seen in &observed {
        assert_eq!(seen.status, StatusCode::FAILED_DEPENDENCY, "{seen:?}");
    }
    let reached = fake.total_calls() - healthy_calls;
    match circuit {
        Circuit::Default => assert!(reached > 0, "the outage was never reached"),
        // Every sequential call met the fault itself, at least once.
        Circuit::Off => assert!(reached >= 6, "only {reached} calls reached the fake"),
    }
    // Every call left a row, and none claims a decision Cognito never made.
    let attempts = app.store.recent_attempts(100).await.unwrap();
    assert_eq!(attempts.len(), USERS.len() + observed.len());
    for attempt in &attempts[..observed.len()] {
        assert!(
            UNDECIDED_OUTCOMES.contains(&attempt.outcome.as_str()),
            "{attempt:?}"
        );
        if let Circuit::Off = circuit {
            assert_ne!(attempt.outcome, "circuit_open", "{attempt:?}");
        }
    }
    for user in USERS {
        let record = app.store.user(user).await.unwrap();
        assert!(
            record
                .as_ref()
                .is_none_or(|r| r.state != cognito_bridge::domain::UserState::Migrated),
            "{user} migrated during the outage: {record:?}"
        );
    }

    fake.set_outage(None);
    assert_recovers(&app, USERS[0]).await;
}

macro_rules! fault_tests {
    ($($name:ident => $outage:expr),+ $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn with_the_circuit() {
                every_call_is_424_in_time_while($outage, Circuit::Default).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn without_the_circuit() {
                every_call_is_424_in_time_while($outage, Circuit::Off).await;
            }
        }
    )+};
}

fault_tests!(
    hanging_cognito => Script::Hang,
    // A right password would be accepted, but too late: never a 200, never a migration.
    cognito_answering_after_twice_the_deadline =>
        Script::delay(2 * deadline(), Script::Authenticate),
    cognito_answering_500_every_time => Script::error("InternalErrorException"),
    cognito_dropping_connections => Script::DropConnection,
);

// --- flapping -----------------------------------------------------------------------------------

const HEALTHY_PHASE: Duration = Duration::from_millis(1200);
const DOWN_PHASE: Duration = Duration::from_millis(800);
/// Short enough that the circuit, opened by a down phase, probes early in the next healthy one.
const FLAPPING_CIRCUIT_OPEN_MS: u64 = 300;

/// Cognito alternates healthy and failing (a different failure each time) while six callers
/// keep logging in. Right passwords get 200 in every healthy phase; nothing is ever wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_cognito_never_gets_a_wrong_verdict_and_serves_while_healthy() {
    let fake = Arc::new(fake_with_users().await);
    // The quota guard is raised so that it is the health of Cognito (and the circuit) that
    // decides what the callers get, not the pace of this test.
    let app = spawn_app(
        options(&fake)
            .with(
                "COGNITO_BRIDGE__COGNITO__CIRCUIT_OPEN_MS",
                FLAPPING_CIRCUIT_OPEN_MS,
            )
            .with("COGNITO_BRIDGE__COGNITO__MAX_RPS", 10_000)
            .with("COGNITO_BRIDGE__COGNITO__BURST", 1_000)
            .with("COGNITO_BRIDGE__COGNITO__MAX_CONCURRENCY", 256),
    )
    .await;

    let outages = [
        Script::error("InternalErrorException"),
        Script::DropConnection,
        Script::Hang,
        Script::delay(2 * deadline(), Script::Authenticate),
    ];
    let started = Instant::now();
    let end = started + (HEALTHY_PHASE + DOWN_PHASE) * outages.len() as u32 + HEALTHY_PHASE;
    let phases: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::new(Mutex::new(vec![(started, true)]));
    let toggler = {
        let fake = fake.clone();
        let phases = phases.clone();
        tokio::spawn(async move {
            for outage in outages {
                tokio::time::sleep(HEALTHY_PHASE).await;
                fake.set_outage(Some(outage));
                phases.lock().unwrap().push((Instant::now(), false));
                tokio::time::sleep(DOWN_PHASE).await;
                fake.set_outage(None);
                phases.lock().unwrap().push((Instant::now(), true));
            }
        })
    };
    let app = &app;
    let callers = (0..6).map(|caller: usize| async move {
        let mut seen = Vec::new();
        let mut round = 0;
        while Instant::now() < end {
            let user = USERS[caller % USERS.len()];
            seen.push(call(app, user, !(caller + round).is_multiple_of(3)).await);
            round += 1;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        seen
    });
    let observed: Vec<Observed> = futures_util::future::join_all(callers)
        .await
        .into_iter()
        .flatten()
        .collect();
    toggler.await.unwrap();

    assert_sound(&observed);
    let count = |status| observed.iter().filter(|s| s.status == status).count();
    assert!(
        count(StatusCode::FAILED_DEPENDENCY) > 0,
        "no outage was seen"
    );
    assert!(
        count(StatusCode::FORBIDDEN) > 0,
        "no wrong password decided"
    );
    // Each healthy phase served at least one right password.
    let phases = phases.lock().unwrap().clone();
    for (index, window) in phases.windows(2).enumerate() {
        let [(from, healthy), (to, _)] = [window[0], window[1]];
        if !healthy {
            continue;
        }
        assert!(
            observed
                .iter()
                .any(|s| s.status == StatusCode::OK && s.finished >= from && s.finished <= to),
            "healthy phase {index} ({:?} .. {:?} after start) served no 200; {} calls seen",
            from - started,
            to - started,
            observed.len()
        );
    }
    assert_recovers(app, USERS[1]).await;
}

// --- circuit breaker ----------------------------------------------------------------------------

const CIRCUIT_FAILURES: usize = 5;
/// Long enough for the open-circuit checks below to finish well inside it, on a loaded
/// machine too (16 calls, 12 of them at once).
const LONG_CIRCUIT_OPEN: Duration = Duration::from_millis(2500);
/// Past the open period before the half-open checks: the breaker's timer starts when the
/// server has read the failing answer, a little after the fake stamped it (`last_call`); on a
/// loaded machine that can be a few hundred ms, so 300 ms rather than 50.
const PAST_OPEN: Duration = Duration::from_millis(300);

/// After `cognito.circuit_failures` unavailable calls in a row the circuit opens: calls get a
/// fast 424 and Cognito sees nothing; after `cognito.circuit_open_ms` one probe goes through
/// (a failing probe reopens it), and once Cognito is healthy a probe closes it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_then_lets_one_probe_through_then_closes() {
    let fake = fake_with_users().await;
    let app = spawn_app(
        options(&fake)
            .with(
                "COGNITO_BRIDGE__COGNITO__CIRCUIT_FAILURES",
                CIRCUIT_FAILURES,
            )
            .with(
                "COGNITO_BRIDGE__COGNITO__CIRCUIT_OPEN_MS",
                LONG_CIRCUIT_OPEN.as_millis(),
            )
            // Only the circuit, not the rate limit, decides who reaches Cognito here.
            .with("COGNITO_BRIDGE__COGNITO__MAX_RPS", 10_000)
            .with("COGNITO_BRIDGE__COGNITO__BURST", 1_000),
    )
    .await;
    fake.set_outage(Some(Script::error("InternalErrorException")));

    // Sequential calls until one is answered without reaching Cognito.
    let mut opened = false;
    for _ in 0..10 {
        let before = fake.total_calls();
        let seen = call(&app, USERS[0], true).await;
        assert_sound(std::slice::from_ref(&seen));
        assert_eq!(seen.status, StatusCode::FAILED_DEPENDENCY, "{seen:?}");
        if fake.total_calls() == before {
            opened = true;
            break;
        }
    }
    assert!(opened, "the circuit never opened");
    assert_eq!(
        fake.total_calls(),
        CIRCUIT_FAILURES,
        "the circuit opens after exactly `cognito.circuit_failures` failed calls"
    );
    let opened_at = fake.last_call().unwrap();

    // Open: concurrent and sequential calls, for any user, answered fast, none reaching Cognito.
    let mut observed = batch(&app, 12, 12).await;
    observed.extend(batch(&app, 4, 1).await);
    assert_sound(&observed);
    // Half the deadline (was a quarter): an open circuit answers in a few ms on a quiet
    // machine, but a loaded one can add a few hundred; a call that waited for Cognito would
    // take the whole deadline.
    let fast = deadline() / 2;
    for seen in &observed {
        assert_eq!(seen.body["error"], "cognito_circuit_open", "{seen:?}");
        assert!(seen.elapsed() < fast, "not fast: {seen:?}");
        assert!(
            seen.finished < opened_at + LONG_CIRCUIT_OPEN,
            "the open-circuit checks ran past the open period; the test is too slow to tell"
        );
    }
    assert_eq!(fake.total_calls(), CIRCUIT_FAILURES, "calls while open");
    // Readiness and the metrics show it.
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("circuit open"),
        "{body}"
    );
    let metrics = app.get_text("/metrics").await.1;
    assert!(
        metrics.contains("cognito_bridge_cognito_circuit_state 2\n"),
        "{metrics}"
    );
    let attempts = app
        .store
        .recent_attempts(observed.len() as i64)
        .await
        .unwrap();
    for attempt in &attempts {
        assert_eq!(attempt.outcome, "circuit_open", "{attempt:?}");
        assert_eq!(attempt.cognito_calls, 0, "{attempt:?}");
    }

    // Half open, Cognito still failing: of six concurrent calls exactly one probes Cognito;
    // the failed probe reopens the circuit.
    tokio::time::sleep_until((opened_at + LONG_CIRCUIT_OPEN + PAST_OPEN).into()).await;
    let observed = batch(&app, 6, 6).await;
    assert_sound(&observed);
    for seen in &observed {
        assert_eq!(seen.status, StatusCode::FAILED_DEPENDENCY, "{seen:?}");
    }
    assert_eq!(fake.total_calls(), CIRCUIT_FAILURES + 1, "one probe");
    let reopened_at = fake.last_call().unwrap();
    let seen = call(&app, USERS[2], true).await;
    assert_eq!(seen.body["error"], "cognito_circuit_open", "{seen:?}");
    assert!(
        seen.elapsed() < fast,
        "reopened circuit is not fast: {seen:?}"
    );
    assert_eq!(fake.total_calls(), CIRCUIT_FAILURES + 1, "reopened");

    // Healthy again: after the open period the probe succeeds and the circuit closes.
    fake.set_outage(None);
    tokio::time::sleep_until((reopened_at + LONG_CIRCUIT_OPEN + PAST_OPEN).into()).await;
    assert_match(&app.login(USERS[3], RIGHT).await);
    assert_eq!(fake.total_calls(), CIRCUIT_FAILURES + 2, "the probe");
    let observed = batch(&app, 8, 8).await;
    assert_sound(&observed);
    for seen in &observed {
        assert_ne!(seen.status, StatusCode::FAILED_DEPENDENCY, "{seen:?}");
    }
    assert_eq!(
        fake.total_calls(),
        CIRCUIT_FAILURES + 2 + observed.len(),
        "a closed circuit lets every call through"
    );
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let metrics = app.get_text("/metrics").await.1;
    for line in [
        "cognito_bridge_cognito_circuit_state 0\n",
        "cognito_bridge_cognito_circuit_opened_total 2\n",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in {metrics}");
    }
}
