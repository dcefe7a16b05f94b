//! `import`: moto or the fast directory fake as Cognito, the Kratos admin double as Kratos,
//! SQLite and Postgres as the store.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use cognito_bridge::cognito::directory::Backoff;
use cognito_bridge::domain::UserState;
use cognito_bridge::import::{ImportError, ImportOptions, LeaseTiming};
use cognito_bridge::store::{LeaseClaim, RunStatus};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::doubles::cognito_directory_fake::{
    CognitoDirectoryFake, DirectoryOptions, synthetic_email, synthetic_sub, synthetic_tenant,
    synthetic_username,
};
use crate::doubles::kratos_admin::{AdminDoubleOptions, KratosAdminDouble};
use crate::helpers::import::{fake_world, import_settings, open_store, resume, run_import};
use crate::helpers::{AppOptions, Backend, TestDatabase, assert_match, spawn_app};
use crate::moto::{self, Pool, SeedUser};

fn dry_run() -> ImportOptions {
    ImportOptions {
        dry_run: true,
        ..ImportOptions::default()
    }
}

fn fast_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
        ..Backoff::default()
    }
}

/// See [`KratosAdminDouble::assert_no_contract_violations`]: it also fails when nothing was
/// checked, so that it cannot pass because the contract could not be loaded.
fn assert_no_contract_violations(kratos: &KratosAdminDouble) {
    kratos.assert_no_contract_violations();
}

const SEEDED: usize = 260;

fn disabled(i: usize) -> bool {
    i % 50 == 7
}

