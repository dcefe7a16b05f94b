//! `reconcile` against the real Kratos v1.3.1 (a moto pool imported first, then passwords set,
//! identities deleted and created outside the bridge) and against the admin double for the
//! v25.4.0+ line: which rows move to `migrated` via `kratos`, what is reported, that a dry run
//! changes nothing, and that no hash is ever printed or logged.

use std::time::Duration;

use cognito_bridge::config::Settings;
use cognito_bridge::domain::UserState;
use cognito_bridge::import::ImportOptions;
use cognito_bridge::reconcile::{self, ReconcileFormat, ReconcileOptions, ReconcileSummary};
use cognito_bridge::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::doubles::kratos_admin::{AdminDoubleOptions, KratosAdminDouble};
use crate::helpers::bridge_output;
use crate::helpers::import::{
    import_settings, import_settings_with_public_url, open_store, run_import,
};
use crate::helpers::{Backend, TestDatabase, bridge_with_test_credentials};
use crate::moto::{self, Pool, SeedUser};
use crate::ory::{Kratos, MigrateHook};

/// A bcrypt hash Kratos accepts (cost 4: Kratos only checks the format at import).
fn bcrypt_hash() -> String {
    bcrypt::hash("Reconcile-Passw0rd", 4).unwrap()
}

/// Run SQL on the test database, as an operator or another version would have left it.
pub(crate) async fn execute(database: &TestDatabase, statements: &[&str]) {
    match database.backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&database.url)
                .await
                .unwrap();
            for statement in statements {
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
            for statement in statements {
                sqlx::query(statement)
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
        }
    }
}

async fn reconcile_run(settings: &Settings, dry_run: bool, page_size: usize) -> ReconcileSummary {
    reconcile::run(
        settings,
        ReconcileOptions {
            dry_run,
            page_size,
            ..ReconcileOptions::default()
        },
    )
    .await
    .unwrap()
}

fn usernames(examples: &[reconcile::Example]) -> Vec<&str> {
    let mut names: Vec<&str> = examples
        .iter()
        .map(|example| example.cognito_username.as_str())
        .collect();
    names.sort_unstable();
    names
}

async fn state_of(store: &dyn Store, username: &str) -> (UserState, Option<String>, bool) {
    let row = store.user(username).await.unwrap().unwrap();
    (row.state, row.migrated_via, row.migrated_at.is_some())
}

/// seed-0000..0006 imported; then, outside the bridge: 1 and 4 get a password in Kratos (4 is
/// `needs_recovery` with us), 2's identity is deleted, 3 is already migrated (via the hook),
/// 5 is disabled (inactive), 6 lost its identity id with us (found by its Cognito sub), a
/// stranger's identity appears, and a row without identity (`hook-only`) is there.
const USERS: usize = 7;

on_both_backends!(reconcile_against_kratos_v1_3_1_moves_the_users_kratos_has_a_password_for);

