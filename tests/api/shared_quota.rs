//! `cognito.max_rps` and `cognito.burst` for the deployment (`cognito.quota_scope =
//! "deployment"`, the default): every `serve` on one Postgres database takes its
//! `AdminInitiateAuth` tokens from one GCRA state in the database (migration
//! `..._cognito_rate`), so three replicas together stay within one budget. With
//! `"process"`, each replica has the whole budget, and the same load goes over it: the
//! control that shows the check can fail.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cognito_bridge::config::{QuotaScope, QuotaSettings};
use cognito_bridge::hook::CognitoGate;
use cognito_bridge::metrics::Metrics;
use cognito_bridge::store::{Claim, GuardClaim, RateCell, Store, StoreError};
use futures_util::future::join_all;
use testkit::load::bridge_process::BridgeProcess;
use testkit::load::fast_cognito::{FastCognito, FastCognitoOptions};
use testkit::load::hook_client;
use testkit::load::open_loop::Outcome;
use testkit::load::raw_http::RawClient;

use crate::helpers::{BINARY, Backend, TestDatabase};

const MAX_RPS: usize = 10;
const BURST: usize = 5;
const REPLICAS: usize = 3;
/// Hook calls sent to each replica at once, each for a user of its own (all with the right
/// password, so the brute-force guard stays out of it).
const CALLS_PER_REPLICA: usize = 30;
/// The hook's deadline: calls wait for a token this long at most, then answer 424.
const DEADLINE_MS: u64 = 3000;
/// GCRA admits at most `BURST + MAX_RPS` calls in any second of the database's clock; the
/// fake stamps arrivals, and on a loaded two-core machine a call can reach it a few hundred
/// ms after its token was taken, pulling later calls into one window. A quarter of a
/// second's calls is allowed for that; three replicas with a budget each send about
/// `3 × (BURST + MAX_RPS)` = 45 in their first second.
const JITTER_CALLS: usize = MAX_RPS / 4;

fn rate(per_second: u32, burst: u32) -> RateCell {
    RateCell::new(
        NonZeroU32::new(per_second).unwrap(),
        NonZeroU32::new(burst).unwrap(),
    )
}

/// The database's GCRA: `burst` tokens at once, then one per emission interval; a refusal
/// says how long until the next token, and taking it then succeeds.
#[tokio::test]
async fn the_database_rate_lets_a_burst_through_then_paces() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(store.shares_cognito_rate());
    let rate = rate(10, 3);
    for token in 0..3 {
        assert_eq!(
            store.take_cognito_token(rate).await.unwrap(),
            None,
            "token {token} of the burst"
        );
    }
    let wait = store
        .take_cognito_token(rate)
        .await
        .unwrap()
        .expect("the burst is spent: a wait");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(100),
        "one emission interval (100 ms) at most: {wait:?}"
    );
    tokio::time::sleep(wait).await;
    assert_eq!(store.take_cognito_token(rate).await.unwrap(), None);
    // The state is the database's: a second connection pool (another replica) sees the
    // tokens spent.
    let other = cognito_bridge::store::connect(&database.url.clone().into(), 1)
        .await
        .unwrap();
    assert!(other.take_cognito_token(rate).await.unwrap().is_some());
}

fn claim<'a>(key: &'a str, attempt: &str, rate: Option<RateCell>) -> GuardClaim<'a> {
    GuardClaim {
        at: chrono::Utc::now(),
        cognito_username: key,
        guard_key: key,
        client_ip: None,
        identifier_limit: 1,
        ip_limit: 0,
        window: Duration::from_secs(900),
        request_id: None,
        trigger_id: None,
        identity_id: None,
        attempt_key: uuid::Uuid::parse_str(attempt).unwrap(),
        cognito_rate: rate,
    }
}

