//! The password migration hook under load: the release binary's `cognito-bridge serve` as a
//! child process, driven by an open-loop generator (fixed arrival rate, latency from each
//! request's scheduled start) against a fast keep-alive Cognito fake, both in this process.
//! Run with `scripts/bench-hook` (or `cargo bench --bench hook_load -- [scenario…]`).
//!
//! Scenarios (arguments, or `HOOK_LOAD_SCENARIOS=latency,throughput,startup`; default all):
//! - `latency`: the fake answers after 20 ms (`HOOK_LOAD_DELAY_MS`). At 500 req/s
//!   (`HOOK_LOAD_LATENCY_RATE`) for 20 s (`HOOK_LOAD_LATENCY_SECS`) per phase, after 2 s of
//!   warm-up (`HOOK_LOAD_WARMUP_SECS`): direct `AdminInitiateAuth` through the AWS SDK (the
//!   bridge's own SDK configuration) against the fake, then the hook end to end on SQLite
//!   and on Postgres against the same fake; `HOOK_LOAD_ROUNDS` rounds (default 3), the order
//!   of the three phases rotating per round. Reports p50 and p99 ratios hook / direct.
//! - `throughput`: the fake answers at once. The rate steps up (`HOOK_LOAD_RATES`, default
//!   500, 750, 1000, 1250, 1500, 1750, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000 req/s;
//!   `HOOK_LOAD_STEP_SECS` = 10 s each, 1 s of rest between) until two steps in a row fail;
//!   a step passes with no error and p99 < 20 ms. `HOOK_LOAD_RAMPS` ramps (default 3) per
//!   backend, each on a fresh server and database.
//! - `startup`: spawn to the first `200` of `GET /health/ready` (database ping and a Cognito
//!   probe), `HOOK_LOAD_STARTS` times (default 10) per backend: on a fresh database
//!   (migrations run) and again on the migrated one.
//!
//! Every server starts on a fresh database holding what an import leaves: one `pending` row
//! per fake user (`HOOK_LOAD_SEED=0`: an empty store instead, the hook creating the rows).
//!
//! A run during which other work on the machine (other processes, interrupt work not charged
//! to any process) took more than 0.3 cores is repeated, at most twice, and flagged when it
//! stays disturbed.
//!
//! Other knobs: `HOOK_LOAD_BACKENDS` (`sqlite,postgres`), `HOOK_LOAD_USERS` (users in the
//! fake and the store, requests cycle through them; default 10,000), `HOOK_LOAD_LOG_LEVEL` (the server's
//! `log.level`, default `info` as in production), `HOOK_LOAD_SERVER_ENV` (more
//! `KEY=VALUE` pairs for the server, `;`-separated), `HOOK_LOAD_UNLIMITED=0` (do not set
//! `cognito.max_rps`, `cognito.burst` (both 1,000,000 otherwise) and
//! `cognito.max_concurrency` (1024), for builds that predate them),
//! `HOOK_LOAD_OUT` (also write the Markdown summary to this file), `HOOK_LOAD_BINARY` (another
//! `cognito-bridge` binary, e.g. `target/debug/cognito-bridge`), `HOOK_LOAD_TIMELINE=1`
//! (print each run's answers and largest latency per second). Postgres:
//! `COGNITO_BRIDGE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each server gets a fresh schema, dropped afterwards.

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::AuthFlowType;
use sqlx::Connection;
use support::{env_number, machine, met};
use testkit::app::{create_postgres_schema, postgres_base_url};
use testkit::load::bridge_process::{self, BridgeProcess, Startup};
use testkit::load::fast_cognito::{self, FastCognito, FastCognitoOptions};
use testkit::load::hook_client::{self, hook_call};
use testkit::load::open_loop::{self, Call, Outcome, Plan, RunResult};
use testkit::load::raw_http::RawClient;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TIMEOUT: Duration = Duration::from_secs(60);

// Goals of the issue.
const P50_RATIO_GOAL: f64 = 1.05;
const P99_RATIO_GOAL: f64 = 1.10;
const STEP_P99_LIMIT_MS: f64 = 20.0;
const THROUGHPUT_GOAL: f64 = 5000.0;

// --- knobs --------------------------------------------------------------------------------

fn env_text(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    env_text(name, default)
        .split(',')
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "Postgres",
        }
    }
}

struct Knobs {
    binary: std::path::PathBuf,
    backends: Vec<Backend>,
    users: usize,
    seed: bool,
    timeline: bool,
    log_level: String,
    unlimited: bool,
    server_env: Vec<(String, String)>,
}

