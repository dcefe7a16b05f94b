//! `clients` against the real Hydra v2.3.0 and moto as Cognito: app clients become Hydra
//! OAuth2 clients with the right fields, a rerun changes nothing, a changed app client is
//! updated, a logout URL Hydra would refuse is left out and reported, a mapped client's
//! client-credentials token verifies against Hydra's JWKS, `--new-secrets` writes secrets only
//! to its file, `--dry-run` writes nothing; and the command line's help and exit statuses.

use std::os::unix::fs::PermissionsExt;

use aws_sdk_cognitoidentityprovider::types::OAuthFlowType;
use cognito_bridge::clients::{self, ClientsOptions, ClientsSummary, Outcome};
use cognito_bridge::config::Settings;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::bridge_output;
use crate::helpers::oauth::{AppSpec, MACHINE, moto_pool_env};
use crate::moto::{self, Pool};
use crate::ory::Hydra;

const WEB: AppSpec = AppSpec {
    name: "web",
    secret: true,
    flows: &[OAuthFlowType::Code],
    scopes: &["openid", "email"],
    callbacks: &["https://app.example.com/callback"],
    logouts: &[
        "https://app.example.com/bye",
        "https://elsewhere.example.com/bye",
    ],
};
const SPA: AppSpec = AppSpec {
    name: "spa",
    secret: false,
    flows: &[OAuthFlowType::Code, OAuthFlowType::Implicit],
    scopes: &["openid", "profile"],
    callbacks: &["http://localhost:3000/callback"],
    logouts: &["http://localhost:3000/"],
};

async fn settings(pool_id: &str, hydra: &Hydra) -> Settings {
    let moto = moto::endpoint().await;
    let environment = binary_env(pool_id, &moto, hydra.admin_url.as_str())
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()));
    Settings::load_from(None, environment).unwrap()
}

/// The binary's environment: moto's pool `pool_id` and Hydra's admin API at `hydra_admin`.
fn binary_env<'a>(
    pool_id: &'a str,
    moto: &'a str,
    hydra_admin: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut environment = moto_pool_env(pool_id, moto).to_vec();
    environment.push(("COGNITO_BRIDGE__HYDRA__ADMIN_URL", hydra_admin));
    environment
}

async fn run(settings: &Settings, dry_run: bool) -> ClientsSummary {
    clients::run(
        settings,
        ClientsOptions {
            dry_run,
            ..ClientsOptions::default()
        },
        Some(moto::test_credentials()),
    )
    .await
    .unwrap()
}

fn outcome_of(summary: &ClientsSummary, client_id: &str) -> (Outcome, Vec<String>) {
    let report = summary
        .clients
        .iter()
        .find(|report| report.client_id == client_id)
        .unwrap_or_else(|| panic!("{client_id} not in the summary"));
    (report.outcome, report.fields.clone())
}

async fn hydra_client(hydra: &Hydra, id: &str) -> Option<Value> {
    let response = reqwest::get(
        hydra
            .admin_url
            .join(&format!("admin/clients/{id}"))
            .unwrap(),
    )
    .await
    .unwrap();
    match response.status() {
        StatusCode::NOT_FOUND => None,
        StatusCode::OK => Some(response.json().await.unwrap()),
        other => panic!("GET client {id}: {other}"),
    }
}

fn strings(value: &Value) -> Vec<&str> {
    let mut items: Vec<&str> = value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    items.sort_unstable();
    items
}

fn seconds(value: &Value) -> u128 {
    clients::parse_go_duration(value.as_str().unwrap()).unwrap() / 1_000_000_000
}

