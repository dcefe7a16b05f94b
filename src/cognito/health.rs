//! Whether the Cognito settings are usable, for `/health/ready`: the last thing Cognito said
//! to a hook call, or, when that is older than a while, a probe.

use std::sync::Mutex;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{CognitoAnswer, CognitoVerifier, verdict};
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
                .admin_initiate_auth(&username, &password, None, PROBE_TIMEOUT)
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
