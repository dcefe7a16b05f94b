//! The doubles against the real Kratos v1.3.1, so they cannot drift from it.
//!
//! The hook double (`doubles/kratos_hook_caller.rs`) stays for what a real Kratos cannot be made to do on
//! demand; here it and the real Kratos call the same scripted hook with the same answers, and
//! must end every login the same way after the same number of calls. The admin double stays
//! for Kratos's faults and as the stand-in for the current line (v25.4+), which cannot be built
//! here; one import into it and into the real Kratos must leave the same identities behind, and
//! the same identities must list the same (`reconcile`'s paged list with password configs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use cognito_bridge::import::ImportOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::doubles::kratos_admin::{AdminDoubleOptions, KratosAdminDouble};
use crate::doubles::kratos_hook_caller::{KratosDouble, KratosOutcome};
use crate::helpers::import::{import_settings_with_public_url, run_import};
use crate::helpers::{API_KEY, Backend, TestDatabase, serve_on_loopback};
use crate::moto::{self, Pool, SeedUser};
use crate::ory::{Kratos, Login, MigrateHook};

#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestShape {
    method: String,
    body_keys: Vec<String>,
    headers: Vec<(String, Option<String>)>,
}

/// Headers the bridge reads, with their values where they are not per-call ids.
fn shape_of(request: &actix_web::HttpRequest, body: &[u8]) -> RequestShape {
    let mut body_keys: Vec<String> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    body_keys.sort();
    let headers = [
        ("authorization", true),
        ("content-type", true),
        ("ory-webhook-request-id", false),
        ("ory-webhook-trigger-id", false),
    ]
    .into_iter()
    .filter_map(|(name, keep_value)| {
        let value = request.headers().get(name)?.to_str().ok()?;
        Some((
            name.to_owned(),
            keep_value.then(|| value.split(';').next().unwrap_or_default().to_owned()),
        ))
    })
    .collect();
    RequestShape {
        method: request.method().to_string(),
        body_keys,
        headers,
    }
}

/// A migration hook that answers what it is told and counts its calls.
struct ScriptedHook {
    url: String,
    calls: Arc<AtomicUsize>,
    answer: Arc<Mutex<(u16, String)>>,
    /// What the last call looked like: its body's keys and the headers the bridge reads.
    last_request: Arc<Mutex<Option<RequestShape>>>,
    server: actix_web::dev::ServerHandle,
}