async fn reconcile_against_kratos_v1_3_1_moves_the_users_kratos_has_a_password_for(
    backend: Backend,
) {
    let pool = Pool::create(false).await;
    for i in 0..USERS {
        pool.add_seed_user(&SeedUser::numbered(i)).await;
    }
    pool.disable(&SeedUser::numbered(5).username).await;
    let kratos = Kratos::start(&MigrateHook::unused()).await;
    assert_eq!(kratos.version().await, "v1.3.1");
    let database = TestDatabase::new(backend).await;
    let settings = import_settings_with_public_url(
        &database.url,
        &moto::endpoint().await,
        &pool.id,
        kratos.admin_url.as_str(),
        kratos.public_url.as_str(),
        "",
    );
    let imported = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(imported.counters.created, USERS as i64, "{imported:?}");
    let store = open_store(&database).await;
    let identity_of = |i: usize| {
        let store = store.clone();
        async move {
            store
                .user(&SeedUser::numbered(i).username)
                .await
                .unwrap()
                .unwrap()
                .kratos_identity_id
                .unwrap()
        }
    };

    let hash = bcrypt_hash();
    kratos.set_password_hash(&identity_of(1).await, &hash).await;
    kratos.set_password_hash(&identity_of(4).await, &hash).await;
    kratos.set_password_hash(&identity_of(3).await, &hash).await;
    let gone = identity_of(2).await;
    kratos.delete_identity(&gone).await;
    let flag = &kratos.identity(&identity_of(1).await).await["credentials"]["password"]["config"];
    assert!(
        flag.get("use_password_migration_hook")
            .is_none_or(|v| v == false),
        "the PUT dropped the flag: {flag}"
    );
    let (status, _) = kratos
        .create_identity(&json!({
            "schema_id": "default",
            "traits": {"email": "stranger@example.com"},
            "credentials": {"password": {"config": {"hashed_password": hash}}},
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    execute(
        &database,
        &[
            "UPDATE users SET state = 'needs_recovery' WHERE cognito_username = 'seed-0004'",
            "UPDATE users SET state = 'migrated', migrated_via = 'hook', \
             migrated_at = '2026-11-30T10:00:00Z' WHERE cognito_username = 'seed-0003'",
            "UPDATE users SET kratos_identity_id = NULL WHERE cognito_username = 'seed-0006'",
            "INSERT INTO users (cognito_username, username_normalized, state, created_at, \
             updated_at) VALUES ('hook-only', 'hook-only', 'pending', \
             '2026-11-30T10:00:00Z', '2026-11-30T10:00:00Z')",
        ],
    )
    .await;

    let expected = |summary: &ReconcileSummary| {
        let c = &summary.counts;
        assert_eq!(
            c.identities, USERS as u64,
            "6 of ours and the stranger: {summary:?}"
        );
        assert_eq!(c.matched, USERS as u64 - 1, "{summary:?}");
        assert_eq!(c.unknown_identities, 1, "{summary:?}");
        assert_eq!(c.corrected, 2, "{summary:?}");
        assert_eq!(c.already_migrated, 1, "{summary:?}");
        assert_eq!(c.still_pending, 2, "seed-0000 and seed-0006: {summary:?}");
        assert_eq!(c.other_states, 1, "seed-0005: {summary:?}");
        assert_eq!(c.gone, 1, "{summary:?}");
        assert_eq!(c.missing_in_kratos, 1, "{summary:?}");
        assert_eq!(
            usernames(&summary.examples.corrected),
            ["seed-0001", "seed-0004"]
        );
        assert_eq!(usernames(&summary.examples.gone), ["seed-0002"]);
        assert_eq!(
            summary.examples.gone[0].kratos_identity_id.as_deref(),
            Some(gone.as_str())
        );
        assert_eq!(
            usernames(&summary.examples.missing_in_kratos),
            ["hook-only"]
        );
        assert_eq!(summary.kratos_line, "v1.3.x");
        for format in [ReconcileFormat::Table, ReconcileFormat::Json] {
            let text = summary.render(format);
            assert!(!text.contains(&hash) && !text.contains("$2"), "{text}");
        }
    };

    // Pages of 2: the keyset `Link` is followed through all of them.
    let dry = reconcile_run(&settings, true, 2).await;
    assert!(dry.dry_run);
    expected(&dry);
    assert_eq!(
        state_of(store.as_ref(), "seed-0001").await,
        (UserState::Pending, None, false),
        "a dry run changes nothing"
    );
    assert_eq!(
        state_of(store.as_ref(), "seed-0004").await.0,
        UserState::NeedsRecovery
    );

    // The binary, logging at TRACE: the same findings as JSON, and no hash anywhere.
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        bridge_with_test_credentials(
            &dir,
            &["reconcile", "--dry-run", "--format", "json"],
            &[
                ("COGNITO_BRIDGE__DATABASE__URL", database.url.as_str()),
                (
                    "COGNITO_BRIDGE__KRATOS__ADMIN_URL",
                    kratos.admin_url.as_str(),
                ),
                ("RUST_LOG", "trace"),
            ],
        )
        .output(),
    )
    .await
    .expect("reconcile ends within 60 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["dry_run"], true);
    assert_eq!(printed["corrected"], 2, "{printed}");
    assert_eq!(printed["gone"], 1, "{printed}");
    assert_eq!(printed["unknown_identities"], 1, "{printed}");
    assert!(
        !stdout.contains(&hash) && !stderr.contains(&hash) && !stderr.contains("$2b$04$"),
        "a hash reached the output"
    );
    assert!(
        stderr.contains("reconcile"),
        "TRACE logging was on: {stderr}"
    );
    assert_eq!(
        state_of(store.as_ref(), "seed-0001").await.0,
        UserState::Pending
    );

    let real = reconcile_run(&settings, false, 2).await;
    assert!(!real.dry_run);
    expected(&real);
    for username in ["seed-0001", "seed-0004"] {
        assert_eq!(
            state_of(store.as_ref(), username).await,
            (UserState::Migrated, Some("kratos".to_owned()), true),
            "{username}"
        );
    }
    assert_eq!(
        state_of(store.as_ref(), "seed-0003").await.1.as_deref(),
        Some("hook"),
        "a user migrated before keeps how"
    );
    assert_eq!(
        state_of(store.as_ref(), "seed-0000").await.0,
        UserState::Pending
    );
    assert_eq!(
        state_of(store.as_ref(), "seed-0002").await.0,
        UserState::Pending
    );

    // A rerun finds nothing more to move.
    let again = reconcile_run(&settings, false, 250).await;
    assert_eq!(again.counts.corrected, 0, "{again:?}");
    assert_eq!(again.counts.already_migrated, 3, "{again:?}");
    assert_eq!(again.counts.gone, 1, "{again:?}");
}

on_both_backends!(
    reconcile_against_the_current_line_matches_by_external_id,
    reconcile_reads_identities_one_by_one_when_the_list_omits_their_config,
);

async fn reconcile_against_the_current_line_matches_by_external_id(backend: Backend) {
    let (kratos, real) = current_line_scenario(backend, false).await;
    assert_eq!(real.counts.read_one_by_one, 0);
    assert_eq!(kratos.get_calls(), 0, "the list carries every config");
}

/// A Kratos whose list shows password credentials without config: the identities whose user
/// is pending or needs recovery are read one by one, with the same result.
async fn reconcile_reads_identities_one_by_one_when_the_list_omits_their_config(backend: Backend) {
    let (kratos, real) = current_line_scenario(backend, true).await;
    assert_eq!(
        real.counts.read_one_by_one, 4,
        "user0, 1, 3 and 4; not user2 (migrated)"
    );
    assert_eq!(kratos.get_calls(), 8, "4 in the dry run, 4 in the real one");
    assert!(
        real.render(ReconcileFormat::Table)
            .contains("read one by one")
    );
}

/// The admin double (v26.2.0): identities carry `external_id`, the list pages by `Link`. A dry
/// run and a real run; the double and the real run's summary.
async fn current_line_scenario(
    backend: Backend,
    list_without_credential_configs: bool,
) -> (KratosAdminDouble, ReconcileSummary) {
    let kratos = KratosAdminDouble::start(AdminDoubleOptions {
        list_without_credential_configs,
        ..AdminDoubleOptions::default()
    })
    .await;
    let database = TestDatabase::new(backend).await;
    let settings = import_settings(
        &database.url,
        "http://127.0.0.1:9",
        "us-east-1_x",
        &kratos.url,
        "",
    );
    let hash = bcrypt_hash();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut body = json!({
            "schema_id": "default",
            "traits": {"email": format!("user{i}@example.com")},
            "external_id": format!("sub-{i}"),
            "credentials": {"password": {"config": {"use_password_migration_hook": true}}},
        });
        if i < 3 {
            body["credentials"]["password"]["config"] = json!({"hashed_password": hash});
        }
        ids.push(kratos.insert_existing(body));
    }
    // Our rows: user0 linked by id; user1 only by external id; user3 by external id, its
    // link stale (gone); user2 migrated; user4 pending without a hash; `lost` points at an
    // identity Kratos never had.
    open_store(&database).await.migrate().await.unwrap();
    let at = "'2026-11-30T10:00:00Z'";
    let row = |name: &str, sub: &str, id: Option<&str>, state: &str| {
        let id = id.map_or("NULL".to_owned(), |id| format!("'{id}'"));
        format!(
            "INSERT INTO users (cognito_username, username_normalized, external_id, \
             kratos_identity_id, state, created_at, updated_at) \
             VALUES ('{name}', '{name}', '{sub}', {id}, '{state}', {at}, {at})"
        )
    };
    let statements = [
        row("user0", "sub-0", Some(&ids[0]), "pending"),
        row("user1", "sub-1", None, "needs_recovery"),
        row("user2", "sub-2", Some(&ids[2]), "migrated"),
        row("user3", "sub-3", Some("stale-link"), "pending"),
        row("user4", "sub-4", Some(&ids[4]), "pending"),
        row(
            "lost",
            "sub-lost",
            Some("7b1c0000-0000-4000-8000-00000000dead"),
            "pending",
        ),
    ];
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    execute(&database, &statements).await;

    let dry = reconcile_run(&settings, true, 2).await;
    let real = reconcile_run(&settings, false, 2).await;
    for summary in [&dry, &real] {
        let c = &summary.counts;
        assert_eq!(summary.kratos_line, "v25.4.0+");
        assert_eq!(
            (c.identities, c.matched, c.unknown_identities),
            (5, 5, 0),
            "{summary:?}"
        );
        assert_eq!(c.corrected, 2, "{summary:?}");
        assert_eq!(usernames(&summary.examples.corrected), ["user0", "user1"]);
        assert_eq!((c.already_migrated, c.still_pending), (1, 2), "{summary:?}");
        assert_eq!((c.gone, c.missing_in_kratos), (2, 0), "{summary:?}");
        assert_eq!(usernames(&summary.examples.gone), ["lost", "user3"]);
    }
    let store = open_store(&database).await;
    for name in ["user0", "user1"] {
        assert_eq!(
            state_of(store.as_ref(), name).await,
            (UserState::Migrated, Some("kratos".to_owned()), true),
            "{name}"
        );
    }
    assert_eq!(
        state_of(store.as_ref(), "user3").await.0,
        UserState::Pending
    );
    assert!(
        kratos.list_calls() >= 6,
        "pages of 2 over 5 identities, twice"
    );
    assert_eq!(kratos.write_calls(), 0, "reconcile never writes to Kratos");
    (kratos, real)
}

#[tokio::test]
async fn reconcile_pages_on_from_the_last_id_when_kratos_sends_no_link() {
    let kratos = KratosAdminDouble::start(AdminDoubleOptions {
        list_without_link: true,
        ..AdminDoubleOptions::default()
    })
    .await;
    for i in 0..5 {
        kratos.insert_existing(json!({
            "schema_id": "default",
            "traits": {"email": format!("user{i}@example.com")},
            "external_id": format!("sub-{i}"),
        }));
    }
    let database = TestDatabase::new(Backend::Sqlite).await;
    let settings = import_settings(
        &database.url,
        "http://127.0.0.1:9",
        "us-east-1_x",
        &kratos.url,
        "",
    );
    let summary = reconcile_run(&settings, true, 2).await;
    assert_eq!(summary.counts.identities, 5, "{summary:?}");
    assert_eq!(summary.counts.unknown_identities, 5, "{summary:?}");
    assert_eq!(
        kratos.list_calls(),
        3,
        "pages of 2, 2 and 1: the short page is the last"
    );
}

#[tokio::test]
async fn reconcile_help_explains_the_command_and_its_exit_status() {
    let output = bridge_output(&["reconcile", "--help"], &[]).await;
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--dry-run",
        "--no-progress",
        "--format",
        "include_credential=password",
        "needs_recovery",
        "migrated",
        "Exit status",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    let top = bridge_output(&["--help"], &[]).await;
    assert!(String::from_utf8_lossy(&top.stdout).contains("reconcile"));
}

#[tokio::test]
async fn reconcile_exits_2_on_usage_errors_and_1_when_kratos_is_unreachable() {
    for args in [
        &["reconcile", "--format", "csv"][..],
        &["reconcile", "--unknown"][..],
    ] {
        let output = bridge_output(args, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    let output = bridge_output(
        &["reconcile"],
        &[("COGNITO_BRIDGE__KRATOS__TIMEOUT_MS", "soon")],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "a configuration error");

    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("bridge.db").display());
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let output = bridge_output(
        &["reconcile", "--no-progress"],
        &[
            ("COGNITO_BRIDGE__DATABASE__URL", database.as_str()),
            ("COGNITO_BRIDGE__KRATOS__ADMIN_URL", closed.as_str()),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not be reached"), "{stderr}");
    assert!(output.stdout.is_empty(), "no summary after a failure");
}

#[tokio::test]
async fn reconcile_prints_a_table_by_default_and_exits_0() {
    let kratos = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
    kratos.insert_existing(json!({
        "schema_id": "default",
        "traits": {"email": "someone@example.com"},
        "external_id": "sub-x",
    }));
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("bridge.db").display());
    let output = bridge_output(
        &["reconcile"],
        &[
            ("COGNITO_BRIDGE__DATABASE__URL", database.as_str()),
            ("COGNITO_BRIDGE__KRATOS__ADMIN_URL", kratos.url.as_str()),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("against Kratos v25.4.0+ (v26.2.0)"),
        "{stdout}"
    );
    assert!(stdout.contains("not ours (unknown)"), "{stdout}");
    assert!(!stdout.contains("dry run"), "{stdout}");
}

on_both_backends!(the_reconcile_store_moves_only_pending_and_needs_recovery_rows);

/// The store methods themselves: the match read, the guarded move and the walk.
async fn the_reconcile_store_moves_only_pending_and_needs_recovery_rows(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let store = open_store(&database).await;
    store.migrate().await.unwrap();
    let at = "'2026-11-30T10:00:00Z'";
    let rows: Vec<String> = [
        ("a", "pending", "NULL"),
        ("b", "needs_recovery", "NULL"),
        ("c", "migrated", "'hook'"),
        ("d", "inactive", "NULL"),
        ("e", "skipped", "NULL"),
    ]
    .iter()
    .map(|(name, state, via)| {
        format!(
            "INSERT INTO users (cognito_username, username_normalized, external_id, \
             kratos_identity_id, state, migrated_via, created_at, updated_at) \
             VALUES ('{name}', '{name}', 'sub-{name}', 'id-{name}', '{state}', {via}, {at}, {at})"
        )
    })
    .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    execute(&database, &rows).await;

    let found = store
        .rows_for_identities(&["id-a", "id-c", "id-x"], &["sub-b", "sub-a", "sub-y"])
        .await
        .unwrap();
    let mut names: Vec<&str> = found.iter().map(|r| r.cognito_username.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "c"], "each row once, by id or by sub");
    assert!(
        store
            .rows_for_identities(&[], &[])
            .await
            .unwrap()
            .is_empty()
    );

    let now = chrono::Utc::now();
    let mut moved = store
        .mark_migrated_in_kratos(&["a", "b", "c", "d", "e", "nobody"], now)
        .await
        .unwrap();
    moved.sort();
    assert_eq!(moved, ["a", "b"]);
    for name in ["a", "b"] {
        let row = store.user(name).await.unwrap().unwrap();
        assert_eq!(row.state, UserState::Migrated);
        assert_eq!(row.migrated_via.as_deref(), Some("kratos"));
        let moved_at = row.migrated_at.unwrap();
        assert!((moved_at - now).num_seconds().abs() < 2, "{moved_at}");
    }
    let kept = store.user("c").await.unwrap().unwrap();
    assert_eq!(kept.migrated_via.as_deref(), Some("hook"));
    assert_eq!(
        store.user("d").await.unwrap().unwrap().state,
        UserState::Inactive
    );
    assert_eq!(
        store.user("e").await.unwrap().unwrap().state,
        UserState::Skipped
    );
    assert!(
        store
            .mark_migrated_in_kratos(&["a"], now)
            .await
            .unwrap()
            .is_empty(),
        "a second move is none"
    );

    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.rows_after(after.as_deref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.cognito_username.clone());
        walked.extend(page.into_iter().map(|row| row.cognito_username));
    }
    assert_eq!(walked, ["a", "b", "c", "d", "e"]);
}