/// The guard's claim takes the first Cognito call's token in the same round trip: a granted
/// claim takes one (or says how long until one is due), a refused claim takes none, and a
/// claim that does not ask takes none.
#[tokio::test]
async fn a_granted_claim_takes_a_token_in_the_same_round_trip_and_a_refused_one_does_not() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    // One call a minute, two at once: the two tokens of the burst, then a wait.
    let rate = RateCell {
        emission: Duration::from_secs(60),
        tolerance: Duration::from_secs(60),
    };
    let granted = |claim| match claim {
        Claim::Granted { cognito_token } => cognito_token,
        refused => panic!("refused: {refused:?}"),
    };
    let first = store
        .claim(&claim(
            "ann",
            "00000000-0000-4000-8000-000000000001",
            Some(rate),
        ))
        .await
        .unwrap();
    assert_eq!(granted(first), Some(None), "the first token of the burst");
    // `ann` has one failure in flight now: her next claim is refused (limit 1) and takes
    // no token, so the second token of the burst is still there for `bob`.
    let refused = store
        .claim(&claim(
            "ann",
            "00000000-0000-4000-8000-000000000002",
            Some(rate),
        ))
        .await
        .unwrap();
    assert!(matches!(refused, Claim::Refused(_)), "{refused:?}");
    let second = store
        .claim(&claim(
            "bob",
            "00000000-0000-4000-8000-000000000003",
            Some(rate),
        ))
        .await
        .unwrap();
    assert_eq!(granted(second), Some(None), "the second token of the burst");
    let third = store
        .claim(&claim(
            "cy",
            "00000000-0000-4000-8000-000000000004",
            Some(rate),
        ))
        .await
        .unwrap();
    let wait = granted(third).expect("asked").expect("the burst is spent");
    assert!(wait > Duration::from_secs(50), "{wait:?}");
    // Without a rate the claim reads none.
    let without = store
        .claim(&claim("dee", "00000000-0000-4000-8000-000000000005", None))
        .await
        .unwrap();
    assert_eq!(granted(without), None);
}

/// SQLite belongs to one process: it holds no shared rate, and says so.
#[tokio::test]
async fn sqlite_holds_no_shared_rate() {
    let database = TestDatabase::new(Backend::Sqlite).await;
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 1)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(!store.shares_cognito_rate());
    assert!(matches!(
        store.take_cognito_token(rate(10, 3)).await,
        Err(StoreError::NotShared)
    ));
    let gate = gate(QuotaScope::Deployment, 2, Some(store));
    assert!(!gate.shares_rate());
}

fn gate(scope: QuotaScope, burst: u32, store: Option<Arc<dyn Store>>) -> CognitoGate {
    CognitoGate::new(
        QuotaSettings {
            max_rps: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
            scope,
            max_concurrency: 16,
            circuit_failures: 5,
            circuit_open: Duration::from_secs(5),
        },
        Arc::new(Metrics::new()),
        store,
    )
}

/// When the shared rate cannot be read (here: its function is gone), calls are paced by the
/// process's own limiter rather than refused or let through unpaced.
#[tokio::test]
async fn an_unreadable_shared_rate_falls_back_to_the_process_limiter() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let gate = gate(QuotaScope::Deployment, 2, Some(store));
    assert!(gate.shares_rate());
    let raw = sqlx::PgPool::connect(&database.url).await.unwrap();
    sqlx::query("DROP FUNCTION take_cognito_token(BIGINT, BIGINT)")
        .execute(&raw)
        .await
        .unwrap();
    let soon = || tokio::time::Instant::now() + Duration::from_millis(300);
    // The process limiter: a burst of 2, then one a second, which a 300 ms wait cannot reach.
    for call in 0..2 {
        let pass = gate.admit(soon()).await;
        assert!(pass.is_ok(), "call {call} of the burst");
        gate.finish(pass.ok().unwrap(), false);
    }
    assert!(
        gate.admit(soon()).await.is_err(),
        "the third waits past 300 ms"
    );
}

/// What Cognito saw of one load: arrivals, answers by status, and how long the load took.
struct Seen {
    arrivals: Vec<Instant>,
    answers: BTreeMap<String, usize>,
    elapsed: Duration,
}

