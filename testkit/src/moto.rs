//! moto as Cognito: one emulator per test run (from `scripts/test`) or per test process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, AttributeType, ExplicitAuthFlowsType, MessageActionType,
    SchemaAttributeType, UsernameAttributeType,
};
use tokio::sync::OnceCell;

pub const REGION: &str = "us-east-1";
pub const MOTO_URL_ENV: &str = "COGNITO_BRIDGE_TEST_MOTO_URL";

static MOTO: OnceCell<String> = OnceCell::const_new();

pub fn test_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new("test", "test", None, None, "tests"))
}

/// The emulator's base URL: `$COGNITO_BRIDGE_TEST_MOTO_URL`, or a moto we start.
pub async fn endpoint() -> String {
    MOTO.get_or_init(|| async {
        let url = match std::env::var(MOTO_URL_ENV) {
            Ok(url) if !url.is_empty() => url,
            _ => start_moto(),
        };
        wait_until_ready(&url).await;
        url
    })
    .await
    .clone()
}

fn start_moto() -> String {
    let root = crate::REPOSITORY;
    let venv_python = format!("{root}/.venv/bin/python");
    let python = if std::path::Path::new(&venv_python).exists() {
        venv_python
    } else {
        "python3".to_owned()
    };
    let mut child = Command::new(&python)
        .arg(format!("{root}/tests/support/moto_server.py"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto with {python} (run scripts/test once): {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("moto prints its port");
    let port = line
        .trim()
        .strip_prefix("port ")
        .unwrap_or_else(|| panic!("moto did not start (is moto installed in .venv?): {line:?}"));
    // The child watches its parent and exits with this test process.
    std::mem::forget(child);
    format!("http://127.0.0.1:{port}")
}

async fn wait_until_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{url}/moto-api/")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto at {url} did not answer GET /moto-api/");
}

/// An admin client to seed moto.
pub async fn admin_client() -> Client {
    let config = aws_sdk_cognitoidentityprovider::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_cognitoidentityprovider::config::Region::new(REGION))
        .credentials_provider(test_credentials())
        .http_client(cognito_bridge::cognito::sdk_http_client())
        .endpoint_url(endpoint().await)
        .build();
    Client::from_conf(config)
}

/// A fresh user pool and app client in moto; every test makes its own.
pub struct Pool {
    pub id: String,
    pub client_id: String,
    pub client: Client,
}

