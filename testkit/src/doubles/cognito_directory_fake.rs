//! A fast loopback Cognito *directory* for `cognito-bridge import`: `ListUsers`, `ListGroups`,
//! `ListUsersInGroup` and `DescribeUserPool` over AWS JSON 1.1, with HTTP/1.1 keep-alive.
//!
//! Users are synthetic and generated from their index on demand, so 100,000 of them cost no
//! memory; each page's JSON is built when asked for. The server runs on its own actix worker
//! threads, so it does not compete with the client for the test's (or bench's) runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Serialize;
use serde_json::Value;

pub const DEFAULT_POOL_ID: &str = "us-east-1_directory";
const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
/// Cognito's largest page for `ListUsers`, `ListGroups` and `ListUsersInGroup`.
pub const MAX_LIMIT: usize = 60;
/// `UserCreateDate` of user 0, in epoch seconds; user `i` was created `i` seconds later.
const EPOCH_BASE: f64 = 1_700_000_000.0;

/// What the directory holds and how it misbehaves.
#[derive(Debug, Clone)]
pub struct DirectoryOptions {
    /// Requests naming another `UserPoolId` get `ResourceNotFoundException`.
    pub user_pool_id: String,
    /// How many synthetic users (indices `0..users`).
    pub users: usize,
    /// User `i` is in group `group-{i % groups}` when `groups > 0`.
    pub groups: usize,
    /// The first `throttle_first` `ListUsers` calls answer `TooManyRequestsException`.
    pub throttle_first: usize,
    /// `DescribeUserPool`'s `EstimatedNumberOfUsers`; `None`: the current number of users.
    pub estimated_users: Option<usize>,
    /// `UserStatus` of chosen users (`RESET_REQUIRED`, `UNCONFIRMED`, …) instead of
    /// [`synthetic_status`].
    pub statuses: HashMap<usize, &'static str>,
    /// When above 0, every user also has `custom:bio`, this many `x`s (to make identities
    /// large).
    pub padding: usize,
}

impl Default for DirectoryOptions {
    fn default() -> Self {
        Self {
            user_pool_id: DEFAULT_POOL_ID.to_owned(),
            users: 0,
            groups: 0,
            throttle_first: 0,
            estimated_users: None,
            statuses: HashMap::new(),
            padding: 0,
        }
    }
}

impl DirectoryOptions {
    /// `users` users in the default pool, no groups, no throttling.
    pub fn with_users(users: usize) -> Self {
        Self {
            users,
            ..Self::default()
        }
    }
}

/// The synthetic user `i`, as the import should find it.
pub fn synthetic_username(i: usize) -> String {
    format!("user-{i:07}")
}

/// A UUID-shaped (version 4 layout) `sub`, deterministic and unique per `i`: the first 64
/// non-version bits are a bijection of `i`.
pub fn synthetic_sub(i: usize) -> String {
    let unique = splitmix64(i as u64);
    let filler = splitmix64(unique ^ 0x5bd1_e995_5bd1_e995);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:04x}{:08x}",
        unique >> 32,
        (unique >> 16) & 0xffff,
        filler & 0xfff,
        0x8000 | ((filler >> 12) & 0x3fff),
        unique & 0xffff,
        filler >> 32,
    )
}

/// Mixed case on purpose, so the import's e-mail normalisation is exercised.
pub fn synthetic_email(i: usize) -> String {
    format!("User.{i}@Example.com")
}

/// `true` for even `i`, `false` for odd.
pub fn synthetic_email_verified(i: usize) -> bool {
    i.is_multiple_of(2)
}

pub fn synthetic_given_name(i: usize) -> String {
    format!("Given{i}")
}

pub fn synthetic_family_name(i: usize) -> String {
    format!("Family{i}")
}

/// `custom:tenant`.
pub fn synthetic_tenant(i: usize) -> String {
    format!("tenant-{}", i % 7)
}

/// Every 50th user (`i % 50 == 49`) is disabled.
pub fn synthetic_enabled(i: usize) -> bool {
    i % 50 != 49
}

/// `EXTERNAL_PROVIDER` for every 97th user (`i % 97 == 96`), `CONFIRMED` otherwise.
pub fn synthetic_status(i: usize) -> &'static str {
    if i % 97 == 96 {
        "EXTERNAL_PROVIDER"
    } else {
        "CONFIRMED"
    }
}

