//! `GET /metrics`: the bridge's Prometheus metrics. Labels are closed sets of names chosen
//! here (outcomes, statuses, limits, operations), never request data.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::domain::Outcome;

/// Seconds: 1 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    outcome: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConfirmationLabels {
    hook: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// Which brute-force limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardLimit {
    Identifier,
    Ip,
}

/// What the Cognito quota guard refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaLimit {
    /// `cognito.max_rps` left no token within the deadline.
    Rate,
    /// `cognito.max_concurrency` left no slot within the deadline.
    Concurrency,
    /// The circuit breaker is open.
    CircuitOpen,
}

/// The circuit breaker's state, as the gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitGauge {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

pub struct Metrics {
    capture_answers: Family<ResultLabels, Counter>,
    confirmations: Family<ConfirmationLabels, Counter>,
    outbox_deliveries: Family<ResultLabels, Counter>,
    outbox_depth: Gauge,
    outbox_oldest: Gauge,
    registry: Registry,
    answers: Family<AnswerLabels, Counter>,
    hook_seconds: Histogram,
    cognito_seconds: Family<ResultLabels, Histogram, fn() -> Histogram>,
    guard_refusals: Family<LimitLabels, Counter>,
    quota_refusals: Family<LimitLabels, Counter>,
    circuit_state: Gauge,
    circuit_opened: Counter,
    store_errors: Family<OperationLabels, Counter>,
    binding_refusals: Family<OutcomeLabels, Counter>,
    unwritten_attempts: Gauge,
    attempt_rows_per_commit: Histogram,
    attempts_dropped: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cognito_bridge");
        let answers = Family::<AnswerLabels, Counter>::default();
        registry.register(
            "hook_answers",
            "Password migration hook answers, by outcome and HTTP status",
            answers.clone(),
        );
        let hook_seconds = latency_histogram();
        registry.register_with_unit(
            "hook_duration",
            "Time to answer a password migration hook call",
            Unit::Seconds,
            hook_seconds.clone(),
        );
        let cognito_seconds: Family<ResultLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "cognito_request_duration",
            "AdminInitiateAuth latency, by what Cognito's answer means",
            Unit::Seconds,
            cognito_seconds.clone(),
        );
        let guard_refusals = Family::<LimitLabels, Counter>::default();
        registry.register(
            "guard_refusals",
            "Hook calls refused by the brute-force guard without asking Cognito, by limit",
            guard_refusals.clone(),
        );
        let quota_refusals = Family::<LimitLabels, Counter>::default();
        registry.register(
            "cognito_quota_refusals",
            "Hook calls answered 424 without reaching Cognito because of cognito.max_rps, \
             cognito.max_concurrency or an open circuit",
            quota_refusals.clone(),
        );
        let circuit_state = Gauge::default();
        registry.register(
            "cognito_circuit_state",
            "Cognito circuit breaker: 0 closed, 1 half-open (one probe call allowed), 2 open",
            circuit_state.clone(),
        );
        let circuit_opened = Counter::default();
        registry.register(
            "cognito_circuit_opened",
            "Times the Cognito circuit breaker opened",
            circuit_opened.clone(),
        );
        let store_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Database operations that failed or timed out, by operation",
            store_errors.clone(),
        );
        let binding_refusals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "binding_refusals",
            "Hook calls refused without asking Cognito because the identifier does not bind to \
             one user (ambiguous_identifier, identity_mismatch)",
            binding_refusals.clone(),
        );
        let unwritten_attempts = Gauge::default();
        registry.register(
            "unwritten_attempts",
            "Attempt rows waiting for the database, retried in the background",
            unwritten_attempts.clone(),
        );
        let attempt_rows_per_commit = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 9),
        );
        registry.register(
            "attempt_rows_per_commit",
            "Attempt rows the hook wrote in one transaction (calls that finished together share \
             one commit)",
            attempt_rows_per_commit.clone(),
        );
        let attempts_dropped = Counter::default();
        registry.register(
            "attempts_dropped",
            "Attempt rows dropped because too many were waiting for the database",
            attempts_dropped.clone(),
        );
        let capture_answers = Family::<ResultLabels, Counter>::default();
        registry.register(
            "capture_answers",
            "Capture endpoint (POST /capture/password) answers, by result",
            capture_answers.clone(),
        );
        let outbox_deliveries = Family::<ResultLabels, Counter>::default();
        registry.register(
            "capture_outbox_deliveries",
            "Outbox entries the background worker handled, by result (delivered, retry, or \
             dropped because the user migrated another way, has no identity, or Kratos refused it)",
            outbox_deliveries.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "capture_outbox_depth",
            "Captured password hashes waiting for Kratos",
            outbox_depth.clone(),
        );
        let outbox_oldest = Gauge::default();
        registry.register_with_unit(
            "capture_outbox_oldest_age",
            "Age of the oldest hash waiting for Kratos (0 when none waits)",
            Unit::Seconds,
            outbox_oldest.clone(),
        );
        let confirmations = Family::<ConfirmationLabels, Counter>::default();
        registry.register(
            "confirmations",
            "Confirmation hook calls (POST /hooks/login-after, /hooks/settings-after) with a \
             readable body, by hook and what they did to the user's row",
            confirmations.clone(),
        );
        Self {
            registry,
            capture_answers,
            confirmations,
            outbox_deliveries,
            outbox_depth,
            outbox_oldest,
            binding_refusals,
            unwritten_attempts,
            attempt_rows_per_commit,
            attempts_dropped,
            answers,
            hook_seconds,
            cognito_seconds,
            guard_refusals,
            quota_refusals,
            circuit_state,
            circuit_opened,
            store_errors,
        }
    }

    pub fn hook_answered(&self, outcome: Outcome, seconds: f64) {
        let status = match outcome {
            outcome if outcome.is_match() => "200",
            outcome if outcome.is_decided() => "403",
            _ => "424",
        };
        self.answers
            .get_or_create(&AnswerLabels {
                outcome: outcome.as_str(),
                status,
            })
            .inc();
        self.hook_seconds.observe(seconds);
    }

    /// One `AdminInitiateAuth`, by the verdict its answer gives.
    pub fn cognito_call(&self, verdict: Outcome, seconds: f64) {
        self.cognito_seconds
            .get_or_create(&ResultLabels {
                result: verdict.as_str(),
            })
            .observe(seconds);
    }

    pub fn guard_refused(&self, limit: GuardLimit) {
        let limit = match limit {
            GuardLimit::Identifier => "identifier",
            GuardLimit::Ip => "ip",
        };
        self.guard_refusals
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    pub fn quota_refused(&self, limit: QuotaLimit) {
        let limit = match limit {
            QuotaLimit::Rate => "rate",
            QuotaLimit::Concurrency => "concurrency",
            QuotaLimit::CircuitOpen => "circuit_open",
        };
        self.quota_refusals
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    pub fn circuit(&self, state: CircuitGauge) {
        self.circuit_state.set(state as i64);
    }

    pub fn circuit_opened(&self) {
        self.circuit_opened.inc();
    }

    pub fn store_error(&self, operation: &'static str) {
        self.store_errors
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    pub fn binding_refused(&self, outcome: Outcome) {
        self.binding_refusals
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn unwritten_attempts(&self, waiting: usize) {
        self.unwritten_attempts
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    /// One transaction of the hook's attempt rows committed, holding `rows`.
    pub fn attempt_rows_committed(&self, rows: usize) {
        self.attempt_rows_per_commit.observe(rows as f64);
    }

    pub fn attempt_dropped(&self) {
        self.attempts_dropped.inc();
    }

    /// One answer of the capture endpoint; `result` is one of a closed set of names.
    pub fn capture_answered(&self, result: &'static str) {
        self.capture_answers
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// One confirmation hook call; `hook` and `result` are closed sets of names.
    pub fn confirmation(&self, hook: &'static str, result: &'static str) {
        self.confirmations
            .get_or_create(&ConfirmationLabels { hook, result })
            .inc();
    }

    /// One outbox entry handled by the worker.
    pub fn outbox_delivery(&self, result: &'static str) {
        self.outbox_deliveries
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn outbox(&self, depth: i64, oldest_age_secs: Option<i64>) {
        self.outbox_depth.set(depth);
        self.outbox_oldest.set(oldest_age_secs.unwrap_or(0));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_with_its_labels() {
        let metrics = Metrics::new();
        metrics.hook_answered(Outcome::Verified, 0.02);
        metrics.hook_answered(Outcome::NotAuthorized, 0.02);
        metrics.hook_answered(Outcome::CircuitOpen, 0.0);
        metrics.hook_answered(Outcome::RefusedByLambda, 0.02);
        metrics.cognito_call(Outcome::Verified, 0.015);
        metrics.guard_refused(GuardLimit::Ip);
        metrics.quota_refused(QuotaLimit::Rate);
        metrics.circuit(CircuitGauge::Open);
        metrics.circuit_opened();
        metrics.store_error("record");
        metrics.binding_refused(Outcome::AmbiguousIdentifier);
        metrics.unwritten_attempts(3);
        metrics.attempt_dropped();
        metrics.capture_answered("captured");
        metrics.outbox_delivery("delivered");
        metrics.outbox(2, Some(40));
        let text = metrics.encode();
        for line in [
            "cognito_bridge_hook_answers_total{outcome=\"verified\",status=\"200\"} 1",
            "cognito_bridge_hook_answers_total{outcome=\"not_authorized\",status=\"403\"} 1",
            "cognito_bridge_hook_answers_total{outcome=\"circuit_open\",status=\"424\"} 1",
            "cognito_bridge_hook_answers_total{outcome=\"refused_by_lambda\",status=\"403\"} 1",
            "cognito_bridge_hook_duration_seconds_count 4",
            "cognito_bridge_cognito_request_duration_seconds_count{result=\"verified\"} 1",
            "cognito_bridge_guard_refusals_total{limit=\"ip\"} 1",
            "cognito_bridge_cognito_quota_refusals_total{limit=\"rate\"} 1",
            "cognito_bridge_cognito_circuit_state 2",
            "cognito_bridge_cognito_circuit_opened_total 1",
            "cognito_bridge_store_errors_total{operation=\"record\"} 1",
            "cognito_bridge_binding_refusals_total{outcome=\"ambiguous_identifier\"} 1",
            "cognito_bridge_unwritten_attempts 3",
            "cognito_bridge_attempts_dropped_total 1",
            "cognito_bridge_capture_answers_total{result=\"captured\"} 1",
            "cognito_bridge_capture_outbox_deliveries_total{result=\"delivered\"} 1",
            "cognito_bridge_capture_outbox_depth 2",
            "cognito_bridge_capture_outbox_oldest_age_seconds 40",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
