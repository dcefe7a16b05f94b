//! `store.attempts_retention_days`: `serve` prunes the attempt log, never the users' rows.

use std::time::{Duration, Instant};

use cognito_bridge::domain::Outcome;
use cognito_bridge::store::Store;

use crate::doubles::cognito_auth_fake::{self, CognitoFake, FakeConfig};
use crate::helpers::{AppOptions, Backend, TestApp, attempt, spawn_app};

on_both_backends!(attempts_past_the_retention_are_pruned_at_start);

async fn attempt_ages(store: &dyn Store) -> Vec<i64> {
    let now = chrono::Utc::now();
    let mut ages: Vec<i64> = store
        .recent_attempts(100)
        .await
        .unwrap()
        .iter()
        .map(|a| (now - a.at).num_days())
        .collect();
    ages.sort();
    ages
}

async fn app(backend: Backend, fake: &CognitoFake, shared: Option<&TestApp>, days: u32) -> TestApp {
    let mut options = AppOptions::new(
        backend,
        &fake.endpoint,
        cognito_auth_fake::POOL_ID,
        cognito_auth_fake::CLIENT_ID,
    )
    .with("COGNITO_BRIDGE__STORE__ATTEMPTS_RETENTION_DAYS", days);
    options.shared_database = shared.map(|app| app.database.url.clone());
    spawn_app(options).await
}

/// A replica started on a database holding attempts of 100, 30 and 1 day(s) ago: with the
/// default 90 days the oldest goes, the user's row stays; with 0 nothing goes.
async fn attempts_past_the_retention_are_pruned_at_start(backend: Backend) {
    let fake = CognitoFake::start(FakeConfig::default()).await;
    let first = app(backend, &fake, None, 0).await;
    for (days, outcome) in [
        (100, Outcome::Verified),
        (30, Outcome::NotAuthorized),
        (1, Outcome::NotAuthorized),
    ] {
        first
            .store
            .record_attempt(&attempt(
                "olga",
                chrono::Utc::now() - chrono::Duration::days(days),
                outcome,
            ))
            .await
            .unwrap();
    }
    assert_eq!(attempt_ages(first.store.as_ref()).await, [1, 30, 100]);

    // Retention 0: kept forever.
    let _keeping = app(backend, &fake, Some(&first), 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(attempt_ages(first.store.as_ref()).await, [1, 30, 100]);

    let _pruning = app(backend, &fake, Some(&first), 90).await;
    let give_up = Instant::now() + Duration::from_secs(10);
    while attempt_ages(first.store.as_ref()).await.len() == 3 {
        assert!(Instant::now() < give_up, "nothing was pruned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempt_ages(first.store.as_ref()).await, [1, 30]);
    let olga = first
        .store
        .user("olga")
        .await
        .unwrap()
        .expect("the row stays");
    assert_eq!(olga.state, cognito_bridge::domain::UserState::Migrated);
}