/// `UserCreateDate` in epoch seconds.
pub fn synthetic_create_date(i: usize) -> f64 {
    EPOCH_BASE + i as f64
}

/// `UserLastModifiedDate` in epoch seconds (a little after creation).
pub fn synthetic_last_modified_date(i: usize) -> f64 {
    EPOCH_BASE + i as f64 + 0.25
}

/// `group-{g}`.
pub fn synthetic_group_name(g: usize) -> String {
    format!("group-{g}")
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Shared {
    user_pool_id: String,
    groups: usize,
    estimated_users: Option<usize>,
    /// Random per fake, so tokens from another fake (or made up) are rejected.
    token_salt: u64,
    users: AtomicUsize,
    throttle_remaining: AtomicUsize,
    throttled: AtomicUsize,
    request_ids: AtomicU64,
    list_users_calls: Mutex<Vec<Instant>>,
    calls: Mutex<HashMap<String, usize>>,
    statuses: HashMap<usize, &'static str>,
    /// While set, `ListUsers` answers 500 `InternalErrorException` (see `fail_list_users`).
    failing: std::sync::atomic::AtomicBool,
    failed: AtomicUsize,
    padding: usize,
}

impl Shared {
    fn status_of(&self, i: usize) -> &'static str {
        self.statuses
            .get(&i)
            .copied()
            .unwrap_or_else(|| synthetic_status(i))
    }
}

pub struct CognitoDirectoryFake {
    /// `http://127.0.0.1:<port>`, for `cognito.endpoint_url`.
    pub endpoint: String,
    pub user_pool_id: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

impl CognitoDirectoryFake {
    /// Listen on a free loopback port with two actix workers; the server stops when the fake
    /// is dropped (or with the runtime that started it).
    pub async fn start(options: DirectoryOptions) -> Self {
        let shared = Arc::new(Shared {
            user_pool_id: options.user_pool_id.clone(),
            groups: options.groups,
            estimated_users: options.estimated_users,
            token_salt: rand::random::<u64>() >> 16,
            users: AtomicUsize::new(options.users),
            throttle_remaining: AtomicUsize::new(options.throttle_first),
            throttled: AtomicUsize::new(0),
            request_ids: AtomicU64::new(0),
            list_users_calls: Mutex::new(Vec::new()),
            calls: Mutex::new(HashMap::new()),
            statuses: options.statuses,
            failing: std::sync::atomic::AtomicBool::new(false),
            failed: AtomicUsize::new(0),
            padding: options.padding,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the directory fake");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let handle = listen(listener, shared.clone());
        Self {
            endpoint,
            user_pool_id: options.user_pool_id,
            shared,
            handle,
        }
    }

    /// Stop answering: open connections are dropped and new ones refused, as when Cognito
    /// cannot be reached, until [`come_back`](Self::come_back).
    pub async fn go_away(&mut self) {
        self.handle.stop(false).await;
    }

    /// Listen again on the same port, with the same users, counters and pagination tokens.
    pub fn come_back(&mut self) {
        let address = self.endpoint.trim_start_matches("http://");
        let listener = std::net::TcpListener::bind(address).expect("listen again on the same port");
        self.handle = listen(listener, self.shared.clone());
    }
}

/// Serve `shared` on `listener` with two actix workers, in a task of the current runtime.
fn listen(listener: std::net::TcpListener, shared: Arc<Shared>) -> ServerHandle {
    let data = web::Data::from(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(serve))
    })
    .workers(2)
    // Longer than the SDK client's idle-connection timeout (50 s), so the client never
    // reuses a connection the server has just closed.
    .keep_alive(Duration::from_secs(120))
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)
    .expect("listen on the directory fake's socket")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

impl CognitoDirectoryFake {
    /// When each `ListUsers` call arrived, throttled and rejected ones included.
    pub fn list_users_calls(&self) -> Vec<Instant> {
        self.shared.list_users_calls.lock().unwrap().clone()
    }

    /// How many calls were answered `TooManyRequestsException`.
    pub fn throttled_calls(&self) -> usize {
        self.shared.throttled.load(Ordering::SeqCst)
    }