impl Knobs {
    fn from_env() -> Self {
        let backends = env_list("HOOK_LOAD_BACKENDS", "sqlite,postgres")
            .iter()
            .map(|name| match name.to_ascii_lowercase().as_str() {
                "sqlite" => Backend::Sqlite,
                "postgres" | "pg" => Backend::Postgres,
                other => panic!("HOOK_LOAD_BACKENDS: unknown backend {other:?}"),
            })
            .collect();
        let server_env = env_text("HOOK_LOAD_SERVER_ENV", "")
            .split(';')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| {
                let (key, value) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("HOOK_LOAD_SERVER_ENV: {pair:?} is not KEY=VALUE"));
                (key.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        Self {
            // The release build of this tree, unless another is named (e.g. a debug build).
            binary: env_text("HOOK_LOAD_BINARY", testkit::bridge_binary!()).into(),
            backends,
            users: env_number("HOOK_LOAD_USERS", 10_000.0) as usize,
            seed: env_number("HOOK_LOAD_SEED", 1.0) != 0.0,
            timeline: env_number("HOOK_LOAD_TIMELINE", 0.0) != 0.0,
            log_level: env_text("HOOK_LOAD_LOG_LEVEL", "info"),
            unlimited: env_number("HOOK_LOAD_UNLIMITED", 1.0) != 0.0,
            server_env,
        }
    }
}

// --- databases and servers ----------------------------------------------------------------

/// A fresh database for one server: a SQLite file in a temporary folder, or a new schema in
/// the Postgres test database (dropped by [`BenchDatabase::drop_now`]).
struct BenchDatabase {
    url: String,
    schema: Option<String>,
}

impl BenchDatabase {
    async fn create(backend: Backend, dir: &Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: format!(
                    "sqlite://{}",
                    dir.join(format!("bench-{:08x}.db", rand::random::<u32>()))
                        .display()
                ),
                schema: None,
            },
            Backend::Postgres => {
                let schema = format!("hook_load_{:012x}", rand::random::<u64>() >> 16);
                Self {
                    url: create_postgres_schema(&schema).await,
                    schema: Some(schema),
                }
            }
        }
    }

    /// What an import leaves behind: one `pending` row per fake user (username, e-mail,
    /// `sub`, Kratos identity id). On Postgres also `ANALYZE`, as autovacuum does after an
    /// import: plans that the server prepares while a table's statistics still say "empty"
    /// scan it sequentially (see BENCHMARKS.md).
    async fn seed_users(&self, users: usize) {
        let users = users as i64;
        match self.schema {
            Some(_) => {
                let mut connection = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect to the bench schema");
                sqlx::query(
                    "INSERT INTO users (cognito_username, username_normalized, email_normalized,
                                        external_id, kratos_identity_id, state, created_at, updated_at)
                     SELECT name, name, name || '@example.com', 'sub-' || i, 'identity-' || i,
                            'pending', now(), now()
                     FROM generate_series(0, $1 - 1) AS i,
                          LATERAL (SELECT 'load-user-' || lpad(i::text, 5, '0') AS name) AS n",
                )
                .bind(users)
                .execute(&mut connection)
                .await
                .expect("seed the users");
                sqlx::query("ANALYZE users")
                    .execute(&mut connection)
                    .await
                    .expect("analyze the users");
            }
            None => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("open the bench database");
                sqlx::query(
                    "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1 - 1)
                     INSERT INTO users (cognito_username, username_normalized, email_normalized,
                                        external_id, kratos_identity_id, state, created_at, updated_at)
                     SELECT printf('load-user-%05d', i), printf('load-user-%05d', i),
                            printf('load-user-%05d@example.com', i), 'sub-' || i, 'identity-' || i,
                            'pending', strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'),
                            strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')
                     FROM seq",
                )
                .bind(users)
                .execute(&mut connection)
                .await
                .expect("seed the users");
            }
        }
    }

    /// Attempt rows the server wrote.
    async fn attempt_rows(&self) -> i64 {
        const COUNT: &str = "SELECT COUNT(*) FROM attempts";
        if self.schema.is_some() {
            let mut connection = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::query_scalar(COUNT).fetch_one(&mut connection).await
        } else {
            let mut connection = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("open");
            sqlx::query_scalar(COUNT).fetch_one(&mut connection).await
        }
        .expect("count the attempt rows")
    }

    async fn drop_now(self) {
        if let Some(schema) = self.schema {
            let base = postgres_base_url();
            if let Ok(mut connection) = sqlx::PgConnection::connect(&base).await {
                let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&mut connection)
                    .await;
            }
        }
    }
}

