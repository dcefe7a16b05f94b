//! `cognito-bridge import` as an operator runs it: arguments, exit codes, the printed
//! summary, and `report` listing the runs.

use std::process::Output;

use serde_json::{Value, json};

use crate::doubles::cognito_directory_fake::{CognitoDirectoryFake, DirectoryOptions};
use crate::doubles::kratos_admin::{AdminDoubleOptions, KratosAdminDouble};
use crate::helpers::bridge_with_test_credentials;

/// The binary in `dir` with only the given environment (and test AWS credentials), run to
/// its end.
async fn run(dir: &tempfile::TempDir, args: &[&str], environment: &[(&str, &str)]) -> Output {
    bridge_with_test_credentials(dir, args, environment)
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn import_help_explains_the_flags_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&dir, &["import", "--help"], &[]).await;
    assert!(output.status.success());
    let help = text(&output.stdout);
    for word in [
        "--dry-run",
        "--resume",
        "--limit",
        "delta sync",
        "import.list_rate",
        "Exit status",
        "another import",
        "60 s",
        "4 when another import is running",
    ] {
        assert!(help.contains(word), "import --help mentions {word}: {help}");
    }
    let output = run(&dir, &["--help"], &[]).await;
    assert!(text(&output.stdout).contains("import"));
}

#[tokio::test]
async fn bad_import_arguments_and_settings_exit_2_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&dir, &["import", "--dry-run", "--resume"], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--resume"));

    let output = run(&dir, &["import", "--limit", "0"], &[]).await;
    assert_eq!(output.status.code(), Some(2));

    let cases = [
        (
            "COGNITO_BRIDGE__IMPORT__BATCH_SIZE",
            "5000",
            "import.batch_size",
        ),
        ("COGNITO_BRIDGE__IMPORT__LIST_RATE", "0", "import.list_rate"),
        (
            "COGNITO_BRIDGE__KRATOS__ADMIN_URL",
            "not a url",
            "admin_url",
        ),
    ];
    for (name, value, key) in cases {
        let output = run(&dir, &["import"], &[(name, value)]).await;
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        assert!(
            text(&output.stderr).contains(key),
            "{}",
            text(&output.stderr)
        );
    }

    // The pool is required; the message names its key (and no secret travels in it).
    let output = run(&dir, &["import"], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("cognito.user_pool_id"),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test]
async fn resume_with_nothing_to_resume_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cognito = CognitoDirectoryFake::start(DirectoryOptions::with_users(10)).await;
    let output = run(
        &dir,
        &["import", "--resume"],
        &[
            (
                "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
                &cognito.user_pool_id,
            ),
            ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", &cognito.endpoint),
            ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("nothing to resume"),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test]
async fn the_binary_imports_prints_a_summary_and_report_lists_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let cognito = CognitoDirectoryFake::start(DirectoryOptions::with_users(150)).await;
    let kratos = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
    let environment = [
        (
            "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
            cognito.user_pool_id.as_str(),
        ),
        (
            "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
            cognito.endpoint.as_str(),
        ),
        ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ("COGNITO_BRIDGE__KRATOS__ADMIN_URL", kratos.url.as_str()),
        ("COGNITO_BRIDGE__IMPORT__LIST_RATE", "30"),
    ];
    let output = run(&dir, &["import"], &environment).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let summary = text(&output.stdout);
    assert!(
        summary.contains("150 users listed") && summary.contains("150 created"),
        "{summary}"
    );
    assert_eq!(kratos.creates(), 150);
    assert!(
        dir.path().join("cognito-bridge.db").exists(),
        "the embedded default"
    );

    let output = run(&dir, &["import"], &environment).await;
    assert_eq!(output.status.code(), Some(0));
    assert!(
        text(&output.stdout).contains("150 skipped"),
        "{}",
        text(&output.stdout)
    );

    let output = run(&dir, &["report", "--format", "json"], &environment).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["total"], 150);
    assert_eq!(report["imports"].as_array().unwrap().len(), 2);
    assert_eq!(report["imports"][0]["skipped"], 150);
    assert_eq!(report["imports"][1]["created"], 150);
    assert_eq!(report["imports"][1]["status"], "completed");

    let output = run(&dir, &["report"], &environment).await;
    let table = text(&output.stdout);
    assert!(table.contains("import runs"), "{table}");
}

