//! SQL of the admin API's reads ([`crate::store::AdminStore`]). The users list pages through
//! `users_state_username` (or the primary key) and counts each listed user's attempts through
//! `attempts_cognito_username`; the timeline reads `users_migrated_at`. No full scan on a page.

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

/// `$1` from (inclusive), `$2` to (exclusive).
pub const MIGRATED_BETWEEN: &str =
    "SELECT COUNT(*) FROM users WHERE migrated_at >= $1 AND migrated_at < $2";
/// `$1` to (exclusive).
pub const MIGRATED_BEFORE: &str = "SELECT COUNT(*) FROM users WHERE migrated_at < $1";

/// The timeline's statement for a backend: `$label` turns `migrated_at` into the bucket's
/// label ([`crate::store::Bucket::label`]). `$1` from, `$2` to.
macro_rules! timeline {
    ($label:expr) => {
        concat!(
            "SELECT ",
            $label,
            " AS bucket, migrated_via AS via, COUNT(*) AS count FROM users
WHERE migrated_at >= $1 AND migrated_at < $2 GROUP BY 1, 2 ORDER BY 1, 2"
        )
    };
}
pub(crate) use timeline;

/// `impl AdminStore` for a backend: `$day` and `$hour` are its timeline statements.
macro_rules! admin_store_impl {
    ($store:ty, $day:expr, $hour:expr) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use $crate::domain::UserState;
            use $crate::store::sql::admin;
            use $crate::store::{Bucket, BucketCount, StoreError, UserListing};

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
                        Bucket::Day => $day,
                        Bucket::Hour => $hour,
                    };
                    Ok(sqlx::query_as(statement)
                        .bind(from)
                        .bind(to)
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn migrated_between(
                    &self,
                    from: Option<DateTime<Utc>>,
                    to: DateTime<Utc>,
                ) -> Result<i64, StoreError> {
                    let query = match from {
                        Some(from) => sqlx::query_scalar(admin::MIGRATED_BETWEEN).bind(from),
                        None => sqlx::query_scalar(admin::MIGRATED_BEFORE),
                    };
                    Ok(query.bind(to).fetch_one(&self.pool).await?)
                }
            }
        };
    };
}
pub(crate) use admin_store_impl;
