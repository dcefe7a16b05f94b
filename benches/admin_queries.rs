//! The admin API at scale: every route's answer time (median of N requests through HTTP, the
//! server in this process) on a store of ADMIN_BENCH_USERS users and ten attempt rows each,
//! next to the same routes on a store a hundredth that size in the same run (the baseline:
//! a route whose time grows with the store does a scan). SQLite and Postgres.
//! Run with `scripts/bench-admin` (or `cargo bench --bench admin_queries`).
//!
//! Knobs: ADMIN_BENCH_USERS (1000000), ADMIN_BENCH_REQUESTS (15 per route),
//! ADMIN_BENCH_BACKENDS ("sqlite,postgres").

use std::time::{Duration, Instant};

use cognito_bridge::config::Settings;
use cognito_bridge::startup::Application;
use sqlx::Connection;
use testkit::app::{Backend, TestDatabase};

const TOKEN: &str = "bench-admin-token-5f0c3b9e8a1d47e2b6c94f0a7d3e12c8";
const HOOK_KEY: &str = "bench-hook-key-5f0c3b9e8a1d47e2b6c94f0a7d3e12c85b9f";
const ATTEMPTS_PER_USER: i64 = 10;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// 60 % migrated (by hook, capture, reset, kratos in turn, spread over the hours of the last
/// 90 days), 30 % pending, 10 % needs_recovery; `users * 10` attempts spread over them and
/// over 90 days, written in time order as the hook writes them.
async fn seed(database: &TestDatabase, users: i64) {
    let attempts = users * ATTEMPTS_PER_USER;
    match database.backend {
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
            for statement in [
                format!(
                    "INSERT INTO users (cognito_username, username_normalized, email_normalized,
                        external_id, kratos_identity_id, state, migrated_via, mfa_dropped,
                        created_at, updated_at, migrated_at, last_attempt_at)
                     SELECT 'user' || lpad(i::text, 8, '0'), 'user' || lpad(i::text, 8, '0'),
                        'user' || i || '@example.com', 'sub-' || i, 'id-' || i,
                        CASE WHEN i % 10 < 6 THEN 'migrated' WHEN i % 10 < 9 THEN 'pending'
                             ELSE 'needs_recovery' END,
                        CASE WHEN i % 10 < 6 THEN (ARRAY['hook','capture','reset','kratos'])[1 + i % 4] END,
                        false, now(), now(),
                        CASE WHEN i % 10 < 6 THEN now() - (i % 2160) * interval '1 hour' END, now()
                     FROM generate_series(1, {users}) i"
                ),
                format!(
                    "INSERT INTO attempts (at, cognito_username, outcome, cognito_latency_ms,
                        cognito_calls, guard_key, guard, attempt_key)
                     SELECT now() - ((({attempts} - j) * 7776000.0 / {attempts})::float8) * interval '1 second',
                        'user' || lpad((j % {users} + 1)::text, 8, '0'),
                        CASE WHEN j % 3 = 0 THEN 'verified' ELSE 'not_authorized' END, 20, 1,
                        'user' || lpad((j % {users} + 1)::text, 8, '0'),
                        CASE WHEN j % 3 = 0 THEN 'success' ELSE 'failure' END, 'k' || j
                     FROM generate_series(1, {attempts}) j"
                ),
                "ANALYZE".to_owned(),
            ] {
                sqlx::query(&statement).execute(&mut connection).await.unwrap();
            }
        }
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&database.url)
                .await
                .unwrap();
            for statement in [
                "PRAGMA synchronous = OFF".to_owned(),
                format!(
                    "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {users})
                     INSERT INTO users (cognito_username, username_normalized, email_normalized,
                        external_id, kratos_identity_id, state, migrated_via, mfa_dropped,
                        created_at, updated_at, migrated_at, last_attempt_at)
                     SELECT printf('user%08d', i), printf('user%08d', i), 'user' || i || '@example.com',
                        'sub-' || i, 'id-' || i,
                        CASE WHEN i % 10 < 6 THEN 'migrated' WHEN i % 10 < 9 THEN 'pending'
                             ELSE 'needs_recovery' END,
                        CASE WHEN i % 10 < 6 THEN
                             CASE i % 4 WHEN 0 THEN 'hook' WHEN 1 THEN 'capture' WHEN 2 THEN 'reset' ELSE 'kratos' END
                        END,
                        0, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'),
                        CASE WHEN i % 10 < 6 THEN strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', '-' || (i % 2160) || ' hours') END,
                        strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')
                     FROM seq"
                ),
                format!(
                    "WITH RECURSIVE seq(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM seq WHERE j < {attempts})
                     INSERT INTO attempts (at, cognito_username, outcome, cognito_latency_ms,
                        cognito_calls, guard_key, guard, attempt_key)
                     SELECT strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now',
                        '-' || CAST(({attempts} - j) * (7776000.0 / {attempts}) AS INTEGER) || ' seconds'),
                        printf('user%08d', j % {users} + 1),
                        CASE WHEN j % 3 = 0 THEN 'verified' ELSE 'not_authorized' END, 20, 1,
                        printf('user%08d', j % {users} + 1),
                        CASE WHEN j % 3 = 0 THEN 'success' ELSE 'failure' END, 'k' || j
                     FROM seq"
                ),
                "ANALYZE".to_owned(),
            ] {
                sqlx::query(&statement).execute(&mut connection).await.unwrap();
            }
        }
    }
}

