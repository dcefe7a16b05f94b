//! Captures per second (`POST /capture/password`) at bcrypt cost 10 and 12, with Cognito and
//! Kratos answering at once, against the physical limit measured in the same run: cores ÷ the
//! time of one bcrypt hash at that cost on this machine. Hook calls run at the same time at a
//! steady rate; their answer times show whether hashing starves the hook.
//! Run with `scripts/bench-capture` (or `cargo bench --bench capture_throughput`).
//!
//! Knobs (environment): CAPTURE_BENCH_ROUNDS (default 3), CAPTURE_BENCH_COSTS (default
//! "10,12"), CAPTURE_BENCH_HOOK_RATE (hook calls per second beside the captures, default 20).
//! The server runs in this process on SQLite; the fakes are loopback actix servers here too.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use cognito_bridge::config::Settings;
use cognito_bridge::startup::Application;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const POOL: &str = "us-east-1_BenchPool";
const CLIENT: &str = "bench-client";
const API_KEY: &str = "bench-hook-key-5f0c3b9e8a1d47e2b6c94f0a7d3e12c85b9f6a0e4d";
const PASSWORD: &str = "Bench-Capture-Passw0rd";
/// The hook's deadline in this run (the default).
const HOOK_DEADLINE: Duration = Duration::from_secs(5);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// One actix server on a free loopback port answering every request with `handler`.
fn serve<F, R>(handler: F) -> String
where
    F: Fn(HttpRequest, web::Bytes) -> R + Clone + Send + 'static,
    R: std::future::Future<Output = HttpResponse> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || App::new().default_service(web::to(handler.clone())))
        .listen(listener)
        .unwrap()
        .workers(1)
        .disable_signals()
        .run();
    tokio::spawn(server);
    url
}

/// Cognito that accepts every password at once.
fn instant_cognito() -> String {
    serve(|_, _| async {
        HttpResponse::Ok()
            .content_type("application/x-amz-json-1.1")
            .json(json!({"AuthenticationResult": {
                "AccessToken": "a", "IdToken": "i", "RefreshToken": "r",
                "ExpiresIn": 3600, "TokenType": "Bearer"}}))
    })
}

/// Kratos v1.3.1's admin API as capture uses it, answering at once: the version, the lookup by
/// identifier, the identity, and the PUT (counted).
fn instant_kratos(puts: Arc<AtomicUsize>) -> String {
    serve(move |request: HttpRequest, _| {
        let puts = puts.clone();
        async move {
            let path = request.path().to_owned();
            let user = |text: &str| text.split('@').next().unwrap_or_default().to_owned();
            let identity = |user: &str| {
                json!({"id": format!("id-{user}"), "schema_id": "default", "state": "active",
                       "traits": {"email": format!("{user}@example.com")},
                       "metadata_public": null,
                       "metadata_admin": {"cognito": {"sub": format!("sub-{user}")}},
                       "credentials": {"password": {"config": {"use_password_migration_hook": true}}}})
            };
            match (request.method().as_str(), path.as_str()) {
                ("GET", "/admin/version") => HttpResponse::Ok().json(json!({"version": "v1.3.1"})),
                ("GET", "/admin/identities") => {
                    let query =
                        web::Query::<std::collections::HashMap<String, String>>::from_query(
                            request.query_string(),
                        )
                        .map(|query| query.into_inner())
                        .unwrap_or_default();
                    let identifier = query
                        .get("credentials_identifier")
                        .cloned()
                        .unwrap_or_default();
                    HttpResponse::Ok().json(json!([identity(&user(&identifier))]))
                }
                ("GET", path) => {
                    let id = path.trim_start_matches("/admin/identities/");
                    HttpResponse::Ok().json(identity(id.trim_start_matches("id-")))
                }
                ("PUT", _) => {
                    puts.fetch_add(1, Ordering::Relaxed);
                    HttpResponse::Ok().json(json!({}))
                }
                _ => HttpResponse::NotFound().finish(),
            }
        }
    })
}

struct Signer {
    key: EncodingKey,
    jwks: Value,
}

fn signer() -> Signer {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/jwt/signing-key-1.pem"
    ))
    .unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("bench".to_owned());
    Signer {
        key,
        jwks: json!({"keys": [jwk]}),
    }
}

fn token(signer: &Signer, user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".to_owned());
    let claims = json!({
        "sub": format!("sub-{user}"), "aud": CLIENT, "token_use": "id", "auth_time": now,
        "iss": format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}"),
        "cognito:username": user, "email": format!("{user}@example.com"),
        "exp": now + 3600, "iat": now,
    });
    jsonwebtoken::encode(&header, &claims, &signer.key).unwrap()
}

/// The median time of one bcrypt hash at `cost` on one core.
fn hash_time(cost: u32) -> Duration {
    let mut samples: Vec<Duration> = (0..9)
        .map(|_| {
            let started = Instant::now();
            bcrypt::hash(PASSWORD, cost).unwrap();
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * q).round() as usize]
}

struct Round {
    rate: f64,
    hook: Vec<Duration>,
    hook_failures: usize,
}

