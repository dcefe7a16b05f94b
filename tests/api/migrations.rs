//! Upgrading a database keeps what it recorded: the migrations up to the previous release are
//! applied, rows written, then `serve`'s own migration run brings the schema up to date.

use chrono::{TimeZone, Utc};
use cognito_bridge::domain::UserState;
use sqlx::Connection;

use crate::helpers::{Backend, TestDatabase};

/// The first migration of the current release: everything before it is the previous schema.
const FIRST_NEW: &str = "20261202000100";

/// A copy of the backend's migrations from before `FIRST_NEW`.
fn previous_migrations(backend: Backend) -> tempfile::TempDir {
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < FIRST_NEW {
            std::fs::copy(&path, copy.path().join(name)).unwrap();
        }
    }
    copy
}

const INSERT_USER: &str = "
INSERT INTO users (cognito_username, username_normalized, email_normalized, external_id,
                   kratos_identity_id, state, migrated_via, mfa_dropped, created_at, updated_at,
                   migrated_at, last_attempt_at, import_run_id)
VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $9, NULL)";

async fn an_upgrade_keeps_every_user_row(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let previous = previous_migrations(backend);
    let migrator = sqlx::migrate::Migrator::new(previous.path()).await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let rows = [
        ("ann", Some("ann@example.com"), "pending", None, false),
        ("ben", None, "migrated", Some("capture"), true),
        (
            "cat",
            Some("cat@example.com"),
            "needs_recovery",
            None,
            false,
        ),
    ];
    macro_rules! seed {
        ($connection:expr) => {{
            migrator.run(&mut $connection).await.unwrap();
            for (name, email, state, via, mfa) in rows {
                sqlx::query(INSERT_USER)
                    .bind(name)
                    .bind(email)
                    .bind(format!("sub-{name}"))
                    .bind(format!("id-{name}"))
                    .bind(state)
                    .bind(via)
                    .bind(mfa)
                    .bind(at)
                    .bind(via.map(|_| at))
                    .execute(&mut $connection)
                    .await
                    .unwrap();
            }
        }};
    }
    match backend {
        Backend::Sqlite => {
            let options: sqlx::sqlite::SqliteConnectOptions = database.url.parse().unwrap();
            let mut connection =
                sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
                    .await
                    .unwrap();
            seed!(connection);
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
            seed!(connection);
        }
    }

    let store = cognito_bridge::store::connect(&database.url.clone().into(), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let ben = store.user("ben").await.unwrap().unwrap();
    assert_eq!(ben.state, UserState::Migrated);
    assert_eq!(ben.migrated_via.as_deref(), Some("capture"));
    assert!(ben.mfa_dropped);
    assert_eq!(ben.external_id.as_deref(), Some("sub-ben"));
    assert_eq!(ben.kratos_identity_id.as_deref(), Some("id-ben"));
    assert_eq!(ben.migrated_at, Some(at));
    let progress = store.progress().await.unwrap();
    assert_eq!(progress.total, 3);
    assert_eq!(progress.states["pending"], 1);
    assert_eq!(progress.states["needs_recovery"], 1);
    // The admin API's rollup starts with the rows already there.
    assert_eq!(progress.mfa_dropped, 1);
    assert_eq!(store.migrated_between(None, Utc::now()).await.unwrap(), 1);
    let day = store
        .migrations_by_bucket(
            cognito_bridge::store::Bucket::Day,
            at - chrono::Duration::hours(12),
            at + chrono::Duration::hours(12),
        )
        .await
        .unwrap();
    assert_eq!(day.len(), 1);
    assert_eq!(
        (day[0].bucket.as_str(), day[0].via.as_deref(), day[0].count),
        ("2026-11-30", Some("capture"), 1)
    );
    // The e-mail lookup still finds ann (the binding rule reads email_normalized).
    let lookup = cognito_bridge::store::UserLookup {
        identity_id: None,
        external_id: None,
        identifier: "ann@example.com",
        normalized_identifier: "ann@example.com",
    };
    assert_eq!(
        store.resolve(lookup).await.unwrap(),
        cognito_bridge::store::Resolution::User("ann".to_owned())
    );
}

on_both_backends!(an_upgrade_keeps_every_user_row);
