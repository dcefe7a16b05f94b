//! `Store::record_attempts`, which the hook's recorder uses to write the rows of calls that
//! finished together in one transaction: the rows apply in their order, and a group is
//! written whole or not at all. And on Postgres, the guard's claim before them commits without
//! waiting for a WAL flush.

use cognito_bridge::domain::{Outcome, UserState};
use cognito_bridge::store::{Attempt, Store};

use crate::helpers::raw::Raw;
use crate::helpers::{self, Backend, TestDatabase};

on_both_backends!(a_group_of_attempts_applies_in_order_and_all_or_none);

fn attempt(username: &str, seconds: i64, outcome: Outcome) -> Attempt {
    helpers::attempt(
        username,
        chrono::Utc::now() + chrono::Duration::seconds(seconds),
        outcome,
    )
}

async fn state(store: &dyn Store, username: &str) -> Option<UserState> {
    store.user(username).await.unwrap().map(|user| user.state)
}

/// A trigger that refuses the attempt row of user `poison`, as a database refuses a row.
fn poison_trigger(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER poison BEFORE INSERT ON attempts WHEN NEW.cognito_username = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.cognito_username = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER poison BEFORE INSERT ON attempts
                 FOR EACH ROW EXECUTE FUNCTION poison();"
        }
    }
}

async fn a_group_of_attempts_applies_in_order_and_all_or_none(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 4)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let raw = Raw::connect(&database).await;

    // In order: zoe fails, then matches; adam matches, then fails (a migrated row never
    // moves back); mia must reset her password; bo matches, then is told to reset (still
    // migrated); a failure alone makes no row (nik). The usernames are out of alphabetical order on purpose
    // (Postgres writes a group in username order; each user's rows keep theirs).
    let group = [
        attempt("zoe", 0, Outcome::NotAuthorized),
        attempt("zoe", 1, Outcome::Verified),
        attempt("adam", 2, Outcome::Verified),
        attempt("adam", 3, Outcome::NotAuthorized),
        attempt("mia", 4, Outcome::ResetRequired),
        attempt("nik", 4, Outcome::NotAuthorized),
        attempt("bo", 5, Outcome::Verified),
        attempt("bo", 6, Outcome::ResetRequired),
    ];
    store.record_attempts(&group).await.unwrap();
    assert_eq!(
        state(store.as_ref(), "zoe").await,
        Some(UserState::Migrated)
    );
    assert_eq!(
        state(store.as_ref(), "adam").await,
        Some(UserState::Migrated)
    );
    assert_eq!(
        state(store.as_ref(), "mia").await,
        Some(UserState::NeedsRecovery)
    );
    assert_eq!(state(store.as_ref(), "bo").await, Some(UserState::Migrated));
    assert_eq!(state(store.as_ref(), "nik").await, None);
    // Each user's last row is the one written last.
    for (username, last) in [("zoe", &group[1]), ("adam", &group[3]), ("bo", &group[7])] {
        let user = store.user(username).await.unwrap().unwrap();
        let written = user.last_attempt_at.map(|at| at.timestamp());
        assert_eq!(written, Some(last.at.timestamp()), "{username}");
    }
    assert_eq!(raw.count("SELECT COUNT(*) FROM attempts").await, 8);

    // All or none: the row the database refuses takes the group's other rows with it.
    raw.exec(poison_trigger(backend)).await;
    let group = [
        attempt("kim", 10, Outcome::Verified),
        attempt("poison", 11, Outcome::Verified),
        attempt("mia", 12, Outcome::Verified),
    ];
    let error = store.record_attempts(&group).await.unwrap_err();
    assert!(error.to_string().contains("poisoned row"), "{error}");
    assert_eq!(state(store.as_ref(), "kim").await, None);
    assert_eq!(
        state(store.as_ref(), "mia").await,
        Some(UserState::NeedsRecovery)
    );
    assert_eq!(raw.count("SELECT COUNT(*) FROM attempts").await, 8);

    // Alone, a good row of that group is written.
    store.record_attempt(&group[2]).await.unwrap();
    assert_eq!(
        state(store.as_ref(), "mia").await,
        Some(UserState::Migrated)
    );
    assert_eq!(raw.count("SELECT COUNT(*) FROM attempts").await, 9);
}

/// Postgres: the guard's claim commits without waiting for a WAL flush (its row only needs
/// to be visible; the outcome written over it is durable), and that setting ends with the
/// claim's transaction, so the outcome written next on the same connection waits for its
/// flush as the session says.
#[tokio::test]
async fn postgres_claims_skip_the_flush_and_the_outcomes_after_them_do_not() {
    use sqlx::Connection;

    let database = TestDatabase::new(Backend::Postgres).await;
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut connection = sqlx::PgConnection::connect(&database.url).await.unwrap();
    const CLAIM: &str = "SELECT granted FROM guard_claim('ann', '10.0.0.0/24', 5, 20, 900, \
                         'ann', NULL, NULL, NULL, $1)";
    const MODE: &str = "SHOW synchronous_commit";

    let mut transaction = connection.begin().await.unwrap();
    let granted: bool = sqlx::query_scalar(CLAIM)
        .bind("claim-1")
        .fetch_one(&mut *transaction)
        .await
        .unwrap();
    assert!(granted);
    let mode: String = sqlx::query_scalar(MODE)
        .fetch_one(&mut *transaction)
        .await
        .unwrap();
    assert_eq!(mode, "off", "inside the claim's transaction");
    transaction.commit().await.unwrap();

    let mode: String = sqlx::query_scalar(MODE)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(mode, "on", "after the claim's transaction");
    // A claim in its own statement, as the hook makes it, leaves the session as it was too.
    let granted: bool = sqlx::query_scalar(CLAIM)
        .bind("claim-2")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert!(granted);
    let mode: String = sqlx::query_scalar(MODE)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(mode, "on", "after a claim on its own");
    let raw = Raw::connect(&database).await;
    assert_eq!(
        raw.count("SELECT COUNT(*) FROM attempts WHERE outcome = 'in_flight'")
            .await,
        2
    );
}
