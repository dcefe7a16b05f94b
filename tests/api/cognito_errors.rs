//! Contract 2's error paths through the real app, with the loopback Cognito fake: what each
//! Cognito answer becomes for Kratos, for the user's state, the attempt log and readiness.

use std::time::{Duration, Instant};

use cognito_bridge::domain::UserState;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::doubles::kratos_hook_caller::KratosDouble;
use crate::helpers::{
    API_KEY, AppOptions, Backend, HookAnswer, TestApp, assert_match, assert_no_match, spawn_app,
};

const PASSWORD: &str = "Correct-Horse-9";
/// Short enough to keep tests quick, long enough for several Cognito attempts.
const SHORT_DEADLINE_MS: u64 = 1500;
/// Slack on top of the hook's own deadline, measured at the client: the HTTP round trip plus
/// scheduling delays. 500 ms, not the 100 ms a quiet machine needs, because the suite runs on
/// two cores beside Kratos, Hydra, Postgres and compilers, where this process or the server
/// can be off the CPU for a few hundred ms. It still tells "gave up at the deadline" from
/// "waited for Cognito": the slow script answers at twice the deadline (+1500 ms), the hang
/// never, and the deadline-bound tests run one at a time (`.config/nextest.toml`).
const SLACK: Duration = Duration::from_millis(500);

on_both_backends!(
    unconfirmed_user_is_refused_and_needs_recovery,
    reset_required_user_is_refused_and_needs_recovery,
    mfa_challenge_under_deny_is_refused_and_needs_recovery,
    mfa_challenge_under_allow_migrates_with_mfa_dropped,
    temporary_password_under_deny_is_refused_and_needs_recovery,
    temporary_password_under_allow_migrates,
    mfa_setup_challenge_migrates,
    attempt_rows_record_outcome_calls_and_request_id,
);

async fn start_fake() -> CognitoFake {
    CognitoFake::start(FakeConfig::default()).await
}

fn options(backend: Backend, fake: &CognitoFake) -> AppOptions {
    AppOptions::new(
        backend,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    )
}

async fn spawn_with(fake: &CognitoFake, backend: Backend, deadline_ms: u64) -> TestApp {
    let mut options = options(backend, fake);
    options.deadline_ms = deadline_ms;
    spawn_app(options).await
}

/// One hook call and how long the app took to answer it.
async fn timed_login(app: &TestApp, identifier: &str, password: &str) -> (HookAnswer, Duration) {
    let started = Instant::now();
    let answer = app.login(identifier, password).await;
    (answer, started.elapsed())
}

/// A 424 with the given JSON code and a small body.
fn assert_failed_dependency(answer: &HookAnswer, code: &str) {
    assert_eq!(answer.status, StatusCode::FAILED_DEPENDENCY, "{answer:?}");
    assert_eq!(answer.body["error"], code, "{answer:?}");
    assert!(answer.body_len < 1024, "{answer:?}");
    let text = answer.body.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains(API_KEY),
        "{text}"
    );
}

async fn state_of(app: &TestApp, user: &str) -> Option<UserState> {
    app.store
        .user(user)
        .await
        .unwrap()
        .map(|record| record.state)
}

/// Neither migrated nor sent to recovery: no row, or still `pending`.
fn assert_undecided(state: Option<UserState>) {
    assert!(
        matches!(state, None | Some(UserState::Pending)),
        "{state:?}"
    );
}