async fn serve(database: &TestDatabase) -> (String, cognito_bridge::startup::StopHandle) {
    let environment = [
        ("COGNITO_BRIDGE__SERVER__LISTEN", "127.0.0.1:0".to_owned()),
        ("COGNITO_BRIDGE__DATABASE__URL", database.url.clone()),
        (
            "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
            "us-east-1_Bench".to_owned(),
        ),
        ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", "bench".to_owned()),
        ("COGNITO_BRIDGE__HOOKS__API_KEYS", HOOK_KEY.to_owned()),
        ("COGNITO_BRIDGE__ADMIN__LISTEN", "127.0.0.1:0".to_owned()),
        ("COGNITO_BRIDGE__ADMIN__TOKENS", TOKEN.to_owned()),
        ("COGNITO_BRIDGE__LOG__LEVEL", "error".to_owned()),
    ];
    let settings = Settings::load_from(
        None,
        environment.into_iter().map(|(k, v)| (k.to_owned(), v)),
    )
    .unwrap();
    let credentials = aws_credential_types::Credentials::new("bench", "bench", None, None, "bench");
    let application = Application::build(
        settings,
        Some(aws_credential_types::provider::SharedCredentialsProvider::new(credentials)),
    )
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}", application.admin_port().unwrap());
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    (url, handle)
}

/// The median answer time of `requests` GETs of `path` (the body read to its end).
async fn median(client: &reqwest::Client, base: &str, path: &str, requests: usize) -> Duration {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

const ROUTES: [(&str, &str); 8] = [
    ("progress", "/admin/progress"),
    ("timeline, 90 days", "/admin/timeline?bucket=day&from={90d}"),
    ("timeline, 48 hours", "/admin/timeline?bucket=hour"),
    (
        "users, pending, first 100",
        "/admin/users?state=pending&limit=100",
    ),
    (
        "users, pending, 100 deep in",
        "/admin/users?state=pending&limit=100&cursor={deep}",
    ),
    (
        "users, pending, 1000",
        "/admin/users?state=pending&limit=1000",
    ),
    ("users, all, first 100", "/admin/users?limit=100"),
    ("imports", "/admin/imports"),
];

#[tokio::main]
async fn main() {
    let users: i64 = env_or("ADMIN_BENCH_USERS", 1_000_000);
    let requests: usize = env_or("ADMIN_BENCH_REQUESTS", 15);
    let backends: Vec<Backend> = std::env::var("ADMIN_BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".to_owned())
        .split(',')
        .filter_map(|name| match name.trim() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" => Some(Backend::Postgres),
            _ => None,
        })
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let from = (chrono::Utc::now() - chrono::Duration::days(90))
        .date_naive()
        .to_string();
    let small = (users / 100).max(1000);
    println!(
        "| backend | route | {small} users, {} attempts (median) | {users} users, {} attempts (median) | ratio |",
        small * ATTEMPTS_PER_USER,
        users * ATTEMPTS_PER_USER
    );
    println!("|---|---|---|---|---|");
    for backend in backends {
        let mut results: Vec<Vec<Duration>> = Vec::new();
        let mut csv = Vec::new();
        let mut folds = Vec::new();
        for size in [small, users] {
            let database = TestDatabase::new(backend).await;
            // Migrations first (serve applies them), then the rows.
            let (_, handle) = serve(&database).await;
            handle.stop().await;
            let seeding = Instant::now();
            seed(&database, size).await;
            eprintln!(
                "{backend:?}: {size} users seeded in {:.1?}",
                seeding.elapsed()
            );
            let (base, handle) = serve(&database).await;
            // A cursor in the middle of the pending users.
            let deep = base64_url(&format!("user{:08}", size / 2));
            // The first read folds the rollup's deltas of every seeded row (as the first
            // admin read after an import does); timed on its own, not in the medians.
            let first = median(&client, &base, "/admin/progress", 1).await;
            folds.push(first);
            let mut times = Vec::new();
            for (_, path) in ROUTES {
                let path = path.replace("{90d}", &from).replace("{deep}", &deep);
                times.push(median(&client, &base, &path, requests).await);
            }
            let started = Instant::now();
            let body = client
                .get(format!("{base}/admin/users.csv?state=pending"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let rows = body.iter().filter(|&&b| b == b'\n').count() - 1;
            csv.push((rows, started.elapsed()));
            results.push(times);
            handle.stop().await;
            // A million users and ten million attempts: not left in the shared database.
            if let Some(schema) = &database.schema {
                let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
        }
        for (i, (name, _)) in ROUTES.iter().enumerate() {
            let (a, b) = (results[0][i], results[1][i]);
            println!(
                "| {backend:?} | {name} | {:.1} ms | {:.1} ms | ×{:.1} |",
                a.as_secs_f64() * 1e3,
                b.as_secs_f64() * 1e3,
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
        println!(
            "| {backend:?} | progress, first read after seeding (folds a delta per seeded user) | {:.1} ms | {:.1} ms | ×{:.1} |",
            folds[0].as_secs_f64() * 1e3,
            folds[1].as_secs_f64() * 1e3,
            folds[1].as_secs_f64() / folds[0].as_secs_f64()
        );
        for (rows, took) in &csv {
            println!(
                "| {backend:?} | users.csv, every pending user | {rows} rows in {:.2} s | {:.0} rows/s | |",
                took.as_secs_f64(),
                *rows as f64 / took.as_secs_f64()
            );
        }
    }
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
