//! The Hydra side of the `clients` and `check` tests: Cognito app clients with OAuth flows
//! made in moto ([`AppSpec`]), settings that point at a real Hydra, and the environment that
//! points the binary at a moto pool.

use aws_sdk_cognitoidentityprovider::types::{
    OAuthFlowType, TimeUnitsType, TokenValidityUnitsType,
};
use cognito_bridge::config::Settings;

use crate::moto::Pool;
use crate::ory::Hydra;

/// An app client as the tests create it in moto (tokens: 30 minutes, 2 hours, 10 days).
pub struct AppSpec<'a> {
    pub name: &'a str,
    pub secret: bool,
    pub flows: &'a [OAuthFlowType],
    pub scopes: &'a [&'a str],
    pub callbacks: &'a [&'a str],
    pub logouts: &'a [&'a str],
}

/// A confidential client for the client credentials grant.
pub const MACHINE: AppSpec = AppSpec {
    name: "machine",
    secret: true,
    flows: &[OAuthFlowType::ClientCredentials],
    scopes: &["https://api.example.com/read"],
    callbacks: &[],
    logouts: &[],
};

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|item| (*item).to_owned()).collect())
}

fn validity_units() -> TokenValidityUnitsType {
    TokenValidityUnitsType::builder()
        .access_token(TimeUnitsType::Minutes)
        .id_token(TimeUnitsType::Hours)
        .refresh_token(TimeUnitsType::Days)
        .build()
}

/// What `create` and `update` both send (two builder types with the same setters).
macro_rules! app_fields {
    ($request:expr, $spec:expr) => {
        $request
            .client_name($spec.name)
            .allowed_o_auth_flows_user_pool_client(true)
            .set_allowed_o_auth_flows(Some($spec.flows.to_vec()))
            .set_allowed_o_auth_scopes(strings($spec.scopes))
            .set_callback_urls(strings($spec.callbacks))
            .set_logout_urls(strings($spec.logouts))
            .access_token_validity(30)
            .id_token_validity(2)
            .refresh_token_validity(10)
            .token_validity_units(validity_units())
    };
}

impl AppSpec<'_> {
    /// Creates it; its client id and (when it has one) secret.
    pub async fn create(&self, pool: &Pool) -> (String, Option<String>) {
        let request = pool
            .client
            .create_user_pool_client()
            .user_pool_id(&pool.id)
            .generate_secret(self.secret);
        let created = app_fields!(request, self)
            .send()
            .await
            .expect("create app client");
        let client = created.user_pool_client().unwrap();
        (
            client.client_id().unwrap().to_owned(),
            client.client_secret().map(str::to_owned),
        )
    }

    /// Makes app client `client_id` this (UpdateUserPoolClient resets what it is not given,
    /// so everything is sent again; moto keeps the secret).
    pub async fn update(&self, pool: &Pool, client_id: &str) {
        let request = pool
            .client
            .update_user_pool_client()
            .user_pool_id(&pool.id)
            .client_id(client_id);
        app_fields!(request, self)
            .send()
            .await
            .expect("update app client");
    }
}

/// `settings` pointed at `hydra` (admin and public API).
pub fn with_hydra(mut settings: Settings, hydra: &Hydra) -> Settings {
    settings.hydra.admin_url = hydra.admin_url.clone();
    settings.hydra.public_url = hydra.public_url.clone();
    settings
}

/// The binary's environment for moto's pool `pool_id`.
pub fn moto_pool_env<'a>(pool_id: &'a str, moto_url: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", pool_id),
        ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", moto_url),
        ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
    ]
}
