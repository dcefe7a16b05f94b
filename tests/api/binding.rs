//! DESIGN.md's binding rule, through the real server and the loopback Cognito fake (which
//! counts the calls per username): the Cognito user whose password is checked is the user
//! behind the Kratos identity logging in, or nobody's password is checked at all.

use cognito_bridge::domain::UserState;
use cognito_bridge::store::Store;
use reqwest::StatusCode;
use serde_json::json;

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig, Script};
use crate::helpers::{
    AppOptions, Backend, HookAnswer, TestApp, assert_no_match, import_users, spawn_app,
};

const CAROL_PASSWORD: &str = "Carol-Password-1";
const MALLORY_PASSWORD: &str = "Mallory-Password-1";

on_both_backends!(
    mallorys_password_never_lands_on_carols_identity,
    an_identifier_matching_two_users_is_refused_without_cognito,
    an_extended_body_binds_to_the_identity_being_logged_in,
);

/// An imported user: Cognito username, the e-mail the store knows (import keeps only
/// verified ones), Cognito `sub`, Kratos identity id.
struct Imported {
    username: &'static str,
    email: Option<&'static str>,
    sub: &'static str,
    identity_id: &'static str,
}

const CAROL: Imported = Imported {
    username: "carol@corp.com",
    email: None,
    sub: "sub-carol",
    identity_id: "identity-carol",
};

/// Mallory's account carries Carol's address as its e-mail.
const MALLORY: Imported = Imported {
    username: "mallory",
    email: Some("carol@corp.com"),
    sub: "sub-mallory",
    identity_id: "identity-mallory",
};

async fn import(store: &dyn Store, users: &[Imported]) {
    let rows: Vec<_> = users
        .iter()
        .map(|user| (user.username, user.email, user.sub, user.identity_id))
        .collect();
    import_users(store, &rows).await;
}

/// The fake knows both users, by their Cognito usernames.
async fn setup(backend: Backend) -> (CognitoFake, TestApp) {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    fake.user(CAROL.username, CAROL_PASSWORD, Script::Authenticate);
    fake.user(MALLORY.username, MALLORY_PASSWORD, Script::Authenticate);
    let app = spawn_app(AppOptions::new(
        backend,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    ))
    .await;
    import(app.store.as_ref(), &[CAROL, MALLORY]).await;
    (fake, app)
}

fn assert_refused_for(answer: &HookAnswer, reason: &str) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({"status": "password_no_match", "reason": reason}),
        "{answer:?}"
    );
}

/// The review's scenario: a username pool; Carol's username is `carol@corp.com`, Mallory's
/// account has `carol@corp.com` as its e-mail. Mallory types her own password at Carol's
/// identifier: Cognito must be asked about Carol (and say no), never about Mallory.
async fn mallorys_password_never_lands_on_carols_identity(backend: Backend) {
    let (fake, app) = setup(backend).await;

    assert_no_match(&app.login("carol@corp.com", MALLORY_PASSWORD).await);
    assert_eq!(
        fake.calls(MALLORY.username),
        0,
        "Mallory's account was asked"
    );
    assert_eq!(fake.calls(CAROL.username), 1);
    let carol = app.store.user(CAROL.username).await.unwrap().unwrap();
    assert_eq!(carol.state, UserState::Pending);
    let mallory = app.store.user(MALLORY.username).await.unwrap().unwrap();
    assert_eq!(mallory.state, UserState::Pending);

    // Carol herself still gets in.
    let answer = app.login("carol@corp.com", CAROL_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(fake.calls(MALLORY.username), 0);
}

/// `Carol@Corp.com` is no exact username; it matches Carol's username and Mallory's e-mail
/// once normalised: refused, and Cognito is not asked about anyone.
async fn an_identifier_matching_two_users_is_refused_without_cognito(backend: Backend) {
    let (fake, app) = setup(backend).await;

    assert_refused_for(
        &app.login("Carol@Corp.com", MALLORY_PASSWORD).await,
        "ambiguous_identifier",
    );
    assert_refused_for(
        &app.login(" CAROL@corp.com ", CAROL_PASSWORD).await,
        "ambiguous_identifier",
    );
    assert_eq!(fake.total_calls(), 0);
    let attempts = app.store.recent_attempts(10).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome == "ambiguous_identifier" && a.cognito_calls == 0),
        "{attempts:?}"
    );
    let progress = app.store.progress().await.unwrap();
    assert_eq!(progress.attempts.by_outcome["ambiguous_identifier"], 2);
    let (_, metrics) = app.get_text("/metrics").await;
    assert!(
        metrics
            .contains("cognito_bridge_binding_refusals_total{outcome=\"ambiguous_identifier\"} 2"),
        "{metrics}"
    );
}

/// With the extended body, the identity id (or external id) decides: Carol's identity gets
/// Carol's row whatever the identifier, and an identifier whose row belongs to another
/// identity is refused without asking Cognito.
async fn an_extended_body_binds_to_the_identity_being_logged_in(backend: Backend) {
    let (fake, app) = setup(backend).await;
    let login = |identifier: &str, password: &str, identity: serde_json::Value| {
        let body = json!({"identifier": identifier, "password": password, "identity": identity});
        let app = &app;
        async move { app.post_hook(&body).await }
    };

    // Carol's identity, logging in with Mallory's username and password.
    assert_refused_for(
        &login(
            "mallory",
            MALLORY_PASSWORD,
            json!({"id": "identity-unknown", "external_id": "sub-unknown"}),
        )
        .await,
        "identity_mismatch",
    );
    assert_eq!(fake.total_calls(), 0);

    // Carol's identity id finds Carol, whichever identifier was typed.
    assert_no_match(
        &login(
            "mallory",
            MALLORY_PASSWORD,
            json!({"id": CAROL.identity_id, "external_id": null}),
        )
        .await,
    );
    assert_eq!(fake.calls(MALLORY.username), 0);
    assert_eq!(fake.calls(CAROL.username), 1);
    let answer = login(
        "carol@corp.com",
        CAROL_PASSWORD,
        json!({"id": CAROL.identity_id, "external_id": CAROL.sub}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(fake.calls(MALLORY.username), 0);

    // Identity id and external id of two different users.
    assert_refused_for(
        &login(
            "carol@corp.com",
            CAROL_PASSWORD,
            json!({"id": CAROL.identity_id, "external_id": MALLORY.sub}),
        )
        .await,
        "identity_mismatch",
    );
    assert_eq!(fake.calls(CAROL.username), 2);
}
