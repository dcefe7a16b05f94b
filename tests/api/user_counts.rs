//! The `user_counts` rollup the admin API reads (states, MFA dropped, migrations per hour and
//! `via`) agrees with `users` after every kind of write: bulk inserts, upserts, state and time
//! changes, updates that touch no counted column, deletes; and, on Postgres, with writers and
//! folds running at the same time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cognito_bridge::store::{Bucket, Store};

use crate::helpers::raw::Raw;
use crate::helpers::{Backend, TestDatabase};

/// 2026-12-01 00:00 UTC plus `minutes`, as the bridge writes times (RFC 3339).
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn literal(time: DateTime<Utc>) -> String {
    format!("'{}'", time.to_rfc3339())
}

/// A user to insert: name, state, MFA dropped, (minutes after `at(0)`, via) when migrated.
type NewUser<'a> = (String, &'a str, bool, Option<(i64, &'a str)>);

fn insert(rows: &[NewUser<'_>], on_conflict: bool) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|(name, state, mfa, migrated)| {
            let (migrated_at, via) = match migrated {
                Some((minutes, via)) => (literal(at(*minutes)), format!("'{via}'")),
                None => ("NULL".to_owned(), "NULL".to_owned()),
            };
            format!(
                "('{name}', '{name}', '{state}', {mfa}, {migrated_at}, {via}, {now}, {now})",
                now = literal(at(0))
            )
        })
        .collect();
    format!(
        "INSERT INTO users (cognito_username, username_normalized, state, mfa_dropped, \
         migrated_at, migrated_via, created_at, updated_at) VALUES {}{}",
        values.join(", "),
        if on_conflict {
            " ON CONFLICT (cognito_username) DO UPDATE SET last_attempt_at = excluded.created_at"
        } else {
            ""
        }
    )
}

/// Every count the admin API reads, from the store (rollup) and from `users` directly.
async fn assert_counts_agree(store: &dyn Store, raw: &Raw, step: &str) {
    let rows = raw.users().await;
    let progress = store.progress().await.unwrap();
    let mut states: BTreeMap<&str, i64> = progress.states.keys().map(|state| (*state, 0)).collect();
    for (state, ..) in &rows {
        *states.get_mut(state.as_str()).unwrap() += 1;
    }
    assert_eq!(progress.states, states, "states after {step}");
    assert_eq!(progress.total, rows.len() as i64, "total after {step}");
    let mfa = rows.iter().filter(|row| row.1).count() as i64;
    assert_eq!(progress.mfa_dropped, mfa, "mfa_dropped after {step}");

    for bucket in [Bucket::Day, Bucket::Hour] {
        let (from, to) = (at(0), at(3 * 24 * 60));
        let mut expected: BTreeMap<(String, Option<String>), i64> = BTreeMap::new();
        for (_, _, migrated_at, via) in &rows {
            if let Some(migrated_at) = migrated_at
                && *migrated_at >= from
                && *migrated_at < to
            {
                *expected
                    .entry((bucket.label(*migrated_at), via.clone()))
                    .or_default() += 1;
            }
        }
        let actual: BTreeMap<(String, Option<String>), i64> = store
            .migrations_by_bucket(bucket, from, to)
            .await
            .unwrap()
            .into_iter()
            .map(|count| ((count.bucket, count.via), count.count))
            .collect();
        assert_eq!(actual, expected, "timeline by {bucket:?} after {step}");
    }

    // Ranges on and off the hour, inside one hour, from the start.
    let ranges = [
        (None, at(24 * 60)),
        (None, at(24 * 60 + 17)),
        (Some(at(30)), at(2 * 24 * 60 + 45)),
        (Some(at(60)), at(180)),
        (Some(at(61)), at(119)),
        (Some(at(119)), at(121)),
        (Some(at(-600)), at(5 * 24 * 60)),
    ];
    for (from, to) in ranges {
        let expected = rows
            .iter()
            .filter_map(|row| row.2)
            .filter(|migrated_at| from.is_none_or(|from| *migrated_at >= from) && *migrated_at < to)
            .count() as i64;
        assert_eq!(
            store.migrated_between(from, to).await.unwrap(),
            expected,
            "migrated_between({from:?}, {to}) after {step}"
        );
    }
}