/// `call`, counting the requests it starts and those answered `Ok` (each one a verified
/// login, so each must leave one attempt row).
fn counted(call: Call, started: Arc<AtomicU64>, ok: Arc<AtomicU64>) -> Call {
    Arc::new(move |i| {
        started.fetch_add(1, Ordering::Relaxed);
        let answer = call(i);
        let ok = ok.clone();
        Box::pin(async move {
            let outcome = answer.await;
            if matches!(outcome, Outcome::Ok) {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        })
    })
}

/// The server's configuration: only `COGNITO_BRIDGE__…` keys.
fn server_env(
    knobs: &Knobs,
    fake: &FastCognito,
    database: &BenchDatabase,
) -> Vec<(String, String)> {
    let mut env = hook_client::serve_env(&fake.endpoint, &database.url, &knobs.log_level);
    if !knobs.unlimited {
        env.retain(|(key, _)| !hook_client::UNLIMITED_QUOTA.iter().any(|(k, _)| k == key));
    }
    env.extend(knobs.server_env.iter().cloned());
    env
}

/// A ready server on a fresh database.
async fn start_server(
    knobs: &Knobs,
    fake: &FastCognito,
    backend: Backend,
    dir: &Path,
    log_name: &str,
) -> (BridgeProcess, BenchDatabase, Startup) {
    let database = BenchDatabase::create(backend, dir).await;
    let env = server_env(knobs, fake, &database);
    let mut server = BridgeProcess::spawn(&knobs.binary, dir, log_name, &env);
    let startup = server
        .wait_ready(READY_TIMEOUT)
        .await
        .unwrap_or_else(|problem| panic!("{problem}"));
    if knobs.seed {
        database.seed_users(knobs.users).await;
    }
    (server, database, startup)
}

// --- calls ----------------------------------------------------------------------------------

/// `AdminInitiateAuth` straight to the fake through the AWS SDK, configured as the bridge
/// configures it (`cognito_bridge::cognito::sdk_config`: same HTTP client, timeouts, no SDK
/// retries).
async fn direct_call(endpoint: &str, users: usize) -> Call {
    let url = url::Url::parse(endpoint).expect("the fake's endpoint is a URL");
    let credentials = SharedCredentialsProvider::new(Credentials::new(
        "load-test",
        "load-test",
        None,
        None,
        "bench",
    ));
    let config = cognito_bridge::cognito::sdk_config(
        "us-east-1",
        Some(&url),
        Duration::from_secs(2),
        Some(credentials),
    )
    .await;
    let client = aws_sdk_cognitoidentityprovider::Client::new(&config);
    Arc::new(move |i| {
        let client = client.clone();
        let username = fast_cognito::username(i as usize % users);
        Box::pin(async move {
            let answer = client
                .admin_initiate_auth()
                .user_pool_id(fast_cognito::POOL_ID)
                .client_id(fast_cognito::CLIENT_ID)
                .auth_flow(AuthFlowType::AdminUserPasswordAuth)
                .auth_parameters("USERNAME", username)
                .auth_parameters("PASSWORD", fast_cognito::PASSWORD)
                .send()
                .await;
            match answer {
                Ok(output) if output.authentication_result().is_some() => Outcome::Ok,
                Ok(_) => Outcome::Failed("no AuthenticationResult".to_owned()),
                Err(SdkError::ServiceError(context)) => Outcome::Failed(format!(
                    "sdk {}",
                    context.err().code().unwrap_or("service error")
                )),
                Err(SdkError::TimeoutError(_)) => Outcome::Failed("sdk timeout".to_owned()),
                Err(SdkError::DispatchFailure(_)) => Outcome::Failed("sdk dispatch".to_owned()),
                Err(_) => Outcome::Failed("sdk other".to_owned()),
            }
        })
    })
}

// --- CPU of one run -------------------------------------------------------------------------

/// CPU used during one run, in cores (CPU seconds per wall second).
#[derive(Debug, Clone, Copy, Default)]
struct CpuShare {
    server: f64,
    /// This process but the fake's thread: the generator (and the SDK for direct calls).
    generator: f64,
    fake: f64,
    /// Every `postgres` process (all of the database server, whoever it serves).
    postgres: f64,
    /// The machine's busy time not accounted for above: other processes (another build or
    /// test run disturbs the figures) and interrupt work not charged to any process.
    other: f64,
}

impl CpuShare {
    fn text(&self) -> String {
        format!(
            "CPU server {:.2} gen {:.2} fake {:.2} postgres {:.2} other {:.2}",
            self.server, self.generator, self.fake, self.postgres, self.other
        )
    }
}

struct CpuProbe {
    at: Instant,
    server: Duration,
    own: Duration,
    fake: Duration,
    postgres: Duration,
    idle: Duration,
}

impl CpuProbe {
    fn take(server: Option<&BridgeProcess>) -> Self {
        Self {
            at: Instant::now(),
            server: server.map(BridgeProcess::cpu).unwrap_or_default(),
            own: bridge_process::own_cpu(),
            fake: bridge_process::threads_cpu(fast_cognito::THREAD_NAME),
            postgres: bridge_process::processes_cpu("postgres"),
            idle: bridge_process::machine_idle(),
        }
    }

    fn share_since(&self, server: Option<&BridgeProcess>) -> CpuShare {
        let now = Self::take(server);
        let wall = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let used = |now: Duration, then: Duration| now.saturating_sub(then).as_secs_f64();
        let fake = used(now.fake, self.fake);
        let own = used(now.own, self.own);
        let server = used(now.server, self.server);
        let postgres = used(now.postgres, self.postgres);
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let machine = cores * wall - used(now.idle, self.idle);
        CpuShare {
            server: server / wall,
            generator: (own - fake).max(0.0) / wall,
            fake: fake / wall,
            postgres: postgres / wall,
            other: (machine - server - own - postgres).max(0.0) / wall,
        }
    }
}

/// Other work on the machine above this many cores during a run makes the run "disturbed"
/// (a quiet machine shows 0.05–0.15: interrupt work not charged to any process).
const DISTURBED_CORES: f64 = 0.3;
/// How often a disturbed run is repeated before its result is taken anyway (and flagged).
const DISTURBED_RETRIES: usize = 2;

/// A measured run, repeated after a pause (and a fresh warm-up, when given) while other work
/// on the machine took more than [`DISTURBED_CORES`]: this machine is shared with builds and
/// test runs. Returns the last attempt and how many were thrown away.
async fn undisturbed_run(
    call: Call,
    plan: Plan,
    warmup: Option<Plan>,
    server: Option<&BridgeProcess>,
    label: &str,
) -> (RunResult, CpuShare, usize) {
    let mut repeats = 0;
    loop {
        if let Some(warmup) = warmup {
            open_loop::run(call.clone(), warmup).await;
        }
        let (result, cpu) = measured_run(call.clone(), plan, server).await;
        if cpu.other <= DISTURBED_CORES || repeats == DISTURBED_RETRIES {
            return (result, cpu, repeats);
        }
        repeats += 1;
        println!(
            "{label} disturbed ({:.2} cores of other work; p99 {:.2} ms), repeating",
            cpu.other,
            result.latency_ms(0.99)
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

async fn measured_run(
    call: Call,
    plan: Plan,
    server: Option<&BridgeProcess>,
) -> (RunResult, CpuShare) {
    let probe = CpuProbe::take(server);
    let result = open_loop::run(call, plan).await;
    (result, probe.share_since(server))
}

// --- figures ----------------------------------------------------------------------------------

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn spread(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.decimals$}–{max:.decimals$}")
}

// --- scenario a: added latency --------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Direct,
    Hook(Backend),
}

impl Phase {
    fn name(self) -> String {
        match self {
            Phase::Direct => "direct AdminInitiateAuth (SDK)".to_owned(),
            Phase::Hook(backend) => format!("hook end to end, {}", backend.name()),
        }
    }
}

async fn latency_scenario(knobs: &Knobs, md: &mut String) {
    let rate = env_number("HOOK_LOAD_LATENCY_RATE", 500.0);
    let secs = env_number("HOOK_LOAD_LATENCY_SECS", 20.0);
    let warmup = env_number("HOOK_LOAD_WARMUP_SECS", 2.0);
    let rounds = env_number("HOOK_LOAD_ROUNDS", 3.0) as usize;
    let delay_ms = env_number("HOOK_LOAD_DELAY_MS", 20.0);
    println!(
        "== latency: fake delay {delay_ms} ms, {rate}/s for {secs} s per phase (+{warmup} s warm-up), {rounds} rounds"
    );
    let fake = FastCognito::start(FastCognitoOptions {
        users: knobs.users,
        delay: Duration::from_secs_f64(delay_ms / 1e3),
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut paths = vec![Phase::Direct];
    let mut servers = Vec::new();
    for &backend in &knobs.backends {
        let log = format!("latency-{}.log", backend.name());
        let (server, database, _) = start_server(knobs, &fake, backend, dir.path(), &log).await;
        let client = Arc::new(RawClient::new(server.address));
        paths.push(Phase::Hook(backend));
        servers.push((backend, server, database, client));
    }
    let direct = direct_call(&fake.endpoint, knobs.users).await;
    let plan = Plan {
        rate,
        duration: seconds(secs),
        timeout: REQUEST_TIMEOUT,
    };
    let warmup_plan = Plan {
        duration: seconds(warmup),
        ..plan
    };

    // results[path][round]
    let mut results: Vec<Vec<(RunResult, CpuShare)>> = vec![Vec::new(); paths.len()];
    let mut disturbed_repeats = 0;
    for round in 0..rounds {
        for k in 0..paths.len() {
            let index = (k + round) % paths.len();
            let path = paths[index];
            let (call, server) = match path {
                Phase::Direct => (direct.clone(), None),
                Phase::Hook(backend) => {
                    let (_, server, _, client) = servers
                        .iter()
                        .find(|(b, ..)| *b == backend)
                        .expect("a server per backend");
                    (hook_call(client.clone(), knobs.users), Some(server))
                }
            };
            let label = format!("[round {}/{rounds}] {:<32}", round + 1, path.name());
            let warmup = (warmup > 0.0).then_some(warmup_plan);
            let (result, cpu, repeats) = undisturbed_run(call, plan, warmup, server, &label).await;
            disturbed_repeats += repeats;
            println!("{label} {} | {}", result.line(), cpu.text());
            if knobs.timeline {
                println!("    timeline: {}", result.timeline_text());
            }
            results[index].push((result, cpu));
        }
    }
    let unexpected = fake.malformed();
    for (_, server, database, _) in servers {
        server.stop().await;
        database.drop_now().await;
    }

    // Per path: medians over rounds.
    let _ = writeln!(
        md,
        "### Added latency (fake answers after {delay_ms} ms; {rate}/s, {secs} s per phase, {rounds} rounds)\n"
    );
    let _ = writeln!(
        md,
        "| path | requests | errors | achieved | p50 | p90 | p99 | max | CPU: server | Postgres | generator | other |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let of = |runs: &[(RunResult, CpuShare)], f: &dyn Fn(&RunResult, &CpuShare) -> f64| {
        runs.iter().map(|(r, c)| f(r, c)).collect::<Vec<f64>>()
    };
    for (path, runs) in paths.iter().zip(&results) {
        let p = |q: f64| median(&of(runs, &|r, _| r.latency_ms(q)));
        let p_spread = |q: f64| spread(&of(runs, &|r, _| r.latency_ms(q)), 2);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1}/s | {:.2} ms ({}) | {:.2} ms | {:.2} ms ({}) | {:.2} ms | {} | {:.2} | {:.2} | {:.2} |",
            path.name(),
            runs.iter().map(|(r, _)| r.sent).sum::<u64>(),
            runs.iter().map(|(r, _)| r.failures()).sum::<u64>(),
            median(&of(runs, &|r, _| r.achieved_rate())),
            p(0.5),
            p_spread(0.5),
            p(0.9),
            p(0.99),
            p_spread(0.99),
            median(&of(runs, &|r, _| r.max_ms())),
            match path {
                Phase::Direct => "—".to_owned(),
                Phase::Hook(_) => format!("{:.2}", median(&of(runs, &|_, c| c.server))),
            },
            median(&of(runs, &|_, c| c.postgres)),
            median(&of(runs, &|_, c| c.generator)),
            median(&of(runs, &|_, c| c.other)),
        );
    }
    let _ = writeln!(
        md,
        "\nMedians over the rounds (min–max in brackets); latency from each request's scheduled start. CPU in cores: the server process, all Postgres processes, this bench process but the fake's thread, and the rest of the machine's busy time (other processes, unattributed interrupt work).\n"
    );
    let _ = writeln!(
        md,
        "| hook / direct (same round) | p50 ratio (min–max) | p50 added | p50 goal ≤ {P50_RATIO_GOAL} | p99 ratio (min–max) | p99 added | p99 goal ≤ {P99_RATIO_GOAL} |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | --- | ---: | ---: | --- |");
    for (index, path) in paths.iter().enumerate().skip(1) {
        let per_round = |f: &dyn Fn(f64, f64) -> f64, q: f64| -> Vec<f64> {
            results[index]
                .iter()
                .zip(&results[0])
                .map(|((hook, _), (direct, _))| f(hook.latency_ms(q), direct.latency_ms(q)))
                .collect()
        };
        let ratio = |hook: f64, direct: f64| hook / direct;
        let added = |hook: f64, direct: f64| hook - direct;
        let (p50, p99) = (per_round(&ratio, 0.5), per_round(&ratio, 0.99));
        let _ = writeln!(
            md,
            "| {} | {:.3} ({}) | {:+.2} ms | {} | {:.3} ({}) | {:+.2} ms | {} |",
            path.name(),
            median(&p50),
            spread(&p50, 3),
            median(&per_round(&added, 0.5)),
            met(median(&p50) <= P50_RATIO_GOAL),
            median(&p99),
            spread(&p99, 3),
            median(&per_round(&added, 0.99)),
            met(median(&p99) <= P99_RATIO_GOAL),
        );
    }
    if unexpected > 0 {
        let _ = writeln!(md, "\nThe fake saw {unexpected} malformed requests.");
    }
    let still_disturbed = results
        .iter()
        .flatten()
        .filter(|(_, cpu)| cpu.other > DISTURBED_CORES)
        .count();
    let _ = writeln!(
        md,
        "\nPhases repeated because other work took more than {DISTURBED_CORES} cores: {disturbed_repeats}; taken although still disturbed: {still_disturbed}.\n"
    );
}

// --- scenario b: throughput -------------------------------------------------------------------

struct Step {
    result: RunResult,
    cpu: CpuShare,
    passed: bool,
    /// Disturbed attempts thrown away before this one.
    repeats: usize,
}

async fn throughput_scenario(knobs: &Knobs, md: &mut String) {
    let rates: Vec<f64> = env_list(
        "HOOK_LOAD_RATES",
        "500,750,1000,1250,1500,1750,2000,2500,3000,4000,5000,6000,8000,10000",
    )
    .iter()
    .map(|rate| rate.parse().expect("HOOK_LOAD_RATES: numbers"))
    .collect();
    let step_secs = env_number("HOOK_LOAD_STEP_SECS", 10.0);
    let ramps = env_number("HOOK_LOAD_RAMPS", 3.0) as usize;
    let warmup = env_number("HOOK_LOAD_WARMUP_SECS", 2.0);
    println!(
        "== throughput: instant fake, steps {rates:?} req/s of {step_secs} s, {ramps} ramps per backend"
    );
    let fake = FastCognito::start(FastCognitoOptions {
        users: knobs.users,
        delay: Duration::ZERO,
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    // ramps[backend][ramp] = steps
    let mut all: Vec<(Backend, Vec<Vec<Step>>)> =
        knobs.backends.iter().map(|&b| (b, Vec::new())).collect();
    let mut row_checks = Vec::new();
    for ramp in 0..ramps {
        for k in 0..all.len() {
            let index = (k + ramp) % all.len();
            let backend = all[index].0;
            let log = format!("throughput-{}-{ramp}.log", backend.name());
            let (server, database, _) = start_server(knobs, &fake, backend, dir.path(), &log).await;
            let client = Arc::new(RawClient::new(server.address));
            let (started, answered_ok) = (Arc::default(), Arc::<AtomicU64>::default());
            let call = counted(
                hook_call(client.clone(), knobs.users),
                Arc::clone(&started),
                Arc::clone(&answered_ok),
            );
            if warmup > 0.0 {
                open_loop::run(
                    call.clone(),
                    Plan {
                        rate: rates[0],
                        duration: seconds(warmup),
                        timeout: REQUEST_TIMEOUT,
                    },
                )
                .await;
            }
            let mut steps = Vec::new();
            let mut failed = 0;
            for &rate in &rates {
                let plan = Plan {
                    rate,
                    duration: seconds(step_secs),
                    timeout: REQUEST_TIMEOUT,
                };
                let label = format!("[{} ramp {}/{ramps}]", backend.name(), ramp + 1);
                let (result, cpu, repeats) =
                    undisturbed_run(call.clone(), plan, None, Some(&server), &label).await;
                let passed = result.failures() == 0 && result.latency_ms(0.99) < STEP_P99_LIMIT_MS;
                println!(
                    "{label} {} | {} | conns {} | {}{}",
                    result.line(),
                    cpu.text(),
                    client.connects(),
                    if passed { "pass" } else { "FAIL" },
                    if cpu.other > DISTURBED_CORES {
                        " (disturbed)"
                    } else {
                        ""
                    }
                );
                if knobs.timeline {
                    println!("    timeline: {}", result.timeline_text());
                }
                let hopeless = result.latency_ms(0.99) > 2000.0;
                steps.push(Step {
                    result,
                    cpu,
                    passed,
                    repeats,
                });
                if passed {
                    failed = 0;
                } else {
                    failed += 1;
                    if failed >= 2 || hopeless {
                        break;
                    }
                }
                // Let a backlog drain and the machine settle between steps.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let peak = server.peak_rss_kib().unwrap_or(0);
            println!(
                "[{} ramp {}/{ramps}] peak RSS {:.1} MiB",
                backend.name(),
                ramp + 1,
                peak as f64 / 1024.0
            );
            server.stop().await;
            // Every verified answer must have left its attempt row (the server writes what
            // is left at shutdown, but answers only follow committed rows).
            let rows = database.attempt_rows().await;
            let (started, ok) = (
                started.load(Ordering::Relaxed),
                answered_ok.load(Ordering::Relaxed),
            );
            let lost = i64::try_from(ok)
                .unwrap_or(i64::MAX)
                .saturating_sub(rows)
                .max(0);
            let line = format!(
                "{} ramp {}: {rows} attempt rows for {ok} verified answers ({started} calls sent): {}",
                backend.name(),
                ramp + 1,
                if lost == 0 {
                    "none lost".to_owned()
                } else {
                    format!("**{lost} LOST**")
                }
            );
            println!("[{line}]");
            row_checks.push(line);
            database.drop_now().await;
            all[index].1.push(steps);
        }
    }

    let _ = writeln!(
        md,
        "### Throughput (instant fake; steps of {step_secs} s; a step passes with no error and p99 < {STEP_P99_LIMIT_MS} ms)\n"
    );
    let _ = writeln!(
        md,
        "| backend | ramp | highest passing rate (all lower steps passed) | first failing step |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | --- |");
    let mut summary = Vec::new();
    for (backend, backend_ramps) in &all {
        let mut highest = Vec::new();
        for (ramp, steps) in backend_ramps.iter().enumerate() {
            let best = steps
                .iter()
                .take_while(|step| step.passed)
                .last()
                .map_or(0.0, |step| step.result.plan.rate);
            let first_fail = steps.iter().find(|step| !step.passed).map_or_else(
                || "none".to_owned(),
                |step| {
                    format!(
                        "{:.0}/s: p99 {:.1} ms, errors {}",
                        step.result.plan.rate,
                        step.result.latency_ms(0.99),
                        step.result.error_summary()
                    )
                },
            );
            highest.push(best);
            let _ = writeln!(
                md,
                "| {} | {} | {:.0}/s | {first_fail} |",
                backend.name(),
                ramp + 1,
                best
            );
        }
        summary.push((*backend, highest));
    }
    let _ = writeln!(md);
    // Per backend and rate: medians over the ramps that reached the step.
    let _ = writeln!(
        md,
        "| backend | target | ramps | passed | achieved | errors | p50 | p90 | p99 (min–max) | max | CPU: server | Postgres | generator + fake | other | repeated / still disturbed |"
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (backend, backend_ramps) in &all {
        for &rate in &rates {
            let steps: Vec<&Step> = backend_ramps
                .iter()
                .filter_map(|steps| steps.iter().find(|s| s.result.plan.rate == rate))
                .collect();
            if steps.is_empty() {
                continue;
            }
            let of = |f: &dyn Fn(&Step) -> f64| steps.iter().map(|s| f(s)).collect::<Vec<f64>>();
            let _ = writeln!(
                md,
                "| {} | {rate:.0}/s | {} | {} | {:.0}/s | {} | {:.2} ms | {:.2} ms | {:.2} ms ({}) | {:.1} ms | {:.2} | {:.2} | {:.2} | {:.2} | {} / {} |",
                backend.name(),
                steps.len(),
                steps.iter().filter(|s| s.passed).count(),
                median(&of(&|s| s.result.achieved_rate())),
                steps.iter().map(|s| s.result.failures()).sum::<u64>(),
                median(&of(&|s| s.result.latency_ms(0.5))),
                median(&of(&|s| s.result.latency_ms(0.9))),
                median(&of(&|s| s.result.latency_ms(0.99))),
                spread(&of(&|s| s.result.latency_ms(0.99)), 1),
                median(&of(&|s| s.result.max_ms())),
                median(&of(&|s| s.cpu.server)),
                median(&of(&|s| s.cpu.postgres)),
                median(&of(&|s| s.cpu.generator + s.cpu.fake)),
                median(&of(&|s| s.cpu.other)),
                steps.iter().map(|s| s.repeats).sum::<usize>(),
                steps
                    .iter()
                    .filter(|s| s.cpu.other > DISTURBED_CORES)
                    .count(),
            );
        }
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Attempt rows, counted in the database after each ramp:\n"
    );
    for line in &row_checks {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md);
    for (backend, highest) in &summary {
        let value = median(highest);
        let _ = writeln!(
            md,
            "- {}: highest passing rate, median of {} ramps: {:.0}/s (ramps: {}) — goal ≥ {THROUGHPUT_GOAL:.0}/s {}",
            backend.name(),
            highest.len(),
            value,
            highest
                .iter()
                .map(|rate| format!("{rate:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            met(value >= THROUGHPUT_GOAL)
        );
    }
    let _ = writeln!(md);
}

// --- scenario c: start-up -----------------------------------------------------------------

async fn startup_scenario(knobs: &Knobs, md: &mut String) {
    let starts = env_number("HOOK_LOAD_STARTS", 10.0) as usize;
    println!("== startup: {starts} starts per backend, fresh and migrated database");
    let fake = FastCognito::start(FastCognitoOptions {
        users: 10,
        delay: Duration::ZERO,
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    // times[backend] = (fresh, migrated)
    let mut times: Vec<(Backend, Vec<Startup>, Vec<Startup>)> = knobs
        .backends
        .iter()
        .map(|&b| (b, Vec::new(), Vec::new()))
        .collect();
    for i in 0..starts {
        for entry in times.iter_mut() {
            let backend = entry.0;
            let database = BenchDatabase::create(backend, dir.path()).await;
            let env = server_env(knobs, &fake, &database);
            for fresh in [true, false] {
                let log = format!("startup-{}-{i}-{fresh}.log", backend.name());
                let mut server = BridgeProcess::spawn(&knobs.binary, dir.path(), &log, &env);
                let startup = server
                    .wait_ready(READY_TIMEOUT)
                    .await
                    .unwrap_or_else(|problem| panic!("{problem}"));
                server.stop().await;
                println!(
                    "[{}/{starts}] {:<8} {:<18} first answer {:>6.1} ms, ready {:>6.1} ms",
                    i + 1,
                    backend.name(),
                    if fresh {
                        "fresh database"
                    } else {
                        "migrated database"
                    },
                    startup.first_answer.as_secs_f64() * 1e3,
                    startup.ready.as_secs_f64() * 1e3,
                );
                if fresh {
                    entry.1.push(startup);
                } else {
                    entry.2.push(startup);
                }
            }
            database.drop_now().await;
        }
    }
    let _ = writeln!(
        md,
        "### Start-up: spawn of `cognito-bridge serve` → first `200` from `GET /health/ready` ({starts} starts each)\n"
    );
    let _ = writeln!(
        md,
        "| backend | database | ready: median | min–max | first HTTP answer: median |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: |");
    for (backend, fresh, migrated) in &times {
        for (label, runs) in [
            ("fresh (migrations applied)", fresh),
            ("already migrated", migrated),
        ] {
            let ready: Vec<f64> = runs.iter().map(|s| s.ready.as_secs_f64() * 1e3).collect();
            let first: Vec<f64> = runs
                .iter()
                .map(|s| s.first_answer.as_secs_f64() * 1e3)
                .collect();
            let _ = writeln!(
                md,
                "| {} | {label} | {:.1} ms | {} ms | {:.1} ms |",
                backend.name(),
                median(&ready),
                spread(&ready, 1),
                median(&first),
            );
        }
    }
    let _ = writeln!(md);
}

// --- main -----------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; anything else not starting with `-` names a scenario.
    let mut scenarios: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    if scenarios.is_empty() {
        scenarios = env_list("HOOK_LOAD_SCENARIOS", "latency,throughput,startup");
    }
    for scenario in &scenarios {
        assert!(
            ["latency", "throughput", "startup", "a", "b", "c"].contains(&scenario.as_str()),
            "unknown scenario {scenario:?}: latency (a), throughput (b), startup (c)"
        );
    }
    let wants = |name: &str, short: &str| scenarios.iter().any(|s| s == name || s == short);
    let knobs = Knobs::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load-gen")
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let mut md = String::new();
    runtime.block_on(async {
        if wants("latency", "a") {
            latency_scenario(&knobs, &mut md).await;
        }
        if wants("throughput", "b") {
            throughput_scenario(&knobs, &mut md).await;
        }
        if wants("startup", "c") {
            startup_scenario(&knobs, &mut md).await;
        }
    });
    let header = format!(
        "Machine: {}. Server: `{}` `serve` (child process, `log.level` = {}, {} users in the fake{}{}). Generator and fake: this bench process. Took {:.0} s.\n\n",
        machine(),
        knobs.binary.display(),
        knobs.log_level,
        knobs.users,
        if knobs.seed {
            " and imported into the store (`pending`)"
        } else {
            ", empty store"
        },
        if knobs.unlimited {
            ", `cognito.max_rps` = `cognito.burst` = 1000000, `cognito.max_concurrency` = 1024"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    let report = format!("{header}{md}");
    println!("\nMarkdown:\n\n{report}");
    if let Ok(path) = std::env::var("HOOK_LOAD_OUT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("write {path}: {e}"));
        println!("(written to {path})");
    }
}
