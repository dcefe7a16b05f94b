//! `import undo --run ID` against the real Kratos v1.3.1: only the identities the run created
//! and that never migrated go (with their rows); linked ones, migrated users and users with a
//! password in Kratos stay; a dry run changes nothing; a rerun finds nothing more to do.

use std::collections::BTreeSet;
use std::time::Duration;

use cognito_bridge::import::undo::{self, UndoOptions, UndoSummary};
use cognito_bridge::import::{ImportError, ImportOptions};
use cognito_bridge::store::Store;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::import::{import_settings_with_public_url, open_store, run_import};
use crate::helpers::{Backend, TestDatabase, bridge_with_test_credentials};
use crate::moto::{self, Pool, SeedUser};
use crate::ory::{Kratos, MigrateHook};
use crate::reconcile::execute;

const TRAITS: &str = "[import.traits]\nemail = \"email\"\n\"name.first\" = \"given_name\"\n";
const USERS: usize = 12;

fn username(i: usize) -> String {
    SeedUser::numbered(i).username
}

async fn subs_in_kratos(kratos: &Kratos) -> BTreeSet<String> {
    kratos
        .identities()
        .await
        .iter()
        .filter_map(|identity| identity["metadata_admin"]["cognito"]["sub"].as_str())
        .map(str::to_owned)
        .collect()
}

async fn rows(store: &dyn Store) -> BTreeSet<String> {
    let mut rows = BTreeSet::new();
    for i in 0..USERS {
        if store.user(&username(i)).await.unwrap().is_some() {
            rows.insert(username(i));
        }
    }
    rows
}

async fn undo_run(
    settings: &cognito_bridge::config::Settings,
    run_id: i64,
    dry_run: bool,
) -> UndoSummary {
    undo::run(
        settings,
        UndoOptions {
            dry_run,
            ..UndoOptions::new(run_id)
        },
    )
    .await
    .unwrap()
}

