//! The real Ory servers: Kratos v1.3.1 and Hydra v2.3.0, built by `scripts/build-ory` into
//! `.tools/bin/` (the test command does that), each started on free loopback ports with a
//! fresh Postgres database of its own, and stopped (database dropped) when dropped.
//!
//! Kratos's configuration is generated from the shipped `kratos-hooks/` files: the fragment
//! for its line and the example identity schema, with the migrate hook pointed at the bridge
//! the test started. So every test that starts Kratos also proves that those files load.
//! The fragment's confirmation hooks (login-after, settings-after; `response.ignore`) go to
//! the bridge for the tests that ask for it ([`ConfirmHooks::to_bridge`]) and to a closed
//! loopback port otherwise, which Kratos logs and ignores.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use url::Url;

/// Which server a test needs. The binaries live in `.tools/bin/`.
const KRATOS: &str = "kratos";
const HYDRA: &str = "hydra";
/// The Postgres server's maintenance database; `scripts/test` sets it.
pub const POSTGRES_ADMIN_URL_ENV: &str = "COGNITO_BRIDGE_TEST_POSTGRES_ADMIN_URL";
const DEFAULT_POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Prefix of every database these servers get; `scripts/test` drops leftovers by it.
pub const DATABASE_PREFIX_ENV: &str = "COGNITO_BRIDGE_TEST_ORY_DB_PREFIX";
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Path of a built Ory binary; a clear failure when it is missing.
fn binary(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test (or scripts/build-ory) to build Kratos and Hydra",
        path.display()
    );
    path
}

pub(crate) fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_ADMIN_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_ADMIN_URL.to_owned())
}

/// A database of its own on the test Postgres server, dropped on drop.
struct OwnDatabase {
    name: String,
    url: String,
}

impl OwnDatabase {
    async fn create(server: &str) -> Self {
        let prefix = std::env::var(DATABASE_PREFIX_ENV).unwrap_or_else(|_| "ory_test".into());
        let name = format!("{prefix}_{server}_{:012x}", rand::random::<u64>() >> 16);
        let admin = postgres_admin_url();
        let mut connection = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("Postgres at {admin} must be running: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').expect("a database in the URL").0;
        let url = format!("{base}/{name}?sslmode=disable");
        Self { name, url }
    }
}

impl Drop for OwnDatabase {
    fn drop(&mut self) {
        // Drop runs outside async code: psql is on every machine the test command sets up.
        let _ = std::process::Command::new("psql")
            .arg(postgres_admin_url())
            .args([
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A server process we started; killed on drop. Its output goes to a log file, shown when
/// it fails to start.
struct Server {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Server {
    fn spawn(program: &Path, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!(
            "{}-{}.log",
            program.file_name().unwrap().to_string_lossy(),
            rand::random::<u32>()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Self { child, log }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Wait for `url` to answer 200; `Err` with the log when the process exits first.
    async fn wait_ready(&mut self, url: &str) -> Result<Duration, String> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < READY_WITHIN {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}):\n{}", self.log_tail()));
            }
            let answer = client.get(url).timeout(Duration::from_secs(2)).send().await;
            if matches!(answer, Ok(response) if response.status() == StatusCode::OK) {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "not ready within {READY_WITHIN:?}:\n{}",
            self.log_tail()
        ))
    }
}

/// Run a one-shot command (a migration) to completion within a time limit.
async fn run_to_end(program: &Path, args: &[&str], dir: &Path, what: &str) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(program)
            .args(args)
            .current_dir(dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} did not finish within 60 s"))
    .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two free loopback ports (bound, then released for the server to take).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// The shipped files a test's Kratos is configured from.
fn kratos_hooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kratos-hooks")
}

/// The migrate hook Kratos is to call.
#[derive(Debug, Clone)]
pub struct MigrateHook {
    /// e.g. `http://127.0.0.1:PORT/hooks/password-migration`
    pub url: String,
    pub api_key: String,
}

impl MigrateHook {
    /// A hook nobody answers, for tests that never log in through Kratos.
    pub fn unused() -> Self {
        Self {
            url: "http://127.0.0.1:9/hooks/password-migration".into(),
            api_key: "unused-hook-key-0123456789abcdef0123456789".into(),
        }
    }
}

/// Where Kratos sends the confirmation hooks of the shipped fragment.
#[derive(Debug, Clone)]
pub struct ConfirmHooks {
    pub login_after: String,
    pub settings_after: String,
    pub api_key: String,
}

impl ConfirmHooks {
    /// A closed loopback port: Kratos's calls fail in the background and change nothing.
    pub fn nowhere() -> Self {
        Self {
            login_after: "http://127.0.0.1:9/hooks/login-after".into(),
            settings_after: "http://127.0.0.1:9/hooks/settings-after".into(),
            api_key: MigrateHook::unused().api_key,
        }
    }

    /// Both hooks to the bridge at `address` (`http://127.0.0.1:PORT`).
    pub fn to_bridge(address: &str, api_key: &str) -> Self {
        Self {
            login_after: format!("{address}/hooks/login-after"),
            settings_after: format!("{address}/hooks/settings-after"),
            api_key: api_key.to_owned(),
        }
    }
}

/// A real Kratos v1.3.1 on loopback.
pub struct Kratos {
    pub public_url: Url,
    pub admin_url: Url,
    pub client: reqwest::Client,
    /// How long `kratos serve` took to answer `/admin/health/ready`.
    pub ready_after: Duration,
    // Field order is drop order: the server stops before its database is dropped.
    _server: Server,
    _database: OwnDatabase,
    _dir: tempfile::TempDir,
}

/// What Kratos answered to one API login.
#[derive(Debug)]
pub struct Login {
    pub status: StatusCode,
    pub body: Value,
}

impl Login {
    pub fn session_token(&self) -> Option<&str> {
        self.body["session_token"].as_str()
    }

    /// The ids of the flow's messages (4000006 = invalid credentials).
    pub fn message_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = Vec::new();
        let mut collect = |messages: &Value| {
            if let Some(messages) = messages.as_array() {
                ids.extend(messages.iter().filter_map(|m| m["id"].as_u64()));
            }
        };
        collect(&self.body["ui"]["messages"]);
        if let Some(nodes) = self.body["ui"]["nodes"].as_array() {
            for node in nodes {
                collect(&node["messages"]);
            }
        }
        ids
    }
}

impl Kratos {
    /// Start Kratos with the shipped `kratos-hooks/kratos.yml` fragment (the default hook body,
    /// the only one v1.3.x accepts) and `identity.schema.json`, the hook pointed at `hook`.
    /// The confirmation hooks go nowhere.
    pub async fn start(hook: &MigrateHook) -> Self {
        Self::start_with_confirmations(hook, &ConfirmHooks::nowhere()).await
    }

