//! The password migration hook's service: resolve the Cognito username and check the
//! brute-force guard (one store round trip), verify the password within the deadline through
//! the Cognito quota guard (retrying only unavailability), record the outcome.

mod limits;
mod request;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tracing::Instrument;

pub use limits::{CognitoGate, Refusal};
pub use request::{HookBodyError, HookRequest};

use crate::cognito::{
    ClientContext, CognitoAnswer, CognitoHealth, CognitoVerifier, Policies, verdict,
};
use crate::config::GuardSettings;
use crate::domain::{CognitoUsername, Outcome, normalize_identifier};
use crate::metrics::{GuardLimit, Metrics, QuotaLimit};
use crate::store::{Attempt, Resolution, Store, UserLookup};

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

/// The brute-force guard's limits (`[guard]`); a limit of 0 is off.
#[derive(Debug, Clone, Copy)]
pub struct GuardLimits {
    pub identifier_failures: u32,
    pub ip_failures: u32,
    pub window: Duration,
}

impl GuardLimits {
    pub fn from_settings(settings: &GuardSettings) -> Self {
        Self {
            identifier_failures: settings.identifier_failures,
            ip_failures: settings.ip_failures,
            window: settings.window(),
        }
    }

    /// Which limit, if any, these counts have reached.
    fn reached(&self, resolution: &Resolution) -> Option<GuardLimit> {
        let over = |limit: u32, count: i64| limit > 0 && count >= i64::from(limit);
        if over(self.identifier_failures, resolution.identifier_failures) {
            Some(GuardLimit::Identifier)
        } else if over(self.ip_failures, resolution.ip_failures) {
            Some(GuardLimit::Ip)
        } else {
            None
        }
    }
}

/// How the hook decides: Cognito's policies, its time budget and its limits.
pub struct HookRules {
    pub policies: Policies,
    pub timing: HookTiming,
    pub guard: GuardLimits,
    pub gate: CognitoGate,
}

/// How long an attempt row may take to be written, in the background if need be.
const RECORD_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at writing one row, and the pause between them.
const RECORD_TRIES: u32 = 3;
const RECORD_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// How long a store failure makes answers stop waiting for their row to be written.
const STORE_TROUBLE_MEMORY: Duration = Duration::from_secs(10);

/// When the store last failed, if recently.
#[derive(Debug, Default)]
struct StoreTrouble(Mutex<Option<Instant>>);

impl StoreTrouble {
    fn seen(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }

    fn recent(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|at| at.elapsed() < STORE_TROUBLE_MEMORY)
    }
}

pub struct HookService {
    store: Arc<dyn Store>,
    store_trouble: Arc<StoreTrouble>,
    verifier: Arc<dyn CognitoVerifier>,
    health: Arc<CognitoHealth>,
    metrics: Arc<Metrics>,
    rules: HookRules,
}

/// What the Cognito phase of one hook call produced.
struct Verification {
    outcome: Outcome,
    calls: i32,
    latency: Duration,
}

impl Verification {
    fn without_cognito(outcome: Outcome) -> Self {
        Self {
            outcome,
            calls: 0,
            latency: Duration::ZERO,
        }
    }
}

impl HookService {
    pub fn new(
        store: Arc<dyn Store>,
        verifier: Arc<dyn CognitoVerifier>,
        health: Arc<CognitoHealth>,
        metrics: Arc<Metrics>,
        rules: HookRules,
    ) -> Self {
        Self {
            store,
            store_trouble: Arc::default(),
            verifier,
            health,
            metrics,
            rules,
        }
    }

    /// The Cognito problem `/health/ready` should report, if any: an open circuit, else
    /// the last observation when recent, else a fresh probe.
    pub async fn cognito_problem(&self) -> Option<String> {
        if let Some(left) = self.rules.gate.circuit_open_for() {
            return Some(format!(
                "Cognito circuit open after repeated unavailability; next probe in {} ms",
                left.as_millis()
            ));
        }
        self.health
            .current_problem(self.verifier.as_ref(), self.rules.policies)
            .await
    }