/// A moto pool of 260 users (five pages): usernames that are not the e-mail, custom
/// attributes, groups, some disabled, some in FORCE_CHANGE_PASSWORD.
async fn seeded_pool() -> Pool {
    let pool = Pool::create_with_custom_attributes(false).await;
    pool.create_group("admins").await;
    pool.create_group("beta").await;
    let pool_ref = &pool;
    futures_util::stream::iter(0..SEEDED)
        .map(|i| async move {
            let user = SeedUser::numbered(i);
            pool_ref.add_seed_user(&user).await;
            if i % 10 == 0 {
                pool_ref.add_to_group(&user.username, "admins").await;
            }
            if i % 3 == 0 {
                pool_ref.add_to_group(&user.username, "beta").await;
            }
            if disabled(i) {
                pool_ref.disable(&user.username).await;
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    pool
}

const MAPPED_TRAITS: &str = "[import]\nlist_rate = 30\nbatch_size = 100\ngroups_trait = \"groups\"\n\
     [import.traits]\nemail = \"email\"\n\"name.first\" = \"given_name\"\ntenant = \"custom:tenant\"\n";

on_both_backends!(
    a_full_import_creates_every_user_once_and_a_rerun_is_a_delta_sync,
    the_hook_finds_imported_users_by_email_when_the_username_differs,
);

async fn a_full_import_creates_every_user_once_and_a_rerun_is_a_delta_sync(backend: Backend) {
    let pool = seeded_pool().await;
    let kratos = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
    let database = TestDatabase::new(backend).await;
    let settings = import_settings(
        &database.url,
        &moto::endpoint().await,
        &pool.id,
        &kratos.url,
        MAPPED_TRAITS,
    );

    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary:?}");
    assert_eq!(summary.counters.seen, SEEDED as i64);
    assert_eq!(summary.counters.created, SEEDED as i64);
    assert_eq!(
        (
            summary.counters.linked,
            summary.counters.skipped,
            summary.counters.failed
        ),
        (0, 0, 0)
    );
    // 260 users at ListUsers's 60 per page: four full pages and one of 20.
    assert_eq!(summary.counters.pages, 5, "{summary:?}");
    assert_no_contract_violations(&kratos);
    let batches = kratos.batch_sizes();
    assert_eq!(batches.iter().sum::<usize>(), SEEDED, "{batches:?}");
    assert!(
        batches.iter().all(|size| (1..=100).contains(size)),
        "{batches:?}"
    );

    // Every user exactly once, flagged, linked by sub, traits and state mapped.
    let identities = kratos.identities();
    assert_eq!(identities.len(), SEEDED);
    let by_username: HashMap<String, &Value> = identities
        .iter()
        .map(|identity| {
            let username = identity["metadata_admin"]["cognito"]["username"]
                .as_str()
                .unwrap()
                .to_owned();
            (username, identity)
        })
        .collect();
    assert_eq!(by_username.len(), SEEDED, "one identity per Cognito user");
    let external_ids: HashSet<&str> = identities
        .iter()
        .map(|identity| identity["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(external_ids.len(), SEEDED);

    let store = open_store(&database).await;
    for i in [0, 3, 4, 7, 30, 57, 259] {
        let seed = SeedUser::numbered(i);
        let identity = by_username[&seed.username];
        assert_eq!(identity["external_id"], pool.sub_of(&seed.username).await);
        assert_eq!(
            identity["credentials"]["password"]["config"]["use_password_migration_hook"],
            true
        );
        assert_eq!(identity["traits"]["email"], seed.email);
        assert_eq!(identity["traits"]["name"]["first"], seed.given_name);
        assert_eq!(
            identity["traits"].get("tenant").and_then(Value::as_str),
            seed.tenant.as_deref(),
            "{i}"
        );
        let mut groups = Vec::new();
        if i % 10 == 0 {
            groups.push("admins");
        }
        if i % 3 == 0 {
            groups.push("beta");
        }
        assert_eq!(identity["traits"]["groups"], json!(groups), "{i}");
        assert_eq!(
            identity["state"],
            if disabled(i) { "inactive" } else { "active" },
            "{i}"
        );
        assert_eq!(
            identity["verifiable_addresses"][0],
            json!({
                "value": seed.email.to_lowercase(),
                "verified": seed.email_verified,
                "via": "email",
                "status": if seed.email_verified { "completed" } else { "pending" },
            })
        );
        assert_eq!(
            identity["metadata_admin"]["cognito"]["user_status"],
            if seed.password.is_some() {
                "CONFIRMED"
            } else {
                "FORCE_CHANGE_PASSWORD"
            }
        );

        let row = store.user(&seed.username).await.unwrap().expect("a row");
        let expected_state = if disabled(i) {
            UserState::Inactive
        } else {
            UserState::Pending
        };
        assert_eq!(row.state, expected_state, "{i}");
        assert_eq!(row.external_id.as_deref(), identity["external_id"].as_str());
        assert_eq!(row.kratos_identity_id.as_deref(), identity["id"].as_str());
    }
    let progress = store.progress().await.unwrap();
    let disabled_count = (0..SEEDED).filter(|i| disabled(*i)).count() as i64;
    assert_eq!(progress.total, SEEDED as i64);
    assert_eq!(progress.states["inactive"], disabled_count);
    assert_eq!(progress.states["pending"], SEEDED as i64 - disabled_count);

    // Rerun: the delta sync touches Kratos for nobody.
    let writes = kratos.write_calls();
    let lookups = kratos.lookup_calls();
    let rerun = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(rerun.counters.skipped, SEEDED as i64, "{rerun:?}");
    assert_eq!((rerun.counters.created, rerun.counters.linked), (0, 0));
    assert_eq!(kratos.write_calls(), writes);
    assert_eq!(kratos.lookup_calls(), lookups);

    // One new Cognito user: exactly one create.
    let newcomer = SeedUser::numbered(SEEDED);
    pool.add_seed_user(&newcomer).await;
    let delta = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(delta.counters.created, 1, "{delta:?}");
    assert_eq!(delta.counters.skipped, SEEDED as i64);
    assert_eq!(kratos.creates(), SEEDED + 1);
    assert_eq!(kratos.write_calls(), writes + 1);
    assert!(
        kratos
            .identity_by_external_id(&pool.sub_of(&newcomer.username).await)
            .is_some()
    );

    let runs = store.import_runs(10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|run| run.status == RunStatus::Completed));
    assert_eq!(runs[0].counters.created, 1);
    assert_no_contract_violations(&kratos);
}

async fn the_hook_finds_imported_users_by_email_when_the_username_differs(backend: Backend) {
    let pool = Pool::create(false).await;
    pool.add_user("member-4711", "Alice.Jones@Example.com", "Corr3ct-Horse!")
        .await;
    pool.add_user("member-4712", "bob@example.com", "Bob-Passw0rd!")
        .await;
    let app = spawn_app(AppOptions::for_pool(backend, &pool).await).await;
    let kratos = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
    let settings = import_settings(
        &app.database.url,
        &moto::endpoint().await,
        &pool.id,
        &kratos.url,
        "",
    );
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.counters.created, 2, "{summary:?}");

    // Kratos sends the e-mail as typed; Cognito only knows `member-4711` by that username.
    let answer = app
        .login("  alice.JONES@example.com", "Corr3ct-Horse!")
        .await;
    assert_match(&answer);
    let row = app.store.user("member-4711").await.unwrap().unwrap();
    assert_eq!(row.state, UserState::Migrated);
    assert_eq!(row.migrated_via.as_deref(), Some("hook"));
    let identity = kratos.identity_by_external_id(row.external_id.as_deref().unwrap());
    assert_eq!(
        identity.unwrap()["id"].as_str(),
        row.kratos_identity_id.as_deref()
    );
    // The other user is untouched.
    let other = app.store.user("member-4712").await.unwrap().unwrap();
    assert_eq!(other.state, UserState::Pending);

    // Upgrading past the binding rule forgets every stored e-mail (migration
    // `..._binding_and_claims`); the next import, a delta sync that skips both users, writes
    // the verified ones back, so Bob is found by his e-mail again.
    execute_sql(&app.database, "UPDATE users SET email_normalized = NULL").await;
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.counters.skipped, 2, "{summary:?}");
    assert_match(&app.login("Bob@Example.com", "Bob-Passw0rd!").await);
    let bob = app.store.user("member-4712").await.unwrap().unwrap();
    assert_eq!(bob.state, UserState::Migrated);
}

on_both_backends!(a_crashed_import_resumes_without_duplicates);

async fn a_crashed_import_resumes_without_duplicates(backend: Backend) {
    let (_cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions::with_users(600),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 100\n",
    )
    .await;
    kratos.fail_patches_from(3, 500);
    let error = run_import(&settings, ImportOptions::default())
        .await
        .unwrap_err();
    let ImportError::Interrupted { run_id, .. } = &error else {
        panic!("expected an interrupted run: {error}");
    };
    assert!(error.to_string().contains("--resume"), "{error}");
    assert!(error.to_string().contains("500"), "{error}");
    assert_eq!(kratos.creates(), 200, "two batches went through");

    let store = open_store(&database).await;
    let run = store.latest_real_import_run().await.unwrap().unwrap();
    assert_eq!(run.id, *run_id);
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(run.counters.created, 200, "{run:?}");
    assert!(run.next_token.is_some());
    assert_eq!(store.progress().await.unwrap().total, 200);

    // Kratos had created one more before the crash, unknown to us: resume links it.
    let straggler = kratos
        .identities()
        .into_iter()
        .next()
        .map(|mut body| {
            let i = 250;
            body.as_object_mut().unwrap().remove("id");
            body["external_id"] = json!(synthetic_sub(i));
            body["metadata_admin"]["cognito"]["username"] = json!(synthetic_username(i));
            body
        })
        .unwrap();
    let straggler_id = kratos.insert_existing(straggler);

    kratos.heal();
    let summary = run_import(&settings, resume()).await.unwrap();
    assert_eq!(summary.run_id, *run_id, "the same run continues");
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.counters.seen, 600, "{summary:?}");
    assert_eq!(summary.counters.linked, 1, "{summary:?}");
    assert_eq!(summary.counters.created + summary.counters.linked, 600);

    let identities = kratos.identities();
    assert_eq!(identities.len(), 600, "no duplicates in Kratos");
    let unique: HashSet<&str> = identities
        .iter()
        .map(|identity| identity["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(unique.len(), 600);
    let row = store.user(&synthetic_username(250)).await.unwrap().unwrap();
    assert_eq!(
        row.kratos_identity_id.as_deref(),
        Some(straggler_id.as_str())
    );
    assert_eq!(store.progress().await.unwrap().total, 600);

    // Nothing left to resume.
    let error = run_import(&settings, resume()).await.unwrap_err();
    assert!(matches!(error, ImportError::NothingToResume(_)), "{error}");
    assert_no_contract_violations(&kratos);
}

on_both_backends!(a_resumed_run_counts_each_failed_user_once);

/// Users Kratos refused before the interruption are retried by `--resume`: one that fails
/// again stays one failure of the run, one that now succeeds is no failure any more.
async fn a_resumed_run_counts_each_failed_user_once(backend: Backend) {
    let (_cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions::with_users(180),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 50\n",
    )
    .await;
    // All five are in the first batch (users 0..49), which is committed while its page
    // (users 0..59) is not: --resume lists that page again.
    let fail_again = [3, 10, 40];
    let recover = [5, 20];
    kratos.refuse_items(fail_again.iter().chain(&recover).map(|i| synthetic_sub(*i)));
    kratos.fail_patches_from(2, 500);
    let error = run_import(&settings, ImportOptions::default())
        .await
        .unwrap_err();
    let ImportError::Interrupted { run_id, .. } = error else {
        panic!("expected an interrupted run: {error}");
    };
    let store = open_store(&database).await;
    let run = store.latest_real_import_run().await.unwrap().unwrap();
    assert_eq!(
        run.counters.pages, 0,
        "the first page is not covered: {run:?}"
    );
    assert_eq!((run.counters.created, run.counters.failed), (45, 5));
    assert_eq!(store.import_failures(run_id, 100).await.unwrap().len(), 5);

    kratos.heal();
    kratos.accept_items(recover.iter().map(|i| synthetic_sub(*i)));
    let summary = run_import(&settings, resume()).await.unwrap();
    assert_eq!(summary.run_id, run_id);
    assert_eq!(summary.status, RunStatus::Completed);
    let counters = summary.counters;
    assert_eq!(
        (counters.seen, counters.created, counters.failed),
        (180, 177, 3),
        "{summary:?}"
    );
    assert!(
        summary.render().contains("3 user(s) failed"),
        "{}",
        summary.render()
    );
    assert_eq!(kratos.creates(), 177);

    let mut failed: Vec<String> = store
        .import_failures(run_id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|failure| failure.cognito_username)
        .collect();
    failed.sort();
    let expected: Vec<String> = fail_again.iter().map(|i| synthetic_username(*i)).collect();
    assert_eq!(
        failed, expected,
        "each failed user once, the recovered ones gone"
    );
    let run = store.latest_real_import_run().await.unwrap().unwrap();
    assert_eq!(
        run.counters, counters,
        "the stored run says what the summary says"
    );
    for i in recover {
        assert!(store.user(&synthetic_username(i)).await.unwrap().is_some());
    }
    assert_no_contract_violations(&kratos);
}

on_both_backends!(a_batch_whose_conflicts_cannot_be_looked_up_is_not_counted);

/// A batch interrupted while its conflicts are looked up is not committed, so it must not be
/// counted either: --resume sends its users again (the created ones come back as conflicts,
/// linked) and would count them twice.
async fn a_batch_whose_conflicts_cannot_be_looked_up_is_not_counted(backend: Backend) {
    let (_cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions::with_users(120),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 50\n",
    )
    .await;
    // User 5 already has an identity: the first batch has one conflict to look up.
    let mut existing = json!({
        "schema_id": "default",
        "traits": {"email": "user.5@example.com"},
        "external_id": synthetic_sub(5),
    });
    existing["metadata_admin"] = json!({"cognito": {"username": synthetic_username(5)}});
    kratos.insert_existing(existing);
    kratos.fail_lookups(500);
    let error = run_import(&settings, ImportOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, ImportError::Interrupted { .. }), "{error}");
    assert_eq!(kratos.creates(), 49, "Kratos created them all the same");
    let store = open_store(&database).await;
    let run = store.latest_real_import_run().await.unwrap().unwrap();
    assert_eq!(
        store.progress().await.unwrap().total,
        0,
        "nothing committed"
    );
    assert_eq!(
        (run.counters.created, run.counters.linked),
        (0, 0),
        "the run counts what it committed: {run:?}"
    );

    kratos.heal();
    let summary = run_import(&settings, resume()).await.unwrap();
    let counters = summary.counters;
    assert_eq!(
        (counters.seen, counters.created, counters.linked),
        (120, 70, 50),
        "{summary:?}"
    );
    assert_eq!(kratos.creates(), 119);
    assert_eq!(store.progress().await.unwrap().total, 120);
}

on_both_backends!(the_migration_counts_each_failed_user_once_in_earlier_runs);

/// Runs resumed before failures were one row per user: the migration keeps each user's
/// latest failure, drops those the run imported after all, and recounts `failed`.
async fn the_migration_counts_each_failed_user_once_in_earlier_runs(backend: Backend) {
    use sqlx::Connection;
    let database = TestDatabase::new(backend).await;
    let statements = [
        "INSERT INTO import_runs (dry_run, status, started_at, updated_at, failed) \
         VALUES (false, 'completed', '2026-11-30T10:00:00Z', '2026-11-30T10:00:00Z', 4), \
                (true, 'completed', '2026-11-30T11:00:00Z', '2026-11-30T11:00:00Z', 2)",
        "INSERT INTO import_failures (run_id, at, cognito_username, status, reason) VALUES \
         (1, '2026-11-30T10:00:00Z', 'again', 400, 'first'), \
         (1, '2026-11-30T10:00:00Z', 'recovered', 400, 'once'), \
         (1, '2026-11-30T10:05:00Z', 'again', 400, 'latest'), \
         (1, '2026-11-30T10:05:00Z', 'other', 400, 'once')",
        "INSERT INTO users (cognito_username, username_normalized, external_id, \
                            kratos_identity_id, import_run_id, created_at, updated_at) \
         VALUES ('recovered', 'recovered', 'sub-r', 'id-r', 1, \
                 '2026-11-30T10:05:00Z', '2026-11-30T10:05:00Z')",
    ];
    let before = 20261201000100;
    let sqlite = || sqlx::migrate!("./migrations/sqlite");
    let postgres = || sqlx::migrate!("./migrations/postgres");
    match backend {
        Backend::Sqlite => {
            let mut connection =
                sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", database.url))
                    .await
                    .unwrap();
            let mut older = sqlite();
            older.migrations = older
                .migrations
                .iter()
                .filter(|migration| migration.version < before)
                .cloned()
                .collect();
            older.run(&mut connection).await.unwrap();
            for statement in statements {
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
            sqlite().run(&mut connection).await.unwrap();
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
            let mut older = postgres();
            older.migrations = older
                .migrations
                .iter()
                .filter(|migration| migration.version < before)
                .cloned()
                .collect();
            older.run(&mut connection).await.unwrap();
            for statement in statements {
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
            postgres().run(&mut connection).await.unwrap();
        }
    }
    let store = open_store(&database).await;
    let failures: Vec<(String, String)> = store
        .import_failures(1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|failure| (failure.cognito_username, failure.reason))
        .collect();
    assert_eq!(
        failures,
        [
            ("again".to_owned(), "latest".to_owned()),
            ("other".to_owned(), "once".to_owned())
        ]
    );
    let runs = store.import_runs(10).await.unwrap();
    let failed: Vec<(i64, i64)> = runs
        .iter()
        .map(|run| (run.id, run.counters.failed))
        .collect();
    assert_eq!(failed, [(2, 2), (1, 2)], "a dry run keeps its count");
}

#[tokio::test]
async fn throttling_slows_the_import_down_and_it_completes() {
    let list_rate = 20.0;
    let (cognito, kratos, _database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions {
            throttle_first: 4,
            ..DirectoryOptions::with_users(600)
        },
        AdminDoubleOptions::default(),
        &format!("[import]\nlist_rate = {list_rate}\n"),
    )
    .await;
    let summary = run_import(
        &settings,
        ImportOptions {
            backoff: fast_backoff(),
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(summary.counters.created, 600, "{summary:?}");
    assert_eq!(cognito.throttled_calls(), 4);
    let calls = cognito.list_users_calls();
    assert_eq!(calls.len(), 10 + 4);
    assert_rate_within(&calls, list_rate, 1);
    // After each throttled answer the next call waits longer than the rate's spacing.
    let spacing = Duration::from_secs_f64(1.0 / list_rate);
    for pair in calls[..5].windows(2) {
        assert!(
            pair[1] - pair[0] > spacing,
            "no backoff after a throttled call: {:?}",
            pair[1] - pair[0]
        );
    }
    assert_eq!(kratos.creates(), 600);
}

/// No window of one second holds more calls than `rate` plus `burst`.
fn assert_rate_within(calls: &[Instant], rate: f64, burst: usize) {
    let allowed = rate.floor() as usize + burst;
    for (i, start) in calls.iter().enumerate() {
        let in_window = calls[i..]
            .iter()
            .take_while(|at| **at - *start < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= allowed,
            "{in_window} calls within one second; the limit is {rate}/s plus {burst}"
        );
    }
}

#[tokio::test]
async fn the_list_rate_holds_without_throttling() {
    let list_rate = 12.0;
    let (cognito, _kratos, _database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions::with_users(60 * 30),
        AdminDoubleOptions::default(),
        &format!("[import]\nlist_rate = {list_rate}\nbatch_size = 1000\n"),
    )
    .await;
    let started = Instant::now();
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.counters.created, 1800);
    let calls = cognito.list_users_calls();
    assert_eq!(calls.len(), 30);
    assert_rate_within(&calls, list_rate, 1);
    // 30 pages at 12/s cannot take less than 29/12 s.
    assert!(started.elapsed() >= Duration::from_secs_f64(29.0 / list_rate));
}

#[tokio::test]
async fn persistent_throttling_interrupts_the_run_with_a_clear_reason() {
    let (cognito, kratos, database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions {
            throttle_first: 1000,
            ..DirectoryOptions::with_users(100)
        },
        AdminDoubleOptions::default(),
        "",
    )
    .await;
    let error = run_import(
        &settings,
        ImportOptions {
            backoff: Backoff {
                max_throttled: 3,
                ..fast_backoff()
            },
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ImportError::Interrupted { .. }), "{error}");
    assert!(error.to_string().contains("list_rate"), "{error}");
    assert_eq!(cognito.throttled_calls(), 3);
    assert_eq!(kratos.write_calls(), 0);
    let run = open_store(&database)
        .await
        .latest_real_import_run()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(run.error.unwrap().contains("throttling"));
}

/// An identity schema that wants the tenant to be `tenant-0` … `tenant-5` (synthetic user
/// `i` has `tenant-{i % 7}`, so every seventh is invalid) and an e-mail.
fn strict_schema() -> Value {
    json!({
        "$id": "https://schemas.example.com/customer.json",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "traits": {
                "type": "object",
                "properties": {
                    "email": {"type": "string", "format": "email",
                              "ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}},
                    "tenant": {"type": "string", "pattern": "^tenant-[0-5]$"}
                },
                "required": ["email", "tenant"],
                "additionalProperties": false
            }
        }
    })
}

const TENANT_TRAITS: &str =
    "[import]\nlist_rate = 30\n[import.traits]\nemail = \"email\"\ntenant = \"custom:tenant\"\n";

#[tokio::test]
async fn a_dry_run_writes_nothing_and_reports_invalid_identities() {
    let users = 140;
    let (_cognito, kratos, database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions::with_users(users),
        AdminDoubleOptions {
            identity_schema: Some(strict_schema()),
            ..AdminDoubleOptions::default()
        },
        TENANT_TRAITS,
    )
    .await;
    let summary = run_import(&settings, dry_run()).await.unwrap();
    let invalid = (0..users)
        .filter(|i| synthetic_tenant(*i) == "tenant-6")
        .count() as i64;
    assert_eq!(summary.counters.invalid, invalid, "{summary:?}");
    assert_eq!(summary.counters.created, users as i64 - invalid);
    assert_eq!(kratos.write_calls(), 0);
    assert_eq!(kratos.creates(), 0);
    assert_eq!(kratos.version_calls(), 0, "a dry run needs no admin API");
    let example = &summary.invalid[0];
    assert_eq!(example.cognito_username, synthetic_username(6));
    assert!(
        example
            .reasons
            .iter()
            .any(|reason| reason.contains("/traits/tenant")),
        "{example:?}"
    );
    assert!(
        !example
            .reasons
            .iter()
            .any(|reason| reason.contains("tenant-6")),
        "values stay out of the report: {example:?}"
    );
    let rendered = summary.render();
    assert!(rendered.contains("would be created"), "{rendered}");

    let store = open_store(&database).await;
    assert_eq!(store.progress().await.unwrap().total, 0, "no user rows");
    let runs = store.import_runs(5).await.unwrap();
    assert!(runs[0].dry_run);
    assert_eq!(runs[0].counters.invalid, invalid);
    assert!(store.latest_real_import_run().await.unwrap().is_none());
}

#[tokio::test]
async fn a_dry_run_reads_the_schema_file_when_kratos_is_not_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("identity.schema.json");
    std::fs::write(&schema_file, strict_schema().to_string()).unwrap();
    let cognito = CognitoDirectoryFake::start(DirectoryOptions::with_users(70)).await;
    let database = TestDatabase::new(Backend::Sqlite).await;
    let settings = import_settings(
        &database.url,
        &cognito.endpoint,
        &cognito.user_pool_id,
        &crate::doubles::cognito_auth_fake::unused_endpoint().await,
        &TENANT_TRAITS.replace(
            "list_rate = 30\n",
            &format!(
                "list_rate = 30\nschema_file = \"{}\"\n",
                schema_file.display()
            ),
        ),
    );
    let summary = run_import(&settings, dry_run()).await.unwrap();
    assert_eq!(summary.counters.invalid, 10, "{summary:?}");
    assert_eq!(summary.counters.created, 60);

    // Without the file, the schema comes from Kratos, which is down: a clear error.
    let settings = import_settings(
        &database.url,
        &cognito.endpoint,
        &cognito.user_pool_id,
        &crate::doubles::cognito_auth_fake::unused_endpoint().await,
        TENANT_TRAITS,
    );
    let error = run_import(&settings, dry_run()).await.unwrap_err();
    assert!(matches!(error, ImportError::Schema(_)), "{error}");
    assert!(error.to_string().contains("import.schema_file"), "{error}");
}

#[tokio::test]
async fn identities_kratos_refuses_are_recorded_and_the_run_goes_on() {
    let users = 140;
    let (_cognito, kratos, database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions::with_users(users),
        AdminDoubleOptions {
            identity_schema: Some(strict_schema()),
            ..AdminDoubleOptions::default()
        },
        TENANT_TRAITS,
    )
    .await;
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    let invalid = (0..users)
        .filter(|i| synthetic_tenant(*i) == "tenant-6")
        .count();
    assert_eq!(summary.status, RunStatus::Completed);
    assert_eq!(summary.counters.failed, invalid as i64, "{summary:?}");
    assert_eq!(kratos.creates(), users - invalid);
    let failure = &summary.failures[0];
    assert_eq!(failure.cognito_username, synthetic_username(6));
    assert_eq!(failure.status, Some(400));
    assert!(failure.reason.contains("tenant"), "{failure:?}");
    assert!(summary.render().contains("failed"), "{}", summary.render());

    let store = open_store(&database).await;
    assert!(store.user(&synthetic_username(6)).await.unwrap().is_none());
    let failures = store.import_failures(summary.run_id, 100).await.unwrap();
    assert_eq!(failures.len(), invalid);

    // A rerun retries exactly the failed users.
    let writes = kratos.write_calls();
    let rerun = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(rerun.counters.skipped, (users - invalid) as i64);
    assert_eq!(rerun.counters.failed, invalid as i64);
    assert_eq!(kratos.write_calls(), writes + 1);
}

/// `GET /admin/version` once per run; without a release version there, the lookup route's
/// JSON 404 tells v25.4.0+ (the double is that line): external ids as before, and the sub in
/// `metadata_admin` too.
#[tokio::test]
async fn the_kratos_line_is_read_once_per_run_or_probed_without_a_release_version() {
    for (version, probes) in [(Some("v26.2.0"), 0), (Some("master"), 1), (None, 1)] {
        let (_cognito, kratos, _database, settings) = fake_world(
            Backend::Sqlite,
            DirectoryOptions::with_users(120),
            AdminDoubleOptions {
                version: version.map(str::to_owned),
                ..AdminDoubleOptions::default()
            },
            "[import]\nlist_rate = 30\nbatch_size = 50\n",
        )
        .await;
        let summary = run_import(&settings, ImportOptions::default())
            .await
            .unwrap();
        assert_eq!(summary.counters.created, 120, "{version:?}: {summary:?}");
        assert_eq!(kratos.patch_calls(), 3, "{version:?}");
        assert_eq!(kratos.version_calls(), usize::from(version.is_some()));
        assert_eq!(kratos.lookup_calls(), probes, "{version:?}");
        for identity in kratos.identities() {
            assert!(identity["external_id"].is_string(), "{identity}");
            assert_eq!(
                identity["metadata_admin"]["cognito"]["sub"], identity["external_id"],
                "{identity}"
            );
        }
        assert_no_contract_violations(&kratos);
    }
}

#[tokio::test]
async fn a_limited_run_stops_and_resume_finishes_it() {
    let (_cognito, kratos, _database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions::with_users(300),
        AdminDoubleOptions::default(),
        "",
    )
    .await;
    let first = run_import(
        &settings,
        ImportOptions {
            limit: Some(130),
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(first.stopped_at_limit);
    assert_eq!(first.status, RunStatus::Interrupted);
    assert_eq!(first.counters.seen, 130);
    assert_eq!(kratos.creates(), 130);
    let rest = run_import(&settings, resume()).await.unwrap();
    assert_eq!(rest.run_id, first.run_id);
    assert_eq!(rest.status, RunStatus::Completed);
    assert_eq!(rest.counters.seen, 300);
    assert_eq!(kratos.creates(), 300);
}

#[tokio::test]
async fn the_admin_token_is_sent_and_a_wrong_one_stops_the_run() {
    let (cognito, kratos, database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions::with_users(70),
        AdminDoubleOptions {
            admin_token: Some("kratos-admin-secret".to_owned()),
            ..AdminDoubleOptions::default()
        },
        "[kratos]\nadmin_token = \"wrong-token\"\n[import]\nlist_rate = 30\n",
    )
    .await;
    let error = run_import(&settings, ImportOptions::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    assert!(!error.to_string().contains("wrong-token"), "{error}");
    assert_eq!(kratos.creates(), 0);

    let settings = import_settings(
        &database.url,
        &cognito.endpoint,
        &cognito.user_pool_id,
        &kratos.url,
        "[kratos]\nadmin_token = \"kratos-admin-secret\"\n[import]\nlist_rate = 30\n",
    );
    let summary = run_import(&settings, resume()).await.unwrap();
    assert_eq!(summary.counters.created, 70);
}

#[tokio::test]
async fn groups_come_from_list_groups_not_one_call_per_user() {
    let (cognito, kratos, _database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions {
            groups: 3,
            ..DirectoryOptions::with_users(200)
        },
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\ngroups_trait = \"roles\"\n",
    )
    .await;
    run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    let identity = kratos.identity_by_external_id(&synthetic_sub(4)).unwrap();
    assert_eq!(identity["traits"]["roles"], json!(["group-1"]));
    assert_eq!(cognito.calls("ListGroups"), 1);
    // 200 users in 3 groups: 67 + 67 + 66 members, two pages each.
    assert_eq!(cognito.calls("ListUsersInGroup"), 6);
    assert_eq!(cognito.calls("AdminGetUser"), 0);
}

#[tokio::test]
async fn identities_fit_the_example_identity_schema() {
    let (_cognito, kratos, _database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions {
            groups: 4,
            ..DirectoryOptions::with_users(130)
        },
        AdminDoubleOptions::default(),
        &format!(
            "[import]\nlist_rate = 30\ngroups_trait = \"groups\"\nschema_file = \"{}/kratos-hooks/identity.schema.json\"\n\
             [import.traits]\nemail = \"email\"\n\"name.first\" = \"given_name\"\n\"name.last\" = \"family_name\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .await;
    let summary = run_import(&settings, dry_run()).await.unwrap();
    assert_eq!(summary.counters.invalid, 0, "{:?}", summary.invalid);
    assert_eq!(summary.counters.created, 130);
    assert_eq!(kratos.write_calls(), 0);
}

#[tokio::test]
async fn a_new_database_links_every_identity_kratos_already_holds() {
    let (cognito, kratos, _database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions::with_users(130),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 50\n",
    )
    .await;
    run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(kratos.creates(), 130);

    // Our store is lost; Kratos answers every batch with a whole-request 409.
    let fresh = TestDatabase::new(Backend::Sqlite).await;
    let settings = import_settings(
        &fresh.url,
        &cognito.endpoint,
        &cognito.user_pool_id,
        &kratos.url,
        "[import]\nlist_rate = 30\nbatch_size = 50\n",
    );
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.counters.linked, 130, "{summary:?}");
    assert_eq!(summary.counters.created, 0);
    assert_eq!(kratos.creates(), 130, "no duplicates");
    assert_eq!(kratos.lookup_calls(), 130);
    let store = open_store(&fresh).await;
    let row = store.user(&synthetic_username(77)).await.unwrap().unwrap();
    let identity = kratos.identity_by_external_id(&synthetic_sub(77)).unwrap();
    assert_eq!(row.kratos_identity_id.as_deref(), identity["id"].as_str());
    assert_no_contract_violations(&kratos);
}

#[tokio::test]
async fn identities_imported_under_kratos_v1_3_are_linked_after_an_upgrade() {
    let (_cognito, kratos, database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions::with_users(20),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\n",
    )
    .await;
    // Users 0-4 were imported while Kratos was v1.3.x (no external id, the sub in
    // metadata_admin) into a store that is gone; someone else holds user 5's e-mail.
    let held: Vec<String> = (0..5)
        .map(|i| {
            kratos.insert_existing(json!({
                "schema_id": "default",
                "traits": {"email": synthetic_email(i)},
                "metadata_admin": {"cognito": {"sub": synthetic_sub(i), "username": synthetic_username(i)}},
            }))
        })
        .collect();
    kratos
        .insert_existing(json!({"schema_id": "default", "traits": {"email": synthetic_email(5)}}));

    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    let counters = &summary.counters;
    assert_eq!(
        (counters.created, counters.linked, counters.failed),
        (14, 5, 1),
        "{summary:?}"
    );
    assert_eq!(kratos.creates(), 14, "no duplicates");
    assert_eq!(kratos.lookup_calls(), 6, "by external id first");
    assert!(kratos.identifier_lookups() >= 6, "then by identifier");
    let store = open_store(&database).await;
    for (i, id) in held.iter().enumerate() {
        let row = store.user(&synthetic_username(i)).await.unwrap().unwrap();
        assert_eq!(row.kratos_identity_id.as_deref(), Some(id.as_str()));
    }
    assert!(store.user(&synthetic_username(5)).await.unwrap().is_none());
    assert_eq!(summary.failures[0].cognito_username, synthetic_username(5));
    assert_no_contract_violations(&kratos);
}

#[tokio::test]
async fn a_stale_page_token_on_resume_points_to_the_delta_sync() {
    use sqlx::Connection;
    let (_cognito, kratos, database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions::with_users(200),
        AdminDoubleOptions::default(),
        "",
    )
    .await;
    let first = run_import(
        &settings,
        ImportOptions {
            limit: Some(60),
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap();
    let mut connection = sqlx::SqliteConnection::connect(&database.url)
        .await
        .unwrap();
    sqlx::query("UPDATE import_runs SET next_token = 'expired' WHERE id = $1")
        .bind(first.run_id)
        .execute(&mut connection)
        .await
        .unwrap();
    let error = run_import(&settings, resume()).await.unwrap_err();
    assert!(error.to_string().contains("without --resume"), "{error}");

    // The way out works: a delta sync finishes the job without touching the first 60.
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.counters.skipped, 60, "{summary:?}");
    assert_eq!(summary.counters.created, 140);
    assert_eq!(kratos.creates(), 200);
}

/// Wait until `condition` holds, for at most ten seconds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_backends!(a_second_import_is_refused_while_one_runs);

async fn a_second_import_is_refused_while_one_runs(backend: Backend) {
    let (_cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions::with_users(150),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 100\n",
    )
    .await;
    kratos.hold_patches();
    let second = async {
        eventually("the first import's batch", || kratos.held_patches() == 1).await;
        for options in [ImportOptions::default(), resume()] {
            let refused =
                tokio::time::timeout(Duration::from_secs(10), run_import(&settings, options))
                    .await
                    .expect("refused at once, not queued behind the first import");
            let error = refused.unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("another import is running")
                    && message.contains("run 1 ")
                    && message.contains("started")
                    && message.contains(&format!("pid {}", std::process::id())),
                "{message}"
            );
        }
        assert_eq!(
            kratos.patch_calls(),
            1,
            "nothing sent by the refused imports"
        );
        let runs = open_store(&database).await.import_runs(10).await.unwrap();
        assert_eq!(
            runs.len(),
            1,
            "no run recorded for a refused import: {runs:?}"
        );
        assert_eq!(runs[0].status, RunStatus::Running);
        kratos.release_patches();
    };
    // One task, so the import future need not be `Send`.
    let (first, ()) = tokio::join!(run_import(&settings, ImportOptions::default()), second);
    assert_eq!(first.unwrap().counters.created, 150);
    // Once it has ended, the next import runs.
    let rerun = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(rerun.counters.skipped, 150, "{rerun:?}");
    assert_no_contract_violations(&kratos);
}

/// One statement on the test database, behind the store's back.
async fn execute_sql(database: &TestDatabase, statement: &str) {
    use sqlx::Connection;
    match database.backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&database.url)
                .await
                .unwrap();
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
    }
}

on_both_backends!(an_expired_lease_is_taken_over);

/// A killed import leaves its lease behind: it blocks the next import until it expires (by
/// the database's clock), then the next import takes it over.
async fn an_expired_lease_is_taken_over(backend: Backend) {
    let (_cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions::with_users(70),
        AdminDoubleOptions::default(),
        "",
    )
    .await;
    let store = open_store(&database).await;
    store.migrate().await.unwrap();
    let ghost = LeaseClaim {
        token: "ghost",
        holder: "gone-host, pid 4242",
        ttl: Duration::from_secs(1),
    };
    assert!(store.acquire_import_lease(&ghost).await.unwrap());
    let rival = LeaseClaim {
        token: "rival",
        ..ghost
    };
    assert!(!store.acquire_import_lease(&rival).await.unwrap(), "held");

    let error = run_import(&settings, ImportOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, ImportError::AlreadyRunning(_)), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("gone-host, pid 4242") && message.contains("starting"),
        "{message}"
    );
    assert_eq!(kratos.write_calls(), 0);
    assert!(store.import_runs(5).await.unwrap().is_empty());

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(store.import_lease().await.unwrap().unwrap().expired);
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.counters.created, 70, "{summary:?}");
    assert!(
        store.import_lease().await.unwrap().is_none(),
        "released at the end"
    );
    assert!(
        !store.renew_import_lease(&ghost, None).await.unwrap(),
        "the killed import's lease is gone"
    );
}

on_both_backends!(a_running_import_renews_its_lease_and_stops_when_it_is_lost);

async fn a_running_import_renews_its_lease_and_stops_when_it_is_lost(backend: Backend) {
    let (_cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions::with_users(200),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 100\n",
    )
    .await;
    let store = open_store(&database).await;
    let short = ImportOptions {
        lease: LeaseTiming {
            ttl: Duration::from_millis(600),
            heartbeat: Duration::from_millis(100),
        },
        ..ImportOptions::default()
    };
    kratos.hold_patches();
    let meanwhile = async {
        eventually("the first batch", || kratos.held_patches() == 1).await;
        // Held well past its ttl: the heartbeat keeps the lease.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let lease = store.import_lease().await.unwrap().expect("a lease");
        assert!(!lease.expired, "{lease:?}");
        assert_eq!(lease.run_id, Some(1));
        assert!(lease.heartbeat_at > lease.acquired_at, "{lease:?}");
        let error = run_import(&settings, ImportOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(error, ImportError::AlreadyRunning(_)), "{error}");

        // Another import takes the lease over (as after a stall longer than the ttl).
        execute_sql(
            &database,
            "UPDATE import_lease SET token = 'usurper', holder = 'elsewhere, pid 1'",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        kratos.release_patches();
    };
    let (outcome, ()) = tokio::join!(run_import(&settings, short), meanwhile);
    let error = outcome.unwrap_err();
    assert!(
        matches!(&error, ImportError::Interrupted { reason, .. } if reason.to_string().contains("lost the import lease")),
        "{error}"
    );
    assert_eq!(kratos.patch_calls(), 1, "no batch after the lease was lost");
    let run = store.latest_real_import_run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(
        run.counters.created, 100,
        "the batch in flight is committed"
    );
    let lease = store.import_lease().await.unwrap().expect("the usurper's");
    assert_eq!(
        lease.holder, "elsewhere, pid 1",
        "not released by the loser"
    );
}

on_both_backends!(
    federated_users_are_skipped_and_recovery_statuses_need_recovery_until_a_hook_match
);

/// README "What import does": a federated user (`EXTERNAL_PROVIDER`) is `skipped` (no
/// password to migrate); `RESET_REQUIRED`, `UNCONFIRMED` and `COMPROMISED` users are
/// `needs_recovery`, and a hook call that Cognito accepts still migrates them.
async fn federated_users_are_skipped_and_recovery_statuses_need_recovery_until_a_hook_match(
    backend: Backend,
) {
    const PASSWORD: &str = "Recovered-Horse-4";
    // User 96 is EXTERNAL_PROVIDER (`synthetic_status`); 49 is disabled.
    let federated = 96;
    let recovery = [
        (10, "RESET_REQUIRED"),
        (11, "UNCONFIRMED"),
        (12, "COMPROMISED"),
    ];
    let (_cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions {
            users: 100,
            statuses: recovery.into_iter().collect(),
            ..DirectoryOptions::default()
        },
        AdminDoubleOptions::default(),
        "",
    )
    .await;

    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary:?}");
    assert_no_contract_violations(&kratos);
    let store = open_store(&database).await;
    let state_of = async |i: usize| {
        store
            .user(&synthetic_username(i))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("user {i} has a row"))
            .state
    };
    assert_eq!(state_of(federated).await, UserState::Skipped);
    for (i, status) in recovery {
        assert_eq!(state_of(i).await, UserState::NeedsRecovery, "{status}");
    }
    assert_eq!(state_of(0).await, UserState::Pending, "a CONFIRMED user");
    assert_eq!(state_of(49).await, UserState::Inactive, "a disabled user");
    let progress = store.progress().await.unwrap();
    assert_eq!(progress.states["skipped"], 1, "{progress:?}");
    assert_eq!(progress.states["needs_recovery"], 3, "{progress:?}");

    // The hook, on the same database: Cognito accepts each one's password.
    let cognito = CognitoFake::start(FakeConfig::default()).await;
    for (i, _) in recovery {
        cognito.user(&synthetic_username(i), PASSWORD, Script::Authenticate);
    }
    let mut options = AppOptions::new(
        backend,
        &cognito.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    );
    options.shared_database = Some(database.url.clone());
    let app = spawn_app(options).await;
    for (i, status) in recovery {
        assert_match(&app.login(&synthetic_username(i), PASSWORD).await);
        let record = store.user(&synthetic_username(i)).await.unwrap().unwrap();
        assert_eq!(record.state, UserState::Migrated, "{status}");
        assert_eq!(record.migrated_via.as_deref(), Some("hook"), "{status}");
    }
    assert_eq!(cognito.total_calls(), recovery.len());
}

on_both_backends!(cognito_answering_5xx_stops_the_import_resumably);

/// README "import": when Cognito keeps answering 5xx while users are listed, the run stops
/// (interrupted, after `max_unavailable` tries) with its place kept, and `--resume` finishes
/// it without creating anyone twice.
async fn cognito_answering_5xx_stops_the_import_resumably(backend: Backend) {
    const USERS: usize = 3000;
    // 50 pages at 30/s: about 1.7 s of listing, time enough to make Cognito fail midway.
    let (cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions::with_users(USERS),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 500\n",
    )
    .await;
    let first = run_import(
        &settings,
        ImportOptions {
            backoff: Backoff {
                max_unavailable: 3,
                ..fast_backoff()
            },
            ..ImportOptions::default()
        },
    );
    let outage = async {
        eventually("two pages listed", || cognito.calls("ListUsers") >= 2).await;
        cognito.fail_list_users(true);
    };
    let (first, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(60), first), outage);
    let error = first.expect("the import stops").unwrap_err();
    assert!(matches!(error, ImportError::Interrupted { .. }), "{error}");
    assert_eq!(cognito.failed_list_users(), 3, "max_unavailable tries");
    let store = open_store(&database).await;
    let run = store.latest_real_import_run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted, "{run:?}");
    assert!(run.next_token.is_some(), "the place is kept: {run:?}");
    let created_before = kratos.creates();
    assert!(created_before < USERS, "the run stopped early");

    cognito.fail_list_users(false);
    let summary = run_import(&settings, resume()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary:?}");
    assert_eq!(kratos.creates(), USERS, "every user created exactly once");
    assert_no_contract_violations(&kratos);
}

