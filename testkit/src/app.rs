//! `spawn_app`: the real HTTP app on port 0 with a fresh database, and typed helpers (the
//! API tests reach them through `tests/api/helpers.rs`).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cognito_bridge::config::Settings;
use cognito_bridge::http::HOOK_PATH;
use cognito_bridge::startup::Application;
use cognito_bridge::store::Store;
use cognito_bridge::telemetry::LogFormat;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::moto;

/// At least 32 characters, as `serve` requires of `hooks.api_keys`.
pub const API_KEY: &str = "test-hook-key-0123456789abcdef0123456789";
/// A second configured key (rotation), also long enough to serve.
pub const ROTATED_OUT_KEY: &str = "rotated-out-key-abcdef-0123456789abcdef";
/// The admin listener's token in every test app.
pub const ADMIN_TOKEN: &str = "test-admin-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub const POSTGRES_URL_ENV: &str = "COGNITO_BRIDGE_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database: a SQLite file in a temporary folder, or a new Postgres schema.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("bridge.db").display());
                Self {
                    url,
                    backend,
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let schema = format!("t_{:016x}", rand::random::<u64>());
                let url = create_postgres_schema(&schema).await;
                Self {
                    url,
                    backend,
                    schema: Some(schema),
                    _dir: None,
                }
            }
        }
    }

    /// Path of the SQLite file (and its `-wal`), for byte-level checks.
    pub fn sqlite_files(&self) -> Vec<std::path::PathBuf> {
        let Some(dir) = &self._dir else {
            return Vec::new();
        };
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    /// Every row of every table, as text: for checking that no secret was stored.
    pub async fn dump(&self) -> String {
        match self.backend {
            Backend::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                let tables: Vec<(String,)> =
                    sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(&mut connection)
                        .await
                        .unwrap();
                let mut out = String::new();
                for (table,) in tables {
                    let columns: Vec<(String,)> =
                        sqlx::query_as("SELECT name FROM pragma_table_info(?1)")
                            .bind(&table)
                            .fetch_all(&mut connection)
                            .await
                            .unwrap();
                    let row_text = columns
                        .iter()
                        .map(|(column,)| format!("quote(\"{column}\")"))
                        .collect::<Vec<_>>()
                        .join(" || '|' || ");
                    let rows: Vec<(String,)> =
                        sqlx::query_as(&format!("SELECT {row_text} FROM \"{table}\""))
                            .fetch_all(&mut connection)
                            .await
                            .unwrap();
                    out.push_str(&format!("{table}: {rows:?}\n"));
                }
                out
            }
            Backend::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let schema = self.schema.as_deref().unwrap();
                let tables: Vec<(String,)> = sqlx::query_as(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                )
                .bind(schema)
                .fetch_all(&mut connection)
                .await
                .unwrap();
                let mut out = String::new();
                for (table,) in tables {
                    let rows: Vec<(String,)> = sqlx::query_as(&format!(
                        "SELECT row_to_json(t)::text FROM {schema}.{table} t"
                    ))
                    .fetch_all(&mut connection)
                    .await
                    .unwrap();
                    out.push_str(&format!("{table}: {rows:?}\n"));
                }
                out
            }
        }
    }
}

/// The Postgres test database: `$COGNITO_BRIDGE_TEST_POSTGRES_URL`, or the local `test`.
pub fn postgres_base_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// Create the empty schema `name` in the Postgres test database; the URL of that database with
/// `name` as its search path.
pub async fn create_postgres_schema(name: &str) -> String {
    let base = postgres_base_url();
    let mut connection = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("Postgres at {base} must be running: {e}"));
    sqlx::query(&format!("CREATE SCHEMA {name}"))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("create schema {name}: {e}"));
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{name}")
}

/// What a test may vary; everything else is the default configuration.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub backend: Backend,
    pub cognito_endpoint: String,
    pub user_pool_id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub deadline_ms: u64,
    pub cognito_timeout_ms: u64,
    pub mfa_policy: &'static str,
    pub temporary_password_policy: &'static str,
    /// Any other settings, as `COGNITO_BRIDGE__…` environment keys (they win over the above).
    pub extra_env: Vec<(&'static str, String)>,
    /// Share another app's database (a second replica) instead of making a fresh one.
    pub shared_database: Option<String>,
}