impl ScriptedHook {
    async fn start() -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(Mutex::new((200, String::new())));
        let last_request = Arc::new(Mutex::new(None));
        let shared = (calls.clone(), answer.clone(), last_request.clone());
        let (base, server) =
            serve_on_loopback(move |request: actix_web::HttpRequest, body: web::Bytes| {
                let (counted, scripted, last) = shared.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    *last.lock().unwrap() = Some(shape_of(&request, &body));
                    let (status, body) = scripted.lock().unwrap().clone();
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .content_type("application/json")
                        .body(body)
                }
            });
        let url = format!("{base}/hooks/password-migration");
        Self {
            url,
            calls,
            answer,
            last_request,
            server,
        }
    }

    fn script(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
        self.calls.store(0, Ordering::SeqCst);
    }

    fn last_request(&self) -> Option<RequestShape> {
        self.last_request.lock().unwrap().take()
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The real Kratos's login, in the double's terms.
fn outcome_of(login: &Login) -> KratosOutcome {
    if login.status == StatusCode::OK && login.session_token().is_some() {
        KratosOutcome::PasswordStored
    } else if login.status == StatusCode::BAD_REQUEST && login.message_ids().contains(&4_000_006) {
        KratosOutcome::InvalidCredentials
    } else {
        assert_eq!(
            login.status,
            StatusCode::BAD_GATEWAY,
            "neither a session, nor invalid credentials, nor a bad gateway: {:#}",
            login.body
        );
        KratosOutcome::BadGateway
    }
}

#[tokio::test]
async fn the_hook_double_ends_logins_like_the_real_kratos() {
    let hook = ScriptedHook::start().await;
    let kratos = Kratos::start(&MigrateHook {
        url: hook.url.clone(),
        api_key: API_KEY.to_owned(),
    })
    .await;
    let mut double = KratosDouble::new(&hook.url, API_KEY);
    // The pauses do not change the count of attempts; keep the test short.
    double.backoff = [Duration::from_millis(50), Duration::from_millis(50)];
    // As v1.3.x does (the double's default is the current line's header set).
    double.sends_trigger_id = false;

    let match_body = r#"{"status":"password_match"}"#;
    let scenarios: [(u16, &str); 8] = [
        (200, match_body),
        (200, r#"{"status":"password_no_match"}"#),
        (200, "not json"),
        (403, r#"{"status":"password_no_match"}"#),
        (424, r#"{"status":"unavailable"}"#),
        (429, r#"{"status":"slow_down"}"#),
        (500, r#"{"error":"boom"}"#),
        (501, r#"{"error":"not implemented"}"#),
    ];
    let mut differences = Vec::new();
    for (n, (status, body)) in scenarios.into_iter().enumerate() {
        // A fresh flagged identity each time: a stored password would bypass the hook.
        let email = format!("scenario-{n}@example.com");
        let (created, answer) = kratos
            .create_identity(&json!({
                "schema_id": "default",
                "traits": {"email": email},
                "credentials": {"password": {"config": {"use_password_migration_hook": true}}},
            }))
            .await;
        assert_eq!(created, StatusCode::CREATED, "{answer}");

        hook.script(status, body);
        let real = outcome_of(&kratos.login(&email, "some-password").await);
        let real_calls = hook.calls();
        let real_request = hook.last_request();

        hook.script(status, body);
        let doubled = double.login(&email, "some-password").await;
        let double_calls = hook.calls();
        assert_eq!(double_calls, doubled.attempt_count());
        let double_request = hook.last_request();
        if real_request != double_request {
            differences.push(format!(
                "the hook request: real Kratos {real_request:?}, the double {double_request:?}"
            ));
        }

        println!(
            "hook {status} {body}: real {real:?} after {real_calls} call(s), double {:?} after {double_calls}",
            doubled.outcome
        );
        if (real, real_calls) != (doubled.outcome, double_calls) {
            differences.push(format!(
                "hook {status} {body}: real Kratos {real:?} after {real_calls} call(s), \
                 the double {:?} after {double_calls}",
                doubled.outcome
            ));
        }
    }
    hook.server.stop(false).await;
    assert!(differences.is_empty(), "{differences:#?}");
}

// --- The admin double against the real Kratos: one import, what each holds afterwards. -------

const COMPARED_USERS: usize = 24;
const IMPORT_TRAITS: &str = "[import]\nlist_rate = 30\nbatch_size = 10\ngroups_trait = \"groups\"\n\
     [import.traits]\nemail = \"email\"\n\"name.first\" = \"given_name\"\n";

/// What an identity holds that the bridge wrote or relies on, without ids and timestamps.
/// `external_id` is left out: the current line (the double) keeps the sub there, v1.3.x
/// refuses the field; both keep it in `metadata_admin.cognito.sub`.
fn held(identity: &Value, password_config: &Value) -> Value {
    let addresses = |kind: &str, keys: &[&str]| -> Vec<Value> {
        let mut list: Vec<Value> = identity[kind]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|address| {
                Value::Object(
                    keys.iter()
                        .map(|key| ((*key).to_owned(), address[*key].clone()))
                        .collect(),
                )
            })
            .collect();
        list.sort_by_key(|address| address.to_string());
        list
    };
    let mut held = fields_and_password(identity, password_config);
    held["verifiable_addresses"] = json!(addresses(
        "verifiable_addresses",
        &["value", "verified", "via", "status"]
    ));
    held["recovery_addresses"] = json!(addresses("recovery_addresses", &["value", "via"]));
    held
}

/// The fields both Kratos lines hold alike, and the password config (see [`password_flag`]).
fn fields_and_password(identity: &Value, password_config: &Value) -> Value {
    json!({
        "schema_id": identity["schema_id"],
        "state": identity["state"],
        "traits": identity["traits"],
        "metadata_public": identity["metadata_public"],
        "metadata_admin": identity["metadata_admin"],
        "password_config": password_flag(password_config),
    })
}

/// The password credential's config without an empty hash: v1.3.1 shows the flag with
/// `"hashed_password": ""`, the double the create body as sent.
fn password_flag(config: &Value) -> Value {
    let mut config = config.clone();
    if let Some(map) = config.as_object_mut()
        && map.get("hashed_password").is_some_and(|hash| hash == "")
    {
        map.remove("hashed_password");
    }
    config
}

/// username → what the identity holds, plus the import's counters and failed usernames.
type Holdings = (
    std::collections::BTreeMap<String, Value>,
    (i64, i64, i64),
    Vec<String>,
);

fn username_of(identity: &Value) -> String {
    identity["metadata_admin"]["cognito"]["username"]
        .as_str()
        .unwrap_or("<no username>")
        .to_owned()
}

async fn import_into(
    backend: Backend,
    pool: &Pool,
    admin_url: &str,
    public_url: &str,
) -> (i64, i64, i64, Vec<String>) {
    let database = TestDatabase::new(backend).await;
    let settings = import_settings_with_public_url(
        &database.url,
        &moto::endpoint().await,
        &pool.id,
        admin_url,
        public_url,
        IMPORT_TRAITS,
    );
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .expect("the import runs to the end");
    let mut failed: Vec<String> = summary
        .failures
        .iter()
        .map(|failure| failure.cognito_username.clone())
        .collect();
    failed.sort();
    (
        summary.counters.created,
        summary.counters.linked,
        summary.counters.failed,
        failed,
    )
}

/// The e-mail of seed user 5, already held in Kratos by an identity of its own.
fn squatter() -> Value {
    json!({
        "schema_id": "default",
        "traits": {"email": SeedUser::numbered(5).email.to_lowercase()},
        "metadata_admin": {"note": "created before the import"},
    })
}

#[tokio::test]
async fn the_admin_double_holds_what_the_real_kratos_holds_after_an_import() {
    let pool = Pool::create_with_custom_attributes(false).await;
    pool.create_group("beta").await;
    for i in 0..COMPARED_USERS {
        let user = SeedUser::numbered(i);
        pool.add_seed_user(&user).await;
        if i % 3 == 0 {
            pool.add_to_group(&user.username, "beta").await;
        }
        if i % 7 == 6 {
            pool.disable(&user.username).await;
        }
    }
    let schema = example_identity_schema();

    // The real Kratos v1.3.1.
    let kratos = Kratos::start(&MigrateHook::unused()).await;
    let (status, answer) = kratos.create_identity(&squatter()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (created, linked, failed, failed_users) = import_into(
        Backend::Sqlite,
        &pool,
        kratos.admin_url.as_str(),
        kratos.public_url.as_str(),
    )
    .await;
    let mut real: Holdings = (Default::default(), (created, linked, failed), failed_users);
    for identity in kratos.identities().await {
        let full = kratos.identity(identity["id"].as_str().unwrap()).await;
        let config = full["credentials"]["password"]["config"].clone();
        real.0.insert(username_of(&full), held(&full, &config));
    }

    // The double, serving the same identity schema, with the same identity there first.
    let double = KratosAdminDouble::start(AdminDoubleOptions {
        identity_schema: Some(schema),
        ..AdminDoubleOptions::default()
    })
    .await;
    double.insert_existing(squatter());
    let (created, linked, failed, failed_users) =
        import_into(Backend::Sqlite, &pool, &double.url, &double.url).await;
    let mut doubled: Holdings = (Default::default(), (created, linked, failed), failed_users);
    for stored in double.identities() {
        let shown = match stored["external_id"].as_str() {
            Some(external_id) => double.kratos_identity(external_id).unwrap(),
            None => stored.clone(),
        };
        let config = stored["credentials"]["password"]["config"].clone();
        doubled.0.insert(username_of(&shown), held(&shown, &config));
    }

    // Seed user 5 fails (its e-mail is the squatter's); everyone else once, and the squatter.
    // The squatter was made differently (the real one through the API, which derives its
    // addresses from the schema; the double's stored as is), so only its presence counts.
    assert_eq!(real.2, ["seed-0005"]);
    assert_eq!(real.0.len(), COMPARED_USERS, "{:#?}", real.0.keys());
    for holdings in [&mut real.0, &mut doubled.0] {
        assert!(
            holdings.remove("<no username>").is_some(),
            "the squatter stays"
        );
    }
    assert_eq!(real.1, doubled.1, "created, linked, failed");
    assert_eq!(real.2, doubled.2, "the users that failed");
    let mut differences = Vec::new();
    for (username, held) in &real.0 {
        match doubled.0.get(username) {
            Some(other) if other == held => {}
            other => differences.push(format!(
                "{username}: real Kratos {held:#}, the double {other:#?}"
            )),
        }
    }
    for username in doubled.0.keys().filter(|u| !real.0.contains_key(*u)) {
        differences.push(format!("{username}: only in the double"));
    }
    assert!(differences.is_empty(), "{differences:#?}");
}

/// The shipped example identity schema (the real Kratos in these tests uses it too).
pub(crate) fn example_identity_schema() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kratos-hooks/identity.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `PATCH /admin/identities` with `creates` (each given a patch id): the status, and each
/// item's action and error code (or the whole answer's error code).
async fn patch_batch(client: &reqwest::Client, admin_url: &str, creates: &[Value]) -> Value {
    let items: Vec<Value> = creates
        .iter()
        .map(
            |create| json!({"patch_id": crate::doubles::kratos_admin::uuid_v4(), "create": create}),
        )
        .collect();
    let response = client
        .patch(format!(
            "{}/admin/identities",
            admin_url.trim_end_matches('/')
        ))
        .json(&json!({ "identities": items }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let items: Vec<Value> = body["identities"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| json!([item["action"], item["error"]["code"]]))
                .collect()
        })
        .unwrap_or_default();
    json!({"status": status, "error": body["error"]["code"], "items": items})
}

#[tokio::test]
async fn the_admin_double_answers_failing_batches_like_the_real_kratos() {
    let identity = |email: &str| json!({"schema_id": "default", "traits": {"email": email}});
    // No `email`: the example identity schema requires it.
    let invalid = json!({"schema_id": "default", "traits": {"name": {"first": "No Mail"}}});
    let batches: Vec<(&str, Vec<Value>)> = vec![
        ("one conflict", vec![identity("x@example.com")]),
        (
            "two conflicts",
            vec![identity("x@example.com"), identity("y@example.com")],
        ),
        (
            "a conflict and a new one",
            vec![identity("x@example.com"), identity("new@example.com")],
        ),
        ("one invalid", vec![invalid.clone()]),
        ("two invalid", vec![invalid.clone(), invalid.clone()]),
    ];
    let schema = example_identity_schema();

    let kratos = Kratos::start(&MigrateHook::unused()).await;
    let double = KratosAdminDouble::start(AdminDoubleOptions {
        identity_schema: Some(schema),
        ..AdminDoubleOptions::default()
    })
    .await;
    for email in ["x@example.com", "y@example.com"] {
        let (status, answer) = kratos.create_identity(&identity(email)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        double.insert_existing(identity(email));
    }
    let client = reqwest::Client::new();
    let mut differences = Vec::new();
    for (what, creates) in &batches {
        let real = patch_batch(&client, kratos.admin_url.as_str(), creates).await;
        let doubled = patch_batch(&client, &double.url, creates).await;
        println!("{what}: real {real}, double {doubled}");
        if real != doubled {
            differences.push(format!("{what}: real Kratos {real}, the double {doubled}"));
        }
    }
    assert!(differences.is_empty(), "{differences:#?}");
}

/// `reconcile`'s list: the same identities created in both, paged through by the bridge's own
/// client with `include_credential=password`, read the same (password state per Cognito sub).
#[tokio::test]
async fn the_admin_double_lists_identities_with_password_configs_like_the_real_kratos() {
    use cognito_bridge::config::KratosSettings;
    use cognito_bridge::kratos::{KratosAdmin, PasswordState};

    let real = Kratos::start(&MigrateHook::unused()).await;
    let double = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
    let hash = bcrypt::hash("Reconcile-Passw0rd", 4).unwrap();
    let configs = [
        json!({"use_password_migration_hook": true}),
        json!({"hashed_password": hash}),
        json!({"use_password_migration_hook": true}),
        json!({"hashed_password": hash}),
        json!({"use_password_migration_hook": true}),
    ];
    for (i, config) in configs.iter().enumerate() {
        let body = json!({
            "schema_id": "default",
            "traits": {"email": format!("list{i}@example.com")},
            "metadata_admin": {"cognito": {"sub": format!("sub-{i}")}},
            "credentials": {"password": {"config": config}},
        });
        let (status, answer) = real.create_identity(&body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        double.insert_existing(body);
    }
    // One created without credentials: Kratos still gives it a password credential (for its
    // identifier), with an empty config.
    let bare = json!({
        "schema_id": "default",
        "traits": {"email": "bare@example.com"},
        "metadata_admin": {"cognito": {"sub": "sub-bare"}},
    });
    assert_eq!(real.create_identity(&bare).await.0, StatusCode::CREATED);
    double.insert_existing(bare);

    let read_all = |admin_url: String| async move {
        let client = KratosAdmin::new(&KratosSettings {
            admin_url: url::Url::parse(&admin_url).unwrap(),
            ..KratosSettings::default()
        })
        .unwrap();
        let mut states = std::collections::BTreeMap::new();
        let mut token: Option<String> = None;
        for _ in 0..10 {
            let page = client
                .identities_page(token.as_deref(), 2, false)
                .await
                .unwrap();
            for identity in page.identities {
                states.insert(identity.cognito_sub.unwrap(), identity.password);
            }
            match page.next_token {
                Some(next) => token = Some(next),
                None => return states,
            }
        }
        panic!("more pages than 6 identities in pages of 2 make");
    };
    let from_real = read_all(real.admin_url.to_string()).await;
    let from_double = read_all(double.url.clone()).await;
    assert_eq!(from_real.len(), 6, "{from_real:?}");
    assert_eq!(from_real["sub-1"], PasswordState::Hash);
    assert_eq!(from_real["sub-0"], PasswordState::NoHash { flagged: true });
    assert_eq!(
        from_real["sub-bare"],
        PasswordState::NoHash { flagged: false }
    );
    assert_eq!(from_double, from_real);
}

/// `PUT /admin/identities/{id}` (the write of `finalize` and the capture): the same PUTs, one
/// after the other, to the same identity in the real Kratos v1.3.1 and in the double; each must
/// answer the same status and leave the same identity behind (what a GET with the password
/// config shows: the fields both lines have, addresses aside, which the double does not derive).
#[tokio::test]
async fn the_admin_double_replaces_identities_on_put_like_the_real_kratos() {
    let real = Kratos::start(&MigrateHook::unused()).await;
    let double = KratosAdminDouble::start(AdminDoubleOptions {
        identity_schema: Some(example_identity_schema()),
        ..AdminDoubleOptions::default()
    })
    .await;
    let traits = json!({"email": "put@example.com", "name": {"first": "Put"}});
    let created = json!({
        "schema_id": "default",
        "traits": traits,
        "metadata_public": {"plan": "gold"},
        "metadata_admin": {"cognito": {"sub": "sub-put", "username": "put"}},
        "credentials": {"password": {"config": {"use_password_migration_hook": true}}},
    });
    let (status, answer) = real.create_identity(&created).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let real_id = answer["id"].as_str().unwrap().to_owned();
    let double_id = double.insert_existing(created.clone());
    // Another identity, whose e-mail the PUT below tries to take.
    let other = json!({"schema_id": "default", "traits": {"email": "other@example.com"}});
    assert_eq!(real.create_identity(&other).await.0, StatusCode::CREATED);
    double.insert_existing(other);

    let hash = bcrypt::hash("Put-Passw0rd-1", 4).unwrap();
    let body = |traits: &Value, config: Option<Value>| {
        let mut body = json!({
            "schema_id": "default",
            "state": "active",
            "traits": traits,
            "metadata_public": {"plan": "gold"},
            "metadata_admin": {"cognito": {"sub": "sub-put", "username": "put"}},
        });
        if let Some(config) = config {
            body["credentials"] = json!({"password": {"config": config}});
        }
        body
    };
    let without = |mut body: Value, field: &str| {
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let unknown = crate::doubles::kratos_admin::uuid_v4();
    let scenarios: Vec<(&str, Option<&str>, Value)> = vec![
        (
            "a hash, every field echoed",
            None,
            body(&traits, Some(json!({"hashed_password": hash}))),
        ),
        (
            "metadata_public and credentials left out: one cleared, the other kept",
            None,
            without(body(&traits, None), "metadata_public"),
        ),
        (
            "the flag again",
            None,
            body(&traits, Some(json!({"use_password_migration_hook": true}))),
        ),
        (
            "a hash of no known format",
            None,
            body(&traits, Some(json!({"hashed_password": "not-a-hash"}))),
        ),
        (
            "an empty password config",
            None,
            body(&traits, Some(json!({}))),
        ),
        (
            "inactive, with an empty schema_id (kept)",
            None,
            json!({"schema_id": "", "state": "inactive", "traits": traits}),
        ),
        (
            "traits the identity schema refuses",
            None,
            body(&json!({"name": {"first": "No Mail"}}), None),
        ),
        (
            "another identity's e-mail",
            None,
            body(&json!({"email": "other@example.com"}), None),
        ),
        (
            "an unknown id",
            Some(unknown.as_str()),
            body(&traits, Some(json!({"hashed_password": hash}))),
        ),
    ];

    let client = reqwest::Client::new();
    let put = |admin_url: String, id: String, body: Value| {
        let client = client.clone();
        async move {
            let response = client
                .put(format!(
                    "{}/admin/identities/{id}",
                    admin_url.trim_end_matches('/')
                ))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            (status, answer["error"]["code"].clone())
        }
    };
    let get = |admin_url: String, id: String| {
        let client = client.clone();
        async move {
            client
                .get(format!(
                    "{}/admin/identities/{id}?include_credential=password",
                    admin_url.trim_end_matches('/')
                ))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let shown = |identity: &Value| {
        fields_and_password(identity, &identity["credentials"]["password"]["config"])
    };
    let mut differences = Vec::new();
    let mut statuses = Vec::new();
    for (what, id, body) in scenarios {
        let real_answer = put(
            real.admin_url.to_string(),
            id.unwrap_or(&real_id).to_owned(),
            body.clone(),
        )
        .await;
        let double_answer = put(
            double.url.clone(),
            id.unwrap_or(&double_id).to_owned(),
            body,
        )
        .await;
        let real_now = shown(&get(real.admin_url.to_string(), real_id.clone()).await);
        let double_now = shown(&get(double.url.clone(), double_id.clone()).await);
        println!("{what}: real {real_answer:?} {real_now}, double {double_answer:?}");
        if (&real_answer, &real_now) != (&double_answer, &double_now) {
            differences.push(format!(
                "{what}: real Kratos {real_answer:?} {real_now:#}, the double {double_answer:?} \
                 {double_now:#}"
            ));
        }
        statuses.push(real_answer.0);
    }
    assert!(differences.is_empty(), "{differences:#?}");
    // What the real Kratos answered, so the comparison above is about these paths.
    assert_eq!(statuses, [200, 200, 200, 400, 400, 200, 400, 409, 404]);
    assert_eq!(double.put_calls(), 9);
}