    /// The metrics, with the circuit gauge brought up to date.
    pub fn metrics_text(&self) -> String {
        self.rules.gate.publish_circuit_state();
        self.metrics.encode()
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
        let timing = self.rules.timing;
        let deadline = started + timing.deadline;
        let cognito_deadline = deadline - timing.record_reserve;
        let now = chrono::Utc::now();

        let (username, resolution) = self.resolve(request, now, cognito_deadline).await;
        let span = tracing::Span::current();
        if let Some(username) = &username {
            span.record("user", username.redacted());
        }
        let verification = match (&username, self.rules.guard.reached(&resolution)) {
            (_, Some(limit)) => {
                self.metrics.guard_refused(limit);
                tracing::warn!(
                    limit = ?limit,
                    identifier_failures = resolution.identifier_failures,
                    ip_failures = resolution.ip_failures,
                    "brute-force guard refused the attempt without asking Cognito"
                );
                Verification::without_cognito(Outcome::RefusedLocally)
            }
            (Some(username), None) if request.password().could_be_cognito_password() => {
                self.ask_cognito(username, request, cognito_deadline).await
            }
            _ => Verification::without_cognito(Outcome::Unverifiable),
        };
        span.record("outcome", verification.outcome.as_str());
        span.record("cognito_calls", verification.calls);

        let attempt = Attempt {
            at: now,
            cognito_username: username.map(|u| u.as_str().to_owned()),
            outcome: verification.outcome,
            cognito_latency_ms: (verification.calls > 0)
                .then(|| i64::try_from(verification.latency.as_millis()).unwrap_or(i64::MAX)),
            cognito_calls: verification.calls,
            request_id: meta.request_id.clone(),
            trigger_id: meta.trigger_id.clone(),
            identity_id: request.identity_id().map(str::to_owned),
            client_ip: request.client_ip(),
        };
        self.record(attempt, deadline).await;
        let elapsed = started.elapsed();
        self.metrics
            .hook_answered(verification.outcome, elapsed.as_secs_f64());
        tracing::info!(
            outcome = verification.outcome.as_str(),
            elapsed_ms = elapsed.as_millis() as u64,
            "password migration hook answered"
        );
        verification.outcome
    }

    /// Write the attempt. The answer waits for it (so the next attempt's guard counts it)
    /// until the deadline; while the database is failing, only for `record_reserve`, so
    /// that logins do not all take the whole deadline. The write goes on in the background
    /// up to [`RECORD_TIMEOUT`], so an attempt made during a short outage is still recorded.
    async fn record(&self, attempt: Attempt, deadline: Instant) {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let trouble = self.store_trouble.clone();
        let mut writing = tokio::spawn(
            async move {
                let give_up = Instant::now() + RECORD_TIMEOUT;
                let mut tries = 0;
                loop {
                    tries += 1;
                    let error = match tokio::time::timeout_at(
                        give_up,
                        store.record_attempt(&attempt),
                    )
                    .await
                    {
                        Ok(Ok(())) => return,
                        Ok(Err(error)) => error.to_string(),
                        Err(_) => format!("no answer within {} s", RECORD_TIMEOUT.as_secs()),
                    };
                    metrics.store_error("record_attempt");
                    trouble.seen();
                    // A connection the database dropped fails once, then the pool replaces
                    // it: try again, a few times.
                    if tries >= RECORD_TRIES || Instant::now() + RECORD_RETRY_PAUSE >= give_up {
                        tracing::error!(%error, tries, "could not record the hook outcome");
                        return;
                    }
                    tracing::warn!(%error, "recording the hook outcome failed; trying again");
                    tokio::time::sleep(RECORD_RETRY_PAUSE).await;
                }
            }
            .instrument(tracing::Span::current()),
        );
        let wait_until = if self.store_trouble.recent() {
            deadline.min(Instant::now() + self.rules.timing.record_reserve)
        } else {
            deadline
        };
        if tokio::time::timeout_at(wait_until, &mut writing)
            .await
            .is_err()
        {
            self.store_trouble.seen();
            tracing::warn!("answering before the hook outcome is recorded; still writing it");
        }
    }