impl Seen {
    /// The most arrivals within any one second.
    fn worst_second(&self) -> usize {
        let arrivals = &self.arrivals;
        (0..arrivals.len())
            .map(|i| {
                arrivals[i..]
                    .iter()
                    .take_while(|&&at| at.duration_since(arrivals[i]) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// Three `serve` processes on one Postgres database, `CALLS_PER_REPLICA` hook calls to each
/// at once.
async fn three_replicas(scope: &str) -> Seen {
    let users = REPLICAS * CALLS_PER_REPLICA;
    let fake = FastCognito::start(FastCognitoOptions {
        users,
        delay: Duration::ZERO,
    });
    let database = TestDatabase::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let overrides = [
        ("COGNITO_BRIDGE__COGNITO__MAX_RPS", MAX_RPS.to_string()),
        ("COGNITO_BRIDGE__COGNITO__BURST", BURST.to_string()),
        ("COGNITO_BRIDGE__COGNITO__QUOTA_SCOPE", scope.to_owned()),
        (
            "COGNITO_BRIDGE__HOOKS__DEADLINE_MS",
            DEADLINE_MS.to_string(),
        ),
    ];
    let env: Vec<(String, String)> = hook_client::serve_env(&fake.endpoint, &database.url, "warn")
        .into_iter()
        .filter(|(key, _)| !overrides.iter().any(|(own, _)| own == key))
        .chain(
            overrides
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone())),
        )
        .collect();
    let mut replicas = Vec::new();
    for replica in 0..REPLICAS {
        let mut server = BridgeProcess::spawn(
            Path::new(BINARY),
            dir.path(),
            &format!("serve-{replica}.log"),
            &env,
        );
        server
            .wait_ready(Duration::from_secs(60))
            .await
            .unwrap_or_else(|problem| panic!("{problem}"));
        replicas.push(server);
    }
    let calls: Vec<_> = replicas
        .iter()
        .map(|server| hook_client::hook_call(Arc::new(RawClient::new(server.address)), users))
        .collect();
    let started = Instant::now();
    let outcomes = tokio::time::timeout(
        Duration::from_secs(60),
        join_all((0..users).map(|i| calls[i % REPLICAS](i as u64))),
    )
    .await
    .expect("every hook call is answered within 60 s");
    let elapsed = started.elapsed();
    let mut answers = BTreeMap::new();
    for outcome in outcomes {
        let key = match outcome {
            Outcome::Ok => "200 password_match".to_owned(),
            Outcome::Failed(why) => why,
        };
        *answers.entry(key).or_insert(0) += 1;
    }
    for server in replicas {
        server.stop().await;
    }
    Seen {
        arrivals: fake.authenticated_arrivals(),
        answers,
        elapsed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_cognito_rate() {
    let shared = three_replicas("deployment").await;
    let worst = shared.worst_second();
    let calls = shared.arrivals.len();
    println!(
        "deployment: {calls} Cognito calls in {:?}, at most {worst} in one second; answers {:?}",
        shared.elapsed, shared.answers
    );
    let matched = shared
        .answers
        .get("200 password_match")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        matched, calls,
        "each admitted call is one AdminInitiateAuth that authenticated"
    );
    assert_eq!(
        matched + shared.answers.get("status 424").copied().unwrap_or(0),
        REPLICAS * CALLS_PER_REPLICA,
        "the others waited until their deadline and got 424: {:?}",
        shared.answers
    );
    assert!(
        worst <= MAX_RPS + BURST + JITTER_CALLS,
        "{worst} Cognito calls in one second from three replicas sharing {MAX_RPS}/s + {BURST}"
    );
    let budget = BURST as f64 + MAX_RPS as f64 * shared.elapsed.as_secs_f64();
    assert!(
        calls as f64 <= budget + 1.0,
        "{calls} calls in {:?}",
        shared.elapsed
    );
    // Sharing does not starve: within the deadline the deployment gets its burst and at
    // least a second of pacing.
    assert!(
        calls >= BURST + MAX_RPS,
        "only {calls} calls let through in {DEADLINE_MS} ms"
    );

    let separate = three_replicas("process").await;
    let worst = separate.worst_second();
    println!(
        "process: {} Cognito calls in {:?}, at most {worst} in one second",
        separate.arrivals.len(),
        separate.elapsed
    );
    assert!(
        worst > MAX_RPS + BURST + JITTER_CALLS,
        "with a budget per process, three replicas go over one budget: {worst} in one second"
    );
}
