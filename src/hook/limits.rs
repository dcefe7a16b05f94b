//! The Cognito quota guard: every `AdminInitiateAuth` of the hook passes a circuit breaker,
//! a concurrency cap and a rate limit (GCRA) before it is sent. The rate is the
//! deployment's when the store is shared (Postgres, `cognito.quota_scope = "deployment"`):
//! each token is taken from one state row in the database; otherwise it is this process's
//! (governor). Callers wait for capacity only while their deadline allows; then they are
//! refused, and the hook answers 424.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::{QuotaScope, QuotaSettings};
use crate::metrics::{CircuitGauge, Metrics, QuotaLimit};
use crate::store::{RateCell, Store};

/// Why a call was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Open circuit: Cognito has just been unavailable.
    CircuitOpen,
    /// No capacity within the deadline.
    OverQuota(QuotaLimit),
}

/// Permission to make one Cognito call. Report the answer with [`CognitoGate::finish`];
/// a pass dropped without a report (the caller gave up) gives a half-open circuit's probe
/// back.
pub struct Pass {
    _permit: OwnedSemaphorePermit,
    probe: Option<ProbeTicket>,
    shared_rate_failed: bool,
}

impl Pass {
    /// Whether the deployment's rate could not be read from the store (in time) while this
    /// pass was waited for, so that the process's own limiter paced it.
    pub fn shared_rate_failed(&self) -> bool {
        self.shared_rate_failed
    }
}

/// Held by the one call a half-open circuit lets through.
struct ProbeTicket {
    circuit: Arc<Circuit>,
    reported: bool,
}

impl Drop for ProbeTicket {
    fn drop(&mut self) {
        if !self.reported {
            self.circuit.probe_abandoned();
        }
    }
}

pub struct CognitoGate {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    /// The deployment's rate, in the shared database; `None`: this process's `limiter`.
    shared: Option<SharedRate>,
    slots: Arc<Semaphore>,
    circuit: Arc<Circuit>,
}

/// The shared rate's answer to one read: `None` when a token was taken, else how long until
/// one is due ([`Store::take_cognito_token`]).
pub type TokenWait = Option<Duration>;

/// The rate every replica on one database takes its tokens from.
struct SharedRate {
    store: Arc<dyn Store>,
    rate: RateCell,
}

impl CognitoGate {
    /// `store`: where the deployment's rate is kept, when `settings.scope` asks for it and
    /// the store can share it ([`Store::shares_cognito_rate`]).
    pub fn new(
        settings: QuotaSettings,
        metrics: Arc<Metrics>,
        store: Option<Arc<dyn Store>>,
    ) -> Self {
        let quota = Quota::per_second(settings.max_rps).allow_burst(settings.burst);
        let shared = store
            .filter(|store| settings.scope == QuotaScope::Deployment && store.shares_cognito_rate())
            .map(|store| SharedRate {
                store,
                rate: RateCell::new(settings.max_rps, settings.burst),
            });
        Self {
            limiter: RateLimiter::direct(quota),
            clock: DefaultClock::default(),
            shared,
            slots: Arc::new(Semaphore::new(settings.max_concurrency)),
            circuit: Arc::new(Circuit::new(
                settings.circuit_failures,
                settings.circuit_open,
                metrics,
            )),
        }
    }

    /// Wait for a slot and a token, giving up when the call could no longer start by
    /// `latest_start`. An open circuit refuses at once. A read of the shared rate may take
    /// half a second ([`admit_within`](Self::admit_within)).
    pub async fn admit(&self, latest_start: Instant) -> Result<Pass, Refusal> {
        self.admit_within(latest_start, Duration::from_millis(500), None)
            .await
    }