impl AppOptions {
    /// Set one more setting by its environment key (e.g. `COGNITO_BRIDGE__GUARD__WINDOW_SECS`).
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        self.extra_env.push((key, value.to_string()));
        self
    }

    pub fn new(
        backend: Backend,
        cognito_endpoint: &str,
        user_pool_id: &str,
        client_id: &str,
    ) -> Self {
        Self {
            backend,
            cognito_endpoint: cognito_endpoint.to_owned(),
            user_pool_id: user_pool_id.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: None,
            deadline_ms: 5000,
            cognito_timeout_ms: 2000,
            mfa_policy: "deny",
            temporary_password_policy: "deny",
            extra_env: Vec::new(),
            shared_database: None,
        }
    }

    pub async fn for_pool(backend: Backend, pool: &moto::Pool) -> Self {
        Self::new(backend, &moto::endpoint().await, &pool.id, &pool.client_id)
    }
}

pub struct TestApp {
    pub address: String,
    pub store: Arc<dyn Store>,
    pub database: TestDatabase,
    pub client: reqwest::Client,
    /// The admin listener (`/admin/…`, `/metrics`, detailed `/health/ready`), when it runs.
    pub admin_address: Option<String>,
    server: cognito_bridge::startup::StopHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Start the real application on port 0, configured the way `serve` is (environment keys).
pub async fn spawn_app(options: AppOptions) -> TestApp {
    let database = match &options.shared_database {
        Some(url) => TestDatabase {
            url: url.clone(),
            backend: options.backend,
            schema: None,
            _dir: None,
        },
        None => TestDatabase::new(options.backend).await,
    };
    let mut environment = vec![
        ("COGNITO_BRIDGE__SERVER__LISTEN", "127.0.0.1:0".to_owned()),
        ("COGNITO_BRIDGE__DATABASE__URL", database.url.clone()),
        (
            "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
            options.user_pool_id.clone(),
        ),
        (
            "COGNITO_BRIDGE__COGNITO__CLIENT_ID",
            options.client_id.clone(),
        ),
        (
            "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
            options.cognito_endpoint.clone(),
        ),
        // moto and the loopback fakes speak plain HTTP.
        (
            "COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT",
            "true".to_owned(),
        ),
        (
            "COGNITO_BRIDGE__COGNITO__TIMEOUT_MS",
            options.cognito_timeout_ms.to_string(),
        ),
        (
            "COGNITO_BRIDGE__HOOKS__API_KEYS",
            format!("{ROTATED_OUT_KEY},{API_KEY}"),
        ),
        (
            "COGNITO_BRIDGE__HOOKS__DEADLINE_MS",
            options.deadline_ms.to_string(),
        ),
        (
            "COGNITO_BRIDGE__HOOKS__MFA_POLICY",
            options.mfa_policy.to_owned(),
        ),
        (
            "COGNITO_BRIDGE__HOOKS__TEMPORARY_PASSWORD_POLICY",
            options.temporary_password_policy.to_owned(),
        ),
        ("COGNITO_BRIDGE__SERVER__WORKERS", "2".to_owned()),
        ("COGNITO_BRIDGE__ADMIN__LISTEN", "127.0.0.1:0".to_owned()),
        ("COGNITO_BRIDGE__ADMIN__TOKENS", ADMIN_TOKEN.to_owned()),
    ];
    if let Some(secret) = &options.client_secret {
        environment.push(("COGNITO_BRIDGE__COGNITO__CLIENT_SECRET", secret.clone()));
    }
    environment.extend(options.extra_env.iter().cloned());
    let settings = Settings::load_from(
        None,
        environment.into_iter().map(|(k, v)| (k.to_owned(), v)),
    )
    .expect("test settings load");
    // As `serve` builds it, with moto's test credentials instead of the AWS chain.
    let application = Application::build(settings, Some(moto::test_credentials()))
        .await
        .expect("app builds");
    let store = application.store();
    let port = application.port();
    let server = application.handle();
    let admin_address = application
        .admin_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let running = tokio::spawn(application.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        store,
        database,
        admin_address,
        server,
        running,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    }
}

/// A hook answer: status, parsed JSON body, and how many bytes the body had.
#[derive(Debug)]
pub struct HookAnswer {
    pub status: StatusCode,
    pub body: Value,
    pub body_len: usize,
}

impl TestApp {
    /// Stop the server as SIGTERM does and wait until it has (its background tasks too), as a
    /// process that exits; the database stays, for a restarted app to share.
    pub async fn stop(self) -> TestDatabase {
        self.server.stop().await;
        tokio::time::timeout(Duration::from_secs(30), self.running)
            .await
            .expect("the app stops within 30 s")
            .expect("the app's task ends")
            .expect("the server ends cleanly");
        self.database
    }