    /// The same, with the confirmation hooks sent to `confirm`.
    pub async fn start_with_confirmations(hook: &MigrateHook, confirm: &ConfirmHooks) -> Self {
        Self::start_with(hook, confirm, "kratos.yml", json!({}))
            .await
            .unwrap_or_else(|error| panic!("Kratos did not start: {error}"))
    }

    /// The same, with account recovery on (the `code` method, and `link` too) for `finalize`'s
    /// admin recovery codes and links.
    pub async fn start_with_recovery(hook: &MigrateHook, confirm: &ConfirmHooks) -> Self {
        let recovery = json!({"selfservice": {
            "flows": {"recovery": {"enabled": true, "use": "code"}},
            "methods": {"code": {"enabled": true}, "link": {"enabled": true}},
        }});
        Self::start_with(hook, confirm, "kratos.yml", recovery)
            .await
            .unwrap_or_else(|error| panic!("Kratos did not start: {error}"))
    }

    /// The same, with the identity schema at `schema` (a file) as the default schema instead
    /// of the shipped example, and `overlay` merged into the configuration (`plan`'s generated
    /// schema and hook skeletons); `Err` with Kratos's output when it refuses to start.
    pub async fn start_with_schema_and(
        hook: &MigrateHook,
        schema: &Path,
        mut overlay: Value,
    ) -> Result<Self, String> {
        merge(
            &mut overlay,
            json!({"identity": {"schemas": [
                {"id": "default", "url": format!("file://{}", schema.display())}
            ]}}),
        );
        Self::start_with(hook, &ConfirmHooks::nowhere(), "kratos.yml", overlay).await
    }

    /// Start Kratos with another shipped fragment (confirmation hooks going nowhere); `Err`
    /// with Kratos's output when it refuses to start.
    pub async fn start_with_fragment(hook: &MigrateHook, fragment: &str) -> Result<Self, String> {
        Self::start_with(hook, &ConfirmHooks::nowhere(), fragment, json!({})).await
    }

