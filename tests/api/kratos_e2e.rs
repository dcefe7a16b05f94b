//! End to end through the real Kratos v1.3.1: `import` of a moto pool into Kratos, then
//! password logins through Kratos's own API flow, with Kratos calling the bridge's hook.
//! On SQLite and on Postgres for the bridge.

use std::time::Duration;

use cognito_bridge::domain::UserState;
use cognito_bridge::import::ImportOptions;
use reqwest::StatusCode;

use crate::helpers::import::{import_settings_with_public_url, run_import};
use crate::helpers::{API_KEY, AppOptions, Backend, TestApp, spawn_app};
use crate::moto::{self, Pool};
use crate::ory::{ConfirmHooks, Kratos, Login, MigrateHook};

const PASSWORD: &str = "Correct-Horse-Battery-9";
const TEMPORARY: &str = "Temp-Pass-4321";
/// Kratos's "The provided credentials are invalid" (text/message_validation.go).
const INVALID_CREDENTIALS: u64 = 4000006;
const TRAITS: &str = "[import]\nlist_rate = 30\n[import.traits]\nemail = \"email\"\n";

/// A moto pool (alice: plain; bob: disabled; carol: temporary password), the bridge serving
/// the hook, a real Kratos calling it, and the pool imported into that Kratos.
struct World {
    app: TestApp,
    kratos: Kratos,
}

async fn world(backend: Backend, cognito_endpoint: Option<&str>) -> World {
    let pool = Pool::create(false).await;
    pool.add_user("alice", "alice@example.com", PASSWORD).await;
    pool.add_user("bob", "bob@example.com", PASSWORD).await;
    pool.disable("bob").await;
    pool.add_user_with_temporary_password("carol", "carol@example.com", TEMPORARY)
        .await;
    let moto = moto::endpoint().await;
    let options = AppOptions::new(
        backend,
        cognito_endpoint.unwrap_or(&moto),
        &pool.id,
        &pool.client_id,
    );
    let app = spawn_app(options).await;
    // As deployed: Kratos also sends its confirmation hooks to the bridge.
    let kratos = Kratos::start_with_confirmations(
        &MigrateHook {
            url: app.hook_url(),
            api_key: API_KEY.to_owned(),
        },
        &ConfirmHooks::to_bridge(&app.address, API_KEY),
    )
    .await;
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
    assert_eq!(kratos.identities().await.len(), 3);
    World { app, kratos }
}

/// Sum of a counter's series in the bridge's `/metrics`.
async fn counter(app: &TestApp, name: &str) -> u64 {
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Hook calls answered, and Cognito calls made, so far.
async fn calls(app: &TestApp) -> (u64, u64) {
    (
        counter(app, "cognito_bridge_hook_answers_total").await,
        counter(app, "cognito_bridge_cognito_request_duration_seconds_count").await,
    )
}

async fn state_of(app: &TestApp, username: &str) -> UserState {
    app.store
        .user(username)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{username} has a row"))
        .state
}

fn assert_invalid_credentials(login: &Login) {
    assert_eq!(login.status, StatusCode::BAD_REQUEST, "{:#}", login.body);
    assert!(login.session_token().is_none());
    assert!(
        login.message_ids().contains(&INVALID_CREDENTIALS),
        "{:#}",
        login.body
    );
}

on_both_backends!(
    the_cognito_password_logs_in_once_through_the_hook_then_kratos_alone,
    a_wrong_password_before_migration_is_invalid_credentials_after_one_cognito_call,
    cognito_unreachable_fails_the_login_after_one_hook_call,
    disabled_and_temporary_password_users_are_refused,
);

async fn the_cognito_password_logs_in_once_through_the_hook_then_kratos_alone(backend: Backend) {
    let World { app, kratos } = world(backend, None).await;
    assert_eq!(state_of(&app, "alice").await, UserState::Pending);

    // Typed as the user likes: Kratos finds the identity case-insensitively and passes the
    // identifier on as typed; the bridge normalises it the same way.
    let first = kratos.login("Alice@Example.COM", PASSWORD).await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    let token = first.session_token().expect("a session token");
    let identity = kratos.whoami(token).await.expect("the session is valid");
    assert_eq!(calls(&app).await, (1, 1), "one hook call, one Cognito call");
    assert_eq!(state_of(&app, "alice").await, UserState::Migrated);

    // Kratos stored the password and dropped the flag: the hook is not asked again.
    let stored = kratos.identity(&identity).await;
    let config = &stored["credentials"]["password"]["config"];
    assert!(
        config["hashed_password"]
            .as_str()
            .is_some_and(|h| h.starts_with('$')),
        "{stored:#}"
    );
    assert!(
        config
            .get("use_password_migration_hook")
            .is_none_or(|flag| flag != true)
    );

    let again = kratos.login("alice@example.com", PASSWORD).await;
    assert_eq!(again.status, StatusCode::OK, "{:#}", again.body);
    assert_invalid_credentials(&kratos.login("alice@example.com", "not-the-password").await);
    assert_eq!(calls(&app).await, (1, 1), "Kratos answered alone");
}

async fn a_wrong_password_before_migration_is_invalid_credentials_after_one_cognito_call(
    backend: Backend,
) {
    let World { app, kratos } = world(backend, None).await;
    assert_invalid_credentials(&kratos.login("alice@example.com", "not-the-password").await);
    assert_eq!(calls(&app).await, (1, 1));
    assert_eq!(state_of(&app, "alice").await, UserState::Pending);
    // The right password still works afterwards.
    let login = kratos.login("alice@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{:#}", login.body);
}

async fn cognito_unreachable_fails_the_login_after_one_hook_call(backend: Backend) {
    // The bridge's Cognito is a closed loopback port; the import still reads moto.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let World { app, kratos } = world(backend, Some(&dead)).await;

    let login = kratos.login("alice@example.com", PASSWORD).await;
    assert!(login.session_token().is_none(), "{:#}", login.body);
    // Kratos turns any hook answer but 200/403 into a server error (502), not a form error.
    assert_eq!(login.status, StatusCode::BAD_GATEWAY, "{:#}", login.body);
    // Our 424 is final: Kratos does not retry it. Give a retry time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counter(&app, "cognito_bridge_hook_answers_total").await, 1);
    assert_eq!(state_of(&app, "alice").await, UserState::Pending);
}

async fn disabled_and_temporary_password_users_are_refused(backend: Backend) {
    let World { app, kratos } = world(backend, None).await;
    assert_eq!(state_of(&app, "bob").await, UserState::Inactive);
    let bob = kratos.identity_by_email("bob@example.com").await.unwrap();
    assert_eq!(bob["state"], "inactive");

    // Kratos v1.3.1 checks the identity's state only after the credentials: it asks the hook,
    // and Cognito's "User is disabled" makes it invalid credentials.
    assert_invalid_credentials(&kratos.login("bob@example.com", PASSWORD).await);
    assert_eq!(calls(&app).await, (1, 1));
    assert_eq!(state_of(&app, "bob").await, UserState::Inactive);

    // carol's temporary password is refused under the default policy (deny).
    assert_invalid_credentials(&kratos.login("carol@example.com", TEMPORARY).await);
    assert_eq!(calls(&app).await, (2, 2));
    assert_eq!(state_of(&app, "carol").await, UserState::NeedsRecovery);
    let carol = kratos.identity_by_email("carol@example.com").await.unwrap();
    let carol = kratos.identity(carol["id"].as_str().unwrap()).await;
    assert_eq!(
        carol["credentials"]["password"]["config"]["use_password_migration_hook"], true,
        "carol keeps the flag (the recovery path is hers): {carol:#}"
    );
}