/// After a 424 `cognito_unavailable`: Cognito was asked exactly once (`retried: false`: the
/// one call took the whole deadline) or more than once (`retried: true`: quick failures are
/// retried), the attempt row says `unavailable` with as many calls as the fake saw, and the
/// user is neither migrated nor sent to recovery.
async fn assert_gave_up_unavailable(app: &TestApp, fake: &CognitoFake, user: &str, retried: bool) {
    let calls = fake.calls(user);
    if retried {
        assert!(calls > 1, "{user}: not retried ({calls} call)");
    } else {
        assert_eq!(calls, 1, "{user}: one call took the whole deadline");
    }
    let attempts = app.store.recent_attempts(10).await.unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "{user}: one hook call, one row: {attempts:?}"
    );
    assert_eq!(attempts[0].outcome, "unavailable", "{attempts:?}");
    assert_eq!(
        attempts[0].cognito_calls as usize, calls,
        "{user}: the row counts every call the fake saw"
    );
    assert_undecided(state_of(app, user).await);
}

// --- unavailability: retried inside the deadline, then 424 ------------------------------------

/// Each way Cognito can fail to decide ends in a 424 `cognito_unavailable` within the
/// deadline, retried while quick failures leave time (`retried`), and recorded as such.
#[tokio::test]
async fn unavailable_cognito_is_424_within_the_deadline() {
    let slow = Script::delay(
        Duration::from_millis(2 * SHORT_DEADLINE_MS),
        Script::Authenticate,
    );
    let cases: [(&str, Script, bool); 4] = [
        ("throttled", Script::error("TooManyRequestsException"), true),
        ("hangs", Script::Hang, false),
        // A late success must not migrate anyone, nor send them to recovery.
        ("slow", slow, false),
        ("dropped", Script::DropConnection, true),
    ];
    for (user, script, retried) in cases {
        let fake = start_fake().await;
        fake.user(user, PASSWORD, script);
        let app = spawn_with(&fake, Backend::Sqlite, SHORT_DEADLINE_MS).await;

        let (answer, elapsed) = timed_login(&app, user, PASSWORD).await;

        assert_failed_dependency(&answer, "cognito_unavailable");
        assert!(
            elapsed < Duration::from_millis(SHORT_DEADLINE_MS) + SLACK,
            "{user}: {elapsed:?}"
        );
        assert_gave_up_unavailable(&app, &fake, user, retried).await;
        let instants = fake.call_instants(user);
        assert!(
            instants.windows(2).all(|pair| pair[1] > pair[0]),
            "{user}: calls must be sequential"
        );
    }
}

#[tokio::test]
async fn internal_errors_and_limit_exceeded_are_unavailable() {
    let fake = start_fake().await;
    fake.user(
        "internal",
        PASSWORD,
        Script::error("InternalErrorException"),
    );
    fake.user("limited", PASSWORD, Script::error("LimitExceededException"));
    fake.user(
        "bare-503",
        PASSWORD,
        Script::Error {
            code: "ServiceUnavailable",
            status: 503,
        },
    );
    let deadline_ms = 1000;
    // Retries are the subject here, not the circuit breaker (faults.rs covers it): keep it
    // from opening after the first user's five unavailable answers.
    let mut options =
        options(Backend::Sqlite, &fake).with("COGNITO_BRIDGE__COGNITO__CIRCUIT_FAILURES", 1000);
    options.deadline_ms = deadline_ms;
    let app = spawn_app(options).await;

    for user in ["internal", "limited", "bare-503"] {
        let (answer, elapsed) = timed_login(&app, user, PASSWORD).await;
        assert_failed_dependency(&answer, "cognito_unavailable");
        assert!(
            elapsed < Duration::from_millis(deadline_ms) + SLACK,
            "{user}: {elapsed:?}"
        );
        assert!(fake.calls(user) > 1, "{user} was not retried");
    }
}

#[tokio::test]
async fn throttled_twice_then_authenticated_is_a_match() {
    let fake = start_fake().await;
    fake.user(
        "recovers",
        PASSWORD,
        Script::fail_times(2, "TooManyRequestsException", Script::Authenticate),
    );
    let app = spawn_with(&fake, Backend::Sqlite, 5000).await;

    assert_match(&app.login("recovers", PASSWORD).await);

    assert_eq!(fake.calls("recovers"), 3);
    assert_eq!(state_of(&app, "recovers").await, Some(UserState::Migrated));
    let attempts = app.store.recent_attempts(1).await.unwrap();
    assert_eq!(attempts[0].outcome, "verified");
    assert_eq!(attempts[0].cognito_calls, 3);
}

