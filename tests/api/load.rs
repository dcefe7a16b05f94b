//! The hook under a steady load: the real `cognito-bridge serve` (this build's binary; a
//! debug build under `cargo test`) as a child process on SQLite, driven at a fixed rate for
//! 60 s by an open-loop generator against a fast keep-alive Cognito fake, both in this test
//! process. Every answer must be 200 `password_match`, the achieved rate within 3 % of the
//! target, and the server's resident memory flat.
//!
//! The generator, the fake and the child-process helpers live in `testkit::load` and are
//! shared with `benches/hook_load.rs`, which measures the release build (`scripts/bench-hook`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::load::bridge_process::{self, BridgeProcess};

use crate::helpers::BINARY;
use testkit::load::fast_cognito::{FastCognito, FastCognitoOptions};
use testkit::load::hook_client;
use testkit::load::open_loop::{self, Plan};
use testkit::load::raw_http::RawClient;

/// Requests per second. Not the 1,000/s aimed at: see the test's doc comment.
const RATE: f64 = 100.0;
const DURATION: Duration = Duration::from_secs(60);
/// The achieved rate may fall this far below the target. The rate is answers over the span
/// from the first send to the last answer, so a slow tail stretches it: 3 % was 1.8 s over
/// the 60 s run, which one stall of the loaded two-core machine (Kratos, Hydra, Postgres and
/// compilers beside the suite) could take; 10 % allows 6 s of tail. A server that does not
/// keep up still fails it (and the check that every request was answered ok).
const RATE_TOLERANCE: f64 = 0.10;
/// Users in the fake, cycled through: each is verified every `USERS / RATE` = 10 s (six
/// times in the run, so the last two thirds only update rows the first created). All
/// passwords are right, so the brute-force guard, which counts failures, stays quiet.
const USERS: usize = 1_000;
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Start-up allocations (pools, caches, the first connections) settle in this time.
const WARM_UP: Duration = Duration::from_secs(10);
/// How much the last third's peak RSS may exceed the first third's (after warm-up).
const RSS_GROWTH_MIB: f64 = 8.0;
/// Whatever happens, the test ends by then (the child is killed when dropped).
const OVERALL_TIMEOUT: Duration = Duration::from_secs(180);

/// Why 100 requests/s rather than 1,000: the server here is the debug build, which spends
/// about 5 ms of CPU per hook call (the release build: about 0.8 ms), measured with
/// `HOOK_LOAD_BINARY=target/debug/cognito-bridge scripts/bench-hook throughput`. On the
/// two-core CI machine it answers 100/s with p99 under 20 ms using about 0.55 cores, and stops
/// keeping up at about 250/s when it has the machine to itself; `cargo test` and nextest run
/// another test beside this one, so about one core is what it can count on. 100/s keeps
/// roughly a factor of two in hand; 1,000/s would need the release build or dependencies
/// compiled with optimisations in the dev profile.
///
/// Memory: the peaks compared are about 38 s (3,800 calls) apart, so the 8 MiB margin catches
/// any leak above about 2.2 KiB per call (a request or response buffer never freed is
/// several KiB). What grows without being a leak: SQLite's page caches (at most 2 MiB per
/// connection; the one writer connection caches the attempt log's new pages, about 300–450
/// bytes per call, so about 2 MiB over this run before its cap), and a connection the pool
/// adds under a burst (a thread and its cache: about 2.5 MiB). Measured: +0.5 MiB before the
/// single-writer store, +1.4 to +3.0 MiB after it with the thread count constant; the release
/// build at 500/s stays within 0.1 MiB over 17,500 calls once its caches are full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_sustains_a_fixed_rate_without_errors_and_with_flat_memory() {
    tokio::time::timeout(OVERALL_TIMEOUT, steady_load())
        .await
        .expect("the load test finishes within its overall timeout");
}

async fn steady_load() {
    let fake = FastCognito::start(FastCognitoOptions {
        users: USERS,
        delay: Duration::ZERO,
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}", dir.path().join("load.db").display());
    let env = hook_client::serve_env(&fake.endpoint, &database_url, "warn");
    let mut server = BridgeProcess::spawn(Path::new(BINARY), dir.path(), "serve.log", &env);
    server
        .wait_ready(Duration::from_secs(60))
        .await
        .unwrap_or_else(|problem| panic!("{problem}"));

    // Resident memory, sampled while the load runs: (since the start, KiB, threads).
    let pid = server.pid;
    let started = Instant::now();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut every = tokio::time::interval(RSS_SAMPLE_EVERY);
        loop {
            every.tick().await;
            let at = started.elapsed();
            if at > DURATION {
                break samples;
            }
            if let Some(kib) = bridge_process::rss_kib_of(pid) {
                let threads = bridge_process::threads_of(pid).unwrap_or(0);
                samples.push((at, kib, threads));
            }
        }
    });

    let client = Arc::new(RawClient::new(server.address));
    let result = open_loop::run(
        hook_client::hook_call(client, USERS),
        Plan {
            rate: RATE,
            duration: DURATION,
            timeout: Duration::from_secs(10),
        },
    )
    .await;
    let samples = sampler.await.expect("the RSS sampler");
    let log = server.log_tail(20);
    server.stop().await;
    println!("load: {}", result.line());

    assert_eq!(
        result.failures(),
        0,
        "every answer is 200 password_match: {}\nserver log:\n{log}",
        result.error_summary()
    );
    assert_eq!(result.ok, result.sent, "every request was answered");
    assert_eq!(
        fake.authenticated(),
        result.ok,
        "each match is one AdminInitiateAuth"
    );
    assert!(
        result.ok_rate() >= RATE * (1.0 - RATE_TOLERANCE),
        "achieved {:.1}/s, below {:.0} % of {RATE}/s: {}",
        result.ok_rate(),
        (1.0 - RATE_TOLERANCE) * 100.0,
        result.line()
    );

    let third = DURATION / 3;
    let peak_between = |from: Duration, to: Duration| {
        samples
            .iter()
            .filter(|(at, ..)| *at >= from && *at <= to)
            .map(|(_, kib, _)| *kib as f64 / 1024.0)
            .fold(0.0, f64::max)
    };
    let first = peak_between(WARM_UP, third);
    let last = peak_between(DURATION - third, DURATION);
    let trace: Vec<String> = samples
        .iter()
        .map(|(at, kib, threads)| {
            format!(
                "{:.0}s {:.1} ({threads})",
                at.as_secs_f64(),
                *kib as f64 / 1024.0
            )
        })
        .collect();
    println!(
        "load: RSS MiB first third (after warm-up) peak {first:.1}, last third peak {last:.1}; samples (threads): {}",
        trace.join(", ")
    );
    assert!(
        first > 0.0 && last > 0.0,
        "RSS was sampled in both thirds: {trace:?}"
    );
    assert!(
        last <= first + RSS_GROWTH_MIB,
        "resident memory grew from {first:.1} MiB to {last:.1} MiB (allowed: +{RSS_GROWTH_MIB} MiB): {trace:?}"
    );
}
