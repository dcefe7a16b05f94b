//! `import` from a moto pool into the real Kratos v1.3.1 (DESIGN.md's Contract 3, legacy line):
//! no `external_id`, the sub in `metadata_admin.cognito.sub`, conflicts linked by identifier,
//! and batches that v1.3.1 rolled back after a conflict (answering `create` all the same)
//! checked and sent again, so nobody is lost, duplicated or counted as created when not.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use cognito_bridge::config::Settings;
use cognito_bridge::import::ImportOptions;
use cognito_bridge::store::{RunStatus, Store};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::import::{import_settings_with_public_url, open_store, resume, run_import};
use crate::helpers::{Backend, TestDatabase, serve_on_loopback};
use crate::moto::{self, Pool, SeedUser};
use crate::ory::{Kratos, MigrateHook};

/// The example identity schema's traits (`kratos-hooks/identity.schema.json`), in batches of
/// 40 so that a pool makes several.
const TRAITS: &str = "[import]\nlist_rate = 30\nbatch_size = 40\ngroups_trait = \"groups\"\n\
     [import.traits]\nemail = \"email\"\n\"name.first\" = \"given_name\"\n";

/// A moto pool of `users` seed users (username `seed-NNNN`, e-mail `Seed.N@Example.com`),
/// every seventh in group `admins`, user 5 disabled.
async fn seeded_pool(users: usize) -> Pool {
    let pool = Pool::create(false).await;
    pool.create_group("admins").await;
    let pool_ref = &pool;
    futures_util::stream::iter(0..users)
        .map(|i| async move {
            let user = SeedUser {
                tenant: None,
                ..SeedUser::numbered(i)
            };
            pool_ref.add_seed_user(&user).await;
            if i % 7 == 0 {
                pool_ref.add_to_group(&user.username, "admins").await;
            }
            if i == 5 {
                pool_ref.disable(&user.username).await;
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    pool
}

async fn settings_for(
    database: &TestDatabase,
    pool: &Pool,
    admin_url: &str,
    kratos: &Kratos,
) -> Settings {
    import_settings_with_public_url(
        &database.url,
        &moto::endpoint().await,
        &pool.id,
        admin_url,
        kratos.public_url.as_str(),
        TRAITS,
    )
}

/// Kratos's identities by their `metadata_admin.cognito.sub`; asserts each sub is held once
/// and that no identity carries an `external_id`.
async fn identities_by_sub(kratos: &Kratos) -> (HashMap<String, Value>, Vec<Value>) {
    let mut by_sub = HashMap::new();
    let mut others = Vec::new();
    for identity in kratos.identities().await {
        assert!(
            identity.get("external_id").is_none_or(Value::is_null),
            "{identity}"
        );
        match identity["metadata_admin"]["cognito"]["sub"].as_str() {
            Some(sub) => {
                let sub = sub.to_owned();
                if let Some(first) = by_sub.insert(sub.clone(), identity) {
                    panic!("two identities for sub {sub}: {first} and {}", by_sub[&sub]);
                }
            }
            None => others.push(identity),
        }
    }
    (by_sub, others)
}

/// Every user row of the store points at the identity Kratos holds for its sub.
async fn assert_rows_match(
    store: &dyn Store,
    pool: &Pool,
    by_sub: &HashMap<String, Value>,
    users: &[usize],
) {
    for &i in users {
        let username = SeedUser::numbered(i).username;
        let row = store
            .user(&username)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no row for {username}"));
        let sub = pool.sub_of(&username).await;
        assert_eq!(row.external_id.as_deref(), Some(sub.as_str()), "{username}");
        let identity = &by_sub[&sub];
        assert_eq!(
            row.kratos_identity_id.as_deref(),
            identity["id"].as_str(),
            "{username}"
        );
        assert_eq!(
            identity["metadata_admin"]["cognito"]["username"],
            username.as_str()
        );
    }
}

on_both_backends!(
    an_import_into_kratos_v1_3_1_stops_resumes_and_reruns_as_a_delta_sync,
    a_conflicting_email_in_kratos_v1_3_1_costs_only_its_own_user,
    a_crashed_import_into_kratos_v1_3_1_resumes_without_losses_or_duplicates,
);

async fn an_import_into_kratos_v1_3_1_stops_resumes_and_reruns_as_a_delta_sync(backend: Backend) {
    let users = 130;
    let pool = seeded_pool(users).await;
    let kratos = Kratos::start(&MigrateHook::unused()).await;
    assert_eq!(kratos.version().await, "v1.3.1");
    let database = TestDatabase::new(backend).await;
    let settings = settings_for(&database, &pool, kratos.admin_url.as_str(), &kratos).await;

    // Stopped at --limit, then resumed: the run completes with every user once.
    let first = run_import(
        &settings,
        ImportOptions {
            limit: Some(70),
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(first.stopped_at_limit, "{first:?}");
    assert_eq!((first.counters.seen, first.counters.created), (70, 70));
    assert_eq!(kratos.identities().await.len(), 70);
    let rest = run_import(&settings, resume()).await.unwrap();
    assert_eq!(rest.run_id, first.run_id);
    assert_eq!(rest.status, RunStatus::Completed, "{rest:?}");
    let counters = rest.counters;
    assert_eq!(
        (
            counters.seen,
            counters.created,
            counters.linked,
            counters.failed
        ),
        (users as i64, users as i64, 0, 0),
        "{rest:?}"
    );

    let (by_sub, others) = identities_by_sub(&kratos).await;
    assert_eq!(by_sub.len(), users, "every user exactly once");
    assert!(others.is_empty(), "{others:?}");
    let store = open_store(&database).await;
    assert_rows_match(store.as_ref(), &pool, &by_sub, &[0, 5, 7, 69, 70, 129]).await;
    let admin = &by_sub[&pool.sub_of("seed-0000").await];
    assert_eq!(
        admin["traits"],
        json!({"email": "Seed.0@Example.com", "name": {"first": "Seed0"}, "groups": ["admins"]})
    );
    let disabled = &by_sub[&pool.sub_of("seed-0005").await];
    assert_eq!(disabled["state"], "inactive");
    let flagged = kratos.identity(admin["id"].as_str().unwrap()).await;
    assert_eq!(
        flagged["credentials"]["password"]["config"]["use_password_migration_hook"], true,
        "{flagged}"
    );

    // A rerun is a delta sync: nothing new, nothing written.
    let rerun = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(rerun.status, RunStatus::Completed);
    assert_eq!(
        (
            rerun.counters.skipped,
            rerun.counters.created,
            rerun.counters.failed
        ),
        (users as i64, 0, 0),
        "{rerun:?}"
    );
    // A user added since is the delta.
    let late = SeedUser {
        tenant: None,
        ..SeedUser::numbered(users)
    };
    pool.add_seed_user(&late).await;
    let delta = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (delta.counters.skipped, delta.counters.created),
        (users as i64, 1),
        "{delta:?}"
    );
    let (by_sub, _) = identities_by_sub(&kratos).await;
    assert_eq!(by_sub.len(), users + 1);
}

async fn a_conflicting_email_in_kratos_v1_3_1_costs_only_its_own_user(backend: Backend) {
    let users = 100;
    let pool = seeded_pool(users).await;
    let kratos = Kratos::start(&MigrateHook::unused()).await;
    // Someone else signed up with user 13's e-mail (differently cased) before the import:
    // user 13's batch has a conflict, which v1.3.1 answers with a rollback of the whole
    // batch and `create` for the 39 others.
    let (status, squatter) = kratos
        .create_identity(&json!({
            "schema_id": "default",
            "traits": {"email": "seed.13@example.COM"},
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{squatter}");
    let database = TestDatabase::new(backend).await;
    let settings = settings_for(&database, &pool, kratos.admin_url.as_str(), &kratos).await;

    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary:?}");
    let counters = summary.counters;
    assert_eq!(
        (
            counters.seen,
            counters.created,
            counters.linked,
            counters.failed
        ),
        (users as i64, users as i64 - 1, 0, 1),
        "{summary:?}"
    );
    let failure = &summary.failures[0];
    assert_eq!(failure.cognito_username, "seed-0013");
    assert_eq!(failure.status, Some(409));
    assert!(failure.reason.contains("another identity"), "{failure:?}");

    let (by_sub, others) = identities_by_sub(&kratos).await;
    assert_eq!(by_sub.len(), users - 1, "every other user exactly once");
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["id"], squatter["id"]);
    assert!(!by_sub.contains_key(&pool.sub_of("seed-0013").await));
    let store = open_store(&database).await;
    assert!(store.user("seed-0013").await.unwrap().is_none());
    let everyone_else: Vec<usize> = (0..users).filter(|i| *i != 13).collect();
    assert_rows_match(store.as_ref(), &pool, &by_sub, &everyone_else).await;

    // A rerun retries the one failure and nothing else.
    let rerun = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (
            rerun.counters.skipped,
            rerun.counters.created,
            rerun.counters.failed
        ),
        (users as i64 - 1, 0, 1),
        "{rerun:?}"
    );
    assert_eq!(kratos.identities().await.len(), users);
}

async fn a_crashed_import_into_kratos_v1_3_1_resumes_without_losses_or_duplicates(
    backend: Backend,
) {
    let users = 150;
    let pool = seeded_pool(users).await;
    let kratos = Kratos::start(&MigrateHook::unused()).await;
    // Kratos stores the third batch, but the answer never reaches the import, and Kratos stays
    // unreachable for it: the run is interrupted with 80 users committed and 40 more in Kratos.
    let proxy = CrashingProxy::start(kratos.admin_url.as_str()).await;
    proxy.crash_from_patch(3);
    let database = TestDatabase::new(backend).await;
    let settings = settings_for(&database, &pool, &proxy.url, &kratos).await;

    let error = run_import(&settings, ImportOptions::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("--resume"), "{error}");
    let store = open_store(&database).await;
    let run = store.latest_real_import_run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(run.counters.created, 80, "{run:?}");
    let (in_kratos, _) = identities_by_sub(&kratos).await;
    assert_eq!(in_kratos.len(), 120, "the third batch reached Kratos");

    // Some of the unknown identities are gone again (an admin cleaned up): the resent batch
    // mixes conflicts with new users, which v1.3.1 rolls back, answering `create` anyway.
    let mut third_batch = Vec::new();
    for identity in in_kratos.values() {
        let username = identity["metadata_admin"]["cognito"]["username"]
            .as_str()
            .unwrap();
        if store.user(username).await.unwrap().is_none() {
            third_batch.push(identity);
        }
    }
    assert_eq!(third_batch.len(), 40);
    let removed: HashSet<String> = third_batch
        .iter()
        .take(10)
        .map(|identity| identity["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &removed {
        let response = kratos
            .client
            .delete(
                kratos
                    .admin_url
                    .join(&format!("admin/identities/{id}"))
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    proxy.heal();
    let summary = run_import(&settings, resume()).await.unwrap();
    assert_eq!(summary.run_id, run.id, "the same run continues");
    assert_eq!(summary.status, RunStatus::Completed, "{summary:?}");
    let counters = summary.counters;
    assert_eq!(counters.seen, users as i64, "{summary:?}");
    assert_eq!(counters.failed, 0, "{summary:?}");
    assert_eq!(
        counters.linked, 30,
        "the third batch's survivors are linked: {summary:?}"
    );
    assert_eq!(
        counters.created + counters.linked,
        users as i64,
        "{summary:?}"
    );

    let (by_sub, others) = identities_by_sub(&kratos).await;
    assert_eq!(by_sub.len(), users, "nobody lost, nobody twice");
    assert!(others.is_empty());
    assert_eq!(store.progress().await.unwrap().total, users as i64);
    let all: Vec<usize> = (0..users).collect();
    assert_rows_match(store.as_ref(), &pool, &by_sub, &all).await;
}

/// A loopback proxy in front of Kratos's admin API that can "crash": from the `nth`
/// `PATCH /admin/identities` (or another method's request) on, it answers 502; the `nth` itself
/// still reaches Kratos. It counts the requests it forwarded, by method.
pub(crate) struct CrashingProxy {
    pub(crate) url: String,
    state: Arc<Mutex<ProxyState>>,
    server: actix_web::dev::ServerHandle,
}

#[derive(Default)]
struct ProxyState {
    /// Requests of `method` seen (forwarded or not).
    patches: usize,
    crash_from: Option<usize>,
    method: Option<actix_web::http::Method>,
    forwarded: std::collections::HashMap<String, usize>,
}

impl Drop for CrashingProxy {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

impl CrashingProxy {
    pub(crate) async fn start(upstream: &str) -> Self {
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        let shared = (state.clone(), upstream, client);
        let (url, server) = serve_on_loopback(move |request: HttpRequest, body: web::Bytes| {
            let (state, upstream, client) = shared.clone();
            async move { forward(&state, &upstream, &client, request, body).await }
        });
        Self { url, state, server }
    }

    fn crash_from_patch(&self, nth: usize) {
        self.crash_from(actix_web::http::Method::PATCH, nth);
    }

    /// Crash from the `nth` request with `method` (counted from the proxy's start).
    pub(crate) fn crash_from(&self, method: actix_web::http::Method, nth: usize) {
        let mut state = self.state.lock().unwrap();
        state.method = Some(method);
        state.crash_from = Some(nth);
    }

    /// Requests with `method` that reached Kratos so far.
    pub(crate) fn forwarded(&self, method: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.forwarded.get(method).copied().unwrap_or(0)
    }

    pub(crate) fn heal(&self) {
        self.state.lock().unwrap().crash_from = None;
    }
}

async fn forward(
    state: &Mutex<ProxyState>,
    upstream: &str,
    client: &reqwest::Client,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (forward, crash) = {
        let mut state = state.lock().unwrap();
        let is_patch = state
            .method
            .as_ref()
            .unwrap_or(&actix_web::http::Method::PATCH)
            == request.method();
        if is_patch {
            state.patches += 1;
        }
        match state.crash_from {
            Some(from) if is_patch && state.patches == from => (true, true),
            Some(from) if is_patch && state.patches > from => (false, true),
            _ => (true, false),
        }
    };
    let gateway_error = || {
        HttpResponse::BadGateway()
            .content_type("application/json")
            .body(r#"{"error":{"code":502,"status":"Bad Gateway","message":"crashed proxy"}}"#)
    };
    if !forward {
        return gateway_error();
    }
    *state
        .lock()
        .unwrap()
        .forwarded
        .entry(request.method().to_string())
        .or_default() += 1;
    let target = format!("{upstream}{}", request.uri());
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).unwrap();
    let mut outgoing = client.request(method, target).body(body.to_vec());
    if let Some(content_type) = request.headers().get("content-type") {
        outgoing = outgoing.header("content-type", content_type.as_bytes());
    }
    let answer = outgoing.send().await.expect("Kratos answers the proxy");
    if crash {
        return gateway_error();
    }
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let bytes = answer.bytes().await.unwrap();
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type(content_type)
        .body(bytes)
}