#[tokio::test]
async fn nothing_listening_at_the_endpoint_is_424_within_the_deadline() {
    let endpoint = cognito_auth_fake::unused_endpoint().await;
    let mut options = AppOptions::new(
        Backend::Sqlite,
        &endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    );
    options.deadline_ms = SHORT_DEADLINE_MS;
    let app = spawn_app(options).await;

    let (answer, elapsed) = timed_login(&app, "nobody-home", PASSWORD).await;

    assert_failed_dependency(&answer, "cognito_unavailable");
    assert!(
        elapsed < Duration::from_millis(SHORT_DEADLINE_MS) + SLACK,
        "{elapsed:?}"
    );
    let attempts = app.store.recent_attempts(1).await.unwrap();
    assert_eq!(attempts[0].outcome, "unavailable");
    assert!(
        attempts[0].cognito_calls > 1,
        "connection errors are retried"
    );
}

// --- decided refusals: never retried ------------------------------------------------------------

#[tokio::test]
async fn not_authorized_reaches_cognito_exactly_once_per_hook_call() {
    let fake = start_fake().await;
    fake.user("alice", PASSWORD, Script::Authenticate);
    let app = spawn_with(&fake, Backend::Sqlite, 5000).await;

    for call in 1..=3 {
        assert_no_match(&app.login("alice", "wrong-password").await);
        assert_eq!(fake.calls("alice"), call);
    }

    let attempts = app.store.recent_attempts(10).await.unwrap();
    assert_eq!(attempts.len(), 3);
    for attempt in &attempts {
        assert_eq!(attempt.outcome, "not_authorized");
        assert_eq!(attempt.cognito_calls, 1);
    }
    // A wrong password proves nothing: the user is not sent to recovery nor migrated.
    assert_undecided(state_of(&app, "alice").await);
}

#[tokio::test]
async fn unknown_user_is_refused_once_and_gets_no_row() {
    let fake = start_fake().await;
    let app = spawn_with(&fake, Backend::Sqlite, 5000).await;

    assert_no_match(&app.login("ghost", PASSWORD).await);

    assert_eq!(fake.calls("ghost"), 1);
    assert_eq!(state_of(&app, "ghost").await, None);
    let attempts = app.store.recent_attempts(1).await.unwrap();
    assert_eq!(attempts[0].outcome, "unknown_user");
}

async fn refused_into_recovery(backend: Backend, script: Script, outcome: &str) {
    let fake = start_fake().await;
    fake.user("bob", PASSWORD, script);
    let app = spawn_with(&fake, backend, 5000).await;

    assert_no_match(&app.login("bob", PASSWORD).await);

    assert_eq!(fake.calls("bob"), 1, "a decided answer is never retried");
    assert_eq!(state_of(&app, "bob").await, Some(UserState::NeedsRecovery));
    let attempts = app.store.recent_attempts(1).await.unwrap();
    assert_eq!(attempts[0].outcome, outcome);
}

async fn unconfirmed_user_is_refused_and_needs_recovery(backend: Backend) {
    refused_into_recovery(
        backend,
        Script::error("UserNotConfirmedException"),
        "unconfirmed",
    )
    .await;
}

async fn reset_required_user_is_refused_and_needs_recovery(backend: Backend) {
    refused_into_recovery(
        backend,
        Script::error("PasswordResetRequiredException"),
        "reset_required",
    )
    .await;
}

