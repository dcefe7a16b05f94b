//! The confirmation hooks through the real Kratos v1.3.1, configured from the shipped
//! `kratos-hooks/kratos.yml` and jsonnet: native logins and a settings-flow password change
//! reach `/hooks/login-after` and `/hooks/settings-after`, and the rows move. Kratos calls
//! them in the background (`response.ignore`), so the tests poll the store, within a limit.

use std::time::{Duration, Instant};

use cognito_bridge::domain::UserState;
use cognito_bridge::import::ImportOptions;
use cognito_bridge::store::UserRecord;
use reqwest::StatusCode;

use crate::helpers::import::{import_settings_with_public_url, run_import};
use crate::helpers::{API_KEY, AppOptions, Backend, TestApp, spawn_app};
use crate::moto::{self, Pool};
use crate::ory::{ConfirmHooks, Kratos, MigrateHook};

const PASSWORD: &str = "Correct-Horse-Battery-9";
/// A password given in Kratos only (admin API or settings flow); Cognito never saw it.
const KRATOS_PASSWORD: &str = "Kratos-Only-Passphrase-42";
const NEW_PASSWORD: &str = "Brand-New-Settings-Passphrase-7";
const TRAITS: &str = "[import]\nlist_rate = 30\n[import.traits]\nemail = \"email\"\n";
/// How long Kratos's background call may take to land.
const WITHIN: Duration = Duration::from_secs(20);

on_both_backends!(
    a_migrated_users_kratos_logins_confirm_and_keep_via_hook,
    a_pending_user_kratos_lets_in_natively_is_migrated_via_kratos,
);

/// A moto pool (alice, bob) imported into a real Kratos that calls the bridge for the migrate
/// hook and for `confirm`'s hooks.
async fn world(
    backend: Backend,
    confirm: impl FnOnce(&TestApp) -> ConfirmHooks,
) -> (TestApp, Kratos) {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    pool.add_user("bob", "bob@example.com", PASSWORD).await;
    let moto = moto::endpoint().await;
    let app = spawn_app(AppOptions::new(backend, &moto, &pool.id, &pool.client_id)).await;
    let hook = MigrateHook {
        url: app.hook_url(),
        api_key: API_KEY.to_owned(),
    };
    let kratos = Kratos::start_with_confirmations(&hook, &confirm(&app)).await;
    let settings = import_settings_with_public_url(
        &app.database.url,
        &moto,
        &pool.id,
        kratos.admin_url.as_str(),
        kratos.public_url.as_str(),
        TRAITS,
    );
    let summary = run_import(&settings, ImportOptions::default())
        .await
        .expect("the import into the real Kratos");
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    (app, kratos)
}

fn to_bridge(app: &TestApp) -> ConfirmHooks {
    ConfirmHooks::to_bridge(&app.address, API_KEY)
}

async fn row(app: &TestApp, username: &str) -> UserRecord {
    app.store
        .user(username)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{username} has a row"))
}

/// The user's row once `done` holds, polled until [`WITHIN`] has passed.
async fn eventually(
    app: &TestApp,
    username: &str,
    what: &str,
    done: impl Fn(&UserRecord) -> bool,
) -> UserRecord {
    let started = Instant::now();
    loop {
        let user = row(app, username).await;
        if done(&user) {
            return user;
        }
        assert!(
            started.elapsed() < WITHIN,
            "{username}: {what} not seen within {WITHIN:?}: {user:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn identity_id(kratos: &Kratos, email: &str) -> String {
    let identity = kratos.identity_by_email(email).await.expect(email);
    identity["id"].as_str().unwrap().to_owned()
}

async fn a_migrated_users_kratos_logins_confirm_and_keep_via_hook(backend: Backend) {
    let (app, kratos) = world(backend, to_bridge).await;

    // The first login goes through the migrate hook; Kratos also calls login-after for it.
    let first = kratos.login("alice@example.com", PASSWORD).await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    eventually(&app, "alice", "the login-after call", |user| {
        user.confirmed_at.is_some()
    })
    .await;
    let user = eventually(&app, "alice", "via hook", |user| {
        user.migrated_via.as_deref() == Some("hook")
    })
    .await;
    assert_eq!(user.state, UserState::Migrated);
    let (migrated_at, confirmed_at) = (user.migrated_at, user.confirmed_at);
    let first_seen = user.last_seen_at.expect("last_seen_at with confirmed_at");

    // A native login (Kratos checks the password alone) is seen; nothing else moves.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = kratos.login("alice@example.com", PASSWORD).await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);
    let user = eventually(&app, "alice", "a later last_seen_at", |user| {
        user.last_seen_at.is_some_and(|seen| seen > first_seen)
    })
    .await;
    assert_eq!(user.migrated_via.as_deref(), Some("hook"));
    assert_eq!(
        (user.migrated_at, user.confirmed_at),
        (migrated_at, confirmed_at)
    );
    assert_eq!(row(&app, "bob").await.state, UserState::Pending);
}

async fn a_pending_user_kratos_lets_in_natively_is_migrated_via_kratos(backend: Backend) {
    let (app, kratos) = world(backend, to_bridge).await;
    // An operator gives bob a password in Kratos, outside the bridge.
    let bob = identity_id(&kratos, "bob@example.com").await;
    kratos.set_password(&bob, KRATOS_PASSWORD).await;
    assert_eq!(row(&app, "bob").await.state, UserState::Pending);

    let login = kratos.login("bob@example.com", KRATOS_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{:#}", login.body);
    let user = eventually(&app, "bob", "migrated", |user| {
        user.state == UserState::Migrated
    })
    .await;
    assert_eq!(user.migrated_via.as_deref(), Some("kratos"));
    assert!(user.migrated_at.is_some());
    assert!(user.confirmed_at.is_some());
    assert_eq!(user.last_seen_at, user.confirmed_at);
    let attempts = app.store.recent_attempts(10).await.unwrap();
    assert!(
        attempts.is_empty(),
        "the migrate hook was not asked: {attempts:?}"
    );
}

on_both_backends!(a_password_set_in_the_settings_flow_migrates_a_pending_user_via_reset);

async fn a_password_set_in_the_settings_flow_migrates_a_pending_user_via_reset(backend: Backend) {
    // Only settings-after reaches the bridge, so bob's login leaves his row `pending`, as
    // after an account recovery (whose session leads to the settings flow).
    let (app, kratos) = world(backend, |app| ConfirmHooks {
        login_after: ConfirmHooks::nowhere().login_after,
        ..to_bridge(app)
    })
    .await;
    let bob = identity_id(&kratos, "bob@example.com").await;
    kratos.set_password(&bob, KRATOS_PASSWORD).await;
    let login = kratos.login("bob@example.com", KRATOS_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{:#}", login.body);
    let token = login.session_token().expect("a session token").to_owned();

    let (status, body) = kratos.change_password(&token, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let user = eventually(&app, "bob", "migrated", |user| {
        user.state == UserState::Migrated
    })
    .await;
    assert_eq!(user.migrated_via.as_deref(), Some("reset"));
    assert!(user.migrated_at.is_some());
    assert!(user.last_seen_at.is_some());
    assert_eq!(user.confirmed_at, None, "the login-after call went nowhere");

    // Kratos holds the new password.
    let login = kratos.login("bob@example.com", NEW_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{:#}", login.body);
}