async fn the_rollup_follows_every_write(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 4)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let raw = Raw::connect(&database).await;
    let store: &dyn Store = store.as_ref();

    // One statement, many rows (an import batch), across hours and days.
    let vias = ["hook", "capture", "reset", "kratos"];
    let states = ["pending", "needs_recovery", "inactive", "skipped"];
    let rows: Vec<_> = (0..40i64)
        .map(|i| {
            let migrated = (i % 2 == 0).then(|| (i * 97 % (3 * 24 * 60), vias[i as usize % 4]));
            let state = if migrated.is_some() {
                "migrated"
            } else {
                states[i as usize % 4]
            };
            (format!("user{i:02}"), state, i % 3 == 0, migrated)
        })
        .collect();
    raw.exec(&insert(&rows, false)).await;
    assert_counts_agree(store, &raw, "a bulk insert").await;

    raw.exec(&format!(
        "UPDATE users SET state = 'migrated', migrated_via = 'hook', migrated_at = {} \
         WHERE cognito_username IN ('user01', 'user03', 'user05')",
        literal(at(90))
    ))
    .await;
    raw.exec("UPDATE users SET last_attempt_at = created_at")
        .await;
    raw.exec("UPDATE users SET mfa_dropped = NOT mfa_dropped WHERE cognito_username < 'user10'")
        .await;
    assert_counts_agree(store, &raw, "migrations, a touch, MFA flips").await;

    raw.exec(&format!(
        "UPDATE users SET migrated_at = {}, migrated_via = 'reset' WHERE cognito_username = 'user02'",
        literal(at(2 * 24 * 60 + 59))
    ))
    .await;
    raw.exec(
        "UPDATE users SET state = 'needs_recovery', migrated_at = NULL, migrated_via = NULL \
         WHERE cognito_username IN ('user04', 'user06')",
    )
    .await;
    raw.exec("DELETE FROM users WHERE cognito_username IN ('user07', 'user08', 'user09')")
        .await;
    // The same state written again changes nothing.
    raw.exec("UPDATE users SET state = state, migrated_via = migrated_via")
        .await;
    assert_counts_agree(store, &raw, "moves, clears and deletes").await;

    // An upsert: two rows exist (updated), two are new (inserted).
    let upsert: Vec<_> = ["user10", "user11", "new1", "new2"]
        .into_iter()
        .map(|name| (name.to_owned(), "migrated", false, Some((125, "capture"))))
        .collect();
    raw.exec(&insert(&upsert, true)).await;
    assert_counts_agree(store, &raw, "an upsert").await;

    // Nothing between two reads: the second fold finds nothing and the counts hold.
    assert_counts_agree(store, &raw, "a second read").await;
}

on_both_backends!(the_rollup_follows_every_write);

/// Postgres: writers on several connections and folds beside them never lose or double a
/// change (the fold's advisory lock; deltas are appended, never updated in place).
#[tokio::test]
async fn concurrent_writers_and_folds_keep_the_counts_on_postgres() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let store = cognito_bridge::store::connect(&database.url.clone().into(), 8)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let raw = Raw::connect(&database).await;
    let rows: Vec<_> = (0..200)
        .map(|i| (format!("user{i:03}"), "pending", false, None))
        .collect();
    raw.exec(&insert(&rows, false)).await;

    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..4i64 {
        let url = database.url.clone();
        tasks.spawn(async move {
            let raw = Raw::postgres(&url).await;
            for step in 0..50i64 {
                let user = (writer * 50 + step) % 200;
                let (state, via, migrated_at) = if step % 5 == 4 {
                    ("needs_recovery", "NULL".to_owned(), "NULL".to_owned())
                } else {
                    (
                        "migrated",
                        "'hook'".to_owned(),
                        literal(at(step * 37 + writer)),
                    )
                };
                raw.exec(&format!(
                    "UPDATE users SET state = '{state}', migrated_via = {via}, \
                     migrated_at = {migrated_at} WHERE cognito_username = 'user{user:03}'"
                ))
                .await;
            }
        });
    }
    for _ in 0..2 {
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..20 {
                store.progress().await.unwrap();
            }
        });
    }
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    })
    .await
    .expect("the writers and folds finish within 120 s");
    assert_counts_agree(store.as_ref(), &raw, "concurrent writers and folds").await;
}