#[tokio::test]
async fn refused_identities_give_exit_status_3_and_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let cognito = CognitoDirectoryFake::start(DirectoryOptions::with_users(20)).await;
    let kratos = KratosAdminDouble::start(AdminDoubleOptions {
        identity_schema: Some(json!({
            "type": "object",
            "properties": {"traits": {
                "type": "object",
                "properties": {"email": {"type": "string"}, "phone": {"type": "string"}},
                "required": ["phone"]
            }}
        })),
        ..AdminDoubleOptions::default()
    })
    .await;
    let output = run(
        &dir,
        &["import", "--no-progress"],
        &[
            (
                "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
                &cognito.user_pool_id,
            ),
            ("COGNITO_BRIDGE__COGNITO__ENDPOINT_URL", &cognito.endpoint),
            ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
            ("COGNITO_BRIDGE__KRATOS__ADMIN_URL", &kratos.url),
            ("COGNITO_BRIDGE__IMPORT__LIST_RATE", "30"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let summary = text(&output.stdout);
    assert!(summary.contains("20 failed"), "{summary}");
    assert!(summary.contains("user-0000000"), "{summary}");
    assert_eq!(kratos.creates(), 0);
}

#[tokio::test]
async fn ctrl_c_interrupts_the_run_and_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let cognito = CognitoDirectoryFake::start(DirectoryOptions::with_users(600)).await;
    let kratos = KratosAdminDouble::start(AdminDoubleOptions::default()).await;
    let environment = [
        (
            "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
            cognito.user_pool_id.as_str(),
        ),
        (
            "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
            cognito.endpoint.as_str(),
        ),
        ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ("COGNITO_BRIDGE__KRATOS__ADMIN_URL", kratos.url.as_str()),
        // Ten pages at 4/s: about 2.5 s, time enough to interrupt.
        ("COGNITO_BRIDGE__IMPORT__LIST_RATE", "4"),
        ("COGNITO_BRIDGE__IMPORT__BATCH_SIZE", "60"),
    ];
    let mut command = bridge_with_test_credentials(&dir, &["import"], &environment);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Killed if the test fails before it exits.
    command.kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    // Wait until some pages are in, then interrupt like a terminal would. Bounded: an import
    // that exits early or never lists would otherwise hang the suite. 30 s is far above the
    // ~0.5 s three pages take at 4/s, to hold on a loaded machine.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cognito.list_users_calls().len() < 3 {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().await.unwrap();
            panic!(
                "import exited ({status}) before three pages were listed: {}",
                text(&output.stderr)
            );
        }
        assert!(
            std::time::Instant::now() < give_up,
            "import listed {} pages in 30 s",
            cognito.list_users_calls().len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("import stops within 30 s of Ctrl-C")
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("stopped by Ctrl-C") && stderr.contains("--resume"),
        "{stderr}"
    );
    let imported = kratos.creates();
    assert!(imported < 600, "interrupted before the end: {imported}");

    let output = run(&dir, &["import", "--resume"], &environment).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(kratos.creates(), 600, "no duplicates, nobody missing");
    let summary = text(&output.stdout);
    assert!(summary.contains("600 users listed"), "{summary}");
}

#[tokio::test]
async fn a_second_import_process_is_refused_with_exit_status_4() {
    let dir = tempfile::tempdir().unwrap();
    let cognito = CognitoDirectoryFake::start(DirectoryOptions::with_users(150)).await;
    let kratos = KratosAdminDouble::start(AdminDoubleOptions {
        // For the dry run's check; it accepts every identity.
        identity_schema: Some(json!({"type": "object"})),
        ..AdminDoubleOptions::default()
    })
    .await;
    let environment = [
        (
            "COGNITO_BRIDGE__COGNITO__USER_POOL_ID",
            cognito.user_pool_id.as_str(),
        ),
        (
            "COGNITO_BRIDGE__COGNITO__ENDPOINT_URL",
            cognito.endpoint.as_str(),
        ),
        ("COGNITO_BRIDGE__COGNITO__ALLOW_INSECURE_ENDPOINT", "true"),
        ("COGNITO_BRIDGE__KRATOS__ADMIN_URL", kratos.url.as_str()),
        ("COGNITO_BRIDGE__KRATOS__PUBLIC_URL", kratos.url.as_str()),
        ("COGNITO_BRIDGE__IMPORT__LIST_RATE", "30"),
    ];
    kratos.hold_patches();
    let mut command =
        bridge_with_test_credentials(&dir, &["import", "--no-progress"], &environment);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let first = command.spawn().unwrap();
    let first_pid = first.id().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while kratos.held_patches() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first import never sent a batch"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let output = run(&dir, &["import", "--no-progress"], &environment).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("another import is running: run 1 (started ")
            && stderr.contains(&format!("pid {first_pid}")),
        "{stderr}"
    );
    assert_eq!(kratos.patch_calls(), 1, "the refused import sent nothing");

    // A dry run writes nothing to Kratos: it is not refused.
    let output = run(&dir, &["import", "--dry-run"], &environment).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("150 would be created"));

    kratos.release_patches();
    let output = first.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(kratos.creates(), 150);

    let output = run(&dir, &["import", "--no-progress"], &environment).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("150 skipped"),
        "{}",
        text(&output.stdout)
    );
}
