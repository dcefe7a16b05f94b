//! The recorder's group writer on a SQLite file: rows that arrive together share a commit,
//! and a group the database refuses is written row by row.

use std::str::FromStr;

use sqlx::Connection;

use super::*;
use crate::domain::Outcome;

fn attempt(username: &str) -> Attempt {
    Attempt {
        key: uuid::Uuid::new_v4(),
        at: chrono::Utc::now(),
        cognito_username: Some(username.to_owned()),
        outcome: Outcome::Verified,
        cognito_latency_ms: Some(20),
        cognito_calls: 1,
        request_id: None,
        trigger_id: None,
        identity_id: None,
        creates_row: true,
        client_ip: None,
    }
}

/// A recorder on a fresh SQLite file, and a second connection that can hold the
/// database's write lock, so that rows pile up behind a transaction that waits.
async fn recorder() -> (
    Arc<Recorder>,
    Arc<Metrics>,
    sqlx::SqliteConnection,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bridge.db").display());
    let store = crate::store::connect(&url.clone().into(), 2).await.unwrap();
    store.migrate().await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let blocker = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::from_str(&url).unwrap(),
    )
    .await
    .unwrap();
    (Recorder::new(store, metrics.clone()), metrics, blocker, dir)
}

/// `(count, sum)` of the rows-per-commit histogram.
fn commits(metrics: &Metrics) -> (String, String) {
    let text = metrics.encode();
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.trim().to_owned())
            .unwrap_or_default()
    };
    (
        value("cognito_bridge_attempt_rows_per_commit_count "),
        value("cognito_bridge_attempt_rows_per_commit_sum "),
    )
}

async fn written(blocker: &mut sqlx::SqliteConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT cognito_username FROM attempts ORDER BY id")
        .fetch_all(blocker)
        .await
        .unwrap()
}

/// Hold the database's write lock, hand `first` to the group writer (which takes it alone
/// and waits for the lock), let `rest` pile up behind it, check that nobody was answered
/// while the lock was held, release it, and return every caller's result (`first`'s, then
/// `rest`'s in order).
async fn behind_a_held_lock(
    recorder: &Arc<Recorder>,
    blocker: &mut sqlx::SqliteConnection,
    first: &'static str,
    rest: &[&'static str],
) -> (Result<(), StoreError>, Vec<Result<(), StoreError>>) {
    let spawn = |name: &'static str| {
        let recorder = recorder.clone();
        tokio::spawn(async move { recorder.write_in_group(attempt(name)).await })
    };
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let first = spawn(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rest: Vec<_> = rest.iter().map(|name| spawn(name)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished(), "answered before its row was written");
    assert!(rest.iter().all(|task| !task.is_finished()));
    sqlx::query("COMMIT").execute(&mut *blocker).await.unwrap();

    let waited = Duration::from_secs(10);
    let first = tokio::time::timeout(waited, first).await.unwrap().unwrap();
    let mut results = Vec::new();
    for task in rest {
        results.push(tokio::time::timeout(waited, task).await.unwrap().unwrap());
    }
    (first, results)
}

/// Rows that arrive while a transaction waits share the next commit, and every caller
/// hears of its own row only once it is committed.
#[tokio::test]
async fn rows_that_arrive_while_a_commit_runs_share_the_next_one() {
    let (recorder, metrics, mut blocker, _dir) = recorder().await;
    let (first, rest) =
        behind_a_held_lock(&recorder, &mut blocker, "first", &["a", "b", "c"]).await;
    first.unwrap();
    for result in rest {
        result.unwrap();
    }
    assert_eq!(commits(&metrics), ("2".to_owned(), "4.0".to_owned()));
    let mut names = written(&mut blocker).await;
    assert_eq!(names.remove(0), "first");
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
}

/// A group the database refuses is written again row by row: only the bad row fails.
#[tokio::test]
async fn a_refused_group_is_written_row_by_row_so_only_the_bad_row_fails() {
    let (recorder, metrics, mut blocker, _dir) = recorder().await;
    sqlx::raw_sql(
        "CREATE TRIGGER poison BEFORE INSERT ON attempts
         WHEN NEW.cognito_username = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
    )
    .execute(&mut blocker)
    .await
    .unwrap();
    let (first, results) =
        behind_a_held_lock(&recorder, &mut blocker, "first", &["a", "poison", "b"]).await;
    first.unwrap();
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let refused = results[1].as_ref().unwrap_err().to_string();
    assert!(refused.contains("poisoned row"), "{refused}");
    // `first` alone, then `a` and `b` each alone after the group failed.
    assert_eq!(commits(&metrics), ("3".to_owned(), "3.0".to_owned()));
    let mut names = written(&mut blocker).await;
    names.sort();
    assert_eq!(names, ["a", "b", "first"]);
}
