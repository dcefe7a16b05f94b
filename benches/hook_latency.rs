//! Hook latency against moto, next to a direct `AdminInitiateAuth` to the same moto in the
//! same run (the baseline). Run with `cargo bench --bench hook_latency`.
//!
//! Prints median, p90 and p99 over N sequential calls of each kind (N = $HOOK_BENCH_CALLS,
//! default 300), for SQLite and Postgres.

use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::types::AuthFlowType;
use testkit::app::{AppOptions, Backend, spawn_app};
use testkit::moto;

const PASSWORD: &str = "Bench-Password-123";

fn summary(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let median = at(0.5);
    println!(
        "{name:<34} n={:<5} median {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms",
        samples.len(),
        median.as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
    );
    median
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::var("HOOK_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let pool = moto::Pool::create(false).await;
    pool.add_user("bench", "bench@example.com", PASSWORD).await;

    let sqlite = spawn_app(AppOptions::for_pool(Backend::Sqlite, &pool).await).await;
    let postgres = spawn_app(AppOptions::for_pool(Backend::Postgres, &pool).await).await;

    // Interleaved, so that drift in moto's speed hits every path alike.
    let mut direct = Vec::with_capacity(calls);
    let mut via_sqlite = Vec::with_capacity(calls);
    let mut via_postgres = Vec::with_capacity(calls);
    for _ in 0..calls {
        // Baseline: the SDK straight to moto, same machine, same pool.
        let started = Instant::now();
        pool.client
            .admin_initiate_auth()
            .user_pool_id(&pool.id)
            .client_id(&pool.client_id)
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", "bench")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await
            .expect("moto answers");
        direct.push(started.elapsed());
        for (app, samples) in [(&sqlite, &mut via_sqlite), (&postgres, &mut via_postgres)] {
            let started = Instant::now();
            let answer = app.login("bench", PASSWORD).await;
            samples.push(started.elapsed());
            assert_eq!(answer.status, 200, "{answer:?}");
        }
    }
    let baseline = summary("direct AdminInitiateAuth (moto)", direct);
    for (name, samples) in [
        ("hook end to end (SQLite)", via_sqlite),
        ("hook end to end (Postgres)", via_postgres),
    ] {
        let median = summary(name, samples);
        println!(
            "{:<34} median added by the hook: {:.2} ms (ratio {:.2})",
            "",
            (median.as_secs_f64() - baseline.as_secs_f64()) * 1e3,
            median.as_secs_f64() / baseline.as_secs_f64()
        );
    }
}
