//! The admin listener (`admin.listen`, `admin.tokens`): auth, every JSON route on both
//! backends with known data, cursor paging while rows change, the CSV against the JSON, the
//! projection on a synthetic trend; `/metrics` and the detailed readiness live there only.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use cognito_bridge::domain::Outcome;
use cognito_bridge::store::{Attempt, Store};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, API_KEY, AppOptions, Backend, TestApp, import_users, spawn_app};
use crate::moto::Pool;

/// `GET` on the admin listener with `token`.
async fn admin_get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(format!("{}{path}", app.admin_address.as_ref().unwrap()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn admin_json(app: &TestApp, path: &str) -> Value {
    let response = admin_get(app, path, Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

/// A migration at `at` through the hook (as a verified hook call records it).
async fn migrate_via_hook(store: &dyn Store, username: &str, at: DateTime<Utc>) {
    store
        .record_attempt(&Attempt {
            key: uuid::Uuid::new_v4(),
            at,
            cognito_username: Some(username.to_owned()),
            request_id: None,
            trigger_id: None,
            identity_id: None,
            outcome: Outcome::Verified,
            cognito_latency_ms: Some(20),
            cognito_calls: 1,
            creates_row: true,
            client_ip: None,
        })
        .await
        .unwrap();
}

async fn wrong_password(store: &dyn Store, username: &str, at: DateTime<Utc>) {
    store
        .record_attempt(&Attempt {
            key: uuid::Uuid::new_v4(),
            at,
            cognito_username: Some(username.to_owned()),
            request_id: None,
            trigger_id: None,
            identity_id: None,
            outcome: Outcome::NotAuthorized,
            cognito_latency_ms: Some(20),
            cognito_calls: 1,
            creates_row: true,
            client_ip: None,
        })
        .await
        .unwrap();
}

async fn app(backend: Backend) -> (TestApp, Pool) {
    let pool = Pool::create(false).await;
    let app = spawn_app(AppOptions::for_pool(backend, &pool).await).await;
    (app, pool)
}

#[tokio::test]
async fn every_admin_route_needs_an_admin_token_and_hook_keys_open_none() {
    let (app, _pool) = app(Backend::Sqlite).await;
    for path in [
        "/admin/progress",
        "/admin/timeline",
        "/admin/users",
        "/admin/users.csv",
        "/admin/imports",
        "/metrics",
        "/health/ready",
        "/admin/nothing-here",
    ] {
        for token in [
            None,
            Some("wrong-token-but-long-enough-0123456789"),
            Some(API_KEY),
        ] {
            let response = admin_get(&app, path, token).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {token:?}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "unauthorized");
        }
    }
    assert_eq!(
        admin_get(&app, "/admin/progress", Some(ADMIN_TOKEN))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        admin_get(&app, "/admin/nothing-here", Some(ADMIN_TOKEN))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The admin token opens nothing on the hook's port.
    let hook = app
        .client
        .post(app.hook_url())
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"identifier": "a", "password": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), StatusCode::UNAUTHORIZED);
    // The hook's port keeps a plain readiness for Kratos-side probes, and no metrics.
    let (status, body) = app.get_on_hook_port("/health/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"status": "ready"}));
    let (status, _) = app.get_on_hook_port("/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let metrics = admin_get(&app, "/metrics", Some(ADMIN_TOKEN)).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("cognito_bridge_cognito_circuit_state")
    );
}

async fn the_routes_report_known_data(backend: Backend) {
    let (app, _pool) = app(backend).await;
    let store = app.store.as_ref();
    let users: Vec<(String, String, String, String)> = (0..12)
        .map(|i| {
            (
                format!("user{i:02}"),
                format!("user{i:02}@example.com"),
                format!("sub-{i:02}"),
                format!("id-{i:02}"),
            )
        })
        .collect();
    let rows: Vec<(&str, Option<&str>, &str, &str)> = users
        .iter()
        .map(|(u, e, s, i)| (u.as_str(), Some(e.as_str()), s.as_str(), i.as_str()))
        .collect();
    import_users(store, &rows).await;
    let now = Utc::now();
    // Seven days of migrations, one a day through the hook (users 00..06), two captures
    // today (07, 08); 09..11 stay pending, and 10 has two wrong passwords.
    for day in 0..7 {
        migrate_via_hook(
            store,
            &format!("user{day:02}"),
            now - Duration::days(day) - Duration::minutes(5),
        )
        .await;
    }
    for user in ["user07", "user08"] {
        let id = format!("id-{}", &user[4..]);
        store
            .complete_capture(user, &id, now - Duration::minutes(1))
            .await
            .unwrap();
    }
    wrong_password(store, "user10", now - Duration::hours(2)).await;
    wrong_password(store, "user10", now - Duration::hours(1)).await;

    // Progress: the report's JSON, the outbox, the projection (9 migrations in the 7-day
    // window: 9/7 a day; 3 pending take ceil(3 / (9/7)) = 3 days).
    let progress = admin_json(&app, "/admin/progress").await;
    assert_eq!(progress["total"], 12);
    assert_eq!(progress["states"]["migrated"], 9);
    assert_eq!(progress["states"]["pending"], 3);
    assert_eq!(progress["capture_outbox"]["depth"], 0);
    assert_eq!(progress["imports"].as_array().unwrap().len(), 1);
    let expected = (now.date_naive() + Duration::days(3)).to_string();
    assert_eq!(
        progress["projected_completion"],
        expected.as_str(),
        "{progress}"
    );
    assert_eq!(progress["projection"]["window_days"], 7);
    assert_eq!(progress["projection"]["pending"], 3);
    let rate = progress["projection"]["rate_per_day"].as_f64().unwrap();
    assert!((rate - 9.0 / 7.0).abs() < 1e-9, "{rate}");

    // Timeline by day over the last 8 days: one hook migration a day, the captures today,
    // the running total reaching 9.
    let from = (now - Duration::days(7)).date_naive();
    let timeline = admin_json(&app, &format!("/admin/timeline?bucket=day&from={from}")).await;
    let buckets = timeline["buckets"].as_array().unwrap();
    assert_eq!(timeline["before"], 0);
    let today = buckets.last().unwrap();
    assert_eq!(today["start"], now.date_naive().to_string());
    assert_eq!(today["capture"], 2);
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["hook"].as_i64().unwrap())
            .sum::<i64>(),
        7
    );
    assert_eq!(today["cumulative"], 9);
    let hours = admin_json(&app, "/admin/timeline?bucket=hour").await;
    assert_eq!(
        hours["buckets"].as_array().unwrap().len(),
        49,
        "48 hours, both ends"
    );
    for bad in [
        "bucket=week",
        "from=yesterday",
        "from=2026-12-02&to=2026-12-01",
        "bucket=hour&from=2020-01-01",
    ] {
        let response = admin_get(&app, &format!("/admin/timeline?{bad}"), Some(ADMIN_TOKEN)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // The stragglers: pending users in username order, with their attempts.
    let pending = admin_json(&app, "/admin/users?state=pending").await;
    let listed: Vec<&str> = pending["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["cognito_username"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["user09", "user10", "user11"]);
    assert!(pending["next_cursor"].is_null());
    let user10 = &pending["users"][1];
    assert_eq!(user10["attempts"], 2);
    assert_eq!(user10["last_outcome"], "not_authorized");
    assert_eq!(user10["email"], "user10@example.com");
    let migrated = admin_json(&app, "/admin/users?state=migrated&limit=1000").await;
    assert_eq!(migrated["users"].as_array().unwrap().len(), 9);
    assert_eq!(migrated["users"][7]["migrated_via"], "capture");
    for bad in ["state=gone", "limit=0", "limit=1001", "cursor=%%%"] {
        let response = admin_get(&app, &format!("/admin/users?{bad}"), Some(ADMIN_TOKEN)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    // The CSV holds the JSON's rows.
    let csv = admin_get(&app, "/admin/users.csv?state=pending", Some(ADMIN_TOKEN)).await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    for (record, user) in records.iter().zip(pending["users"].as_array().unwrap()) {
        assert_eq!(&record[0], user["cognito_username"].as_str().unwrap());
        assert_eq!(&record[1], user["email"].as_str().unwrap());
        assert_eq!(&record[2], "pending");
        assert_eq!(&record[6], user["attempts"].to_string());
    }

    let imports = admin_json(&app, "/admin/imports").await;
    assert_eq!(imports["imports"].as_array().unwrap().len(), 1);
    assert_eq!(imports["imports"][0]["dry_run"], false);
}

async fn paging_while_rows_change_has_no_gaps_or_repeats(backend: Backend) {
    let (app, _pool) = app(backend).await;
    let store = app.store.clone();
    let names: Vec<String> = (0..25).map(|i| format!("u{i:03}")).collect();
    let rows: Vec<(&str, Option<&str>, &str, &str)> = names
        .iter()
        .map(|name| (name.as_str(), None, name.as_str(), name.as_str()))
        .collect();
    import_users(store.as_ref(), &rows).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/admin/users?limit=4&cursor={cursor}"),
            None => "/admin/users?limit=4".to_owned(),
        };
        let page = admin_json(&app, &path).await;
        for user in page["users"].as_array().unwrap() {
            seen.push(user["cognito_username"].as_str().unwrap().to_owned());
        }
        // Between pages: users come (before and after the cursor) and others migrate.
        round += 1;
        let early = format!("a{round:03}");
        let late = format!("z{round:03}");
        import_users(
            store.as_ref(),
            &[
                (early.as_str(), None, early.as_str(), early.as_str()),
                (late.as_str(), None, late.as_str(), late.as_str()),
            ],
        )
        .await;
        migrate_via_hook(store.as_ref(), &names[round % names.len()], Utc::now()).await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(round < 100, "paging does not end");
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a user listed twice: {seen:?}");
    for name in &names {
        assert!(unique.contains(name), "{name} missing from {seen:?}");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "stable username order");
}

#[tokio::test]
async fn without_admin_tokens_serve_runs_no_admin_listener() {
    let pool = Pool::create(false).await;
    let settings = cognito_bridge::config::Settings::load_from(
        None,
        [
            ("COGNITO_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            ("COGNITO_BRIDGE__DATABASE__URL", "sqlite::memory:"),
            ("COGNITO_BRIDGE__COGNITO__USER_POOL_ID", pool.id.as_str()),
            (
                "COGNITO_BRIDGE__COGNITO__CLIENT_ID",
                pool.client_id.as_str(),
            ),
            ("COGNITO_BRIDGE__HOOKS__API_KEYS", API_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let application = cognito_bridge::startup::Application::build(
        settings,
        Some(crate::moto::test_credentials()),
    )
    .await
    .unwrap();
    assert_eq!(application.admin_port(), None);
}

on_both_backends!(
    the_routes_report_known_data,
    paging_while_rows_change_has_no_gaps_or_repeats,
);