/// POST Hydra's token endpoint with the client credentials grant.
async fn client_credentials_token(hydra: &Hydra, id: &str, secret: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(hydra.public_url.join("oauth2/token").unwrap())
        .basic_auth(id, Some(secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The access token's claims, checked against Hydra's published keys.
async fn verified_claims(hydra: &Hydra, token: &str) -> Value {
    let keys: JwkSet = reqwest::get(hydra.public_url.join(".well-known/jwks.json").unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).expect("a JWT access token");
    let kid = header.kid.expect("a key id");
    let jwk = keys.find(&kid).expect("the token's key is published");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    let issuer = hydra.public_url.as_str().trim_end_matches('/').to_owned();
    validation.set_issuer(&[issuer.clone(), format!("{issuer}/")]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("the token verifies against Hydra's JWKS")
        .claims
}

#[tokio::test]
async fn clients_mirror_the_pools_app_clients_into_the_real_hydra() {
    let hydra = Hydra::start().await;
    // Its own app client ("kratos-bridge") has no OAuth flows: SDK sign-in only.
    let pool = Pool::create(false).await;
    let (web, web_secret) = WEB.create(&pool).await;
    let (spa, spa_secret) = SPA.create(&pool).await;
    let (machine, machine_secret) = MACHINE.create(&pool).await;
    assert!(web_secret.is_some() && machine_secret.is_some() && spa_secret.is_none());
    // Hydra already has a client under this app client's id, made by someone else.
    let (foreign, _) = AppSpec {
        name: "foreign",
        ..MACHINE
    }
    .create(&pool)
    .await;
    let created = reqwest::Client::new()
        .post(hydra.admin_url.join("admin/clients").unwrap())
        .json(&serde_json::json!({"client_id": foreign, "client_name": "made by hand"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let settings = settings(&pool.id, &hydra).await;

    // A dry run plans every client and writes nothing.
    let plan = run(&settings, true).await;
    assert!(plan.dry_run);
    assert_eq!(
        (
            plan.counts.created,
            plan.counts.skipped,
            plan.counts.refused,
            plan.counts.app_clients
        ),
        (3, 1, 1, 5),
        "{plan:?}"
    );
    assert_eq!(outcome_of(&plan, &pool.client_id).0, Outcome::Skipped);
    for id in [&web, &spa, &machine] {
        assert!(
            hydra_client(&hydra, id).await.is_none(),
            "dry run created {id}"
        );
    }

    let first = run(&settings, false).await;
    assert!(!first.all_done(), "one client is refused: exit status 1");
    let (outcome, _) = outcome_of(&first, &foreign);
    assert_eq!(outcome, Outcome::Refused);
    let read = hydra_client(&hydra, &foreign).await.unwrap();
    assert_eq!(
        read["client_name"], "made by hand",
        "a client not ours is left alone"
    );
    for id in [&web, &spa, &machine] {
        assert_eq!(outcome_of(&first, id).0, Outcome::Created);
    }
    assert_eq!(outcome_of(&first, &pool.client_id).0, Outcome::Skipped);
    assert!(hydra_client(&hydra, &pool.client_id).await.is_none());
    // The logout URL on another host is left out and reported; the client is still created.
    let web_report = first.clients.iter().find(|c| c.client_id == web).unwrap();
    assert_eq!(web_report.dropped.len(), 1, "{web_report:?}");
    assert_eq!(web_report.dropped[0].field, "post_logout_redirect_uris");
    assert_eq!(
        web_report.dropped[0].uri,
        "https://elsewhere.example.com/bye"
    );
    assert_eq!(first.counts.dropped_uris, 1);

    // Read back from Hydra's admin API.
    let read = hydra_client(&hydra, &web).await.unwrap();
    assert_eq!(read["client_id"], web.as_str());
    assert_eq!(read["client_name"], "web");
    assert_eq!(
        strings(&read["redirect_uris"]),
        ["https://app.example.com/callback"]
    );
    assert_eq!(
        strings(&read["post_logout_redirect_uris"]),
        ["https://app.example.com/bye"]
    );
    assert_eq!(
        strings(&read["grant_types"]),
        ["authorization_code", "refresh_token"]
    );
    assert_eq!(strings(&read["response_types"]), ["code"]);
    assert_eq!(read["scope"], "openid email offline_access");
    assert_eq!(read["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(read["access_token_strategy"], "jwt");
    assert_eq!(
        seconds(&read["authorization_code_grant_access_token_lifespan"]),
        30 * 60
    );
    assert_eq!(
        seconds(&read["refresh_token_grant_access_token_lifespan"]),
        30 * 60
    );
    assert_eq!(
        seconds(&read["authorization_code_grant_id_token_lifespan"]),
        2 * 3600
    );
    assert_eq!(
        seconds(&read["authorization_code_grant_refresh_token_lifespan"]),
        10 * 86_400
    );
    assert_eq!(
        read["metadata"]["cognito_bridge"]["user_pool_id"],
        pool.id.as_str()
    );
    println!(
        "Hydra's echo of a lifespan: {}",
        read["authorization_code_grant_access_token_lifespan"]
    );

    let read = hydra_client(&hydra, &spa).await.unwrap();
    assert_eq!(read["token_endpoint_auth_method"], "none");
    assert_eq!(
        strings(&read["grant_types"]),
        ["authorization_code", "implicit", "refresh_token"]
    );
    assert_eq!(
        strings(&read["response_types"]),
        ["code", "id_token", "id_token token", "token"]
    );
    assert_eq!(
        strings(&read["post_logout_redirect_uris"]),
        ["http://localhost:3000/"]
    );

    let read = hydra_client(&hydra, &machine).await.unwrap();
    assert_eq!(strings(&read["grant_types"]), ["client_credentials"]);
    assert_eq!(read["scope"], "https://api.example.com/read");
    assert_eq!(
        seconds(&read["client_credentials_grant_access_token_lifespan"]),
        30 * 60
    );

    // The copied secret works at Hydra's token endpoint; the token verifies against its JWKS.
    let (status, token) =
        client_credentials_token(&hydra, &machine, machine_secret.as_deref().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let claims = verified_claims(&hydra, token["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["client_id"], machine.as_str(), "{claims}");
    // Hydra v2.3.0 fixes `exp` when the request starts and `iat` when it signs: on a loaded
    // machine `exp - iat` came out 3 s short of the lifespan once.
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(
        (30 * 60 - 30..=30 * 60).contains(&lifetime),
        "the access token lives as long as in Cognito: {lifetime} s"
    );
    let expires_in = token["expires_in"].as_i64().unwrap();
    assert!((30 * 60 - 30..=30 * 60).contains(&expires_in), "{token}");

    // A rerun changes nothing.
    let again = run(&settings, false).await;
    for id in [&web, &spa, &machine] {
        assert_eq!(
            outcome_of(&again, id),
            (Outcome::Unchanged, vec![]),
            "{again:?}"
        );
    }

    // A changed app client is updated, and only in what changed.
    AppSpec {
        scopes: &["openid", "email", "profile"],
        callbacks: &[
            "https://app.example.com/callback",
            "https://app.example.com/new-callback",
        ],
        ..WEB
    }
    .update(&pool, &web)
    .await;
    // The machine client gets a second scope (moto keeps its secret through the update).
    AppSpec {
        scopes: &[
            "https://api.example.com/read",
            "https://api.example.com/write",
        ],
        ..MACHINE
    }
    .update(&pool, &machine)
    .await;
    let plan = run(&settings, true).await;
    assert_eq!(
        outcome_of(&plan, &web),
        (
            Outcome::Updated,
            vec!["redirect_uris".into(), "scope".into()]
        )
    );
    let updated = run(&settings, false).await;
    assert_eq!(
        outcome_of(&updated, &web),
        (
            Outcome::Updated,
            vec!["redirect_uris".into(), "scope".into()]
        ),
        "{updated:?}"
    );
    assert_eq!(
        outcome_of(&updated, &machine),
        (Outcome::Updated, vec!["scope".into()])
    );
    // A replacement without a secret keeps the one Hydra holds: the copied secret still works.
    let (status, token) =
        client_credentials_token(&hydra, &machine, machine_secret.as_deref().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let read = hydra_client(&hydra, &web).await.unwrap();
    assert_eq!(
        strings(&read["redirect_uris"]),
        [
            "https://app.example.com/callback",
            "https://app.example.com/new-callback"
        ]
    );
    assert_eq!(read["scope"], "openid email profile offline_access");
    let table = updated.render(clients::ClientsFormat::Table);
    assert!(table.contains("updated: redirect_uris, scope"), "{table}");
    assert!(table.contains("elsewhere.example.com"), "{table}");
    let last = run(&settings, false).await;
    assert_eq!(outcome_of(&last, &web).0, Outcome::Unchanged);
}

#[tokio::test]
async fn new_secrets_go_only_to_the_secrets_file_and_work_at_hydra() {
    let hydra = Hydra::start().await;
    let pool = Pool::create(false).await;
    let (machine, cognito_secret) = MACHINE.create(&pool).await;
    let cognito_secret = cognito_secret.unwrap();
    let moto = moto::endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.jsonl");
    // A file that is there already, readable by all: it is truncated and narrowed to 0600.
    std::fs::write(&secrets, "old content\n").unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = bridge_output(
        &[
            "clients",
            "--new-secrets",
            "--secrets-out",
            secrets.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[
            binary_env(&pool.id, &moto, hydra.admin_url.as_str()).as_slice(),
            &[("RUST_LOG", "trace")],
        ]
        .concat(),
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("clients started"),
        "TRACE logging was on: {stderr}"
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["created"], 1, "{summary}");
    assert_eq!(summary["secrets_out"], secrets.to_str().unwrap());

    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written = std::fs::read_to_string(&secrets).unwrap();
    let lines: Vec<Value> = written
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "one line per new secret, old content gone");
    assert_eq!(lines[0]["client_id"], machine.as_str());
    let new_secret = lines[0]["client_secret"].as_str().unwrap();
    assert!(new_secret.len() >= 32);
    assert_ne!(new_secret, cognito_secret);
    for secret in [new_secret, cognito_secret.as_str()] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret reached the output"
        );
    }

    let (status, token) = client_credentials_token(&hydra, &machine, new_secret).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    verified_claims(&hydra, token["access_token"].as_str().unwrap()).await;
    let (status, _) = client_credentials_token(&hydra, &machine, &cognito_secret).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "Cognito's secret was not copied"
    );
}

#[tokio::test]
async fn clients_help_explains_the_command_and_usage_errors_exit_2() {
    let output = bridge_output(&["clients", "--help"], &[]).await;
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--dry-run",
        "--new-secrets",
        "--secrets-out",
        "--format",
        "hydra.admin_url",
        "0600",
        "Exit status",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    let top = bridge_output(&["--help"], &[]).await;
    assert!(String::from_utf8_lossy(&top.stdout).contains("clients"));

    for args in [
        &["clients", "--new-secrets"][..],
        &["clients", "--secrets-out", "secrets.jsonl"][..],
        &["clients", "--format", "csv"][..],
        &["clients", "--unknown"][..],
    ] {
        let output = bridge_output(args, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    // Configuration errors: no pool, a bad Hydra setting.
    let output = bridge_output(&["clients"], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cognito.user_pool_id"), "{stderr}");
    let output = bridge_output(
        &["clients"],
        &[
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", "us-east-1_abc"),
            ("COGNITO_BRIDGE__HYDRA__TIMEOUT_MS", "0"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("hydra.timeout_ms"), "{stderr}");
}

#[tokio::test]
async fn clients_exits_1_when_hydra_is_unreachable_and_a_dry_run_writes_no_secrets_file() {
    let pool = Pool::create(false).await;
    WEB.create(&pool).await;
    let moto = moto::endpoint().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.jsonl");
    let output = bridge_output(
        &[
            "clients",
            "--dry-run",
            "--new-secrets",
            "--secrets-out",
            secrets.to_str().unwrap(),
        ],
        &binary_env(&pool.id, &moto, &closed),
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not be reached"), "{stderr}");
    assert!(output.stdout.is_empty(), "no summary after a failure");
    assert!(
        !secrets.exists(),
        "a dry run does not touch the secrets file"
    );
}

/// Hydra's own 400, for inputs the client's filter passes: a logout URL with the default
/// port written out (`https://app.example.com:443/bye`: the `url` crate drops a default port,
/// so it compares equal to the callback's origin, while Hydra v2.3.0 compares the ports as
/// written, Go's `URL.Port()` "443" against "") and a callback with a malformed percent escape
/// (`%zz`: the `url` crate keeps it, Go's `url.ParseRequestURI` refuses it). Hydra refuses each
/// whole client; the run reports both refused with Hydra's reason, writes the others and
/// exits 1.
#[tokio::test]
async fn clients_hydra_itself_refuses_are_reported_with_its_reason_and_the_others_are_written() {
    let hydra = Hydra::start().await;
    let pool = Pool::create(false).await;
    let (explicit_port, _) = AppSpec {
        name: "explicit-port",
        logouts: &["https://app.example.com:443/bye"],
        ..WEB
    }
    .create(&pool)
    .await;
    let (bad_escape, _) = AppSpec {
        name: "bad-escape",
        callbacks: &["https://app.example.com/cb%zz"],
        logouts: &[],
        ..WEB
    }
    .create(&pool)
    .await;
    let (machine, _) = MACHINE.create(&pool).await;
    let (spa, _) = SPA.create(&pool).await;
    let moto = moto::endpoint().await;
    let output = bridge_output(
        &["clients", "--format", "json"],
        &binary_env(&pool.id, &moto, hydra.admin_url.as_str()),
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).expect("the summary as JSON");
    let counts = ["created", "refused", "dropped_uris"].map(|key| summary[key].as_u64());
    assert_eq!(counts, [Some(2), Some(2), Some(0)], "{summary:#}");
    let report = |id: &str| {
        summary["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|client| client["client_id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {summary:#}"))
            .clone()
    };
    for (id, hydra_error, words) in [
        (
            &explicit_port,
            "invalid_client_metadata",
            ["https://app.example.com:443/bye", "port"],
        ),
        (
            &bad_escape,
            "invalid_redirect_uri",
            ["https://app.example.com/cb%zz", "parse"],
        ),
    ] {
        let refused = report(id);
        assert_eq!(refused["outcome"], "refused", "{refused:#}");
        assert_eq!(refused["dropped"], json!([]), "the filter let it pass");
        let reason = refused["reason"].as_str().unwrap();
        println!("{}: {reason}", refused["client_name"]);
        assert!(
            reason.starts_with(&format!("Hydra refused it ({hydra_error})")),
            "{reason}"
        );
        for word in words {
            assert!(reason.contains(word), "Hydra's own words: {reason}");
        }
        assert!(hydra_client(&hydra, id).await.is_none(), "{id}");
    }
    for id in [&machine, &spa] {
        assert_eq!(report(id)["outcome"], "created");
        assert!(hydra_client(&hydra, id).await.is_some(), "{id}");
    }
}