    pub fn hook_url(&self) -> String {
        format!("{}{HOOK_PATH}", self.address)
    }

    /// POST raw bytes to the hook with an optional `Authorization` header value.
    pub async fn post_hook_raw(&self, body: Vec<u8>, authorization: Option<&str>) -> HookAnswer {
        let mut request = self
            .client
            .post(self.hook_url())
            .header("Content-Type", "application/json")
            .header(
                "Ory-Webhook-Request-ID",
                format!("req-{}", rand::random::<u32>()),
            )
            .body(body);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.expect("hook answers");
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        HookAnswer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            body_len: bytes.len(),
        }
    }

    pub async fn post_hook(&self, body: &Value) -> HookAnswer {
        self.post_hook_raw(
            serde_json::to_vec(body).unwrap(),
            Some(&format!("Bearer {API_KEY}")),
        )
        .await
    }

    /// Kratos's default body.
    pub async fn login(&self, identifier: &str, password: &str) -> HookAnswer {
        self.post_hook(&json!({"identifier": identifier, "password": password}))
            .await
    }

    /// A GET whose body is text (`/metrics`).
    /// A GET to where `path` lives: the admin listener (with its token) for `/admin…`,
    /// `/metrics` and `/health/ready` (the detailed one), else the hook's port.
    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        let on_admin = path.starts_with("/admin")
            || path.starts_with("/metrics")
            || path.starts_with("/health/ready");
        match (&self.admin_address, on_admin) {
            (Some(admin), true) => self
                .client
                .get(format!("{admin}{path}"))
                .bearer_auth(ADMIN_TOKEN),
            _ => self.client.get(format!("{}{path}", self.address)),
        }
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.request(path).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.request(path).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A GET on the hook's port, whatever the path.
    pub async fn get_on_hook_port(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Assert a 200 `password_match`.
pub fn assert_match(answer: &HookAnswer) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({"status": "password_match"}),
        "{answer:?}"
    );
}

/// Assert a 403 `password_no_match`.
pub fn assert_no_match(answer: &HookAnswer) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({"status": "password_no_match"}),
        "{answer:?}"
    );
}

/// Log lines of this test process, captured at TRACE level in JSON.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install (once per process) a subscriber that records everything into a buffer.
pub fn capture_logs() -> LogBuffer {
    static BUFFER: OnceLock<LogBuffer> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let writer = buffer.clone();
            // Everything at TRACE whatever RUST_LOG says: the most an operator could log.
            let subscriber =
                cognito_bridge::telemetry::subscriber(LogFormat::Json, "trace", move || {
                    writer.clone()
                })
                .expect("a valid filter");
            tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
            buffer
        })
        .clone()
}

/// Write user rows as an import run would (linked to their Kratos identities, `pending`),
/// without Cognito or Kratos: `(username, verified e-mail, sub, identity id)`.
pub async fn import_users(store: &dyn Store, users: &[(&str, Option<&str>, &str, &str)]) {
    use cognito_bridge::store::{ImportCommit, ImportedUser};
    let at = chrono::Utc::now();
    let run_id = store.start_import_run(false, at, None).await.unwrap();
    let rows: Vec<ImportedUser> = users
        .iter()
        .map(|(username, email, sub, identity_id)| ImportedUser {
            cognito_username: (*username).to_owned(),
            email_normalized: email.map(str::to_owned),
            external_id: (*sub).to_owned(),
            kratos_identity_id: (*identity_id).to_owned(),
            state: cognito_bridge::domain::UserState::Pending,
            created: true,
        })
        .collect();
    store
        .commit_import(&ImportCommit {
            run_id,
            at,
            users: &rows,
            failures: &[],
            next_token: None,
            counters: Default::default(),
            duration_ms: 0,
        })
        .await
        .unwrap();
}

/// A one-handler HTTP server on a free loopback port (for scripted peers: a hook that answers
/// what it is told, a proxy that drops answers): its base URL and a handle to stop it.
pub fn serve_on_loopback<H, Args>(handler: H) -> (String, actix_web::dev::ServerHandle)
where
    H: actix_web::Handler<Args> + Clone + Send + 'static,
    Args: actix_web::FromRequest + 'static,
    H::Output: actix_web::Responder + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(actix_web::web::PayloadConfig::new(16 * 1024 * 1024))
            .default_service(actix_web::web::to(handler.clone()))
    })
    .listen(listener)
    .expect("listen")
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (url, handle)
}
