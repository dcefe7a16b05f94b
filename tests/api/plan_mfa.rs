//! `plan`'s count of the users with MFA, through the binary against moto behind a loopback
//! proxy that counts every Cognito call by operation (and can delete a user just before the
//! first `AdminGetUser`, throttle, or refuse): a pool with MFA `OFF` and `--mfa-users none`
//! cost no per-user call; an `OPTIONAL` pool with SMS and TOTP users is counted exactly; a
//! sample smaller than the pool makes exactly as many `AdminGetUser` calls and PLAN.md gives
//! the estimate with its interval; a user deleted meanwhile is counted as gone; throttling is
//! retried; a refused `AdminGetUser` stops the plan with exit 1 naming the call; usage errors
//! exit 2.
//!
//! Over 400 lines: the counting proxy (about 150 lines) lives here, beside the only tests
//! that use it, and seeding SMS and TOTP users in moto takes a few calls each.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aws_sdk_cognitoidentityprovider::types::{
    SmsConfigurationType, SmsMfaConfigType, SmsMfaSettingsType, SoftwareTokenMfaConfigType,
    SoftwareTokenMfaSettingsType, UserPoolMfaType,
};
use cognito_bridge::plan::MfaTally;

use crate::helpers::bridge_output;
use crate::moto::{self, Pool};

const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";

/// What the proxy does besides forwarding.
#[derive(Default)]
struct Faults {
    /// Deleted from the pool (through moto) just before the first `AdminGetUser` is forwarded.
    delete_before_first_get: Option<String>,
    /// The first this many `AdminGetUser` calls answer `TooManyRequestsException`.
    throttle_gets: usize,
    /// Every `AdminGetUser` answers this error code (HTTP 400).
    refuse_gets: Option<&'static str>,
}

struct ProxyState {
    moto: String,
    http: reqwest::Client,
    pool: (aws_sdk_cognitoidentityprovider::Client, String),
    calls: std::sync::Mutex<HashMap<String, usize>>,
    throttle_remaining: AtomicUsize,
    refuse_gets: Option<&'static str>,
    /// Held by every `AdminGetUser` while the deletion (if any) is done, so none overtakes it.
    pending_delete: tokio::sync::Mutex<Option<String>>,
}

/// moto behind a counting proxy on loopback.
struct CountingProxy {
    endpoint: String,
    state: Arc<ProxyState>,
    handle: ServerHandle,
}

impl CountingProxy {
    async fn start(pool: &Pool, faults: Faults) -> Self {
        let state = Arc::new(ProxyState {
            moto: moto::endpoint().await,
            http: reqwest::Client::new(),
            pool: (pool.client.clone(), pool.id.clone()),
            calls: std::sync::Mutex::new(HashMap::new()),
            throttle_remaining: AtomicUsize::new(faults.throttle_gets),
            refuse_gets: faults.refuse_gets,
            pending_delete: tokio::sync::Mutex::new(faults.delete_before_first_get),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(forward))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            endpoint,
            state,
            handle,
        }
    }