/// A pool's Lambda trigger (pre-authentication, user migration) refusing one user is that
/// user's verdict: 403, never retried, neutral for the guard, and the replica stays ready.
/// A configuration error, unlike it, still answers 424 and makes readiness 503.
#[tokio::test]
async fn a_lambda_refusing_one_user_is_403_and_leaves_readiness_alone() {
    let fake = start_fake().await;
    fake.user(
        "refused",
        PASSWORD,
        Script::error("UserLambdaValidationException"),
    );
    fake.user(
        "misrouted",
        PASSWORD,
        Script::error("ResourceNotFoundException"),
    );
    let app = spawn_with(&fake, Backend::Sqlite, 5000).await;
    let (status, _) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK);

    // More refusals than `guard.identifier_failures` (5): the password may be right, so none
    // counts as a failed guess and every one is Cognito's (the Lambda's) to decide.
    for call in 1..=6 {
        assert_no_match(&app.login("refused", PASSWORD).await);
        assert_eq!(fake.calls("refused"), call, "asked once per hook call");
    }
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let attempts = app.store.recent_attempts(10).await.unwrap();
    assert_eq!(attempts.len(), 6);
    assert!(
        attempts
            .iter()
            .all(|attempt| attempt.outcome == "refused_by_lambda" && attempt.cognito_calls == 1),
        "{attempts:?}"
    );
    assert_undecided(state_of(&app, "refused").await);

    let answer = app.login("misrouted", PASSWORD).await;
    assert_failed_dependency(&answer, "cognito_misconfigured");
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

// --- challenges and their policies ----------------------------------------------------------

async fn spawn_with_policies(
    fake: &CognitoFake,
    backend: Backend,
    mfa_policy: &'static str,
    temporary_password_policy: &'static str,
) -> TestApp {
    let mut options = options(backend, fake);
    options.mfa_policy = mfa_policy;
    options.temporary_password_policy = temporary_password_policy;
    spawn_app(options).await
}

async fn mfa_challenge_under_deny_is_refused_and_needs_recovery(backend: Backend) {
    let fake = start_fake().await;
    fake.user("mfa", PASSWORD, Script::Challenge("SOFTWARE_TOKEN_MFA"));
    let app = spawn_with_policies(&fake, backend, "deny", "allow").await;

    // A wrong password never reaches the challenge, so it moves nobody to recovery.
    assert_no_match(&app.login("mfa", "wrong-password").await);
    assert_undecided(state_of(&app, "mfa").await);

    assert_no_match(&app.login("mfa", PASSWORD).await);
    let user = app.store.user("mfa").await.unwrap().unwrap();
    assert_eq!(user.state, UserState::NeedsRecovery);
    assert!(!user.mfa_dropped);
    assert_eq!(fake.calls("mfa"), 2);
    let attempts = app.store.recent_attempts(1).await.unwrap();
    assert_eq!(attempts[0].outcome, "mfa_denied");
}

async fn mfa_challenge_under_allow_migrates_with_mfa_dropped(backend: Backend) {
    let fake = start_fake().await;
    fake.user("mfa", PASSWORD, Script::Challenge("SOFTWARE_TOKEN_MFA"));
    let app = spawn_with_policies(&fake, backend, "allow", "deny").await;

    assert_match(&app.login("mfa", PASSWORD).await);

    let user = app.store.user("mfa").await.unwrap().unwrap();
    assert_eq!(user.state, UserState::Migrated);
    assert!(user.mfa_dropped);
    assert_eq!(user.migrated_via.as_deref(), Some("hook"));
    let attempts = app.store.recent_attempts(1).await.unwrap();
    assert_eq!(attempts[0].outcome, "verified_mfa_dropped");
    // What `report` shows (its rendering: src/report.rs tests).
    let progress = app.store.progress().await.unwrap();
    assert_eq!(progress.mfa_dropped, 1, "{progress:?}");
    assert_eq!(progress.states["migrated"], 1, "{progress:?}");
}