impl Pool {
    /// `email_as_username`: the pool's username attribute is the e-mail address.
    pub async fn create(email_as_username: bool) -> Self {
        let client = admin_client().await;
        let mut request = client
            .create_user_pool()
            .pool_name(format!("pool-{}", rand::random::<u32>()));
        if email_as_username {
            request = request.username_attributes(UsernameAttributeType::Email);
        }
        let pool = request.send().await.expect("create pool");
        let id = pool.user_pool().unwrap().id().unwrap().to_owned();
        let app = client
            .create_user_pool_client()
            .user_pool_id(&id)
            .client_name("kratos-bridge")
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowAdminUserPasswordAuth)
            .send()
            .await
            .expect("create app client");
        let client_id = app
            .user_pool_client()
            .unwrap()
            .client_id()
            .unwrap()
            .to_owned();
        Self {
            id,
            client_id,
            client,
        }
    }

    /// A confirmed user with a permanent password.
    pub async fn add_user(&self, username: &str, email: &str, password: &str) {
        self.add_user_with_temporary_password(username, email, password)
            .await;
        self.client
            .admin_set_user_password()
            .user_pool_id(&self.id)
            .username(username)
            .password(password)
            .permanent(true)
            .send()
            .await
            .expect("set permanent password");
    }

    /// A user in `FORCE_CHANGE_PASSWORD`, as an admin-created user who never logged in.
    pub async fn add_user_with_temporary_password(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) {
        self.client
            .admin_create_user()
            .user_pool_id(&self.id)
            .username(username)
            .temporary_password(password)
            .message_action(MessageActionType::Suppress)
            .user_attributes(
                AttributeType::builder()
                    .name("email")
                    .value(email)
                    .build()
                    .unwrap(),
            )
            .user_attributes(
                AttributeType::builder()
                    .name("email_verified")
                    .value("true")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create user");
    }

    pub async fn disable(&self, username: &str) {
        self.client
            .admin_disable_user()
            .user_pool_id(&self.id)
            .username(username)
            .send()
            .await
            .expect("disable user");
    }

    /// Like [`Pool::create`], plus a custom string attribute `tenant`, so users can carry
    /// `custom:tenant`. Added with `AddCustomAttributes` after creation: moto 5.2.5 drops the
    /// whole standard schema (email, given_name, …) from a pool whose `CreateUserPool` names a
    /// `Schema`, which real Cognito never does.
    pub async fn create_with_custom_attributes(email_as_username: bool) -> Self {
        let pool = Self::create(email_as_username).await;
        pool.client
            .add_custom_attributes()
            .user_pool_id(&pool.id)
            .custom_attributes(
                SchemaAttributeType::builder()
                    .name("tenant")
                    .attribute_data_type(AttributeDataType::String)
                    .mutable(true)
                    .build(),
            )
            .send()
            .await
            .expect("add custom attribute tenant");
        pool
    }

    /// `AdminCreateUser` with `email`, `email_verified`, `given_name` and (when set)
    /// `custom:tenant`; then, with a password, `AdminSetUserPassword` makes it permanent
    /// (`CONFIRMED`), else the user stays in `FORCE_CHANGE_PASSWORD`.
    ///
    /// In an e-mail-as-username pool `user.username` must be the e-mail address; moto (like
    /// Cognito) then stores the `sub` as the username, and finds the user by e-mail too.
    pub async fn add_seed_user(&self, user: &SeedUser) {
        let attribute = |name: &str, value: &str| {
            AttributeType::builder()
                .name(name)
                .value(value)
                .build()
                .unwrap()
        };
        let mut request = self
            .client
            .admin_create_user()
            .user_pool_id(&self.id)
            .username(&user.username)
            .temporary_password(SEED_TEMPORARY_PASSWORD)
            .message_action(MessageActionType::Suppress)
            .user_attributes(attribute("email", &user.email))
            .user_attributes(attribute(
                "email_verified",
                if user.email_verified { "true" } else { "false" },
            ))
            .user_attributes(attribute("given_name", &user.given_name));
        if let Some(tenant) = &user.tenant {
            request = request.user_attributes(attribute("custom:tenant", tenant));
        }
        request.send().await.expect("create seed user");
        if let Some(password) = &user.password {
            self.client
                .admin_set_user_password()
                .user_pool_id(&self.id)
                .username(&user.username)
                .password(password)
                .permanent(true)
                .send()
                .await
                .expect("set the seed user's permanent password");
        }
    }

    pub async fn create_group(&self, name: &str) {
        self.client
            .create_group()
            .user_pool_id(&self.id)
            .group_name(name)
            .send()
            .await
            .expect("create group");
    }

    pub async fn add_to_group(&self, username: &str, group: &str) {
        self.client
            .admin_add_user_to_group()
            .user_pool_id(&self.id)
            .username(username)
            .group_name(group)
            .send()
            .await
            .expect("add user to group");
    }

    pub async fn enable(&self, username: &str) {
        self.client
            .admin_enable_user()
            .user_pool_id(&self.id)
            .username(username)
            .send()
            .await
            .expect("enable user");
    }

    /// Sign in as the user the way an app does (`ADMIN_USER_PASSWORD_AUTH`): moto's ID and
    /// access tokens, signed with the key it publishes at `/{pool}/.well-known/jwks.json`.
    pub async fn sign_in(&self, username: &str, password: &str) -> (String, String) {
        let answer = self
            .client
            .admin_initiate_auth()
            .user_pool_id(&self.id)
            .client_id(&self.client_id)
            .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", username)
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .expect("sign in to moto");
        let tokens = answer.authentication_result().expect("moto issued tokens");
        (
            tokens.id_token().expect("an ID token").to_owned(),
            tokens.access_token().expect("an access token").to_owned(),
        )
    }

    /// Where moto publishes the pool's token signing keys.
    pub async fn jwks_url(&self) -> String {
        format!("{}/{}/.well-known/jwks.json", endpoint().await, self.id)
    }

    /// The user's `sub` attribute, from `AdminGetUser`.
    pub async fn sub_of(&self, username: &str) -> String {
        let user = self
            .client
            .admin_get_user()
            .user_pool_id(&self.id)
            .username(username)
            .send()
            .await
            .expect("get user");
        user.user_attributes()
            .iter()
            .find(|attribute| attribute.name() == "sub")
            .and_then(|attribute| attribute.value())
            .expect("the user has a sub")
            .to_owned()
    }
}

/// The temporary password of seed users created without a permanent one.
pub const SEED_TEMPORARY_PASSWORD: &str = "Temporary-Passw0rd!";

/// A user for [`Pool::add_seed_user`].
#[derive(Debug, Clone)]
pub struct SeedUser {
    pub username: String,
    pub email: String,
    pub given_name: String,
    /// `custom:tenant` (the pool needs [`Pool::create_with_custom_attributes`]).
    pub tenant: Option<String>,
    pub email_verified: bool,
    /// A permanent password (`CONFIRMED`); `None`: `FORCE_CHANGE_PASSWORD` with
    /// [`SEED_TEMPORARY_PASSWORD`].
    pub password: Option<String>,
}

impl SeedUser {
    /// Seed user `i`: username `seed-{i:04}` (not the e-mail), e-mail `Seed.{i}@Example.com`,
    /// tenant `tenant-{i % 3}` except every fifth user (none), e-mail verified for even `i`,
    /// permanent password `Passw0rd!{i}` except every fourth user (temporary password).
    pub fn numbered(i: usize) -> Self {
        Self {
            username: format!("seed-{i:04}"),
            email: format!("Seed.{i}@Example.com"),
            given_name: format!("Seed{i}"),
            tenant: (i % 5 != 4).then(|| format!("tenant-{}", i % 3)),
            email_verified: i.is_multiple_of(2),
            password: (i % 4 != 3).then(|| format!("Passw0rd!{i}")),
        }
    }
}