    /// Calls of `operation` (e.g. `"ListUsers"`) that reached the fake, whatever the answer.
    pub fn calls(&self, operation: &str) -> usize {
        self.shared
            .calls
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// How many users the directory holds now.
    pub fn users(&self) -> usize {
        self.shared.users.load(Ordering::SeqCst)
    }

    /// Append `n` users (indices continue from the current count): they appear at the end of
    /// `ListUsers`, with later creation dates, and join groups by the same rule.
    pub fn add_users(&self, n: usize) {
        self.shared.users.fetch_add(n, Ordering::SeqCst);
    }

    /// From now on (`true`) or no longer (`false`), `ListUsers` answers 500
    /// `InternalErrorException`, as Cognito does when it is down.
    pub fn fail_list_users(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// `ListUsers` calls answered 500 by `fail_list_users`.
    pub fn failed_list_users(&self) -> usize {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// The next `n` `ListUsers` calls answer `TooManyRequestsException` (replacing any
    /// throttling still pending).
    pub fn throttle_next(&self, n: usize) {
        self.shared.throttle_remaining.store(n, Ordering::SeqCst);
    }
}

impl Drop for CognitoDirectoryFake {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}

/// The JSON answer to one call.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn ok<T: Serialize>(body: &T) -> Self {
        Self {
            status: StatusCode::OK,
            body: serde_json::to_vec(body).expect("serialise the answer"),
        }
    }

    fn error(code: &str, message: &str) -> Self {
        let status = if code == "InternalErrorException" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            body: serde_json::to_vec(&serde_json::json!({"__type": code, "message": message}))
                .unwrap(),
        }
    }
}

async fn serve(request: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let answer = answer(&request, &body, &shared);
    let request_id = shared.request_ids.fetch_add(1, Ordering::Relaxed);
    HttpResponse::build(answer.status)
        .content_type("application/x-amz-json-1.1")
        .insert_header((
            "x-amzn-RequestId",
            format!(
                "directory-{:08x}-{request_id:08x}",
                shared.token_salt as u32
            ),
        ))
        .body(answer.body)
}

fn answer(request: &HttpRequest, body: &[u8], shared: &Shared) -> Answer {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX));
    let json_content = request
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-amz-json-1.1"));
    let (Some(operation), true, true) = (
        operation,
        json_content,
        request.method() == actix_web::http::Method::POST && request.path() == "/",
    ) else {
        return Answer::error(
            "UnknownOperationException",
            "directory fake: expected POST / with X-Amz-Target and AWS JSON 1.1",
        );
    };
    *shared
        .calls
        .lock()
        .unwrap()
        .entry(operation.to_owned())
        .or_default() += 1;
    if operation == "ListUsers" {
        shared.list_users_calls.lock().unwrap().push(Instant::now());
        let throttle = shared
            .throttle_remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if throttle {
            shared.throttled.fetch_add(1, Ordering::SeqCst);
            return Answer::error("TooManyRequestsException", "Too many requests");
        }
        if shared.failing.load(Ordering::SeqCst) {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            return Answer::error("InternalErrorException", "directory fake: down");
        }
    }
    let Ok(input) = serde_json::from_slice::<Value>(body) else {
        return Answer::error("SerializationException", "directory fake: body is not JSON");
    };
    match input.get("UserPoolId").and_then(Value::as_str) {
        None => {
            return Answer::error(
                "InvalidParameterException",
                "1 validation error detected: Value null at 'userPoolId' failed to satisfy constraint: Member must not be null",
            );
        }
        Some(id) if id != shared.user_pool_id => {
            return Answer::error(
                "ResourceNotFoundException",
                &format!("User pool {id} does not exist."),
            );
        }
        Some(_) => {}
    }
    let result = match operation {
        "ListUsers" => list_users(&input, shared),
        "ListGroups" => list_groups(&input, shared),
        "ListUsersInGroup" => list_users_in_group(&input, shared),
        "DescribeUserPool" => Ok(describe_user_pool(shared)),
        _ => Err(Answer::error(
            "UnknownOperationException",
            &format!("directory fake does not implement {operation}"),
        )),
    };
    result.unwrap_or_else(|error| error)
}

