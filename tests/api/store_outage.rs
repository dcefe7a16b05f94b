//! Postgres trouble during a run, through a loopback TCP proxy the test controls: live
//! connections killed, and the server gone for a while (connections refused) then back. The
//! hook keeps answering with Cognito's verdict, in time and never 5xx, and attempt rows are
//! written again once the database is reachable. The machine's PostgreSQL is never touched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use url::Url;

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::helpers::{
    API_KEY, AppOptions, Backend, TestApp, TestDatabase, import_users, spawn_app,
};

const RIGHT: &str = "Stored-Horse-3";
const WRONG: &str = "not-the-password";
const USERS: [&str; 3] = ["store-amy", "store-bo", "store-cy"];
const DEADLINE_MS: u64 = 2000;
/// The loopback HTTP round trip on top of the hook's own deadline, measured at the client,
/// plus scheduling delays: 500 ms rather than 100 ms because these tests share two cores with
/// Kratos, Hydra, Postgres and compilers (and run one at a time, `.config/nextest.toml`). A
/// hook that waited for the store without bound would still overrun it: the outage lasts 2 s.
const SLACK: Duration = Duration::from_millis(500);

/// A TCP proxy on loopback in front of Postgres that can cut every live connection and
/// close its listening socket (so new connections are refused, as during a restart).
struct PgProxy {
    address: SocketAddr,
    listening: watch::Sender<bool>,
    is_listening: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    accepted: Arc<AtomicUsize>,
}