    /// Calls of `operation` that reached the proxy, whatever the answer.
    fn calls(&self, operation: &str) -> usize {
        self.state
            .calls
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn error(code: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("application/x-amz-json-1.1")
        .body(serde_json::json!({"__type": code, "message": "proxy"}).to_string())
}

async fn forward(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<ProxyState>,
) -> HttpResponse {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .unwrap_or("")
        .to_owned();
    *state
        .calls
        .lock()
        .unwrap()
        .entry(operation.clone())
        .or_default() += 1;
    if operation == "AdminGetUser" {
        let mut pending = state.pending_delete.lock().await;
        if let Some(username) = pending.take() {
            let (client, pool_id) = &state.pool;
            client
                .admin_delete_user()
                .user_pool_id(pool_id)
                .username(&username)
                .send()
                .await
                .expect("delete the user in moto");
        }
        drop(pending);
        if state
            .throttle_remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return error("TooManyRequestsException");
        }
        if let Some(code) = state.refuse_gets {
            return error(code);
        }
    }
    let mut upstream = state
        .http
        .post(format!("{}{}", state.moto, request.path()))
        .body(body.to_vec());
    for (name, value) in request.headers() {
        if !matches!(name.as_str(), "host" | "content-length") {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = upstream.send().await.expect("moto answers");
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/x-amz-json-1.1")
        .to_owned();
    let bytes = answer.bytes().await.expect("moto's body");
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type(content_type)
        .body(bytes)
}

/// MFA `OPTIONAL` with SMS and TOTP allowed.
async fn enable_optional_mfa(pool: &Pool) {
    pool.client
        .set_user_pool_mfa_config()
        .user_pool_id(&pool.id)
        .mfa_configuration(UserPoolMfaType::Optional)
        .sms_mfa_configuration(
            SmsMfaConfigType::builder()
                .sms_configuration(
                    SmsConfigurationType::builder()
                        .sns_caller_arn("arn:aws:iam::123456789012:role/sms")
                        .build(),
                )
                .build(),
        )
        .software_token_mfa_configuration(
            SoftwareTokenMfaConfigType::builder().enabled(true).build(),
        )
        .send()
        .await
        .expect("set the pool's MFA configuration");
}

fn username(i: usize) -> String {
    format!("mfa-{i:03}")
}

fn password(i: usize) -> String {
    format!("Passw0rd!{i}")
}

async fn add_users(pool: &Pool, count: usize) {
    for i in 0..count {
        pool.add_user(&username(i), &format!("mfa.{i}@example.com"), &password(i))
            .await;
    }
}

async fn enable_sms(pool: &Pool, i: usize) {
    pool.client
        .admin_set_user_mfa_preference()
        .user_pool_id(&pool.id)
        .username(username(i))
        .sms_mfa_settings(
            SmsMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .expect("enable SMS MFA");
}

/// An authenticator app, as a user sets one up: sign in, associate, verify (moto takes any
/// code), then enable it.
async fn enable_totp(pool: &Pool, i: usize) {
    let (_, access_token) = pool.sign_in(&username(i), &password(i)).await;
    pool.client
        .associate_software_token()
        .access_token(&access_token)
        .send()
        .await
        .expect("associate a software token");
    pool.client
        .verify_software_token()
        .access_token(&access_token)
        .user_code("123456")
        .send()
        .await
        .expect("verify the software token");
    pool.client
        .admin_set_user_mfa_preference()
        .user_pool_id(&pool.id)
        .username(username(i))
        .software_token_mfa_settings(
            SoftwareTokenMfaSettingsType::builder()
                .enabled(true)
                .build(),
        )
        .send()
        .await
        .expect("enable TOTP MFA");
}

/// 10 users: SMS for 0, 1, 2 and 5; TOTP for 3, 4 and 5. Six have MFA.
async fn optional_pool_with_sms_and_totp_users() -> Pool {
    let pool = Pool::create(false).await;
    enable_optional_mfa(&pool).await;
    add_users(&pool, 10).await;
    for i in [3, 4, 5] {
        enable_totp(&pool, i).await;
    }
    for i in [0, 1, 2, 5] {
        enable_sms(&pool, i).await;
    }
    pool
}

/// `plan` through the binary against the proxy: its output and PLAN.md (when written).
async fn plan_through(
    proxy: &CountingProxy,
    pool: &Pool,
    out: &Path,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (std::process::Output, Option<String>) {
    let mut all = vec!["plan", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut environment = vec![
        ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", pool.id.as_str()),
        (
            "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
            proxy.endpoint.as_str(),
        ),
        ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ("COGNITO_BRIDGE__IMPORT__LIST_RATE", "30"),
    ];
    environment.extend_from_slice(extra);
    let output = bridge_output(&all, &environment).await;
    let plan_md = std::fs::read_to_string(out.join("PLAN.md")).ok();
    (output, plan_md)
}

/// PLAN.md's MFA section (to the next heading).
fn mfa_section(plan_md: &str) -> &str {
    let start = plan_md.find("## MFA").expect("an MFA section");
    let rest = &plan_md[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3);
    &rest[..end]
}

#[tokio::test]
async fn neither_an_mfa_off_pool_nor_mfa_users_none_costs_a_per_user_call() {
    // MFA OFF: even a user with an SMS preference set is never asked for it.
    let pool = Pool::create(false).await;
    add_users(&pool, 3).await;
    enable_sms(&pool, 0).await;
    let proxy = CountingProxy::start(&pool, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (output, plan_md) = plan_through(
        &proxy,
        &pool,
        &dir.path().join("off"),
        &["--mfa-users", "all"],
        &[],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let plan_md = plan_md.unwrap();
    let section = mfa_section(&plan_md);
    assert!(section.contains("`MfaConfiguration`: OFF."), "{section}");
    assert!(
        section.contains("Users with a second factor: 0."),
        "{section}"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("users with MFA: 0 (MfaConfiguration OFF)")
    );
    assert!(
        proxy.calls("DescribeUserPool") >= 1,
        "the proxy saw the plan"
    );
    assert_eq!(proxy.calls("AdminGetUser"), 0);
    assert_eq!(proxy.calls("ListUsers"), 0);

    // MFA OPTIONAL, but --mfa-users none: not counted, nothing read per user.
    enable_optional_mfa(&pool).await;
    let (output, plan_md) = plan_through(
        &proxy,
        &pool,
        &dir.path().join("none"),
        &["--mfa-users", "none"],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(0));
    let plan_md = plan_md.unwrap();
    let section = mfa_section(&plan_md);
    assert!(
        section.contains("not counted (`--mfa-users none`)"),
        "{section}"
    );
    assert!(section.contains("`needs_recovery`"), "{section}");
    assert!(plan_md.contains("Users with one (not counted) go to `needs_recovery`"));
    assert_eq!(proxy.calls("AdminGetUser"), 0);
    assert_eq!(proxy.calls("ListUsers"), 0);
}

#[tokio::test]
async fn an_optional_pool_no_larger_than_the_sample_is_counted_exactly_by_kind() {
    let pool = optional_pool_with_sms_and_totp_users().await;
    let proxy = CountingProxy::start(&pool, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // The default --mfa-users (a sample of 1000) covers the whole pool of 10.
    let (output, plan_md) = plan_through(&proxy, &pool, &dir.path().join("plan"), &[], &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan_md = plan_md.unwrap();
    let section = mfa_section(&plan_md);
    assert!(
        section.contains("`MfaConfiguration`: OPTIONAL."),
        "{section}"
    );
    assert!(
        section.contains(
            "Users with a second factor: exactly 6 of 10 users: SMS 4, TOTP 3, e-mail OTP 0"
        ),
        "{section}"
    );
    assert!(
        section.contains("`hooks.mfa_policy = \"deny\"` (the default)"),
        "{section}"
    );
    assert!(
        plan_md.contains("Users with one (exactly 6 of 10 users) go to `needs_recovery`"),
        "{plan_md}"
    );
    assert!(
        stdout.contains("users with MFA: exactly 6 of 10 users (6 of 10 asked have one: SMS 4, TOTP 3, e-mail OTP 0; 0 gone)"),
        "{stdout}"
    );
    assert_eq!(proxy.calls("AdminGetUser"), 10);
    assert_eq!(proxy.calls("ListUsers"), 1);
}

#[tokio::test]
async fn a_sample_smaller_than_the_pool_reads_only_the_sample_and_estimates() {
    // 70 users (two ListUsers pages), 14 with SMS MFA; a sample of 20.
    let pool = Pool::create(false).await;
    enable_optional_mfa(&pool).await;
    add_users(&pool, 70).await;
    for i in (0..70).step_by(5) {
        enable_sms(&pool, i).await;
    }
    let proxy = CountingProxy::start(&pool, Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (output, plan_md) = plan_through(
        &proxy,
        &pool,
        &dir.path().join("plan"),
        &["--mfa-users", "20", "--mfa-rate", "50", "--no-progress"],
        &[],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(proxy.calls("AdminGetUser"), 20);
    assert_eq!(proxy.calls("ListUsers"), 2);

    // How many of the sample have MFA, from the summary; the text must be the estimate for it.
    let asked = stdout
        .split("users with MFA: ")
        .nth(1)
        .and_then(|rest| rest.split(" asked have one").next())
        .and_then(|rest| rest.rsplit('(').next())
        .expect("the summary's MFA line");
    let (with_mfa, of) = asked.split_once(" of ").unwrap();
    let with_mfa: u64 = with_mfa.parse().unwrap();
    assert_eq!(of, "20", "{stdout}");
    assert!(with_mfa <= 14, "{stdout}");
    let tally = MfaTally {
        users: 70,
        asked: 20,
        with_mfa,
        sms: with_mfa,
        ..MfaTally::default()
    };
    let estimate = tally.estimate().unwrap();
    assert!(estimate.low <= estimate.users && estimate.users <= estimate.high);
    let headline = format!(
        "about {} of 70 users (sample of 20, 95 % interval {}–{})",
        estimate.users, estimate.low, estimate.high
    );
    assert_eq!(tally.headline(), headline);
    let plan_md = plan_md.unwrap();
    let section = mfa_section(&plan_md);
    assert!(
        section.contains(&format!("Users with a second factor: {headline}.")),
        "{section}"
    );
    assert!(
        section.contains(&format!(
            "In the sample, {with_mfa} of 20 users have one: SMS {with_mfa}, TOTP 0"
        )),
        "{section}"
    );
    assert!(stdout.contains(&headline), "{stdout}");
}

#[tokio::test]
async fn a_user_deleted_meanwhile_is_gone_and_throttling_is_retried() {
    let pool = optional_pool_with_sms_and_totp_users().await;
    // mfa-000 (SMS) is deleted after the listing; the first two AdminGetUser are throttled.
    let proxy = CountingProxy::start(
        &pool,
        Faults {
            delete_before_first_get: Some(username(0)),
            throttle_gets: 2,
            ..Faults::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (output, plan_md) = plan_through(
        &proxy,
        &pool,
        &dir.path().join("plan"),
        &["--mfa-users", "all", "--mfa-rate", "50"],
        &[("COGNITO_BRIDGE__HOOKS__MFA_POLICY", "allow")],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("users with MFA: exactly 5 of 9 users (5 of 9 asked have one: SMS 3, TOTP 3, e-mail OTP 0; 1 gone)"),
        "{stdout}"
    );
    let plan_md = plan_md.unwrap();
    let section = mfa_section(&plan_md);
    assert!(
        section.contains("exactly 5 of 9 users: SMS 3, TOTP 3"),
        "{section}"
    );
    assert!(
        section.contains("1 user was deleted between the listing and `AdminGetUser`"),
        "{section}"
    );
    assert!(
        section.contains("`hooks.mfa_policy = \"allow\"` they migrate"),
        "{section}"
    );
    assert!(
        plan_md.contains("Users with one (exactly 5 of 9 users) migrate at their first login with the factor dropped, `mfa_dropped`"),
        "{plan_md}"
    );
    // Ten users asked, two of the calls throttled and retried.
    assert_eq!(proxy.calls("AdminGetUser"), 12);
}

#[tokio::test]
async fn a_refused_admin_get_user_stops_the_plan_with_exit_1_naming_the_call() {
    let pool = optional_pool_with_sms_and_totp_users().await;
    let proxy = CountingProxy::start(
        &pool,
        Faults {
            refuse_gets: Some("AccessDeniedException"),
            ..Faults::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan");
    let (output, plan_md) = plan_through(&proxy, &pool, &out, &[], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("AdminGetUser") && stderr.contains("AccessDeniedException"),
        "{stderr}"
    );
    assert!(plan_md.is_none() && !out.exists(), "nothing written");
    // It stopped at the first refusal: at most the calls already in flight were sent.
    let calls = proxy.calls("AdminGetUser");
    assert!((1..=4).contains(&calls), "{calls}");
}

#[tokio::test]
async fn the_mfa_flags_are_explained_and_bad_values_exit_2() {
    let output = bridge_output(&["plan", "--help"], &[]).await;
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--mfa-users",
        "--mfa-rate",
        "--no-progress",
        "[default: 1000]",
        "[default: 20]",
        "Wilson",
        "14 hours",
        "uniform random",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    for (args, names) in [
        (&["plan", "--mfa-users", "0"][..], "--mfa-users"),
        (&["plan", "--mfa-users", "lots"][..], "--mfa-users"),
        (&["plan", "--mfa-rate", "0"][..], "--mfa-rate"),
        (&["plan", "--mfa-rate", "fast"][..], "--mfa-rate"),
    ] {
        let output = bridge_output(args, &[]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn the_library_refuses_a_zero_mfa_rate_before_reading_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.toml");
    std::fs::write(&path, "").unwrap();
    let unreachable = crate::doubles::cognito_auth_fake::unused_endpoint().await;
    let environment = [
        ("COGNITO__USER_POOL_ID", "us-east-1_abc"),
        ("COGNITO__ENDPOINT_URL", unreachable.as_str()),
        ("COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
    ]
    .map(|(key, value)| (format!("COGNITO_BRIDGE__{key}"), value.to_owned()));
    let settings = cognito_bridge::config::Settings::load_from(Some(&path), environment).unwrap();
    let out = dir.path().join("plan");
    let error = cognito_bridge::plan::run_with_mfa(
        &settings,
        cognito_bridge::plan::PlanOptions {
            out: out.clone(),
            force: false,
        },
        cognito_bridge::plan::MfaOptions {
            rate: 0,
            ..cognito_bridge::plan::MfaOptions::default()
        },
        Some(moto::test_credentials()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, cognito_bridge::plan::PlanError::Usage(_)),
        "{error}"
    );
    assert!(error.to_string().contains("--mfa-rate"), "{error}");
    assert!(!out.exists());
}