fn limit(input: &Value) -> Result<usize, Answer> {
    match input.get("Limit") {
        None | Some(Value::Null) => Ok(MAX_LIMIT),
        Some(value) => match value.as_u64() {
            Some(n @ 1..=60) => Ok(n as usize),
            _ => Err(Answer::error(
                "InvalidParameterException",
                &format!(
                    "1 validation error detected: Value '{value}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 60"
                ),
            )),
        },
    }
}

/// Tokens are `<salt>.<kind>.<start>` in hex: opaque enough, and checked on the way back.
fn issue_token(shared: &Shared, kind: &str, start: usize) -> String {
    format!("{:012x}.{kind}.{start:x}", shared.token_salt)
}

/// The start index a token we issued points at; `total` bounds it.
fn redeem_token(
    shared: &Shared,
    input: &Value,
    field: &str,
    kind: &str,
    total: usize,
) -> Result<usize, Answer> {
    let Some(token) = input.get(field).filter(|value| !value.is_null()) else {
        return Ok(0);
    };
    let invalid = || {
        Answer::error(
            "InvalidParameterException",
            &format!("directory fake: invalid {field}"),
        )
    };
    let token = token.as_str().ok_or_else(invalid)?;
    let prefix = format!("{:012x}.{kind}.", shared.token_salt);
    let start = token
        .strip_prefix(&prefix)
        .and_then(|start| usize::from_str_radix(start, 16).ok())
        .ok_or_else(invalid)?;
    if start == 0 || start > total {
        return Err(invalid());
    }
    Ok(start)
}

#[derive(Serialize)]
struct Attribute<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Value")]
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct User<'a> {
    username: String,
    attributes: Vec<Attribute<'a>>,
    user_create_date: f64,
    user_last_modified_date: f64,
    enabled: bool,
    user_status: &'static str,
}

/// A user attribute's name and how to compute its value for user `i`.
type AttributeSource = (&'static str, fn(usize) -> String);

/// Every attribute of a synthetic user, in `ListUsers` order.
const ATTRIBUTES: [AttributeSource; 6] = [
    ("sub", synthetic_sub),
    ("email", synthetic_email),
    ("email_verified", |i| {
        synthetic_email_verified(i).to_string()
    }),
    ("given_name", synthetic_given_name),
    ("family_name", synthetic_family_name),
    ("custom:tenant", synthetic_tenant),
];

fn user(
    i: usize,
    status: &'static str,
    padding: usize,
    attributes_to_get: Option<&[Value]>,
) -> User<'static> {
    let wanted = |name: &str| {
        attributes_to_get.is_none_or(|names| names.iter().any(|n| n.as_str() == Some(name)))
    };
    let mut attributes: Vec<Attribute<'static>> = ATTRIBUTES
        .iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, value)| Attribute {
            name,
            value: value(i),
        })
        .collect();
    if padding > 0 && wanted("custom:bio") {
        attributes.push(Attribute {
            name: "custom:bio",
            value: "x".repeat(padding),
        });
    }
    User {
        username: synthetic_username(i),
        attributes,
        user_create_date: synthetic_create_date(i),
        user_last_modified_date: synthetic_last_modified_date(i),
        enabled: synthetic_enabled(i),
        user_status: status,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListUsersOutput<'a> {
    users: Vec<User<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination_token: Option<String>,
}

