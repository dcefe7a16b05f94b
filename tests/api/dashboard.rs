//! The dashboard (`GET /admin/` on the admin listener) in a real browser: Debian's chromium,
//! headless, loads it against a seeded store; the numbers the page shows must be those of
//! `/admin/progress` and `/admin/users`. A screenshot goes to `target/dashboard.png`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;

use crate::helpers::{ADMIN_TOKEN, AppOptions, Backend, TestApp, import_users, spawn_app};
use crate::moto::Pool;

/// The browser, when there is one: under CI it must be (scripts/test installs it).
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            !testkit::under_ci(),
            "chromium is missing: scripts/test installs it (scripts/ensure-chromium)"
        );
        eprintln!(
            "dashboard test skipped: no chromium on PATH (scripts/ensure-chromium installs it)"
        );
    }
    found
}

/// Run headless chromium on `url` with `arguments`; its standard output.
async fn run_chromium(browser: &Path, url: &str, arguments: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            // Scripts and the page's fetches run within this much virtual time.
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(arguments)
        .arg(url)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("chromium finishes within 90 s")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {:?}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of the `<td class="count">` in the row `data-state="<state>"`.
fn state_count(dom: &str, state: &str) -> Option<i64> {
    let row = dom.split(&format!("data-state=\"{state}\"")).nth(1)?;
    let row = &row[..row.find("</tr>")?];
    let count = row.split("class=\"count\">").nth(1)?;
    count[..count.find('<')?].trim().parse().ok()
}

async fn seeded_app() -> TestApp {
    let pool = Pool::create(false).await;
    let app = spawn_app(AppOptions::for_pool(Backend::Sqlite, &pool).await).await;
    let names: Vec<String> = (0..30).map(|i| format!("person{i:02}")).collect();
    let rows: Vec<(&str, Option<&str>, &str, &str)> = names
        .iter()
        .map(|name| (name.as_str(), None, name.as_str(), name.as_str()))
        .collect();
    import_users(app.store.as_ref(), &rows).await;
    // 18 migrated over the last nine days, 12 left pending.
    for (i, name) in names.iter().take(18).enumerate() {
        let at = Utc::now() - chrono::Duration::hours(12 * i as i64 + 1);
        app.store.complete_capture(name, name, at).await.unwrap();
    }
    app
}

#[tokio::test]
async fn the_dashboard_shows_what_the_api_says() {
    let Some(browser) = chromium() else {
        return;
    };
    let app = seeded_app().await;
    let admin = app.admin_address.clone().unwrap();
    // The page itself needs no token (it holds no data); without one it asks for it.
    let page = app
        .client
        .get(format!("{admin}/admin/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains(" src=") && !html.contains("<link") && !html.contains("url("),
        "no CDN, nothing loaded from elsewhere"
    );

    let (_, progress) = app.get("/admin/progress").await;
    let (_, stragglers) = app.get("/admin/users?state=pending&limit=50").await;
    let url = format!("{admin}/admin/#token={ADMIN_TOKEN}");
    let dom = run_chromium(&browser, &url, &["--dump-dom"]).await;
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page did not finish loading:\n{dom}"
    );
    for state in [
        "pending",
        "migrated",
        "needs_recovery",
        "inactive",
        "skipped",
    ] {
        assert_eq!(
            state_count(&dom, state),
            progress["states"][state].as_i64(),
            "{state} on the page"
        );
    }
    assert_eq!(state_count(&dom, "total"), progress["total"].as_i64());
    assert_eq!(progress["states"]["pending"], 12);
    let shown: Vec<&str> = dom
        .split("data-user=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    let listed: Vec<&str> = stragglers["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|user| user["cognito_username"].as_str())
        .collect();
    assert_eq!(shown, listed, "the stragglers table");
    let projected = progress["projected_completion"]
        .as_str()
        .expect("a trend to extend");
    assert!(
        dom.contains(&format!("Projected completion: {projected}")),
        "the projection on the page"
    );
    assert!(dom.contains("<polyline"), "the chart is drawn");
    assert!(
        !dom.contains(ADMIN_TOKEN),
        "the token stays out of the page"
    );

    // A screenshot, as a test artifact.
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    run_chromium(
        &browser,
        &url,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1200,1500",
        ],
    )
    .await;
    let bytes = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "a page with content, not a blank: {} bytes",
        bytes.len()
    );
}

#[tokio::test]
async fn without_a_token_the_page_asks_for_one() {
    let Some(browser) = chromium() else {
        return;
    };
    let app = seeded_app().await;
    let admin = app.admin_address.clone().unwrap();
    let dom = run_chromium(&browser, &format!("{admin}/admin/"), &["--dump-dom"]).await;
    let login = dom.split("id=\"login\"").nth(1).unwrap();
    assert!(
        !login[..login.find('>').unwrap()].contains("hidden"),
        "the token form shows"
    );
    assert!(
        !dom.contains("data-loaded=\"true\""),
        "no data without a token"
    );
    let wrong = run_chromium(
        &browser,
        &format!("{admin}/admin/#token=wrong-token-0123456789abcdef0123456789"),
        &["--dump-dom"],
    )
    .await;
    assert!(
        !wrong.contains("data-loaded=\"true\""),
        "a wrong token shows no data"
    );
    assert!(wrong.contains("the token was refused"), "and says why");
}