    /// [`admit`](Self::admit), where each read of the shared rate may take `store_budget`;
    /// past it, the process's own limiter paces the call. `taken` is the shared rate's
    /// answer when it was already read for this call (the guard's claim takes it in the same
    /// round trip): it stands for the first read.
    pub async fn admit_within(
        &self,
        latest_start: Instant,
        store_budget: Duration,
        mut taken: Option<TokenWait>,
    ) -> Result<Pass, Refusal> {
        let probe = match self.circuit.admit()? {
            Admission::Normal => None,
            Admission::Probe => Some(ProbeTicket {
                circuit: self.circuit.clone(),
                reported: false,
            }),
        };
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout_at(latest_start, self.slots.clone().acquire_owned())
                .await
                .map_err(|_| Refusal::OverQuota(QuotaLimit::Concurrency))?
                .expect("the semaphore is never closed"),
        };
        let mut shared_rate_failed = false;
        loop {
            let (wait, failed) = match taken.take() {
                Some(wait) => (wait, false),
                None => tokio::time::timeout_at(latest_start, self.token_due(store_budget))
                    .await
                    .map_err(|_| Refusal::OverQuota(QuotaLimit::Rate))?,
            };
            shared_rate_failed |= failed;
            match wait {
                None => break,
                Some(wait) if Instant::now() + wait > latest_start => {
                    return Err(Refusal::OverQuota(QuotaLimit::Rate));
                }
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
        Ok(Pass {
            _permit: permit,
            probe,
            shared_rate_failed,
        })
    }

    /// Whether the rate is shared by every replica on the database.
    pub fn shares_rate(&self) -> bool {
        self.shared.is_some()
    }

    /// The shared rate, for a store round trip that takes a token beside other work.
    pub fn shared_rate(&self) -> Option<RateCell> {
        self.shared.as_ref().map(|shared| shared.rate)
    }

    /// Take a token: `None` when taken, else how long until one is due; and whether the
    /// shared rate failed. When it cannot be read within `store_budget`, this call takes the
    /// process's own token instead (and says so): a database too slow or down for one
    /// statement costs pacing, not logins.
    async fn token_due(&self, store_budget: Duration) -> (Option<Duration>, bool) {
        if let Some(shared) = &self.shared {
            let problem = match tokio::time::timeout(
                store_budget,
                shared.store.take_cognito_token(shared.rate),
            )
            .await
            {
                Ok(Ok(wait)) => return (wait, false),
                Ok(Err(error)) => error.to_string(),
                Err(_) => "no answer in time".to_owned(),
            };
            tracing::warn!(
                error = %problem,
                "the deployment's Cognito rate could not be read: this call is paced by this \
                 process's own limiter"
            );
            return (self.local_token_due(), true);
        }
        (self.local_token_due(), false)
    }

    fn local_token_due(&self) -> Option<Duration> {
        self.limiter
            .check()
            .err()
            .map(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Report what the call let through by `pass` found: `unavailable` when Cognito could
    /// not decide (timeout, throttling, 5xx, broken connection).
    pub fn finish(&self, mut pass: Pass, unavailable: bool) {
        let probe = match pass.probe.as_mut() {
            Some(ticket) => {
                ticket.reported = true;
                true
            }
            None => false,
        };
        self.circuit.record(probe, unavailable);
    }

    /// `Some(time until the next probe)` while the circuit refuses calls.
    pub fn circuit_open_for(&self) -> Option<Duration> {
        self.circuit.open_for()
    }

    /// Refresh the circuit gauge (it is read at scrape time).
    pub fn publish_circuit_state(&self) {
        self.circuit.publish();
    }
}

enum Admission {
    Normal,
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls flow; `failures` consecutive unavailable answers so far.
    Closed { failures: u32 },
    /// Calls are refused until `until`; then one probe is let through.
    Open { until: Instant },
    /// The probe is out; everyone else is refused until it reports.
    HalfOpen,
}

/// Opens after `threshold` consecutive unavailable answers, stays open for `open_for`,
/// then lets exactly one probe call through: a decided answer closes it, another
/// unavailable answer opens it again.
struct Circuit {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
    metrics: Arc<Metrics>,
}

impl Circuit {
    fn new(threshold: u32, open_for: Duration, metrics: Arc<Metrics>) -> Self {
        metrics.circuit(CircuitGauge::Closed);
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold,
            open_for,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn admit(&self) -> Result<Admission, Refusal> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(Admission::Normal),
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                drop(state);
                self.metrics.circuit(CircuitGauge::HalfOpen);
                tracing::info!("Cognito circuit half-open: one probe call goes through");
                Ok(Admission::Probe)
            }
            State::Open { .. } | State::HalfOpen => Err(Refusal::CircuitOpen),
        }
    }

    fn record(&self, probe: bool, unavailable: bool) {
        let mut state = self.lock();
        match (*state, probe, unavailable) {
            (State::Closed { failures }, false, true) => {
                let failures = failures + 1;
                if failures >= self.threshold {
                    *state = State::Open {
                        until: Instant::now() + self.open_for,
                    };
                    drop(state);
                    self.opened(failures);
                } else {
                    *state = State::Closed { failures };
                }
            }
            (State::Closed { .. }, false, false) => *state = State::Closed { failures: 0 },
            (State::HalfOpen, true, true) => {
                *state = State::Open {
                    until: Instant::now() + self.open_for,
                };
                drop(state);
                self.opened(1);
            }
            (State::HalfOpen, true, false) => {
                *state = State::Closed { failures: 0 };
                drop(state);
                self.metrics.circuit(CircuitGauge::Closed);
                tracing::info!("Cognito circuit closed: the probe call was answered");
            }
            // Calls that started before the circuit opened say nothing about it now.
            _ => {}
        }
    }

    fn opened(&self, failures: u32) {
        self.metrics.circuit(CircuitGauge::Open);
        self.metrics.circuit_opened();
        tracing::warn!(
            consecutive_unavailable = failures,
            open_ms = self.open_for.as_millis() as u64,
            "Cognito circuit open: hook calls answer 424 without calling Cognito"
        );
    }

    /// The probe's caller gave up before Cognito answered: the next caller probes.
    fn probe_abandoned(&self) {
        let mut state = self.lock();
        if *state == State::HalfOpen {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }

    fn open_for(&self) -> Option<Duration> {
        match *self.lock() {
            State::Open { until } => {
                let left = until.saturating_duration_since(Instant::now());
                (!left.is_zero()).then_some(left)
            }
            State::HalfOpen => Some(Duration::ZERO),
            State::Closed { .. } => None,
        }
    }

    fn publish(&self) {
        let gauge = match *self.lock() {
            State::Closed { .. } => CircuitGauge::Closed,
            State::Open { until } if Instant::now() < until => CircuitGauge::Open,
            State::Open { .. } | State::HalfOpen => CircuitGauge::HalfOpen,
        };
        self.metrics.circuit(gauge);
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn gate(max_rps: u32, burst: u32, max_concurrency: usize) -> CognitoGate {
        CognitoGate::new(
            QuotaSettings {
                max_rps: NonZeroU32::new(max_rps).unwrap(),
                burst: NonZeroU32::new(burst).unwrap(),
                scope: QuotaScope::Process,
                max_concurrency,
                circuit_failures: 3,
                circuit_open: Duration::from_millis(200),
            },
            Arc::new(Metrics::new()),
            None,
        )
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    /// `calls` calls let through, each reported `unavailable` or not.
    async fn calls_answered(gate: &CognitoGate, calls: usize, unavailable: bool) {
        for _ in 0..calls {
            let pass = gate.admit(soon(10)).await.expect("let through");
            gate.finish(pass, unavailable);
        }
    }

    // The circuit and the concurrency cap run on tokio's clock, so their tests pause it: a
    // loaded machine that stalls this thread between two steps cannot let the 200 ms open
    // period (or a 30 ms deadline) run out early. The rate limit runs on governor's own clock
    // (real time), so its test measures only lower bounds, which a stall cannot break.

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_after_consecutive_unavailability_and_probes_once() {
        let gate = gate(1000, 1000, 100);
        calls_answered(&gate, 2, true).await;
        // A decided answer resets the count.
        calls_answered(&gate, 1, false).await;
        calls_answered(&gate, 3, true).await;
        assert!(matches!(
            gate.admit(soon(10)).await,
            Err(Refusal::CircuitOpen)
        ));
        assert!(gate.circuit_open_for().is_some());
        tokio::time::sleep(Duration::from_millis(220)).await;
        assert_eq!(gate.circuit_open_for(), None, "due for a probe");
        let probe = gate.admit(soon(10)).await.expect("one probe");
        assert!(
            matches!(gate.admit(soon(10)).await, Err(Refusal::CircuitOpen)),
            "only one probe at a time"
        );
        gate.finish(probe, true);
        assert!(matches!(
            gate.admit(soon(10)).await,
            Err(Refusal::CircuitOpen)
        ));
        tokio::time::sleep(Duration::from_millis(220)).await;
        let probe = gate.admit(soon(10)).await.expect("the next probe");
        gate.finish(probe, false);
        // Closed again.
        calls_answered(&gate, 5, false).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_the_next_caller_probe() {
        let gate = gate(1000, 1000, 100);
        calls_answered(&gate, 3, true).await;
        tokio::time::sleep(Duration::from_millis(220)).await;
        let probe = gate.admit(soon(10)).await.unwrap();
        drop(probe);
        let probe = gate.admit(soon(10)).await.expect("a new probe");
        gate.finish(probe, false);
        assert_eq!(gate.circuit_open_for(), None);
    }

    #[tokio::test]
    async fn the_rate_limit_refuses_what_cannot_start_before_the_deadline() {
        let gate = gate(10, 2, 100);
        let mut passes = Vec::new();
        // Before the burst: the third token is due 100 ms (1/10 s) after the first was taken,
        // so at least 100 ms after this however slow the machine is. (Measuring from after
        // the refusal below, as before, gave 50 ms of slack that a stall of this thread ate.)
        let before_burst = std::time::Instant::now();
        for _ in 0..2 {
            passes.push(gate.admit(soon(0)).await.expect("the burst"));
        }
        // The next token is at most 100 ms away: too late for a 20 ms budget (and later
        // still if the thread stalled), fine for 10 s.
        assert!(matches!(
            gate.admit(soon(20)).await,
            Err(Refusal::OverQuota(QuotaLimit::Rate))
        ));
        passes.push(gate.admit(soon(10_000)).await.expect("waits for a token"));
        // 95, not 100: governor's clock and std's may round a few ms apart.
        assert!(
            before_burst.elapsed() >= Duration::from_millis(95),
            "the third token came {:?} after the burst began",
            before_burst.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_concurrency_cap_waits_for_a_slot_until_the_deadline() {
        let gate = Arc::new(gate(1000, 1000, 1));
        let held = gate.admit(soon(10)).await.unwrap();
        assert!(matches!(
            gate.admit(soon(30)).await,
            Err(Refusal::OverQuota(QuotaLimit::Concurrency))
        ));
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit(soon(500)).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.finish(held, false);
        assert!(waiter.await.unwrap(), "the slot freed in time");
    }
}
