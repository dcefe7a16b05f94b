//! Whether the Cognito settings are usable, for `/health/ready`: the last thing Cognito said
//! to a hook call, or, when that is older than a while, a probe.

use std::sync::Mutex;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{AuthAttempt, CognitoAnswer, CognitoVerifier, verdict};
use crate::config::Policies;
use crate::domain::{CognitoUsername, Outcome, Password};

/// How long an observation stands before readiness asks Cognito again.
pub const OBSERVATION_TTL: Duration = Duration::from_secs(30);
/// A username no pool has: the probe expects `UserNotFoundException` or
/// `NotAuthorizedException`, which prove pool, client, region and credentials work.
const PROBE_USERNAME: &str = "cognito-bridge-readiness-probe";
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Observation {
    at: Instant,
    problem: Option<String>,
}

#[derive(Debug)]
pub struct CognitoHealth {
    last: Mutex<Option<Observation>>,
    probing: tokio::sync::Mutex<()>,
}

impl CognitoHealth {
    /// Start with what the startup checks found (`Some` problem, e.g. no credentials).
    pub fn new(startup_problem: Option<String>) -> Self {
        let last = startup_problem.map(|problem| Observation {
            at: Instant::now(),
            problem: Some(problem),
        });
        Self {
            last: Mutex::new(last),
            probing: tokio::sync::Mutex::new(()),
        }
    }

    /// Note what Cognito said: a configuration error sets the problem, any decided
    /// answer clears it; unavailability says nothing about the settings.
    pub fn observe(&self, outcome: Outcome, answer: &CognitoAnswer) {
        let problem = match outcome {
            Outcome::Misconfigured => Some(describe(answer)),
            outcome if outcome.is_decided() => None,
            _ => return,
        };
        *self.lock() = Some(Observation {
            at: Instant::now(),
            problem,
        });
    }

    /// The current problem: the last observation if recent, else a probe's result.
    pub async fn current_problem(
        &self,
        verifier: &dyn CognitoVerifier,
        policies: Policies,
    ) -> Option<String> {
        if let Some(observation) = self.lock().as_ref()
            && observation.at.elapsed() < OBSERVATION_TTL
        {
            return observation.problem.clone();
        }
        // One probe at a time; concurrent readiness checks read the last observation.
        if let Ok(_probing) = self.probing.try_lock() {
            let username = CognitoUsername::parse(PROBE_USERNAME).expect("a valid username");
            let password = Password::new(Zeroizing::new(
                Alphanumeric.sample_string(&mut rand::rng(), 32),
            ));
            let answer = verifier
                .admin_initiate_auth(
                    AuthAttempt {
                        username: &username,
                        password: &password,
                        context: None,
                    },
                    PROBE_TIMEOUT,
                )
                .await;
            let outcome = verdict(&answer, policies);
            tracing::debug!(
                ?answer,
                outcome = outcome.as_str(),
                "Cognito readiness probe"
            );
            self.observe(outcome, &answer);
            if outcome == Outcome::Unavailable {
                // Says nothing about the settings, but counts as asked: an unavailable
                // Cognito is probed once per TTL, not on every readiness check.
                let mut last = self.lock();
                let problem = last.take().and_then(|observation| observation.problem);
                *last = Some(Observation {
                    at: Instant::now(),
                    problem,
                });
            }
        }
        self.lock()
            .as_ref()
            .and_then(|observation| observation.problem.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Observation>> {
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn describe(answer: &CognitoAnswer) -> String {
    match answer {
        CognitoAnswer::Error {
            code: Some(code),
            status,
        } => format!(
            "Cognito refused our call: {code} (HTTP {status}); check the cognito settings and IAM permissions"
        ),
        CognitoAnswer::Error { code: None, status } => {
            format!("Cognito refused our call with HTTP {status}; check the cognito settings")
        }
        _ => "the Cognito request could not be sent; check AWS credentials and cognito settings"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;

    /// Answers every probe with `answer` and counts them.
    struct Probed {
        answer: CognitoAnswer,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl CognitoVerifier for Probed {
        async fn admin_initiate_auth(&self, _: AuthAttempt<'_>, _: Duration) -> CognitoAnswer {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answer.clone()
        }
    }

    fn refused(code: &str) -> CognitoAnswer {
        CognitoAnswer::Error {
            code: Some(code.to_owned()),
            status: 400,
        }
    }

    // tokio's paused clock stands in for the 30 s: the test runs in no time.
    #[tokio::test(start_paused = true)]
    async fn readiness_probes_again_once_the_last_observation_is_older_than_30_s() {
        let verifier = Probed {
            answer: refused("ResourceNotFoundException"),
            calls: AtomicUsize::new(0),
        };
        let health = CognitoHealth::new(None);
        let policies = Policies::default();

        let problem = health.current_problem(&verifier, policies).await;
        assert!(problem.is_some_and(|p| p.contains("ResourceNotFoundException")));
        assert_eq!(verifier.calls.load(Ordering::SeqCst), 1);

        tokio::time::advance(OBSERVATION_TTL - Duration::from_secs(1)).await;
        assert!(health.current_problem(&verifier, policies).await.is_some());
        assert_eq!(verifier.calls.load(Ordering::SeqCst), 1, "still fresh");

        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(health.current_problem(&verifier, policies).await.is_some());
        assert_eq!(verifier.calls.load(Ordering::SeqCst), 2, "probed again");

        // A decided hook answer clears the problem and counts as a fresh observation.
        health.observe(Outcome::NotAuthorized, &refused("NotAuthorizedException"));
        assert_eq!(health.current_problem(&verifier, policies).await, None);
        assert_eq!(verifier.calls.load(Ordering::SeqCst), 2);
    }
}
