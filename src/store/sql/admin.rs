//! SQL of the admin API's reads ([`crate::store::AdminStore`]). The users list pages through
//! `users_state_username` (or the primary key) and counts each listed user's attempts through
//! `attempts_cognito_username`; the counts read the `user_counts` rollup (a row per state,
//! hour of migration and `via`), the parts of a range shorter than an hour
//! `users_migrated_at`. No full scan on a page.

macro_rules! users_page_select {
    () => {
        "
SELECT u.cognito_username, u.email_normalized AS email, u.state, u.migrated_via,
       u.last_attempt_at,
       (SELECT a.outcome FROM attempts a WHERE a.cognito_username = u.cognito_username
        ORDER BY a.id DESC LIMIT 1) AS last_outcome,
       (SELECT COUNT(*) FROM attempts a WHERE a.cognito_username = u.cognito_username)
        AS attempts
FROM users u
"
    };
}

/// A page of one state. `$1` state, `$2` the last username of the previous page (`''`
/// first), `$3` how many. Rows are [`crate::store::UserListing`]s.
pub const USERS_PAGE_BY_STATE: &str = concat!(
    users_page_select!(),
    "WHERE u.state = $1 AND u.cognito_username > $2 ORDER BY u.cognito_username LIMIT $3"
);

/// A page of every state. `$1` the last username of the previous page, `$2` how many.
pub const USERS_PAGE_ALL: &str = concat!(
    users_page_select!(),
    "WHERE u.cognito_username > $1 ORDER BY u.cognito_username LIMIT $2"
);

/// Migrations with `$1 <= migrated_at < $2`, from `users` (`users_migrated_at`): only for
/// the parts of a range shorter than an hour ([`crate::store::HourSplit`]).
pub const MIGRATED_BETWEEN: &str =
    "SELECT COUNT(*) FROM users WHERE migrated_at >= $1 AND migrated_at < $2";
/// Migrations in the whole hours `$1 <= hour < $2` (labels `2026-12-01T19`), from the rollup.
pub const MIGRATED_HOURS: &str = "
SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM user_counts
WHERE migrated_hour >= $1 AND migrated_hour < $2 AND migrated_hour <> ''";

/// The timeline's statement: `$label` turns the rollup's hour into the bucket's label
/// ([`crate::store::Bucket::label`]). `$1` from, `$2` to, as hour labels.
macro_rules! timeline {
    ($label:expr) => {
        concat!(
            "SELECT ",
            $label,
            " AS bucket, NULLIF(migrated_via, '') AS via, CAST(SUM(n) AS BIGINT) AS count
FROM user_counts WHERE migrated_hour >= $1 AND migrated_hour < $2 AND migrated_hour <> ''
GROUP BY 1, 2 HAVING SUM(n) <> 0 ORDER BY 1, 2"
        )
    };
}
pub const TIMELINE_BY_DAY: &str = timeline!("substr(migrated_hour, 1, 10)");
pub const TIMELINE_BY_HOUR: &str = timeline!("migrated_hour");

/// `impl AdminStore` for a backend (the same for both; the counts come from the rollup,
/// folded first by the backend's `fold_user_counts`).
macro_rules! admin_store_impl {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use $crate::domain::UserState;
            use $crate::store::sql::admin;
            use $crate::store::{Bucket, BucketCount, HourSplit, StoreError, UserListing};

            #[async_trait::async_trait]
            impl $crate::store::AdminStore for $store {
                async fn users_page(
                    &self,
                    state: Option<UserState>,
                    after: &str,
                    limit: i64,
                ) -> Result<Vec<UserListing>, StoreError> {
                    let query = match state {
                        Some(state) => {
                            sqlx::query_as(admin::USERS_PAGE_BY_STATE).bind(state.as_str())
                        }
                        None => sqlx::query_as(admin::USERS_PAGE_ALL),
                    };
                    Ok(query.bind(after).bind(limit).fetch_all(&self.pool).await?)
                }

                async fn migrations_by_bucket(
                    &self,
                    bucket: Bucket,
                    from: DateTime<Utc>,
                    to: DateTime<Utc>,
                ) -> Result<Vec<BucketCount>, StoreError> {
                    let statement = match bucket {
                        Bucket::Day => admin::TIMELINE_BY_DAY,
                        Bucket::Hour => admin::TIMELINE_BY_HOUR,
                    };
                    self.fold_user_counts().await?;
                    Ok(sqlx::query_as(statement)
                        .bind(Bucket::Hour.label(from))
                        .bind(Bucket::Hour.label(to))
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn migrated_between(
                    &self,
                    from: Option<DateTime<Utc>>,
                    to: DateTime<Utc>,
                ) -> Result<i64, StoreError> {
                    let split = HourSplit::new(from, to);
                    let mut count = 0;
                    if let Some((first, end)) = split.hours {
                        self.fold_user_counts().await?;
                        let hours: i64 = sqlx::query_scalar(admin::MIGRATED_HOURS)
                            .bind(first)
                            .bind(end)
                            .fetch_one(&self.pool)
                            .await?;
                        count += hours;
                    }
                    for (start, end) in split.parts {
                        let part: i64 = sqlx::query_scalar(admin::MIGRATED_BETWEEN)
                            .bind(start)
                            .bind(end)
                            .fetch_one(&self.pool)
                            .await?;
                        count += part;
                    }
                    Ok(count)
                }
            }
        };
    };
}
pub(crate) use admin_store_impl;