    /// DESIGN.md's order: identity/external id and normalised identifier through the store,
    /// then the identifier as typed; and the guard's counts, in the same query. Store
    /// trouble falls back to the identifier and lets the attempt through (Cognito's own
    /// lockout still stands).
    async fn resolve(
        &self,
        request: &HookRequest,
        now: chrono::DateTime<chrono::Utc>,
        cognito_deadline: Instant,
    ) -> (Option<CognitoUsername>, Resolution) {
        let identifier = request.identifier().trim();
        let normalized = normalize_identifier(identifier);
        let window =
            chrono::Duration::from_std(self.rules.guard.window).unwrap_or(chrono::Duration::MAX);
        let lookup = UserLookup {
            identity_id: request.identity_id(),
            external_id: request.external_id(),
            identifier,
            normalized_identifier: &normalized,
            client_ip: request.client_ip(),
            window_start: now - window,
        };
        let budget = cognito_deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        let resolution = match tokio::time::timeout(budget, self.store.resolve(lookup)).await {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => {
                self.store_trouble.seen();
                self.metrics.store_error("resolve");
                tracing::warn!(%error, "username lookup failed; using the identifier as typed");
                Resolution::default()
            }
            Err(_) => {
                self.store_trouble.seen();
                self.metrics.store_error("resolve");
                tracing::warn!("username lookup timed out; using the identifier as typed");
                Resolution::default()
            }
        };
        let username = resolution
            .cognito_username
            .as_deref()
            .and_then(CognitoUsername::parse)
            .or_else(|| CognitoUsername::parse(identifier));
        (username, resolution)
    }

    /// Call Cognito until it decides, retrying unavailability with jittered backoff while
    /// the deadline allows. `NotAuthorizedException` and every other decision end the loop.
    /// Every call first passes the quota guard.
    async fn ask_cognito(
        &self,
        username: &CognitoUsername,
        request: &HookRequest,
        cognito_deadline: Instant,
    ) -> Verification {
        let min_attempt = self.rules.timing.min_attempt;
        let context = request.client_ip().map(|ip| ClientContext {
            ip,
            user_agent: request.user_agent(),
        });
        let mut calls = 0;
        let mut latency = Duration::ZERO;
        let mut backoff = Duration::from_millis(50);
        let unavailable = |calls, latency| Verification {
            outcome: Outcome::Unavailable,
            calls,
            latency,
        };
        loop {
            if cognito_deadline.saturating_duration_since(Instant::now()) < min_attempt {
                return unavailable(calls, latency);
            }
            let pass = match self.rules.gate.admit(cognito_deadline - min_attempt).await {
                Ok(pass) => pass,
                Err(refusal) => {
                    let (limit, outcome) = match refusal {
                        Refusal::CircuitOpen => (QuotaLimit::CircuitOpen, Outcome::CircuitOpen),
                        Refusal::OverQuota(limit) => (limit, Outcome::OverQuota),
                    };
                    self.metrics.quota_refused(limit);
                    if calls > 0 {
                        return unavailable(calls, latency);
                    }
                    tracing::warn!(?limit, "Cognito not called: quota guard");
                    return Verification::without_cognito(outcome);
                }
            };
            let remaining = cognito_deadline.saturating_duration_since(Instant::now());
            let call_started = Instant::now();
            let answer = self
                .verifier
                .admin_initiate_auth(username, request.password(), context, remaining)
                .await;
            let call_latency = call_started.elapsed();
            calls += 1;
            latency += call_latency;
            let outcome = verdict(&answer, self.rules.policies);
            self.rules
                .gate
                .finish(pass, outcome == Outcome::Unavailable);
            self.metrics
                .cognito_call(outcome, call_latency.as_secs_f64());
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
                (Outcome::RefusedByLambda, _) => {
                    tracing::info!("a Lambda trigger of the user pool refused this user");
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
            if pause + min_attempt > left {
                return unavailable(calls, latency);
            }
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}
