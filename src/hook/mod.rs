//! The password migration hook's service: resolve the Cognito username, verify the password
//! within the deadline (retrying only unavailability), record the outcome.

mod request;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

pub use request::{HookBodyError, HookRequest};

use crate::cognito::{CognitoAnswer, CognitoHealth, CognitoVerifier, Policies, verdict};
use crate::domain::{CognitoUsername, Outcome, normalize_identifier};
use crate::store::{Attempt, Store, UserLookup};

/// Kratos's correlation headers, for the span and the attempt log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub trigger_id: Option<String>,
}

/// Timing knobs of the hook; the defaults come from `hooks.deadline_ms`.
#[derive(Debug, Clone, Copy)]
pub struct HookTiming {
    /// Whole answer, Cognito retries included.
    pub deadline: Duration,
    /// Time kept back from Cognito for writing the outcome.
    pub record_reserve: Duration,
    /// Below this much time left, no further Cognito attempt is started.
    pub min_attempt: Duration,
}

impl HookTiming {
    pub fn for_deadline(deadline: Duration) -> Self {
        Self {
            deadline,
            record_reserve: (deadline / 10).min(Duration::from_millis(300)),
            min_attempt: (deadline / 20)
                .clamp(Duration::from_millis(20), Duration::from_millis(200)),
        }
    }
}

pub struct HookService {
    store: Arc<dyn Store>,
    verifier: Arc<dyn CognitoVerifier>,
    policies: Policies,
    timing: HookTiming,
    health: Arc<CognitoHealth>,
}

/// What the Cognito phase of one hook call produced.
struct Verification {
    outcome: Outcome,
    calls: i32,
    latency: Duration,
}

impl HookService {
    pub fn new(
        store: Arc<dyn Store>,
        verifier: Arc<dyn CognitoVerifier>,
        policies: Policies,
        timing: HookTiming,
        health: Arc<CognitoHealth>,
    ) -> Self {
        Self {
            store,
            verifier,
            policies,
            timing,
            health,
        }
    }

    /// The Cognito problem `/health/ready` should report, if any: the last observation when
    /// recent, else a fresh probe.
    pub async fn cognito_problem(&self) -> Option<String> {
        self.health
            .current_problem(self.verifier.as_ref(), self.policies)
            .await
    }

    /// Decide one hook call. Always returns within the deadline; store trouble is logged
    /// and never changes the verdict.
    #[tracing::instrument(name = "password_migration", skip_all, fields(
        ory_request_id = meta.request_id.as_deref().unwrap_or(""),
        user = tracing::field::Empty,
        outcome = tracing::field::Empty,
        cognito_calls = tracing::field::Empty,
    ))]
    pub async fn verify(&self, request: &HookRequest, meta: &RequestMeta) -> Outcome {
        let started = Instant::now();
        let deadline = started + self.timing.deadline;
        let cognito_deadline = deadline - self.timing.record_reserve;

        let username = self.resolve(request, cognito_deadline).await;
        let verification = match &username {
            Some(username) if request.password().could_be_cognito_password() => {
                tracing::Span::current().record("user", username.redacted());
                self.ask_cognito(username, request, cognito_deadline).await
            }
            _ => Verification {
                outcome: Outcome::Unverifiable,
                calls: 0,
                latency: Duration::ZERO,
            },
        };
        let span = tracing::Span::current();
        span.record("outcome", verification.outcome.as_str());
        span.record("cognito_calls", verification.calls);

        let attempt = Attempt {
            at: chrono::Utc::now(),
            cognito_username: username.map(|u| u.as_str().to_owned()),
            outcome: verification.outcome,
            cognito_latency_ms: (verification.calls > 0)
                .then(|| i64::try_from(verification.latency.as_millis()).unwrap_or(i64::MAX)),
            cognito_calls: verification.calls,
            request_id: meta.request_id.clone(),
            trigger_id: meta.trigger_id.clone(),
            identity_id: request.identity_id().map(str::to_owned),
        };
        match tokio::time::timeout_at(deadline, self.store.record_attempt(&attempt)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "could not record the hook outcome"),
            Err(_) => {
                tracing::error!("recording the hook outcome did not finish within the deadline")
            }
        }
        tracing::info!(
            outcome = verification.outcome.as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "password migration hook answered"
        );
        verification.outcome
    }

    /// DESIGN.md's order: identity/external id and normalised identifier through the store
    /// (one query), then the identifier as typed. Store trouble falls back to the identifier.
    async fn resolve(
        &self,
        request: &HookRequest,
        cognito_deadline: Instant,
    ) -> Option<CognitoUsername> {
        let identifier = request.identifier().trim();
        let normalized = normalize_identifier(identifier);
        let lookup = UserLookup {
            identity_id: request.identity_id(),
            external_id: request.external_id(),
            identifier,
            normalized_identifier: &normalized,
        };
        let budget = cognito_deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        let stored = match tokio::time::timeout(budget, self.store.resolve_username(lookup)).await {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => {
                tracing::warn!(%error, "username lookup failed; using the identifier as typed");
                None
            }
            Err(_) => {
                tracing::warn!("username lookup timed out; using the identifier as typed");
                None
            }
        };
        stored
            .and_then(|name| CognitoUsername::parse(&name))
            .or_else(|| CognitoUsername::parse(identifier))
    }

    /// Call Cognito until it decides, retrying unavailability with jittered backoff while
    /// the deadline allows. `NotAuthorizedException` and every other decision end the loop.
    async fn ask_cognito(
        &self,
        username: &CognitoUsername,
        request: &HookRequest,
        cognito_deadline: Instant,
    ) -> Verification {
        let mut calls = 0;
        let mut latency = Duration::ZERO;
        let mut backoff = Duration::from_millis(50);
        loop {
            let remaining = cognito_deadline.saturating_duration_since(Instant::now());
            if remaining < self.timing.min_attempt {
                return Verification {
                    outcome: Outcome::Unavailable,
                    calls,
                    latency,
                };
            }
            let call_started = Instant::now();
            let answer = self
                .verifier
                .admin_initiate_auth(username, request.password(), remaining)
                .await;
            calls += 1;
            latency += call_started.elapsed();
            let outcome = verdict(&answer, self.policies);
            self.health.observe(outcome, &answer);
            match (outcome, &answer) {
                (Outcome::Unavailable, _) => {
                    tracing::warn!(?answer, attempt = calls, "Cognito unavailable");
                }
                (Outcome::Misconfigured, _) => {
                    tracing::error!(?answer, "Cognito configuration error");
                    return Verification {
                        outcome,
                        calls,
                        latency,
                    };
                }
                (Outcome::UnexpectedChallenge, CognitoAnswer::Challenge(name)) => {
                    tracing::warn!(challenge = name.as_str(), "unexpected Cognito challenge");
                    return Verification {
                        outcome,
                        calls,
                        latency,
                    };
                }
                _ => {
                    return Verification {
                        outcome,
                        calls,
                        latency,
                    };
                }
            }
            let pause = rand::rng().random_range(backoff / 2..=backoff);
            let left = cognito_deadline.saturating_duration_since(Instant::now());
            if pause + self.timing.min_attempt > left {
                return Verification {
                    outcome: Outcome::Unavailable,
                    calls,
                    latency,
                };
            }
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}
