//! The real Kratos and Hydra start from the shipped files and behave as the notes say
//! (`../shared/notes/ory-and-cognito-facts.md` A1, A3, A4, B).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::ory::{Hydra, Kratos, MigrateHook};

#[tokio::test]
async fn kratos_v1_3_1_loads_the_shipped_fragment_and_refuses_external_ids() {
    let kratos = Kratos::start(&MigrateHook::unused()).await;
    println!("kratos serve ready after {:?}", kratos.ready_after);
    assert_eq!(kratos.version().await, "v1.3.1");

    // A1: the strict decoder refuses external_id on create.
    let body = json!({
        "schema_id": "default",
        "traits": {"email": "someone@example.com"},
        "external_id": "sub-1",
    });
    let (status, answer) = kratos.create_identity(&body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("external_id"), "{answer}");

    // Without it, the same identity is created, flagged for the migration hook.
    let mut body = body;
    body.as_object_mut().unwrap().remove("external_id");
    body["credentials"] = json!({"password": {"config": {"use_password_migration_hook": true}}});
    let (status, answer) = kratos.create_identity(&body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let found = kratos
        .identity_by_email("someone@example.com")
        .await
        .unwrap();
    assert_eq!(found["id"], answer["id"]);

    // A3: no lookup by external id on v1.3.x: a plain-text 404 from the router.
    let response = kratos
        .client
        .get(
            kratos
                .admin_url
                .join("admin/identities/by/external/sub-1")
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
}

#[tokio::test]
async fn kratos_v1_3_1_refuses_the_extended_body_fragment_so_it_ships_apart() {
    let refused =
        Kratos::start_with_fragment(&MigrateHook::unused(), "kratos.extended-body.yml").await;
    let Err(output) = refused else {
        panic!("Kratos v1.3.1 started with a jsonnet body for the migrate hook");
    };
    assert!(
        output.contains("additionalProperties \"body\" not allowed"),
        "{output}"
    );
}

async fn get_json(client: &reqwest::Client, url: url::Url) -> Value {
    let response = client.get(url.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn hydra_v2_3_0_keeps_an_oauth2_client_and_returns_its_secret_once() {
    let hydra = Hydra::start().await;
    println!("hydra serve ready after {:?}", hydra.ready_after);
    let client = reqwest::Client::new();
    let version = get_json(&client, hydra.admin_url.join("version").unwrap()).await;
    assert_eq!(version["version"], "v2.3.0");
    let discovery = get_json(
        &client,
        hydra
            .public_url
            .join(".well-known/openid-configuration")
            .unwrap(),
    )
    .await;
    assert_eq!(
        discovery["issuer"]
            .as_str()
            .map(|i| i.trim_end_matches('/')),
        Some(hydra.public_url.as_str().trim_end_matches('/'))
    );

    let created = client
        .post(hydra.admin_url.join("admin/clients").unwrap())
        .json(&json!({
            "client_id": "cognito-app-client-1",
            "client_name": "web",
            "client_secret": "a-copied-cognito-secret",
            "redirect_uris": ["https://app.example.com/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid offline_access",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["client_id"], "cognito-app-client-1");
    assert_eq!(created["client_secret"], "a-copied-cognito-secret");

    let read = get_json(
        &client,
        hydra
            .admin_url
            .join("admin/clients/cognito-app-client-1")
            .unwrap(),
    )
    .await;
    assert_eq!(read["client_name"], "web");
    assert!(
        read.get("client_secret")
            .is_none_or(|s| s.is_null() || s == ""),
        "{read}"
    );

    // B: a logout URL on another host than every redirect URI is refused.
    let refused = client
        .post(hydra.admin_url.join("admin/clients").unwrap())
        .json(&json!({
            "redirect_uris": ["https://app.example.com/callback"],
            "post_logout_redirect_uris": ["https://elsewhere.example.com/bye"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}