    async fn start_with(
        hook: &MigrateHook,
        confirm: &ConfirmHooks,
        fragment: &str,
        overlay: Value,
    ) -> Result<Self, String> {
        let program = binary(KRATOS);
        let database = OwnDatabase::create(KRATOS).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kratos.yml");
        // A port taken between free_ports and serve makes Kratos exit: try again, a few times.
        let mut last_error = String::new();
        for _ in 0..3 {
            let [public, admin] = free_ports::<2>();
            let mut document = kratos_config(fragment, &database.url, public, admin, hook, confirm);
            merge(&mut document, overlay.clone());
            std::fs::write(&config, serde_yaml::to_string(&document).unwrap()).unwrap();
            let config = config.to_str().unwrap();
            run_to_end(
                &program,
                &["migrate", "sql", "-e", "--yes", "-c", config],
                dir.path(),
                "kratos migrate sql",
            )
            .await;
            let mut server = Server::spawn(&program, &["serve", "-c", config], dir.path(), &[]);
            let admin_url = Url::parse(&format!("http://127.0.0.1:{admin}/")).unwrap();
            let ready = format!("{admin_url}admin/health/ready");
            match server.wait_ready(&ready).await {
                Ok(ready_after) => {
                    return Ok(Self {
                        public_url: Url::parse(&format!("http://127.0.0.1:{public}/")).unwrap(),
                        admin_url,
                        client: reqwest::Client::builder()
                            .timeout(Duration::from_secs(20))
                            .build()
                            .unwrap(),
                        ready_after,
                        _server: server,
                        _database: database,
                        _dir: dir,
                    });
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// `GET /admin/version`'s `version`.
    pub async fn version(&self) -> String {
        let body: Value = self.get_admin("admin/version").await;
        body["version"].as_str().unwrap_or_default().to_owned()
    }

    async fn get_admin(&self, path: &str) -> Value {
        let url = self.admin_url.join(path).unwrap();
        let response = self.client.get(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {url}");
        response.json().await.unwrap()
    }

    /// Every identity Kratos holds (admin list, keyset pages followed by their `Link`).
    pub async fn identities(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut next = Some("admin/identities?page_size=500".to_owned());
        while let Some(path) = next.take() {
            let url = self.admin_url.join(&path).unwrap();
            let response = self.client.get(url.clone()).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "GET {url}");
            next = response
                .headers()
                .get("link")
                .and_then(|link| link.to_str().ok())
                .and_then(next_link);
            let items: Vec<Value> = response.json().await.unwrap();
            if items.is_empty() {
                break;
            }
            all.extend(items);
            assert!(all.len() < 1_000_000, "more identities than a test makes");
        }
        all
    }

    /// One identity, with its password credential's config.
    pub async fn identity(&self, id: &str) -> Value {
        self.get_admin(&format!(
            "admin/identities/{id}?include_credential=password"
        ))
        .await
    }

    /// The identity whose `traits.email` is `email`.
    pub async fn identity_by_email(&self, email: &str) -> Option<Value> {
        let body = self
            .get_admin(&format!(
                "admin/identities?credentials_identifier={}",
                urlencode(email)
            ))
            .await;
        body.as_array().and_then(|items| items.first().cloned())
    }

    /// `POST /admin/identities` with `body`: the status and the answer.
    pub async fn create_identity(&self, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.admin_url.join("admin/identities").unwrap())
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Give identity `id` a password hash outside the bridge, as an admin would on v1.3.x:
    /// `GET` it, then `PUT` every field back with `credentials.password.config.hashed_password`
    /// (which also drops the migration flag).
    pub async fn set_password_hash(&self, id: &str, hash: &str) {
        let identity = self.identity(id).await;
        let body = json!({
            "schema_id": identity["schema_id"],
            "state": identity["state"],
            "traits": identity["traits"],
            "metadata_public": identity["metadata_public"],
            "metadata_admin": identity["metadata_admin"],
            "credentials": {"password": {"config": {"hashed_password": hash}}},
        });
        let url = self
            .admin_url
            .join(&format!("admin/identities/{id}"))
            .unwrap();
        let response = self
            .client
            .put(url.clone())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "PUT {url}");
    }

    /// `DELETE /admin/identities/{id}`.
    pub async fn delete_identity(&self, id: &str) {
        let url = self
            .admin_url
            .join(&format!("admin/identities/{id}"))
            .unwrap();
        let response = self.client.delete(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "DELETE {url}");
    }

    /// A password login through Kratos's API flow, as a native app would do it.
    pub async fn login(&self, identifier: &str, password: &str) -> Login {
        self.login_with(identifier, password, &[]).await
    }

    /// The same, with extra headers on the submit (e.g. `True-Client-Ip`).
    pub async fn login_with(
        &self,
        identifier: &str,
        password: &str,
        headers: &[(&str, &str)],
    ) -> Login {
        let flow: Value = self
            .client
            .get(self.public_url.join("self-service/login/api").unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let flow_id = flow["id"].as_str().expect("a login flow id");
        let mut request = self
            .client
            .post(
                self.public_url
                    .join(&format!("self-service/login?flow={flow_id}"))
                    .unwrap(),
            )
            .json(&json!({
                "method": "password",
                "identifier": identifier,
                "password": password,
            }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Login { status, body }
    }

    /// Give an identity a password through the admin API, as an operator could outside the
    /// bridge: v1.3.1's `PUT /admin/identities/{id}` (a full replacement, so every field is
    /// echoed), which also drops the migration flag.
    pub async fn set_password(&self, id: &str, password: &str) {
        let identity = self.identity(id).await;
        let body = json!({
            "schema_id": identity["schema_id"],
            "traits": identity["traits"],
            "state": identity["state"],
            "metadata_public": identity["metadata_public"],
            "metadata_admin": identity["metadata_admin"],
            "credentials": {"password": {"config": {"password": password}}},
        });
        let url = self
            .admin_url
            .join(&format!("admin/identities/{id}"))
            .unwrap();
        let response = self.client.put(url).json(&body).send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "PUT identity {id}: {answer:#}");
    }

    /// A password change through the settings API flow with a (fresh) session token: the
    /// status and body of the submit.
    pub async fn change_password(
        &self,
        session_token: &str,
        password: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.public_url.join("self-service/settings/api").unwrap())
            .header("X-Session-Token", session_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "a settings flow");
        let flow: Value = response.json().await.unwrap();
        let flow_id = flow["id"].as_str().expect("a settings flow id");
        let response = self
            .client
            .post(
                self.public_url
                    .join(&format!("self-service/settings?flow={flow_id}"))
                    .unwrap(),
            )
            .header("X-Session-Token", session_token)
            .json(&json!({"method": "password", "password": password}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Submit a recovery `code` to the recovery flow its admin `link` names
    /// (`…/self-service/recovery?flow=<id>`), as JSON: the status and the answer.
    pub async fn submit_recovery_code(&self, link: &str, code: &str) -> (StatusCode, Value) {
        let link = Url::parse(link).expect("the recovery link is a URL");
        let flow = link
            .query_pairs()
            .find(|(key, _)| key == "flow")
            .map(|(_, value)| value.into_owned())
            .expect("the recovery link names its flow");
        let response = self
            .client
            .post(
                self.public_url
                    .join(&format!("self-service/recovery?flow={flow}"))
                    .unwrap(),
            )
            .header("Accept", "application/json")
            .json(&json!({"method": "code", "code": code}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET /sessions/whoami` with a session token: the session's identity id.
    pub async fn whoami(&self, session_token: &str) -> Option<String> {
        let response = self
            .client
            .get(self.public_url.join("sessions/whoami").unwrap())
            .header("X-Session-Token", session_token)
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            return None;
        }
        let body: Value = response.json().await.unwrap();
        body["identity"]["id"].as_str().map(str::to_owned)
    }
}

/// The `rel="next"` target of a `Link` header, without its leading slash.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim_start_matches('/')
                .to_owned()
        })
    })
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// kratos.yml: the shipped fragment with its hooks' URLs, keys and jsonnet bodies filled in,
/// over the minimum a Kratos needs (database, ports on loopback, the example identity schema,
/// no password breach lookups over the network).
fn kratos_config(
    fragment: &str,
    dsn: &str,
    public: u16,
    admin: u16,
    hook: &MigrateHook,
    confirm: &ConfirmHooks,
) -> Value {
    let fragment_path = kratos_hooks_dir().join(fragment);
    let fragment_text = std::fs::read_to_string(&fragment_path).unwrap();
    let mut fragment: Value = serde_yaml::from_str(&fragment_text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", fragment_path.display()));
    let hook_config =
        &mut fragment["selfservice"]["methods"]["password"]["config"]["migrate_hook"]["config"];
    assert!(
        hook_config.is_object(),
        "{} has no migrate_hook config",
        fragment_path.display()
    );
    hook_config["url"] = json!(hook.url);
    hook_config["auth"]["config"]["value"] = json!(format!("Bearer {}", hook.api_key));
    let mut confirmations = 0;
    for flow in ["login", "settings"] {
        let hooks = &mut fragment["selfservice"]["flows"][flow]["after"]["password"]["hooks"];
        for web_hook in hooks.as_array_mut().into_iter().flatten() {
            if web_hook["hook"] != "web_hook" {
                continue;
            }
            let config = &mut web_hook["config"];
            let shipped = config["url"].as_str().unwrap_or_default();
            let url = if shipped.ends_with("/hooks/login-after") {
                &confirm.login_after
            } else if shipped.ends_with("/hooks/settings-after") {
                &confirm.settings_after
            } else {
                panic!(
                    "{}: a web_hook to {shipped}, unknown to the tests",
                    fragment_path.display()
                )
            };
            config["url"] = json!(url);
            config["auth"]["config"]["value"] = json!(format!("Bearer {}", confirm.api_key));
            // The shipped jsonnet itself, from where the fragment expects it in production.
            let body = config["body"].as_str().expect("a web_hook body");
            let name = body.rsplit('/').next().unwrap();
            let file = kratos_hooks_dir().join(name);
            assert!(
                file.is_file(),
                "{} names {body}, not shipped",
                fragment_path.display()
            );
            config["body"] = json!(format!("file://{}", file.display()));
            confirmations += 1;
        }
    }
    assert_eq!(
        confirmations,
        2,
        "{}: the login-after and settings-after hooks",
        fragment_path.display()
    );
    let schema = kratos_hooks_dir().join("identity.schema.json");
    let mut config = json!({
        "dsn": dsn,
        "serve": {
            "public": {"base_url": format!("http://127.0.0.1:{public}/"), "host": "127.0.0.1", "port": public},
            "admin": {"base_url": format!("http://127.0.0.1:{admin}/"), "host": "127.0.0.1", "port": admin},
        },
        "selfservice": {
            "default_browser_return_url": "http://127.0.0.1:4455/",
            "methods": {"password": {"config": {"haveibeenpwned_enabled": false}}},
        },
        "identity": {
            "default_schema_id": "default",
            "schemas": [{"id": "default", "url": format!("file://{}", schema.display())}],
        },
        "secrets": {"cookie": ["cognito-bridge-tests-cookie-secret"], "cipher": ["cognito-bridge-tests-32-byte-key"]},
        "log": {"level": "info"},
    });
    merge(&mut config, fragment);
    config
}

/// `overlay`'s keys into `base`, objects merged key by key.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// A real Hydra v2.3.0 on loopback (`serve all --dev`).
pub struct Hydra {
    pub public_url: Url,
    pub admin_url: Url,
    pub ready_after: Duration,
    _server: Server,
    _database: OwnDatabase,
    _dir: tempfile::TempDir,
}

impl Hydra {
    pub async fn start() -> Self {
        let program = binary(HYDRA);
        let database = OwnDatabase::create(HYDRA).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("hydra.yml");
        let mut last_error = String::new();
        for _ in 0..3 {
            let [public, admin] = free_ports::<2>();
            let document = json!({
                "dsn": database.url,
                "serve": {
                    "public": {"host": "127.0.0.1", "port": public},
                    "admin": {"host": "127.0.0.1", "port": admin},
                },
                "urls": {
                    "self": {"issuer": format!("http://127.0.0.1:{public}")},
                    "login": "http://127.0.0.1:3000/login",
                    "consent": "http://127.0.0.1:3000/consent",
                },
                "secrets": {"system": ["cognito-bridge-tests-system-secret"]},
                "log": {"level": "info"},
            });
            std::fs::write(&config, serde_yaml::to_string(&document).unwrap()).unwrap();
            let config = config.to_str().unwrap();
            run_to_end(
                &program,
                &["migrate", "sql", "up", "-e", "--yes", "-c", config],
                dir.path(),
                "hydra migrate sql up",
            )
            .await;
            let mut server = Server::spawn(
                &program,
                &["serve", "all", "--dev", "-c", config],
                dir.path(),
                &[],
            );
            let admin_url = Url::parse(&format!("http://127.0.0.1:{admin}/")).unwrap();
            match server.wait_ready(&format!("{admin_url}health/ready")).await {
                Ok(ready_after) => {
                    return Self {
                        public_url: Url::parse(&format!("http://127.0.0.1:{public}/")).unwrap(),
                        admin_url,
                        ready_after,
                        _server: server,
                        _database: database,
                        _dir: dir,
                    };
                }
                Err(error) => last_error = error,
            }
        }
        panic!("Hydra did not start: {last_error}");
    }
}
