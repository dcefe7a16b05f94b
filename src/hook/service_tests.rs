//! `HookService` without HTTP: a scripted in-process verifier shows the retry, deadline and
//! policy decisions the service makes around Cognito's answers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::cognito::CognitoAnswer;
use crate::config::{Policies, Policy, QuotaSettings, Settings};

/// Answers from a script, each after its delay (a delay beyond the attempt's budget is a
/// timeout, as the AWS client reports it); counts the calls.
struct ScriptedVerifier {
    script: Mutex<VecDeque<(Duration, CognitoAnswer)>>,
    calls: AtomicUsize,
}

impl ScriptedVerifier {
    fn new(script: impl IntoIterator<Item = (Duration, CognitoAnswer)>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into_iter().collect()),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CognitoVerifier for ScriptedVerifier {
    async fn admin_initiate_auth(
        &self,
        _: AuthAttempt<'_>,
        attempt_timeout: Duration,
    ) -> CognitoAnswer {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        let (delay, answer) = next.unwrap_or((Duration::ZERO, CognitoAnswer::Authenticated));
        if delay > attempt_timeout {
            tokio::time::sleep(attempt_timeout).await;
            return CognitoAnswer::Timeout;
        }
        tokio::time::sleep(delay).await;
        answer
    }
}

fn error(code: &str, status: u16) -> CognitoAnswer {
    CognitoAnswer::Error {
        code: Some(code.to_owned()),
        status,
    }
}

/// A service on a fresh SQLite store, with the default guard and quota settings.
async fn service(
    verifier: Arc<ScriptedVerifier>,
    policies: Policies,
    deadline: Duration,
) -> (HookService, tempfile::TempDir) {
    service_with(verifier, policies, deadline, &[]).await
}

/// The same, with `COGNITO_BRIDGE__…` settings of the test's own.
async fn service_with(
    verifier: Arc<ScriptedVerifier>,
    policies: Policies,
    deadline: Duration,
    extra: &[(&str, &str)],
) -> (HookService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bridge.db").display());
    let store = crate::store::connect(&url.into(), 2).await.unwrap();
    store.migrate().await.unwrap();
    let settings = Settings::load_from(
        None,
        [
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_Test"),
            ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "client"),
        ]
        .iter()
        .chain(extra)
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let rules = HookRules {
        policies,
        timing: HookTiming::for_deadline(deadline),
        guard: settings.guard.limits(),
        gate: CognitoGate::new(
            QuotaSettings::from_settings(&settings.cognito).unwrap(),
            metrics.clone(),
            None,
        ),
        client_ip: ClientIpRule::new(Vec::new(), None),
    };
    let health = Arc::new(CognitoHealth::new(None));
    let service = HookService::new(store, verifier, health, metrics, rules);
    (service, dir)
}

async fn verify(service: &HookService) -> Outcome {
    let request =
        HookRequest::from_json(br#"{"identifier":"alice","password":"Correct-Horse-9"}"#).unwrap();
    service.verify(&request, &RequestMeta::default()).await
}

const DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_throttled_answer_is_asked_again_and_the_second_answer_decides() {
    let verifier = ScriptedVerifier::new([
        (Duration::ZERO, error("TooManyRequestsException", 400)),
        (Duration::ZERO, CognitoAnswer::Authenticated),
    ]);
    let (service, _dir) = service(verifier.clone(), Policies::default(), DEADLINE).await;
    assert_eq!(verify(&service).await, Outcome::Verified);
    assert_eq!(verifier.calls(), 2);
}

#[tokio::test]
async fn a_wrong_password_is_asked_once() {
    let verifier = ScriptedVerifier::new([(Duration::ZERO, error("NotAuthorizedException", 400))]);
    let (service, _dir) = service(verifier.clone(), Policies::default(), DEADLINE).await;
    assert_eq!(verify(&service).await, Outcome::NotAuthorized);
    assert_eq!(verifier.calls(), 1);
}

#[tokio::test]
async fn a_cognito_slower_than_the_deadline_is_unavailable_within_it() {
    let deadline = Duration::from_millis(600);
    // Every attempt hangs far beyond the deadline.
    let verifier = ScriptedVerifier::new(std::iter::repeat_n(
        (Duration::from_secs(30), CognitoAnswer::Authenticated),
        10,
    ));
    let (service, _dir) = service(verifier.clone(), Policies::default(), deadline).await;
    let started = Instant::now();
    assert_eq!(verify(&service).await, Outcome::Unavailable);
    // The service's own budget: the deadline. The margin (400 ms) is for a loaded 2-core
    // machine running the SQLite write beside other tests; a missing deadline would wait 30 s.
    let elapsed = started.elapsed();
    assert!(
        elapsed < deadline + Duration::from_millis(400),
        "{elapsed:?}"
    );
    assert!(verifier.calls() >= 1);
}

#[tokio::test]
async fn mfa_and_temporary_password_challenges_follow_the_policies() {
    let cases = [
        ("SMS_MFA", Policies::default(), Outcome::MfaDenied),
        (
            "SMS_MFA",
            Policies {
                mfa: Policy::Allow,
                ..Policies::default()
            },
            Outcome::VerifiedMfaDropped,
        ),
        (
            "NEW_PASSWORD_REQUIRED",
            Policies::default(),
            Outcome::TemporaryPasswordDenied,
        ),
        (
            "NEW_PASSWORD_REQUIRED",
            Policies {
                temporary_password: Policy::Allow,
                ..Policies::default()
            },
            Outcome::VerifiedTemporaryPassword,
        ),
    ];
    for (challenge, policies, expected) in cases {
        let verifier = ScriptedVerifier::new([(
            Duration::ZERO,
            CognitoAnswer::Challenge(challenge.to_owned()),
        )]);
        let (service, _dir) = service(verifier.clone(), policies, DEADLINE).await;
        assert_eq!(verify(&service).await, expected, "{challenge} {policies:?}");
        assert_eq!(verifier.calls(), 1, "{challenge}");
    }
}

/// `cognito_bridge_cognito_quota_refusals_total` counts hook calls answered 424 without
/// reaching Cognito (README, `/metrics`), as the attempt log's `over_quota`/`circuit_open`
/// do: a retry the open circuit stops, in a call Cognito already answered, is not one.
#[tokio::test]
async fn a_retry_stopped_by_the_circuit_is_not_a_quota_refusal() {
    let verifier =
        ScriptedVerifier::new([(Duration::ZERO, error("TooManyRequestsException", 400))]);
    let (service, _dir) = service_with(
        verifier.clone(),
        Policies::default(),
        DEADLINE,
        &[("COGNITO_BRIDGE__COGNITO__CIRCUIT_FAILURES", "1")],
    )
    .await;
    assert_eq!(verify(&service).await, Outcome::Unavailable);
    assert_eq!(verifier.calls(), 1, "the open circuit stops the retry");
    let text = service.metrics_text();
    assert!(
        !text.contains("cognito_bridge_cognito_quota_refusals_total{"),
        "{text}"
    );

    // The next call does not reach Cognito: that one is refused, and counted.
    assert_eq!(verify(&service).await, Outcome::CircuitOpen);
    assert_eq!(verifier.calls(), 1);
    assert!(
        service
            .metrics_text()
            .contains("cognito_bridge_cognito_quota_refusals_total{limit=\"circuit_open\"} 1")
    );
}