fn list_users(input: &Value, shared: &Shared) -> Result<Answer, Answer> {
    if input
        .get("Filter")
        .and_then(Value::as_str)
        .is_some_and(|filter| !filter.is_empty())
    {
        return Err(Answer::error(
            "InvalidParameterException",
            "directory fake: ListUsers Filter is not supported",
        ));
    }
    let attributes_to_get = input
        .get("AttributesToGet")
        .and_then(Value::as_array)
        .filter(|names| !names.is_empty())
        .map(Vec::as_slice);
    let limit = limit(input)?;
    let total = shared.users.load(Ordering::SeqCst);
    let start = redeem_token(shared, input, "PaginationToken", "u", total)?;
    let end = (start + limit).min(total);
    Ok(Answer::ok(&ListUsersOutput {
        users: (start..end)
            .map(|i| user(i, shared.status_of(i), shared.padding, attributes_to_get))
            .collect(),
        pagination_token: (end < total).then(|| issue_token(shared, "u", end)),
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Group {
    group_name: String,
    user_pool_id: String,
    description: String,
    precedence: usize,
    creation_date: f64,
    last_modified_date: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListGroupsOutput {
    groups: Vec<Group>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn list_groups(input: &Value, shared: &Shared) -> Result<Answer, Answer> {
    let limit = limit(input)?;
    let total = shared.groups;
    let start = redeem_token(shared, input, "NextToken", "g", total)?;
    let end = (start + limit).min(total);
    Ok(Answer::ok(&ListGroupsOutput {
        groups: (start..end)
            .map(|g| Group {
                group_name: synthetic_group_name(g),
                user_pool_id: shared.user_pool_id.clone(),
                description: format!("synthetic group {g}"),
                precedence: g,
                creation_date: EPOCH_BASE,
                last_modified_date: EPOCH_BASE,
            })
            .collect(),
        next_token: (end < total).then(|| issue_token(shared, "g", end)),
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListUsersInGroupOutput<'a> {
    users: Vec<User<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

fn list_users_in_group(input: &Value, shared: &Shared) -> Result<Answer, Answer> {
    let name = input
        .get("GroupName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = name
        .strip_prefix("group-")
        .and_then(|g| g.parse::<usize>().ok())
        // `group-01` is not `group-1`.
        .filter(|&g| g < shared.groups && synthetic_group_name(g) == name);
    let Some(group) = group else {
        return Err(Answer::error(
            "ResourceNotFoundException",
            "Group not found.",
        ));
    };
    let limit = limit(input)?;
    let users = shared.users.load(Ordering::SeqCst);
    // Members are group, group + groups, group + 2 * groups, … below `users`.
    let members = users.saturating_sub(group).div_ceil(shared.groups);
    let kind = format!("m{group:x}");
    let start = redeem_token(shared, input, "NextToken", &kind, members)?;
    let end = (start + limit).min(members);
    Ok(Answer::ok(&ListUsersInGroupOutput {
        users: (start..end)
            .map(|k| {
                let i = group + k * shared.groups;
                user(i, shared.status_of(i), shared.padding, None)
            })
            .collect(),
        next_token: (end < members).then(|| issue_token(shared, &kind, end)),
    }))
}

fn describe_user_pool(shared: &Shared) -> Answer {
    let users = shared.users.load(Ordering::SeqCst);
    let string_attribute = |name: &str, mutable: bool| {
        serde_json::json!({
            "Name": name,
            "AttributeDataType": "String",
            "DeveloperOnlyAttribute": false,
            "Mutable": mutable,
            "Required": false,
            "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "2048"}
        })
    };
    Answer::ok(&serde_json::json!({
        "UserPool": {
            "Id": shared.user_pool_id,
            "Name": "directory",
            "Arn": format!(
                "arn:aws:cognito-idp:us-east-1:123456789012:userpool/{}",
                shared.user_pool_id
            ),
            "CreationDate": EPOCH_BASE,
            "LastModifiedDate": EPOCH_BASE,
            "MfaConfiguration": "OFF",
            "EstimatedNumberOfUsers": shared.estimated_users.unwrap_or(users),
            "SchemaAttributes": [
                string_attribute("sub", false),
                string_attribute("email", true),
                {
                    "Name": "email_verified",
                    "AttributeDataType": "Boolean",
                    "DeveloperOnlyAttribute": false,
                    "Mutable": true,
                    "Required": false
                },
                string_attribute("given_name", true),
                string_attribute("family_name", true),
                string_attribute("custom:tenant", true),
            ],
        }
    }))
}

#[cfg(test)]
mod tests {
    //! The tests' own imports are local to them, apart from the double's.
    use std::collections::HashMap;

    use aws_credential_types::Credentials;
    use aws_sdk_cognitoidentityprovider::Client;
    use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
    use aws_sdk_cognitoidentityprovider::types::{UserStatusType, UserType};

    use super::*;

    fn client(fake: &CognitoDirectoryFake) -> Client {
        let config = aws_sdk_cognitoidentityprovider::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_cognitoidentityprovider::config::Region::new(
                "us-east-1",
            ))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .http_client(cognito_bridge::cognito::sdk_http_client())
            .endpoint_url(&fake.endpoint)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Client::from_conf(config)
    }

    /// A fake with `options` and an SDK client pointed at it.
    async fn started(options: DirectoryOptions) -> (CognitoDirectoryFake, Client) {
        let fake = CognitoDirectoryFake::start(options).await;
        let client = client(&fake);
        (fake, client)
    }

    fn attributes(user: &UserType) -> HashMap<&str, &str> {
        user.attributes()
            .iter()
            .map(|a| (a.name(), a.value().unwrap_or_default()))
            .collect()
    }

    fn index_of(user: &UserType) -> usize {
        user.username()
            .unwrap()
            .strip_prefix("user-")
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Everything about user `i` that ListUsers (or ListUsersInGroup) returns.
    fn assert_is_synthetic(user: &UserType) {
        let i = index_of(user);
        assert_eq!(user.username(), Some(synthetic_username(i).as_str()));
        let attributes = attributes(user);
        let expected: HashMap<&str, String> = [
            ("sub", synthetic_sub(i)),
            ("email", synthetic_email(i)),
            ("email_verified", synthetic_email_verified(i).to_string()),
            ("given_name", synthetic_given_name(i)),
            ("family_name", synthetic_family_name(i)),
            ("custom:tenant", synthetic_tenant(i)),
        ]
        .into_iter()
        .collect();
        assert_eq!(attributes.len(), expected.len(), "{attributes:?}");
        for (name, value) in &expected {
            assert_eq!(attributes.get(name), Some(&value.as_str()), "{name} of {i}");
        }
        assert_eq!(user.enabled(), synthetic_enabled(i), "Enabled of {i}");
        let status = user.user_status().unwrap();
        assert_eq!(status.as_str(), synthetic_status(i));
        assert!(
            UserStatusType::values().contains(&status.as_str()),
            "{status:?}"
        );
        let created = user.user_create_date().unwrap();
        assert_eq!(created.as_secs_f64(), synthetic_create_date(i));
        let modified = user.user_last_modified_date().unwrap();
        assert_eq!(modified.as_secs_f64(), synthetic_last_modified_date(i));
    }

    #[test]
    fn synthetic_subs_are_uuid_shaped_and_unique() {
        use std::collections::HashSet;
        let subs: HashSet<String> = (0..100_000).map(synthetic_sub).collect();
        assert_eq!(subs.len(), 100_000);
        for sub in subs.iter().take(100) {
            let parts: Vec<&str> = sub.split('-').collect();
            let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lengths, [8, 4, 4, 4, 12], "{sub}");
            assert!(parts[2].starts_with('4'), "{sub}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{sub}");
            assert!(sub.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        }
    }

    #[tokio::test]
    async fn pages_250_users_through_the_sdk() {
        use std::collections::HashSet;
        let (fake, client) = started(DirectoryOptions {
            users: 250,
            groups: 3,
            ..DirectoryOptions::default()
        })
        .await;

        let mut users = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = client
                .list_users()
                .user_pool_id(DEFAULT_POOL_ID)
                .limit(60)
                .set_pagination_token(token.take())
                .send()
                .await
                .expect("ListUsers");
            pages += 1;
            users.extend(page.users().iter().cloned());
            match page.pagination_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        assert_eq!(users.len(), 250);
        assert_eq!(fake.calls("ListUsers"), 5);
        assert_eq!(fake.list_users_calls().len(), 5);
        let names: HashSet<&str> = users.iter().filter_map(UserType::username).collect();
        assert_eq!(names.len(), 250);
        let subs: HashSet<String> = users
            .iter()
            .map(|u| attributes(u)["sub"].to_owned())
            .collect();
        assert_eq!(subs.len(), 250);
        for (i, user) in users.iter().enumerate() {
            assert_eq!(index_of(user), i);
            assert_is_synthetic(user);
        }
        assert!(!users[49].enabled() && !users[199].enabled() && users[50].enabled());
        assert_eq!(
            users[96].user_status(),
            Some(&UserStatusType::ExternalProvider)
        );
        assert_eq!(
            users[193].user_status(),
            Some(&UserStatusType::ExternalProvider)
        );
        assert_eq!(users[95].user_status(), Some(&UserStatusType::Confirmed));
        assert_eq!(attributes(&users[0])["email"], "User.0@Example.com");
        assert_eq!(attributes(&users[0])["email_verified"], "true");
        assert_eq!(attributes(&users[1])["email_verified"], "false");
        assert_eq!(attributes(&users[8])["custom:tenant"], "tenant-1");

        // Groups: ListGroups, then ListUsersInGroup with Limit 60 and NextToken.
        let groups = client
            .list_groups()
            .user_pool_id(DEFAULT_POOL_ID)
            .limit(60)
            .send()
            .await
            .expect("ListGroups");
        assert!(groups.next_token().is_none());
        let group_names: Vec<&str> = groups
            .groups()
            .iter()
            .filter_map(|g| g.group_name())
            .collect();
        assert_eq!(group_names, ["group-0", "group-1", "group-2"]);
        assert_eq!(groups.groups()[0].user_pool_id(), Some(DEFAULT_POOL_ID));
        let mut members_seen = 0;
        for (g, name) in group_names.iter().enumerate() {
            let mut token: Option<String> = None;
            let mut members = Vec::new();
            loop {
                let page = client
                    .list_users_in_group()
                    .user_pool_id(DEFAULT_POOL_ID)
                    .group_name(*name)
                    .limit(60)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .expect("ListUsersInGroup");
                members.extend(page.users().iter().cloned());
                match page.next_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => break,
                }
            }
            let expected: Vec<usize> = (0..250).filter(|i| i % 3 == g).collect();
            let got: Vec<usize> = members.iter().map(index_of).collect();
            assert_eq!(got, expected, "members of {name}");
            members.iter().for_each(assert_is_synthetic);
            members_seen += members.len();
        }
        assert_eq!(members_seen, 250);
        // 84 members in group-0: two pages.
        assert_eq!(fake.calls("ListUsersInGroup"), 6);

        let pool = client
            .describe_user_pool()
            .user_pool_id(DEFAULT_POOL_ID)
            .send()
            .await
            .expect("DescribeUserPool");
        let pool = pool.user_pool().unwrap();
        assert_eq!(pool.id(), Some(DEFAULT_POOL_ID));
        assert_eq!(pool.estimated_number_of_users(), 250);
        assert!(
            pool.schema_attributes()
                .iter()
                .any(|a| a.name() == Some("custom:tenant"))
        );
        fake.add_users(10);
        let pool = client
            .describe_user_pool()
            .user_pool_id(DEFAULT_POOL_ID)
            .send()
            .await
            .unwrap();
        assert_eq!(pool.user_pool().unwrap().estimated_number_of_users(), 260);
        assert_eq!(fake.calls("DescribeUserPool"), 2);
        assert_eq!(fake.throttled_calls(), 0);
    }

    #[tokio::test]
    async fn throttles_the_first_calls_then_answers() {
        let (fake, client) = started(DirectoryOptions {
            users: 5,
            throttle_first: 2,
            ..DirectoryOptions::default()
        })
        .await;
        let call = || client.list_users().user_pool_id(DEFAULT_POOL_ID).send();
        for _ in 0..2 {
            let error = call().await.expect_err("throttled");
            assert_eq!(error.code(), Some("TooManyRequestsException"), "{error:?}");
            assert!(
                error
                    .as_service_error()
                    .unwrap()
                    .is_too_many_requests_exception()
            );
        }
        let page = call().await.expect("third call succeeds");
        assert_eq!(page.users().len(), 5);
        assert!(page.pagination_token().is_none());
        assert_eq!(fake.throttled_calls(), 2);
        assert_eq!(fake.calls("ListUsers"), 3);
        let arrivals = fake.list_users_calls();
        assert_eq!(arrivals.len(), 3);
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));

        // Other operations are not throttled; throttle_next throttles again.
        fake.throttle_next(1);
        client
            .describe_user_pool()
            .user_pool_id(DEFAULT_POOL_ID)
            .send()
            .await
            .expect("DescribeUserPool is not throttled");
        let error = call().await.expect_err("throttled again");
        assert_eq!(error.code(), Some("TooManyRequestsException"));
        call().await.expect("and then answers");
        assert_eq!(fake.throttled_calls(), 3);
        assert_eq!(fake.list_users_calls().len(), 5);
    }

    /// The error code of a call that must fail.
    fn error_code<T: std::fmt::Debug, E: ProvideErrorMetadata>(result: Result<T, E>) -> String {
        let error = result.expect_err("the call fails");
        error.code().unwrap_or("<no code>").to_owned()
    }

    #[tokio::test]
    async fn rejects_bad_limits_tokens_pools_and_groups() {
        let (fake, client) = started(DirectoryOptions {
            users: 100,
            groups: 2,
            ..DirectoryOptions::default()
        })
        .await;
        let list_users = || client.list_users().user_pool_id(DEFAULT_POOL_ID);
        let in_group = |group: &str| {
            client
                .list_users_in_group()
                .user_pool_id(DEFAULT_POOL_ID)
                .group_name(group)
        };
        // A ListUsers token is not a ListUsersInGroup token.
        let page = list_users().limit(10).send().await.unwrap();
        let users_token = page.pagination_token().unwrap();
        let failures = [
            ("Limit 61", error_code(list_users().limit(61).send().await)),
            (
                "a made-up token",
                error_code(list_users().pagination_token("made-up").send().await),
            ),
            (
                "another pool",
                error_code(
                    client
                        .list_users()
                        .user_pool_id("us-east-1_other")
                        .send()
                        .await,
                ),
            ),
            (
                "a missing group",
                error_code(in_group("group-2").send().await),
            ),
            (
                "a ListUsers token for a group",
                error_code(in_group("group-0").next_token(users_token).send().await),
            ),
        ];
        assert_eq!(
            failures,
            [
                ("Limit 61", "InvalidParameterException".to_owned()),
                ("a made-up token", "InvalidParameterException".to_owned()),
                ("another pool", "ResourceNotFoundException".to_owned()),
                ("a missing group", "ResourceNotFoundException".to_owned()),
                (
                    "a ListUsers token for a group",
                    "InvalidParameterException".to_owned()
                ),
            ]
        );
        // Default Limit is 60; AttributesToGet narrows the attributes.
        let page = list_users()
            .attributes_to_get("email")
            .send()
            .await
            .unwrap();
        assert_eq!(page.users().len(), 60);
        assert_eq!(
            attributes(&page.users()[3]),
            HashMap::from([("email", "User.3@Example.com")])
        );
        assert_eq!(fake.calls("ListUsers"), 5);
        assert_eq!(fake.calls("ListUsersInGroup"), 2);
    }

    #[tokio::test]
    async fn add_users_extends_the_listing() {
        let (fake, client) = started(DirectoryOptions::with_users(60)).await;
        let first = client
            .list_users()
            .user_pool_id(DEFAULT_POOL_ID)
            .send()
            .await
            .unwrap();
        assert_eq!(first.users().len(), 60);
        assert!(first.pagination_token().is_none());
        fake.add_users(70);
        assert_eq!(fake.users(), 130);
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_users()
                .user_pool_id(DEFAULT_POOL_ID)
                .set_pagination_token(token.take())
                .send()
                .await
                .unwrap();
            seen.extend(page.users().iter().map(index_of));
            match page.pagination_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, (0..130).collect::<Vec<_>>());
    }

    /// Many requests over few connections: keep-alive works and a page is quick. A smoke
    /// check, not a benchmark (the thresholds are generous for debug builds).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_many_pages_quickly_over_keep_alive() {
        let (fake, client) = started(DirectoryOptions::with_users(30_000)).await;
        let started = Instant::now();
        let mut token = None;
        let mut users = 0;
        loop {
            let page = client
                .list_users()
                .user_pool_id(DEFAULT_POOL_ID)
                .set_pagination_token(token.take())
                .send()
                .await
                .unwrap();
            users += page.users().len();
            match page.pagination_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        let elapsed = started.elapsed();
        assert_eq!(users, 30_000);
        assert_eq!(fake.calls("ListUsers"), 500);
        eprintln!("500 ListUsers pages (30,000 users) in {elapsed:?}");
        assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    }
}