async fn an_undo_deletes_only_what_the_run_created_and_nobody_used(backend: Backend) {
    let pool = Pool::create(false).await;
    futures_util::stream::iter(0..USERS)
        .map(|i| {
            let pool = &pool;
            async move { pool.add_seed_user(&SeedUser::numbered(i)).await }
        })
        .buffer_unordered(6)
        .collect::<Vec<()>>()
        .await;
    let kratos = Kratos::start(&MigrateHook::unused()).await;
    // User 3 has an identity already (same e-mail, their sub): the import links it.
    let (status, existing) = kratos
        .create_identity(&json!({
            "schema_id": "default",
            "traits": {"email": "seed.3@example.com"},
            "metadata_admin": {"cognito": {"sub": pool.sub_of(&username(3)).await}},
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{existing}");
    let database = TestDatabase::new(backend).await;
    let settings = import_settings_with_public_url(
        &database.url,
        &moto::endpoint().await,
        &pool.id,
        kratos.admin_url.as_str(),
        kratos.public_url.as_str(),
        TRAITS,
    );
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (summary.counters.created, summary.counters.linked),
        (USERS as i64 - 1, 1),
        "{summary:?}"
    );
    let run_id = summary.run_id;
    let store = open_store(&database).await;

    // User 1 migrated (our row), user 2 got a password in Kratos the bridge did not see,
    // user 4's identity was deleted by hand.
    execute(
        &database,
        &[
            "UPDATE users SET state = 'migrated', migrated_via = 'hook', migrated_at = updated_at \
             WHERE cognito_username = 'seed-0001'",
        ],
    )
    .await;
    let identity_of =
        |row: Option<cognito_bridge::store::UserRecord>| row.unwrap().kratos_identity_id.unwrap();
    let two = identity_of(store.user(&username(2)).await.unwrap());
    kratos
        .set_password_hash(&two, &bcrypt::hash("Undo-Passw0rd", 4).unwrap())
        .await;
    kratos
        .delete_identity(&identity_of(store.user(&username(4)).await.unwrap()))
        .await;
    let subs_before = subs_in_kratos(&kratos).await;
    let rows_before = rows(store.as_ref()).await;
    assert_eq!(subs_before.len(), USERS - 1);
    assert_eq!(rows_before.len(), USERS);

    let expected = |dry_run| UndoSummary {
        run_id,
        dry_run,
        created_by_run: USERS as u64 - 1,
        deleted: USERS as u64 - 4,
        already_gone: 1,
        kept_migrated: 1,
        kept_password_in_kratos: 1,
        linked_by_run: 1,
        kept_examples: vec![
            undo::KeptUser {
                cognito_username: username(1),
                why: "migrated",
            },
            undo::KeptUser {
                cognito_username: username(2),
                why: "password in Kratos",
            },
        ],
    };
    let dry = undo_run(&settings, run_id, true).await;
    assert_eq!(dry, expected(true));
    assert_eq!(
        subs_in_kratos(&kratos).await,
        subs_before,
        "a dry run deletes nothing"
    );
    assert_eq!(rows(store.as_ref()).await, rows_before);

    let done = undo_run(&settings, run_id, false).await;
    assert_eq!(done, expected(false));
    let mut kept_subs = BTreeSet::new();
    for i in [1, 2, 3] {
        kept_subs.insert(pool.sub_of(&username(i)).await);
    }
    assert_eq!(subs_in_kratos(&kratos).await, kept_subs);
    assert_eq!(
        rows(store.as_ref()).await,
        [1, 2, 3].map(username).into_iter().collect()
    );
    assert_eq!(
        kratos.identity(existing["id"].as_str().unwrap()).await["id"],
        existing["id"],
        "the linked identity is untouched"
    );
    let rendered = done.render();
    assert!(
        rendered.contains("deleted (identity and row)"),
        "{rendered}"
    );
    assert!(
        rendered.contains("seed-0002 (password in Kratos)"),
        "{rendered}"
    );

    // A rerun has only the kept users left to weigh, and keeps them.
    let again = undo_run(&settings, run_id, false).await;
    assert_eq!(
        (
            again.created_by_run,
            again.deleted,
            again.kept_migrated,
            again.kept_password_in_kratos
        ),
        (2, 0, 1, 1)
    );
    // A run that does not exist, and a dry run's run, are refused.
    let missing = undo::run(&settings, UndoOptions::new(run_id + 100)).await;
    assert!(
        matches!(&missing, Err(ImportError::NoSuchRun(message)) if message.contains("no import run")),
        "{missing:?}"
    );
    let dry_import = run_import(
        &settings,
        ImportOptions {
            dry_run: true,
            ..ImportOptions::default()
        },
    )
    .await
    .unwrap();
    let refused = undo::run(&settings, UndoOptions::new(dry_import.run_id)).await;
    assert!(
        matches!(&refused, Err(ImportError::NoSuchRun(message)) if message.contains("dry run")),
        "{refused:?}"
    );
}

on_both_backends!(an_undo_deletes_only_what_the_run_created_and_nobody_used);

/// A run from before `created_by_run` existed has nothing marked: refused, nothing deleted.
async fn an_undo_of_a_run_with_nothing_marked_is_refused(backend: Backend) {
    let pool = Pool::create(false).await;
    for i in 0..3 {
        pool.add_seed_user(&SeedUser::numbered(i)).await;
    }
    let kratos = Kratos::start(&MigrateHook::unused()).await;
    let database = TestDatabase::new(backend).await;
    let settings = import_settings_with_public_url(
        &database.url,
        &moto::endpoint().await,
        &pool.id,
        kratos.admin_url.as_str(),
        kratos.public_url.as_str(),
        TRAITS,
    );
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .unwrap();
    execute(&database, &["UPDATE users SET created_by_run = NULL"]).await;
    let refused = undo::run(&settings, UndoOptions::new(summary.run_id)).await;
    assert!(
        matches!(&refused, Err(ImportError::NoSuchRun(message)) if message.contains("none is marked")),
        "{refused:?}"
    );
    assert_eq!(kratos.identities().await.len(), 3);
}

on_both_backends!(an_undo_of_a_run_with_nothing_marked_is_refused);

#[tokio::test]
async fn import_undo_help_and_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let output = |args: &'static [&'static str], environment: Vec<(&'static str, String)>| {
        let dir = &dir;
        async move {
            let environment: Vec<(&str, &str)> = environment
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            tokio::time::timeout(
                Duration::from_secs(60),
                bridge_with_test_credentials(dir, args, &environment).output(),
            )
            .await
            .expect("the binary ends within 60 s")
            .unwrap()
        }
    };
    let help = output(&["import", "undo", "--help"], vec![]).await;
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for expected in ["--run", "--dry-run", "linked", "migrated", "Exit status"] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    let import_help = output(&["import", "--help"], vec![]).await;
    assert!(String::from_utf8_lossy(&import_help.stdout).contains("import undo --run ID"));

    for args in [
        &["import", "undo"][..],
        &["import", "undo", "--run", "x"][..],
        &["import", "--dry-run", "undo", "--run", "1"][..],
    ] {
        let usage = output(args, vec![]).await;
        assert_eq!(usage.status.code(), Some(2), "{args:?}");
    }
    let database = format!("sqlite://{}", dir.path().join("bridge.db").display());
    let missing = output(
        &["import", "undo", "--run", "7"],
        vec![("COGNITO_BRIDGE__DATABASE__URL", database)],
    )
    .await;
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("there is no import run 7"), "{stderr}");
}
