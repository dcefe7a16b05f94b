//! The password migration hook's service: resolve the Cognito username and check the
//! brute-force guard (one store round trip), verify the password within the deadline through
//! the Cognito quota guard (retrying only unavailability), record the outcome.
//! Over 400 lines on purpose: one hook call's steps, in the order the call takes them, read
//! top to bottom in this one file.

mod guard;
mod limits;
mod recorder;
mod request;
mod retention;
#[cfg(test)]
mod service_tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tracing::Instrument;

pub use limits::{CognitoGate, Refusal, TokenWait};

pub use request::{ClientIpRule, HookBodyError, HookRequest};
pub use retention::prune_attempts_forever;

use guard::{LocalGuard, LocalTicket};
use recorder::{LateLookup, PendingWrite, Recorder};

use crate::cognito::{
    AuthAttempt, ClientContext, CognitoAnswer, CognitoHealth, CognitoVerifier, verdict,
};
use crate::config::{GuardLimits, Policies};
use crate::domain::{CognitoUsername, Outcome, Password, ip_group, normalize_identifier};
use crate::metrics::{GuardLimit, Metrics, QuotaLimit};
use crate::store::{Attempt, Claim, GuardClaim, GuardCounts, Resolution, Store, UserLookup};

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

/// Which of `limits`, if any, the store's `counts` have reached.
fn limit_reached(limits: &GuardLimits, counts: &GuardCounts) -> Option<GuardLimit> {
    let over = |limit: u32, count: i64| limit > 0 && count >= i64::from(limit);
    if over(limits.identifier_failures, counts.identifier_failures) {
        Some(GuardLimit::Identifier)
    } else if over(limits.ip_failures, counts.ip_failures) {
        Some(GuardLimit::Ip)
    } else {
        None
    }
}

/// How the hook decides: Cognito's policies, its time budget and its limits.
pub struct HookRules {
    pub policies: Policies,
    pub timing: HookTiming,
    pub guard: GuardLimits,
    pub gate: CognitoGate,
    pub client_ip: ClientIpRule,
}

/// The longest a lookup or a guard claim may keep a hook call waiting; shorter while the
/// store has been failing, so that an outage does not make every login slow.
const STORE_BUDGET: Duration = Duration::from_millis(500);
const STORE_BUDGET_IN_TROUBLE: Duration = Duration::from_millis(100);
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
    recorder: Arc<Recorder>,
    local_guard: LocalGuard,
    verifier: Arc<dyn CognitoVerifier>,
    health: Arc<CognitoHealth>,
    metrics: Arc<Metrics>,
    rules: HookRules,
}

/// Whose password a hook call checks, after the lookup.
enum Target {
    /// This Cognito username (from the store, or the identifier as typed).
    User(CognitoUsername),
    /// Nobody: refused without Cognito for this reason.
    Refused(Outcome),
    /// The identifier cannot be a Cognito username.
    Unusable,
}