async fn temporary_password_under_deny_is_refused_and_needs_recovery(backend: Backend) {
    let fake = start_fake().await;
    fake.user("temp", PASSWORD, Script::Challenge("NEW_PASSWORD_REQUIRED"));
    let app = spawn_with_policies(&fake, backend, "allow", "deny").await;

    assert_no_match(&app.login("temp", PASSWORD).await);

    assert_eq!(state_of(&app, "temp").await, Some(UserState::NeedsRecovery));
    let attempts = app.store.recent_attempts(1).await.unwrap();
    assert_eq!(attempts[0].outcome, "temporary_password_denied");
}

async fn temporary_password_under_allow_migrates(backend: Backend) {
    let fake = start_fake().await;
    fake.user("temp", PASSWORD, Script::Challenge("NEW_PASSWORD_REQUIRED"));
    let app = spawn_with_policies(&fake, backend, "deny", "allow").await;

    assert_match(&app.login("temp", PASSWORD).await);

    let user = app.store.user("temp").await.unwrap().unwrap();
    assert_eq!(user.state, UserState::Migrated);
    assert!(!user.mfa_dropped);
}

async fn mfa_setup_challenge_migrates(backend: Backend) {
    let fake = start_fake().await;
    fake.user("setup", PASSWORD, Script::Challenge("MFA_SETUP"));
    let app = spawn_with_policies(&fake, backend, "deny", "deny").await;

    assert_match(&app.login("setup", PASSWORD).await);

    let user = app.store.user("setup").await.unwrap().unwrap();
    assert_eq!(user.state, UserState::Migrated);
    assert!(!user.mfa_dropped, "MFA_SETUP loses no second factor");
}