/// README "import": a batch is also split so that its body stays under Kratos's 5 MB cap
/// (`PATCH /admin/identities` answers 413 above it), whatever `import.batch_size` says.
#[tokio::test]
async fn batches_are_split_under_kratoss_5_mb_cap() {
    const USERS: usize = 1200;
    // About 6 KB per identity: 1000 of them would be about 6 MB.
    let (_cognito, kratos, _database, settings) = fake_world(
        Backend::Sqlite,
        DirectoryOptions {
            users: USERS,
            padding: 6000,
            ..DirectoryOptions::default()
        },
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 1000\n[import.traits]\nemail = \"email\"\nbio = \"custom:bio\"\n",
    )
    .await;

    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary:?}");
    assert_eq!(summary.counters.created, USERS as i64, "{summary:?}");
    assert_eq!(kratos.creates(), USERS);
    // No 413 (the double records one as a contract violation) and no batch near 1000.
    assert_no_contract_violations(&kratos);
    let batches = kratos.batch_sizes();
    assert_eq!(batches.iter().sum::<usize>(), USERS, "{batches:?}");
    let most = 5 * 1024 * 1024 / 6000;
    assert!(
        batches.iter().all(|size| (1..=most).contains(size)),
        "a batch above {most} identities of 6 KB: {batches:?}"
    );
    assert!(batches.len() >= 2, "{batches:?}");
}