/// What a guard claim writes besides the limits.
struct AttemptMeta<'a> {
    key: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
    username: &'a CognitoUsername,
    guard_key: &'a str,
    client_ip: Option<&'a str>,
    meta: &'a RequestMeta,
    identity_id: Option<&'a str>,
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

    /// The attempt row of this verdict, for nobody yet (no username, no identity) and
    /// creating no user row: the caller says whose it is.
    fn attempt(
        &self,
        key: uuid::Uuid,
        at: chrono::DateTime<chrono::Utc>,
        meta: &RequestMeta,
        client_ip: Option<String>,
    ) -> Attempt {
        Attempt {
            key,
            at,
            cognito_username: None,
            outcome: self.outcome,
            cognito_latency_ms: (self.calls > 0)
                .then(|| i64::try_from(self.latency.as_millis()).unwrap_or(i64::MAX)),
            cognito_calls: self.calls,
            request_id: meta.request_id.clone(),
            trigger_id: meta.trigger_id.clone(),
            identity_id: None,
            creates_row: false,
            client_ip,
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
            recorder: Recorder::new(store.clone(), metrics.clone()),
            local_guard: LocalGuard::new(rules.guard),
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

    /// How the client's address is read (`hooks.trusted_proxies`, `hooks.client_ip_header`).
    pub fn client_ip_rule(&self) -> &ClientIpRule {
        &self.rules.client_ip
    }

    /// How long the brute-force guard remembers failures (`guard.window_secs`): the longest
    /// a refused caller has to wait.
    pub fn guard_window(&self) -> Duration {
        self.rules.guard.window
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
        let client_address = request.client_ip(&self.rules.client_ip);
        let client_ip = client_address.map(ip_group);

        let (target, late_lookup) = self.resolve(request, cognito_deadline).await;
        let span = tracing::Span::current();
        let username = match &target {
            Target::User(username) => {
                span.record("user", username.redacted());
                Some(username.clone())
            }
            _ => None,
        };
        let guard_key = username.as_ref().map(|u| normalize_identifier(u.as_str()));
        let attempt_key = uuid::Uuid::new_v4();
        let verification = match &target {
            Target::Refused(outcome) => {
                self.metrics.binding_refused(*outcome);
                tracing::warn!(
                    outcome = outcome.as_str(),
                    "refused without asking Cognito: the identifier does not bind to one user"
                );
                Verification::without_cognito(*outcome)
            }
            Target::User(username) if request.password().could_be_cognito_password() => {
                let attempt = AttemptMeta {
                    key: attempt_key,
                    at: now,
                    username,
                    guard_key: guard_key.as_deref().unwrap_or_default(),
                    client_ip: client_ip.as_deref(),
                    meta,
                    identity_id: request.identity_id(),
                };
                let context = client_address.map(|ip| ClientContext {
                    ip,
                    user_agent: request.user_agent(),
                });
                // A lookup that just failed says the store is down: the in-process guard
                // decides alone, without another wait.
                let store_down = late_lookup.is_some();
                self.check_password(
                    &attempt,
                    request.password(),
                    context,
                    store_down,
                    cognito_deadline,
                )
                .await
            }
            Target::User(_) | Target::Unusable => {
                self.local_guard
                    .note_failure(guard_key.as_deref(), client_ip.as_deref());
                Verification::without_cognito(Outcome::Unverifiable)
            }
        };
        span.record("outcome", verification.outcome.as_str());
        span.record("cognito_calls", verification.calls);

        let mut attempt = verification.attempt(attempt_key, now, meta, client_ip);
        attempt.cognito_username = username.map(|u| u.as_str().to_owned());
        attempt.identity_id = request.identity_id().map(str::to_owned);
        attempt.creates_row = true;
        let pending = PendingWrite {
            attempt,
            late_lookup,
        };
        self.record(pending, deadline).await;
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

    /// Check the password of the user a verified Cognito token names (the capture endpoint):
    /// the same brute-force guard, quota guard and Cognito calls as a hook call, within the
    /// hook's deadline, and an attempt row that notes the attempt on the user's row but never
    /// moves its state (a match migrates the user only once Kratos holds the hash).
    #[tracing::instrument(name = "capture_check", skip_all, fields(
        user = username.redacted(),
        outcome = tracing::field::Empty,
    ))]
    pub async fn verify_user(
        &self,
        username: &CognitoUsername,
        password: &Password,
        context: Option<ClientContext<'_>>,
        meta: &RequestMeta,
    ) -> Outcome {
        let started = Instant::now();
        let timing = self.rules.timing;
        let deadline = started + timing.deadline;
        let cognito_deadline = deadline - timing.record_reserve;
        let now = chrono::Utc::now();
        let client_ip = context.map(|context| ip_group(context.ip));
        let guard_key = normalize_identifier(username.as_str());
        let attempt = AttemptMeta {
            key: uuid::Uuid::new_v4(),
            at: now,
            username,
            guard_key: &guard_key,
            client_ip: client_ip.as_deref(),
            meta,
            identity_id: None,
        };
        let verification = if password.could_be_cognito_password() {
            self.check_password(&attempt, password, context, false, cognito_deadline)
                .await
        } else {
            self.local_guard
                .note_failure(Some(&guard_key), client_ip.as_deref());
            Verification::without_cognito(Outcome::Unverifiable)
        };
        tracing::Span::current().record("outcome", verification.outcome.as_str());
        // Never `creates_row`: a match moves nobody until Kratos holds the hash.
        let mut record = verification.attempt(attempt.key, now, meta, client_ip);
        record.cognito_username = Some(username.as_str().to_owned());
        let pending = PendingWrite {
            attempt: record,
            late_lookup: None,
        };
        self.record(pending, deadline).await;
        verification.outcome
    }

    /// The guard's claim, then Cognito, then the guard settled by the verdict.
    async fn check_password(
        &self,
        attempt: &AttemptMeta<'_>,
        password: &Password,
        context: Option<ClientContext<'_>>,
        store_down: bool,
        cognito_deadline: Instant,
    ) -> Verification {
        match self.claim(attempt, store_down, cognito_deadline).await {
            Ok((ticket, cognito_token)) => {
                let verification = self
                    .ask_cognito(
                        attempt.username,
                        password,
                        context,
                        cognito_token,
                        cognito_deadline,
                    )
                    .await;
                self.local_guard
                    .settle(ticket, verification.outcome.guard_effect());
                verification
            }
            Err(limit) => {
                self.metrics.guard_refused(limit);
                tracing::warn!(
                    limit = ?limit,
                    "brute-force guard refused the attempt without asking Cognito"
                );
                Verification::without_cognito(Outcome::RefusedLocally)
            }
        }
    }

    /// Rows the store has not taken yet; at shutdown, write them while `until` allows.
    pub async fn flush_records(&self, until: Instant) -> usize {
        self.recorder.flush(until).await
    }

    /// The brute-force guard, before Cognito is asked: the in-process windows, then the
    /// store's claim (atomic across replicas). Store trouble leaves the decision to the
    /// in-process windows, so the guard holds during an outage. Where the Cognito rate is
    /// shared through the database, a granted store claim also takes the first call's token
    /// (one round trip for both), returned beside the ticket.
    async fn claim(
        &self,
        attempt: &AttemptMeta<'_>,
        store_down: bool,
        cognito_deadline: Instant,
    ) -> Result<(LocalTicket, Option<TokenWait>), GuardLimit> {
        let ticket = self
            .local_guard
            .claim(attempt.guard_key, attempt.client_ip)?;
        if store_down {
            return Ok((ticket, None));
        }
        let limits = self.rules.guard;
        let claim = GuardClaim {
            at: attempt.at,
            cognito_username: attempt.username.as_str(),
            guard_key: attempt.guard_key,
            client_ip: attempt.client_ip,
            identifier_limit: limits.identifier_failures,
            ip_limit: limits.ip_failures,
            window: limits.window,
            request_id: attempt.meta.request_id.as_deref(),
            trigger_id: attempt.meta.trigger_id.as_deref(),
            identity_id: attempt.identity_id,
            attempt_key: attempt.key,
            cognito_rate: self.rules.gate.shared_rate(),
        };
        let problem = match tokio::time::timeout(
            self.store_budget(cognito_deadline),
            self.store.claim(&claim),
        )
        .await
        {
            Ok(Ok(Claim::Granted { cognito_token })) => return Ok((ticket, cognito_token)),
            Ok(Ok(Claim::Refused(counts))) => {
                self.local_guard.settle(ticket, None);
                tracing::debug!(
                    identifier_failures = counts.identifier_failures,
                    ip_failures = counts.ip_failures,
                    "guard counts"
                );
                return Err(limit_reached(&limits, &counts).unwrap_or(GuardLimit::Identifier));
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        self.store_trouble.seen();
        self.metrics.store_error("guard_claim");
        tracing::warn!(error = %problem, "guard claim failed; the in-process guard decides");
        Ok((ticket, None))
    }

    fn store_budget(&self, cognito_deadline: Instant) -> Duration {
        let budget = if self.store_trouble.recent() {
            STORE_BUDGET_IN_TROUBLE
        } else {
            STORE_BUDGET
        };
        cognito_deadline
            .saturating_duration_since(Instant::now())
            .min(budget)
    }

    /// Write the attempt. The answer waits for it (so the next attempt's guard counts it)
    /// until the deadline; while the database is failing, only for `record_reserve`, so
    /// that logins do not all take the whole deadline. A row the store does not take waits
    /// in the recorder's queue and is written when the store is back.
    async fn record(&self, pending: PendingWrite, deadline: Instant) {
        let recorder = self.recorder.clone();
        let trouble = self.store_trouble.clone();
        let mut writing = tokio::spawn(
            async move {
                if recorder.submit(pending).await.is_err() {
                    trouble.seen();
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

    /// The binding rule (a password is checked only for the one Cognito user the identifier or
    /// the identity belongs to): identity/external id and the identifier through
    /// the store ([`Resolution::decide`]), else the identifier as typed. When the store
    /// fails, the identifier as typed, and the row is resolved again when it is written.
    async fn resolve(
        &self,
        request: &HookRequest,
        cognito_deadline: Instant,
    ) -> (Target, Option<LateLookup>) {
        let identifier = request.identifier().trim();
        let normalized = normalize_identifier(identifier);
        let lookup = UserLookup {
            identity_id: request.identity_id(),
            external_id: request.external_id(),
            identifier,
            normalized_identifier: &normalized,
        };
        let as_typed = || CognitoUsername::parse(identifier).map_or(Target::Unusable, Target::User);
        let problem = match tokio::time::timeout(
            self.store_budget(cognito_deadline),
            self.store.resolve(lookup),
        )
        .await
        {
            Ok(Ok(Resolution::User(username))) => {
                let target = CognitoUsername::parse(&username).map_or_else(as_typed, Target::User);
                return (target, None);
            }
            Ok(Ok(Resolution::NoMatch)) => return (as_typed(), None),
            Ok(Ok(Resolution::Ambiguous)) => {
                return (Target::Refused(Outcome::AmbiguousIdentifier), None);
            }
            Ok(Ok(Resolution::IdentityMismatch)) => {
                return (Target::Refused(Outcome::IdentityMismatch), None);
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        self.store_trouble.seen();
        self.metrics.store_error("resolve");
        tracing::warn!(error = %problem, "username lookup failed; using the identifier as typed");
        let late = LateLookup {
            identity_id: request.identity_id().map(str::to_owned),
            external_id: request.external_id().map(str::to_owned),
            identifier: identifier.to_owned(),
        };
        (as_typed(), Some(late))
    }

    /// Call Cognito until it decides, retrying unavailability with jittered backoff while
    /// the deadline allows. `NotAuthorizedException` and every other decision end the loop.
    /// Every call first passes the quota guard; the first one with `first_token` when the
    /// guard's claim already took its token of the shared rate.
    async fn ask_cognito(
        &self,
        username: &CognitoUsername,
        password: &Password,
        context: Option<ClientContext<'_>>,
        mut first_token: Option<TokenWait>,
        cognito_deadline: Instant,
    ) -> Verification {
        let min_attempt = self.rules.timing.min_attempt;
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
            let admitted = self
                .rules
                .gate
                .admit_within(
                    cognito_deadline - min_attempt,
                    self.store_budget(cognito_deadline),
                    first_token.take(),
                )
                .await;
            let pass = match admitted {
                Ok(pass) => {
                    if pass.shared_rate_failed() {
                        self.store_trouble.seen();
                        self.metrics.store_error("cognito_rate");
                    }
                    pass
                }
                Err(refusal) => {
                    let (limit, outcome) = match refusal {
                        Refusal::CircuitOpen => (QuotaLimit::CircuitOpen, Outcome::CircuitOpen),
                        Refusal::OverQuota(limit) => (limit, Outcome::OverQuota),
                    };
                    // A retry held back in a call Cognito already answered ends as
                    // `unavailable`; only a call that never reached Cognito is a refusal.
                    if calls > 0 {
                        return unavailable(calls, latency);
                    }
                    self.metrics.quota_refused(limit);
                    tracing::warn!(?limit, "Cognito not called: quota guard");
                    return Verification::without_cognito(outcome);
                }
            };
            let remaining = cognito_deadline.saturating_duration_since(Instant::now());
            let call_started = Instant::now();
            let answer = self
                .verifier
                .admin_initiate_auth(
                    AuthAttempt {
                        username,
                        password,
                        context,
                    },
                    remaining,
                )
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
