//! The pool's app clients: `ListUserPoolClients` pages, then `DescribeUserPoolClient` per
//! client (the list holds only ids and names), under the directory's rate limit and retries.
//! The secret is held as a `SecretString` from the SDK's answer on.

use aws_sdk_cognitoidentityprovider::types::{TimeUnitsType, UserPoolClientType};
use secrecy::SecretString;

use super::directory::{Directory, DirectoryError, every_page};

/// Cognito's largest `ListUserPoolClients` page.
const CLIENTS_PAGE_SIZE: i32 = 60;

/// Cognito's unit of a token validity (`TokenValidityUnits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

/// One app client as `DescribeUserPoolClient` describes it, as far as `clients` needs it.
#[derive(Debug, Clone)]
pub struct AppClient {
    pub client_id: String,
    pub name: String,
    /// Cognito returns it in plaintext; it never leaves this wrapper except towards Hydra.
    pub secret: Option<SecretString>,
    pub callback_urls: Vec<String>,
    pub logout_urls: Vec<String>,
    pub default_redirect_uri: Option<String>,
    /// `AllowedOAuthFlowsUserPoolClient`: false means SDK sign-in only (no OAuth flows).
    pub oauth_enabled: bool,
    /// `AllowedOAuthFlows`: `code`, `implicit`, `client_credentials`.
    pub flows: Vec<String>,
    pub scopes: Vec<String>,
    /// Validities as Cognito gives them (absent when not set, which moto does).
    pub access_token_validity: Option<(i64, Option<ValidityUnit>)>,
    pub id_token_validity: Option<(i64, Option<ValidityUnit>)>,
    pub refresh_token_validity: Option<(i64, Option<ValidityUnit>)>,
}

fn unit(unit: Option<&TimeUnitsType>) -> Option<ValidityUnit> {
    match unit? {
        TimeUnitsType::Seconds => Some(ValidityUnit::Seconds),
        TimeUnitsType::Minutes => Some(ValidityUnit::Minutes),
        TimeUnitsType::Hours => Some(ValidityUnit::Hours),
        TimeUnitsType::Days => Some(ValidityUnit::Days),
        _ => None,
    }
}

impl AppClient {
    fn from_sdk(client: &UserPoolClientType) -> Option<Self> {
        let units = client.token_validity_units();
        Some(Self {
            client_id: client.client_id()?.to_owned(),
            name: client.client_name().unwrap_or_default().to_owned(),
            secret: client
                .client_secret()
                .filter(|secret| !secret.is_empty())
                .map(|secret| SecretString::from(secret.to_owned())),
            callback_urls: client.callback_urls().to_vec(),
            logout_urls: client.logout_urls().to_vec(),
            default_redirect_uri: client.default_redirect_uri().map(str::to_owned),
            oauth_enabled: client
                .allowed_o_auth_flows_user_pool_client()
                .unwrap_or(false),
            flows: client
                .allowed_o_auth_flows()
                .iter()
                .map(|flow| flow.as_str().to_owned())
                .collect(),
            scopes: client.allowed_o_auth_scopes().to_vec(),
            access_token_validity: client.access_token_validity().map(|value| {
                (
                    i64::from(value),
                    unit(units.and_then(|units| units.access_token())),
                )
            }),
            id_token_validity: client.id_token_validity().map(|value| {
                (
                    i64::from(value),
                    unit(units.and_then(|units| units.id_token())),
                )
            }),
            // A plain integer in the SDK: 0 means "not set" (Cognito: 30 days).
            refresh_token_validity: Some(client.refresh_token_validity())
                .filter(|value| *value > 0)
                .map(|value| {
                    (
                        i64::from(value),
                        unit(units.and_then(|units| units.refresh_token())),
                    )
                }),
        })
    }
}

impl Directory {
    /// Every app client of the pool, described, in `ListUserPoolClients` order.
    pub async fn app_clients(&self) -> Result<Vec<AppClient>, DirectoryError> {
        let ids: Vec<String> = every_page(|next| async move {
            let output = self
                .call("ListUserPoolClients", || {
                    self.client
                        .list_user_pool_clients()
                        .user_pool_id(&self.user_pool_id)
                        .max_results(CLIENTS_PAGE_SIZE)
                        .set_next_token(next.clone())
                        .send()
                })
                .await?;
            let ids = output
                .user_pool_clients()
                .iter()
                .filter_map(|client| client.client_id())
                .map(str::to_owned)
                .collect();
            Ok((ids, output.next_token().map(str::to_owned)))
        })
        .await?;
        let mut clients = Vec::with_capacity(ids.len());
        for id in &ids {
            let output = self
                .call("DescribeUserPoolClient", || {
                    self.client
                        .describe_user_pool_client()
                        .user_pool_id(&self.user_pool_id)
                        .client_id(id)
                        .send()
                })
                .await?;
            if let Some(client) = output.user_pool_client().and_then(AppClient::from_sdk) {
                clients.push(client);
            }
        }
        Ok(clients)
    }
}