on_both_backends!(cognito_unreachable_stops_the_import_resumably);

/// README "import": when Cognito cannot be reached while users are listed (connections
/// refused), the run stops interrupted with its place kept, and `--resume` finishes it once
/// Cognito is back, creating nobody twice.
async fn cognito_unreachable_stops_the_import_resumably(backend: Backend) {
    const USERS: usize = 3000;
    let (mut cognito, kratos, database, settings) = fake_world(
        backend,
        DirectoryOptions::with_users(USERS),
        AdminDoubleOptions::default(),
        "[import]\nlist_rate = 30\nbatch_size = 500\n",
    )
    .await;
    let first = run_import(
        &settings,
        ImportOptions {
            backoff: Backoff {
                max_unavailable: 3,
                ..fast_backoff()
            },
            ..ImportOptions::default()
        },
    );
    let outage = async {
        eventually("two pages listed", || cognito.calls("ListUsers") >= 2).await;
        cognito.go_away().await;
    };
    let (first, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(60), first), outage);
    let error = first.expect("the import stops").unwrap_err();
    assert!(matches!(error, ImportError::Interrupted { .. }), "{error}");
    let store = open_store(&database).await;
    let run = store.latest_real_import_run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted, "{run:?}");
    assert!(run.next_token.is_some(), "the place is kept: {run:?}");
    assert!(kratos.creates() < USERS, "the run stopped early");

    cognito.come_back();
    let summary = run_import(&settings, resume()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Completed, "{summary:?}");
    assert_eq!(kratos.creates(), USERS, "every user created exactly once");
    assert_no_contract_violations(&kratos);
}
