//! moto as Cognito: one emulator per test run (from `scripts/test`) or per test process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, ExplicitAuthFlowsType, MessageActionType, UsernameAttributeType,
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
    let root = env!("CARGO_MANIFEST_DIR");
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
}