#[tokio::test]
async fn every_challenge_maps_to_its_answer_under_deny() {
    let fake = start_fake().await;
    // (user, challenge, answered 200, attempt outcome, user state afterwards: `None` for
    // undecided, i.e. no row or `pending`).
    let cases: [(&str, &'static str, bool, &str, Option<UserState>); 8] = [
        (
            "c-sms",
            "SMS_MFA",
            false,
            "mfa_denied",
            Some(UserState::NeedsRecovery),
        ),
        (
            "c-totp",
            "SOFTWARE_TOKEN_MFA",
            false,
            "mfa_denied",
            Some(UserState::NeedsRecovery),
        ),
        (
            "c-email",
            "EMAIL_OTP",
            false,
            "mfa_denied",
            Some(UserState::NeedsRecovery),
        ),
        (
            "c-select",
            "SELECT_MFA_TYPE",
            false,
            "mfa_denied",
            Some(UserState::NeedsRecovery),
        ),
        (
            "c-temp",
            "NEW_PASSWORD_REQUIRED",
            false,
            "temporary_password_denied",
            Some(UserState::NeedsRecovery),
        ),
        // An unknown challenge is refused but proves nothing about recovery.
        (
            "c-custom",
            "CUSTOM_CHALLENGE",
            false,
            "unexpected_challenge",
            None,
        ),
        (
            "c-setup",
            "MFA_SETUP",
            true,
            "verified",
            Some(UserState::Migrated),
        ),
        (
            "c-device",
            "DEVICE_SRP_AUTH",
            true,
            "verified",
            Some(UserState::Migrated),
        ),
    ];
    for (user, challenge, ..) in cases {
        fake.user(user, PASSWORD, Script::Challenge(challenge));
    }
    let app = spawn_with_policies(&fake, Backend::Sqlite, "deny", "deny").await;

    for (user, challenge, matched, outcome, state) in cases {
        let answer = app.login(user, PASSWORD).await;
        if matched {
            assert_match(&answer);
        } else {
            assert_no_match(&answer);
        }
        assert_eq!(fake.calls(user), 1, "{challenge}");
        let attempts = app.store.recent_attempts(1).await.unwrap();
        assert_eq!(attempts[0].outcome, outcome, "{challenge}: {attempts:?}");
        assert_eq!(attempts[0].cognito_calls, 1, "{challenge}");
        match state {
            None => assert_undecided(state_of(&app, user).await),
            Some(state) => {
                let record = app.store.user(user).await.unwrap().unwrap();
                assert_eq!(record.state, state, "{challenge}");
                assert!(
                    !record.mfa_dropped,
                    "{challenge}: no factor dropped under deny"
                );
            }
        }
    }
    assert_eq!(
        app.store.recent_attempts(100).await.unwrap().len(),
        cases.len()
    );
}

// --- SECRET_HASH ----------------------------------------------------------------------------

#[tokio::test]
async fn secret_hash_is_sent_when_the_app_client_has_a_secret() {
    let fake = CognitoFake::start(FakeConfig::with_client_secret("fake-client-secret")).await;
    let cases: [(&str, Option<&str>, bool); 3] = [
        ("same-secret", Some("fake-client-secret"), true),
        ("wrong-secret", Some("some-other-secret"), false),
        ("no-secret", None, false),
    ];
    for (user, app_secret, should_match) in cases {
        fake.user(user, PASSWORD, Script::Authenticate);
        let mut options = options(Backend::Sqlite, &fake);
        options.client_secret = app_secret.map(str::to_owned);
        let app = spawn_app(options).await;

        let answer = app.login(user, PASSWORD).await;

        if should_match {
            assert_match(&answer);
        } else {
            assert_no_match(&answer);
        }
        assert_eq!(
            fake.calls(user),
            1,
            "{user}: NotAuthorizedException is never retried"
        );
    }
    assert_eq!(fake.malformed_requests(), 0);
}

// --- configuration errors and readiness -----------------------------------------------------

#[tokio::test]
async fn resource_not_found_is_424_and_readiness_reports_it_until_cognito_decides() {
    let fake = start_fake().await;
    fake.user(
        "misrouted",
        PASSWORD,
        Script::error("ResourceNotFoundException"),
    );
    fake.user("alice", PASSWORD, Script::Authenticate);
    let app = spawn_with(&fake, Backend::Sqlite, 5000).await;
    let (status, _) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK);

    let answer = app.login("misrouted", PASSWORD).await;

    assert_failed_dependency(&answer, "cognito_misconfigured");
    assert_eq!(
        fake.calls("misrouted"),
        1,
        "configuration errors are not retried"
    );
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready", "{body}");
    assert!(body["reason"].is_string(), "{body}");
    assert!(body.to_string().len() < 1024, "{body}");
    assert!(!body.to_string().contains(PASSWORD), "{body}");

    assert_match(&app.login("alice", PASSWORD).await);
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_wrong_user_pool_is_424_misconfigured() {
    let fake = start_fake().await;
    fake.user("alice", PASSWORD, Script::Authenticate);
    let app = spawn_app(AppOptions::new(
        Backend::Sqlite,
        &fake.endpoint,
        "us-east-1_otherpool",
        cognito_auth_fake::CLIENT_ID,
    ))
    .await;

    let answer = app.login("alice", PASSWORD).await;

    assert_failed_dependency(&answer, "cognito_misconfigured");
    assert_eq!(fake.calls("alice"), 1);
    assert_undecided(state_of(&app, "alice").await);
    let (status, _) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn readiness_probes_cognito_when_no_hook_call_told_it_anything() {
    // Correct settings: the probe's unknown user is a decided answer, so ready; the
    // probe result stands for a while, so a second check does not call Cognito again.
    let fake = start_fake().await;
    let app = spawn_with(&fake, Backend::Sqlite, 5000).await;
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(fake.total_calls(), 1, "one probe");
    let (status, _) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.total_calls(), 1, "the probe result is reused");
    assert!(
        app.store.recent_attempts(10).await.unwrap().is_empty(),
        "probes are not attempts"
    );

    // An unavailable Cognito says nothing about the settings: still ready, and probed once
    // per 30 s rather than on every readiness check.
    let fake = start_fake().await;
    fake.user(
        "cognito-bridge-readiness-probe",
        PASSWORD,
        Script::error("TooManyRequestsException"),
    );
    let app = spawn_with(&fake, Backend::Sqlite, 5000).await;
    for _ in 0..3 {
        let (status, body) = app.get("/health/ready").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(fake.calls("cognito-bridge-readiness-probe"), 1);

    // A wrong pool: not ready before any user logs in.
    let fake = start_fake().await;
    let app = spawn_app(AppOptions::new(
        Backend::Sqlite,
        &fake.endpoint,
        "us-east-1_otherpool",
        cognito_auth_fake::CLIENT_ID,
    ))
    .await;
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ResourceNotFoundException")),
        "{body}"
    );
}

// --- the attempt log --------------------------------------------------------------------------

async fn attempt_rows_record_outcome_calls_and_request_id(backend: Backend) {
    let fake = start_fake().await;
    fake.user("alice", PASSWORD, Script::Authenticate);
    fake.user(
        "bumpy",
        PASSWORD,
        Script::fail_times(1, "InternalErrorException", Script::Authenticate),
    );
    fake.user(
        "throttled",
        PASSWORD,
        Script::error("TooManyRequestsException"),
    );
    let app = spawn_with(&fake, backend, 1000).await;
    let kratos = KratosDouble::new(&app.hook_url(), API_KEY);

    let cases: [(&str, &str, &str); 4] = [
        ("alice", PASSWORD, "verified"),
        ("alice", "wrong-password", "not_authorized"),
        ("bumpy", PASSWORD, "verified"),
        ("throttled", PASSWORD, "unavailable"),
    ];
    let mut request_ids = Vec::new();
    for (user, password, _) in cases {
        let login = kratos.login(user, password).await;
        assert_eq!(login.attempt_count(), 1, "{user}: {login:?}");
        request_ids.push(login.request_ids()[0].clone());
    }

    let mut attempts = app.store.recent_attempts(10).await.unwrap();
    attempts.reverse();
    assert_eq!(attempts.len(), cases.len());
    for ((attempt, (user, _, outcome)), request_id) in attempts.iter().zip(cases).zip(&request_ids)
    {
        assert_eq!(attempt.request_id.as_deref(), Some(request_id.as_str()));
        assert_eq!(attempt.outcome, outcome);
        assert_eq!(attempt.cognito_username.as_deref(), Some(user));
        assert!(attempt.cognito_latency_ms.is_some(), "{attempt:?}");
    }
    assert_eq!(attempts[0].cognito_calls, 1);
    assert_eq!(attempts[1].cognito_calls, 1);
    assert_eq!(attempts[2].cognito_calls, 2);
    assert!(attempts[3].cognito_calls > 1);
    assert_eq!(
        usize::try_from(attempts[3].cognito_calls).unwrap(),
        fake.calls("throttled")
    );
    // No secret in the log.
    let dump = app.database.dump().await;
    assert!(!dump.contains(PASSWORD) && !dump.contains("wrong-password"));
}

/// Kratos's answer shape stays JSON with a `status` code on every decided path.
#[tokio::test]
async fn decided_answers_are_small_json_with_a_status_code() {
    let fake = start_fake().await;
    fake.user("alice", PASSWORD, Script::Authenticate);
    fake.user(
        "reset",
        PASSWORD,
        Script::error("PasswordResetRequiredException"),
    );
    let app = spawn_with(&fake, Backend::Sqlite, 5000).await;

    for (user, expected) in [
        ("alice", json!({"status": "password_match"})),
        ("reset", json!({"status": "password_no_match"})),
        ("ghost", json!({"status": "password_no_match"})),
    ] {
        let answer = app.login(user, PASSWORD).await;
        assert_eq!(answer.body, expected, "{user}");
        assert!(answer.body_len < 1024);
        assert_ne!(answer.body, Value::Null);
    }
}