impl PgProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let first = bind(SocketAddr::from(([127, 0, 0, 1], 0)));
        let address = first.local_addr().unwrap();
        let (listening, mut listening_rx) = watch::channel(true);
        let (cut, _) = watch::channel(0u64);
        let is_listening = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let proxy = Self {
            address,
            listening,
            is_listening: is_listening.clone(),
            cut: cut.clone(),
            accepted: accepted.clone(),
        };
        tokio::spawn(async move {
            let mut listener = Some(first);
            loop {
                let Some(active) = &listener else {
                    // Refusing: wait to be told to listen again, on the same port.
                    if listening_rx.changed().await.is_err() {
                        return;
                    }
                    if *listening_rx.borrow_and_update() {
                        listener = Some(bind(address));
                        is_listening.store(true, Ordering::SeqCst);
                    }
                    continue;
                };
                tokio::select! {
                    connection = active.accept() => {
                        let Ok((client, _)) = connection else { continue };
                        accepted.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(forward(client, upstream, cut.subscribe()));
                    }
                    changed = listening_rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if !*listening_rx.borrow_and_update() {
                            listener = None;
                            is_listening.store(false, Ordering::SeqCst);
                        }
                    }
                }
            }
        });
        proxy
    }

    /// Close every connection now open; new ones are still forwarded.
    fn cut_all(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Close the listening socket: new connections are refused until [`PgProxy::listen`].
    async fn refuse(&self) {
        self.listening.send_replace(false);
        self.wait_listening(false).await;
    }

    /// Listen again on the same port.
    async fn listen(&self) {
        self.listening.send_replace(true);
        self.wait_listening(true).await;
    }

    async fn wait_listening(&self, wanted: bool) {
        let give_up = Instant::now() + Duration::from_secs(5);
        while self.is_listening.load(Ordering::SeqCst) != wanted {
            assert!(Instant::now() < give_up, "the proxy did not switch");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A listener with `SO_REUSEADDR`, so the port can be taken again after a refusal.
fn bind(address: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind(address)
        .unwrap_or_else(|e| panic!("bind {address}: {e}"));
    socket.listen(128).unwrap()
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {}
    }
    // Dropping both ends closes them, as a Postgres restart or a killed backend would.
}

/// The database URL with its host and port replaced by the proxy's.
fn through(url: &str, proxy: SocketAddr) -> String {
    let mut url = Url::parse(url).unwrap();
    url.set_host(Some(&proxy.ip().to_string())).unwrap();
    url.set_port(Some(proxy.port())).unwrap();
    url.to_string()
}

fn upstream_of(url: &str) -> SocketAddr {
    let url = Url::parse(url).unwrap();
    let host = url.host_str().unwrap();
    let port = url.port().unwrap_or(5432);
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}")
        .parse()
        .expect("a loopback Postgres")
}

struct Setup {
    app: TestApp,
    fake: CognitoFake,
    proxy: PgProxy,
    /// The database the app uses through the proxy; checked directly, around it.
    database: TestDatabase,
}

async fn setup() -> Setup {
    setup_with(|options| {
        options
            .with("COGNITO_BRIDGE__GUARD__IDENTIFIER_FAILURES", 1_000_000)
            .with("COGNITO_BRIDGE__GUARD__IP_FAILURES", 1_000_000)
    })
    .await
}

async fn setup_with(configure: impl FnOnce(AppOptions) -> AppOptions) -> Setup {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    for user in USERS {
        fake.user(user, RIGHT, Script::Authenticate);
    }
    let database = TestDatabase::new(Backend::Postgres).await;
    let proxy = PgProxy::start(upstream_of(&database.url)).await;
    let mut options = AppOptions::new(
        Backend::Postgres,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    );
    options.deadline_ms = DEADLINE_MS;
    let options = configure(options.with(
        "COGNITO_BRIDGE__DATABASE__URL",
        through(&database.url, proxy.address),
    ));
    let app = spawn_app(options).await;
    Setup {
        app,
        fake,
        proxy,
        database,
    }
}

/// One hook call with a request id of our own, as the client saw it.
#[derive(Debug)]
struct Observed {
    request_id: String,
    right_password: bool,
    status: StatusCode,
    body: Value,
    elapsed: Duration,
}

async fn login(app: &TestApp, user: &str, right_password: bool) -> Observed {
    let request_id = format!("store-outage-{:016x}", rand::random::<u64>());
    let started = Instant::now();
    let response = app
        .client
        .post(app.hook_url())
        .header("Authorization", format!("Bearer {API_KEY}"))
        .header("Content-Type", "application/json")
        .header("Ory-Webhook-Request-ID", &request_id)
        .json(&json!({
            "identifier": user,
            "password": if right_password { RIGHT } else { WRONG },
        }))
        .send()
        .await
        .expect("the hook answers");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Observed {
        request_id,
        right_password,
        status,
        body,
        elapsed: started.elapsed(),
    }
}

async fn batch(app: &TestApp, count: usize, concurrency: usize) -> Vec<Observed> {
    stream::iter(0..count)
        .map(|i| login(app, USERS[i % USERS.len()], i % 2 == 0))
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// Cognito's verdict, in time, never 5xx.
fn assert_decided(observed: &[Observed]) {
    if let Some(slowest) = observed.iter().map(|seen| seen.elapsed).max() {
        eprintln!("{} answers, the slowest after {slowest:?}", observed.len());
    }
    for seen in observed {
        assert!(!seen.status.is_server_error(), "5xx: {seen:?}");
        assert!(
            seen.elapsed <= Duration::from_millis(DEADLINE_MS) + SLACK,
            "answered after {:?}: {seen:?}",
            seen.elapsed
        );
        let expected = if seen.right_password {
            (StatusCode::OK, json!({"status": "password_match"}))
        } else {
            (
                StatusCode::FORBIDDEN,
                json!({"status": "password_no_match"}),
            )
        };
        assert_eq!((seen.status, seen.body.clone()), expected, "{seen:?}");
    }
}

/// How many attempt rows carry this request id, read directly from Postgres.
async fn rows_for(database: &TestDatabase, request_id: &str) -> i64 {
    let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM attempts WHERE request_id = $1")
        .bind(request_id)
        .fetch_one(&mut connection)
        .await
        .unwrap()
}

/// Each call's attempt row is there (exactly once) within a moment of its answer: after a
/// store failure, answers stop waiting for their row, which is written in the background.
async fn assert_written(database: &TestDatabase, observed: &[Observed]) {
    for seen in observed {
        let give_up = Instant::now() + Duration::from_secs(2);
        let rows = loop {
            let rows = rows_for(database, &seen.request_id).await;
            if rows > 0 || Instant::now() > give_up {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(rows, 1, "no attempt row for {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_never_change_a_verdict_and_rows_are_written_again() {
    let Setup {
        app,
        fake,
        proxy,
        database,
    } = setup().await;
    let warm = batch(&app, 6, 6).await;
    assert_decided(&warm);
    assert_written(&database, &warm).await;
    let accepted_before = proxy.accepted();

    // Cut every connection repeatedly while calls are in flight.
    let calls = batch(&app, 24, 8);
    let cutter = async {
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            proxy.cut_all();
        }
    };
    let (observed, ()) = tokio::join!(calls, cutter);
    assert_decided(&observed);
    proxy.cut_all();
    eprintln!(
        "connections through the proxy: {accepted_before} before the cuts, {} after",
        proxy.accepted()
    );

    // The next calls reconnect and are written; the pool went through the proxy again.
    let after = batch(&app, 4, 1).await;
    assert_decided(&after);
    assert_written(&database, &after).await;
    assert!(proxy.accepted() > accepted_before, "no reconnection");
    assert_eq!(
        fake.total_calls(),
        warm.len() + observed.len() + after.len()
    );
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Connections that sat idle (here 1.5 s, past the pool's 1 s) are pinged before use, so
/// connections the server dropped meanwhile (a restart, a proxy's idle timeout) are replaced
/// without a single failed query; under load, connections in use are not pinged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_the_server_dropped_are_replaced_without_a_failed_query() {
    let Setup {
        app,
        fake: _fake,
        proxy,
        database,
    } = setup().await;
    let warm = batch(&app, 6, 6).await;
    assert_decided(&warm);
    assert_written(&database, &warm).await;
    let accepted_before = proxy.accepted();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut_all();

    let after = batch(&app, 6, 3).await;
    assert_decided(&after);
    assert_written(&database, &after).await;
    assert!(proxy.accepted() > accepted_before, "no reconnection");
    assert_eq!(
        store_errors(&app).await,
        0,
        "a query failed on a dropped connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_a_while_then_back() {
    let Setup {
        app,
        fake,
        proxy,
        database,
    } = setup().await;
    let warm = batch(&app, 3, 3).await;
    assert_decided(&warm);
    assert_written(&database, &warm).await;
    assert_eq!(
        store_errors(&app).await,
        0,
        "no store error before the outage"
    );

    // Down, as in a restart: connections closed, new ones refused, for about two seconds.
    let down_at = Instant::now();
    proxy.refuse().await;
    proxy.cut_all();
    let calls = async {
        let mut observed = batch(&app, 8, 8).await;
        // The bridge has seen the store fail: answers no longer wait for their row.
        let next = batch(&app, 1, 1).await;
        assert!(
            next[0].elapsed < Duration::from_millis(DEADLINE_MS / 2),
            "a call once the outage is known took {:?}",
            next[0].elapsed
        );
        observed.extend(next);
        observed
    };
    let (observed, (ready_status, ready_body)) = tokio::join!(calls, app.get("/health/ready"));
    // README "Protection": with the store down, attempts still go through to Cognito and
    // get its verdict, and `store_errors_total` rises.
    assert_decided(&observed);
    assert!(
        store_errors(&app).await > 0,
        "store_errors_total did not rise during the outage"
    );
    assert_eq!(
        ready_status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{ready_body}"
    );
    let (status, _) = app.get("/health/alive").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        down_at.elapsed() < Duration::from_secs(6),
        "{:?}",
        down_at.elapsed()
    );
    tokio::time::sleep_until((down_at + Duration::from_secs(2)).into()).await;

    proxy.listen().await;
    let after = batch(&app, 3, 1).await;
    assert_decided(&after);
    assert_written(&database, &after).await;
    assert_eq!(
        fake.total_calls(),
        warm.len() + observed.len() + after.len()
    );
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `cognito_bridge_store_errors_total`, summed over its `operation` labels.
async fn store_errors(app: &TestApp) -> u64 {
    let (_, metrics) = app.get_text("/metrics").await;
    metrics
        .lines()
        .filter(|line| line.starts_with("cognito_bridge_store_errors_total{"))
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or_default();
            value.parse::<u64>().expect("a counter value")
        })
        .sum()
}

/// The brute-force guard holds while the database is down: the in-process windows refuse
/// past the limit (today's default, 5 failures), so an outage does not open Cognito to
/// guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_holds_while_the_store_is_down() {
    let Setup {
        app, fake, proxy, ..
    } = setup_with(|options| options).await;
    proxy.refuse().await;
    proxy.cut_all();

    for _ in 0..10 {
        let seen = login(&app, USERS[0], false).await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN, "{seen:?}");
    }
    assert_eq!(fake.calls(USERS[0]), 5, "guesses that reached Cognito");
    let seen = login(&app, USERS[0], true).await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN, "{seen:?}");
    assert_eq!(fake.calls(USERS[0]), 5);
    // Other users are not affected.
    let seen = login(&app, USERS[1], true).await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
}

/// A verified login while the database is down is not lost: its row waits (counted in
/// /metrics) and is written once the database is back, on the user's real row: the lookup
/// is made again at write time, so an e-mail typed at login never becomes a row of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_during_an_outage_lands_on_the_users_row_when_the_store_is_back() {
    let Setup {
        app,
        fake,
        proxy,
        database,
    } = setup_with(|options| options).await;
    // An imported user whose Cognito username is not what they type; Cognito knows the
    // e-mail as an alias (the fake: as a name).
    fake.user("amy@example.com", RIGHT, Script::Authenticate);
    import_users(
        app.store.as_ref(),
        &[(
            "8c1e-amy",
            Some("amy@example.com"),
            "sub-amy",
            "identity-amy",
        )],
    )
    .await;

    proxy.refuse().await;
    proxy.cut_all();
    let seen = login(&app, "amy@example.com", true).await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = app.get_text("/metrics").await;
        if metrics.contains("cognito_bridge_unwritten_attempts 1") {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the row is not waiting:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Longer than the old code's retries of a row.
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.listen().await;

    let give_up = Instant::now() + Duration::from_secs(20);
    let state: String = loop {
        let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM users WHERE cognito_username = '8c1e-amy'")
                .fetch_optional(&mut connection)
                .await
                .unwrap();
        if state.as_deref() == Some("migrated") || Instant::now() > give_up {
            break state.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state, "migrated");
    assert_eq!(rows_for(&database, &seen.request_id).await, 1);
    let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let users: Vec<String> = sqlx::query_scalar("SELECT cognito_username FROM users")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert_eq!(users, ["8c1e-amy"], "no row under the typed e-mail");
    let (_, metrics) = app.get_text("/metrics").await;
    assert!(
        metrics.contains("cognito_bridge_unwritten_attempts 0"),
        "{metrics}"
    );
}

/// `serve` stopping while a row waits for the database writes it before it exits: a
/// verified login during an outage, the database back, SIGTERM at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_waiting_for_the_database_are_written_at_shutdown() {
    use crate::helpers::{serve_against_auth_fake, wait_for_exit};

    let fake = CognitoFake::start(FakeConfig::default()).await;
    fake.user(USERS[0], RIGHT, Script::Authenticate);
    let database = TestDatabase::new(Backend::Postgres).await;
    let proxy = PgProxy::start(upstream_of(&database.url)).await;
    let dir = tempfile::tempdir().unwrap();
    let database_url = through(&database.url, proxy.address);
    let (mut child, port) = serve_against_auth_fake(
        &dir,
        &fake.endpoint,
        &[
            ("COGNITO_BRIDGE__DATABASE__URL", database_url.as_str()),
            ("COGNITO_BRIDGE__HOOKS__DEADLINE_MS", "2000"),
        ],
    );
    // The user was imported (serve has made the tables).
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 2)
        .await
        .unwrap();
    import_users(
        store.as_ref(),
        &[(USERS[0], None, "sub-amy", "identity-amy")],
    )
    .await;

    proxy.refuse().await;
    proxy.cut_all();
    let request_id = format!("shutdown-{:016x}", rand::random::<u64>());
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/hooks/password-migration"))
        .bearer_auth(API_KEY)
        .header("Ory-Webhook-Request-ID", &request_id)
        .json(&json!({"identifier": USERS[0], "password": RIGHT}))
        .send()
        .await
        .expect("the hook answers");
    assert_eq!(response.status(), StatusCode::OK);
    // The row has failed its quick tries and waits in the queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rows_for(&database, &request_id).await, 0);

    proxy.listen().await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = wait_for_exit(&mut child.0, Duration::from_secs(15), "serve after SIGTERM").await;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(rows_for(&database, &request_id).await, 1);
    let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state FROM users WHERE cognito_username = $1")
        .bind(USERS[0])
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(state, "migrated");
}

/// A confirmation hook call while the database is down answers 503 `store_unavailable` in
/// bounded time (Kratos's client sends a 5xx again, and nothing is half-written); the same
/// call once the database is back is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_during_an_outage_is_503_then_recorded_when_sent_again() {
    use crate::confirm::{LOGIN_AFTER, post};
    const IDENTITY: &str = "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f";
    let Setup { app, proxy, .. } = setup().await;
    import_users(
        app.store.as_ref(),
        &[(USERS[0], None, "sub-outage", IDENTITY)],
    )
    .await;
    let body = serde_json::to_vec(&json!({"identity_id": IDENTITY})).unwrap();
    let key = format!("Bearer {API_KEY}");

    proxy.refuse().await;
    proxy.cut_all();
    let started = Instant::now();
    let (status, answer) = post(&app, LOGIN_AFTER, body.clone(), Some(&key)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"], "store_unavailable");
    // The confirmation's store budget (3 s), plus the slack of a shared machine.
    assert!(
        started.elapsed() < Duration::from_secs(3) + 4 * SLACK,
        "{:?}",
        started.elapsed()
    );
    assert!(store_errors(&app).await > 0);

    proxy.listen().await;
    let (status, answer) = post(&app, LOGIN_AFTER, body, Some(&key)).await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({"status": "migrated"}))
    );
    let user = app.store.user(USERS[0]).await.unwrap().unwrap();
    assert_eq!(user.migrated_via.as_deref(), Some("kratos"));
}
