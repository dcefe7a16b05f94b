//! An open-loop load generator: requests start on a fixed timeline (request `i` at
//! `start + i / rate`) whatever happened to earlier ones, and each latency is measured from
//! the request's *scheduled* start, so time spent queueing behind a slow server (or a busy
//! generator) counts — no coordinated omission. Latencies go into an HDR histogram (µs).
//!
//! The timeline is kept by a plain thread (`load-scheduler`, `std::thread::sleep`, tens of
//! microseconds of precision rather than the tokio timer's millisecond) that hands each
//! request to the caller's tokio runtime as it falls due.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The answer the run wants (for the hook: 200 `password_match`).
    Ok,
    /// Any other answer, by a short description such as `status 424`.
    Failed(String),
}

/// Makes request number `i`; the future does the whole call.
pub type Call = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

/// One fixed-rate run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Requests per second.
    pub rate: f64,
    pub duration: Duration,
    /// A request without an answer by then counts as the error `timeout`.
    pub timeout: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub plan: Plan,
    /// Requests started (all of them, unless the run was cancelled).
    pub sent: u64,
    pub ok: u64,
    /// Failures by description.
    pub errors: BTreeMap<String, u64>,
    /// Scheduled start → answer, in µs, for every request that got an answer (ok or not).
    pub latency: Histogram<u64>,
    /// Actual start → answer, in µs: what a closed-loop tool would have reported.
    pub service: Histogram<u64>,
    /// The largest delay between a request's scheduled start and the moment the scheduler
    /// handed it over: how far the generator itself fell behind.
    pub max_schedule_lag: Duration,
    /// First scheduled start → last answer.
    pub span: Duration,
    /// Per second of the schedule: requests answered and their largest latency (µs), to see
    /// whether slow answers cluster (a stall) or spread (queueing).
    pub timeline: Vec<(u64, u64)>,
}

impl RunResult {
    pub fn failures(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Answers (ok or not) per second over the whole span.
    pub fn achieved_rate(&self) -> f64 {
        (self.ok + self.failures()) as f64 / self.span.as_secs_f64().max(1e-9)
    }

    /// Ok answers per second over the whole span.
    pub fn ok_rate(&self) -> f64 {
        self.ok as f64 / self.span.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (scheduled start → answer), in ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1e3
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1e3
    }

    /// `status 424: 3, timeout: 1`, or `none`.
    pub fn error_summary(&self) -> String {
        if self.errors.is_empty() {
            return "none".to_owned();
        }
        self.errors
            .iter()
            .map(|(what, count)| format!("{what}: {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `second: answers, max ms` for every second of the schedule.
    pub fn timeline_text(&self) -> String {
        self.timeline
            .iter()
            .enumerate()
            .map(|(second, (count, max))| {
                format!("{second}s: {count} max {:.1}", *max as f64 / 1e3)
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// One line for logs.
    pub fn line(&self) -> String {
        format!(
            "target {:>6.0}/s achieved {:>7.1}/s ok {:>6} errors [{}] p50 {:>7.2} p90 {:>7.2} p99 {:>7.2} max {:>8.2} ms (service p50 {:.2} p99 {:.2}) lag max {:.2} ms",
            self.plan.rate,
            self.achieved_rate(),
            self.ok,
            self.error_summary(),
            self.latency_ms(0.5),
            self.latency_ms(0.9),
            self.latency_ms(0.99),
            self.max_ms(),
            self.service.value_at_quantile(0.5) as f64 / 1e3,
            self.service.value_at_quantile(0.99) as f64 / 1e3,
            self.max_schedule_lag.as_secs_f64() * 1e3,
        )
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

struct Recorder {
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    last_answer: Option<Instant>,
    start: Instant,
    timeline: Vec<(u64, u64)>,
}

impl Recorder {
    fn record(&mut self, scheduled: Instant, started: Instant, done: Instant, outcome: Outcome) {
        let micros = |from: Instant| (done.duration_since(from).as_micros() as u64).max(1);
        let second = scheduled.saturating_duration_since(self.start).as_secs() as usize;
        if self.timeline.len() <= second {
            self.timeline.resize(second + 1, (0, 0));
        }
        let slot = &mut self.timeline[second];
        slot.0 += 1;
        slot.1 = slot.1.max(micros(scheduled));
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Failed(what) => *self.errors.entry(what).or_default() += 1,
        }
        self.latency.saturating_record(micros(scheduled));
        self.service.saturating_record(micros(started));
        self.last_answer = Some(self.last_answer.map_or(done, |last| last.max(done)));
    }

    fn timed_out(&mut self) {
        *self.errors.entry("timeout".to_owned()).or_default() += 1;
    }
}

/// Sets the flag when dropped: a cancelled run (its future dropped, e.g. by a test's
/// timeout) stops its scheduler thread too.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Run `call` at `plan.rate` for `plan.duration`, then wait for every answer (or timeout).
/// Must be called from within a multi-threaded tokio runtime.
pub async fn run(call: Call, plan: Plan) -> RunResult {
    assert!(plan.rate > 0.0, "a positive rate");
    let runtime = tokio::runtime::Handle::current();
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
    let start = Instant::now() + Duration::from_millis(5);
    let recorder = Arc::new(Mutex::new(Recorder {
        ok: 0,
        errors: BTreeMap::new(),
        latency: histogram(),
        service: histogram(),
        last_answer: None,
        start,
        timeline: Vec::new(),
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());

    let scheduler_recorder = recorder.clone();
    let scheduler_stop = stop.clone();
    let scheduler = std::thread::Builder::new()
        .name("load-scheduler".to_owned())
        .spawn(move || {
            let mut tasks = Vec::with_capacity(total as usize);
            let mut max_lag = Duration::ZERO;
            for i in 0..total {
                if scheduler_stop.load(Ordering::Relaxed) {
                    break;
                }
                let scheduled = start + Duration::from_secs_f64(i as f64 / plan.rate);
                let now = Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                max_lag = max_lag.max(Instant::now().saturating_duration_since(scheduled));
                let request = call(i);
                let recorder = scheduler_recorder.clone();
                tasks.push(runtime.spawn(async move {
                    let started = Instant::now();
                    let outcome = tokio::time::timeout(plan.timeout, request).await;
                    let done = Instant::now();
                    let mut recorder = recorder.lock().unwrap();
                    match outcome {
                        Ok(outcome) => recorder.record(scheduled, started, done, outcome),
                        Err(_) => recorder.timed_out(),
                    }
                }));
            }
            (tasks, max_lag)
        })
        .expect("start the scheduler thread");
    let (tasks, max_schedule_lag) = tokio::task::spawn_blocking(move || scheduler.join())
        .await
        .expect("the scheduler's join task")
        .expect("the scheduler thread does not panic");
    let sent = tasks.len() as u64;
    for task in tasks {
        let _ = task.await;
    }

    let recorder = recorder.lock().unwrap();
    let span = recorder
        .last_answer
        .map_or(Duration::ZERO, |last| last.saturating_duration_since(start))
        .max(plan.duration);
    RunResult {
        plan,
        sent,
        ok: recorder.ok,
        errors: recorder.errors.clone(),
        latency: recorder.latency.clone(),
        service: recorder.service.clone(),
        max_schedule_lag,
        span,
        timeline: recorder.timeline.clone(),
    }
}