async fn round(
    cost: u32,
    captures: usize,
    hook_rate: u32,
    signer: &Signer,
    round_no: usize,
) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let cognito = instant_cognito();
    let puts = Arc::new(AtomicUsize::new(0));
    let kratos = instant_kratos(puts.clone());
    let jwks = signer.jwks.clone();
    let jwks_url = serve(move |_, _| {
        let jwks = jwks.clone();
        async move { HttpResponse::Ok().json(jwks) }
    });
    let environment = [
        ("COGNITO_BRIDGE__SERVER__LISTEN", "127.0.0.1:0".to_owned()),
        (
            "COGNITO_BRIDGE__DATABASE__URL",
            format!("sqlite://{}/bench.db", dir.path().display()),
        ),
        ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", POOL.to_owned()),
        ("COGNITO_BRIDGE__COGNITO__CLIENT_ID", CLIENT.to_owned()),
        ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", cognito),
        (
            "COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT",
            "true".to_owned(),
        ),
        // The quota guard is not what is measured here.
        ("COGNITO_BRIDGE__COGNITO__MAX_RPS", "10000".to_owned()),
        ("COGNITO_BRIDGE__COGNITO__BURST", "10000".to_owned()),
        (
            "COGNITO_BRIDGE__COGNITO__MAX_CONCURRENCY",
            "1000".to_owned(),
        ),
        ("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY.to_owned()),
        ("COGNITO_BRIDGE__CAPTURE__ENABLED", "true".to_owned()),
        ("COGNITO_BRIDGE__CAPTURE__APP_CLIENT_IDS", CLIENT.to_owned()),
        (
            "COGNITO_BRIDGE__CAPTURE__JWKS_URL",
            format!("{jwks_url}/jwks.json"),
        ),
        ("COGNITO_BRIDGE__CAPTURE__BCRYPT_COST", cost.to_string()),
        ("COGNITO_BRIDGE__KRATOS__ADMIN_URL", kratos),
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
    let base = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();

    // Tokens first: signing is the client's work, not the server's.
    let tokens: Vec<String> = (0..captures + 4)
        .map(|i| token(signer, &format!("r{round_no}c{cost}u{i}")))
        .collect();
    let capture = {
        let client = client.clone();
        let url = format!("{base}/capture/password");
        move |token: String| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let response = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"password": PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            }
        }
    };
    // Warm up: the key fetch, connections, the Kratos line.
    for token in &tokens[captures..] {
        capture(token.clone()).await;
    }

    // Hook calls at a steady rate beside the captures.
    let hook_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook_task = {
        let client = client.clone();
        let url = format!("{base}/hooks/password-migration");
        let stop = hook_stop.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1) / hook_rate.max(1));
            let mut calls = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                let client = client.clone();
                let url = url.clone();
                calls.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let answer = client
                        .post(url)
                        .bearer_auth(API_KEY)
                        .json(&json!({"identifier": "hook-user", "password": PASSWORD}))
                        .send()
                        .await;
                    let ok = answer.map(|a| a.status() == 200).unwrap_or(false);
                    (started.elapsed(), ok)
                }));
            }
            let mut latencies = Vec::new();
            let mut failures = 0;
            for call in calls {
                let (latency, ok) = call.await.unwrap();
                if !ok || latency > HOOK_DEADLINE {
                    failures += 1;
                }
                latencies.push(latency);
            }
            (latencies, failures)
        })
    };

    // Enough callers to keep every hashing slot busy, queueing behind them.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let callers = cores * 4;
    let queue = Arc::new(std::sync::Mutex::new(tokens[..captures].to_vec()));
    let started = Instant::now();
    let workers: Vec<_> = (0..callers)
        .map(|_| {
            let queue = queue.clone();
            let capture = capture.clone();
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap().pop();
                    match next {
                        Some(token) => capture(token).await,
                        None => break,
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    hook_stop.store(true, Ordering::Relaxed);
    let (hook, hook_failures) = hook_task.await.unwrap();
    assert_eq!(
        puts.load(Ordering::Relaxed),
        captures + 4,
        "every capture wrote once"
    );
    handle.stop().await;
    Round {
        rate: captures as f64 / elapsed.as_secs_f64(),
        hook,
        hook_failures,
    }
}

#[tokio::main]
async fn main() {
    let rounds: usize = env_or("CAPTURE_BENCH_ROUNDS", 3);
    let hook_rate: u32 = env_or("CAPTURE_BENCH_HOOK_RATE", 20);
    let costs: Vec<u32> = std::env::var("CAPTURE_BENCH_COSTS")
        .unwrap_or_else(|_| "10,12".to_owned())
        .split(',')
        .filter_map(|cost| cost.trim().parse().ok())
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let signer = signer();
    println!(
        "| bcrypt cost | one hash (median) | limit: {cores} cores ÷ hash | captures/s (median of {rounds}) | share of the limit | hook calls beside (n, p50, p99, max, failed or over {} s) |",
        HOOK_DEADLINE.as_secs()
    );
    println!("|---|---|---|---|---|---|");
    for cost in costs {
        let one_hash = hash_time(cost);
        let limit = cores as f64 / one_hash.as_secs_f64();
        // About eight seconds of hashing per round.
        let captures = ((limit * 8.0) as usize).max(16);
        let mut rates = Vec::new();
        let mut hook = Vec::new();
        let mut failures = 0;
        for round_no in 0..rounds {
            eprintln!(
                "cost {cost}: round {} of {rounds}, {captures} captures",
                round_no + 1
            );
            let result = round(cost, captures, hook_rate, &signer, round_no).await;
            rates.push(result.rate);
            hook.extend(result.hook);
            failures += result.hook_failures;
        }
        rates.sort_by(f64::total_cmp);
        let rate = rates[rates.len() / 2];
        let (p50, p99) = (quantile(&mut hook, 0.5), quantile(&mut hook, 0.99));
        let max = *hook.iter().max().unwrap();
        println!(
            "| {cost} | {:.1} ms | {limit:.1}/s | {rate:.1}/s (rounds: {}) | {:.0} % | {}, {:.1} ms, {:.1} ms, {:.1} ms, {failures} |",
            one_hash.as_secs_f64() * 1e3,
            rates
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            rate / limit * 100.0,
            hook.len(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
        );
    }
}
