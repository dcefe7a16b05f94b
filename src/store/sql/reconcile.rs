//! SQL of `reconcile` ([`crate::store::ReconcileStore`]), the same for both backends, and its
//! `impl`.

use sqlx::{Database, QueryBuilder};

use super::import::{Bind, push_list};
use crate::store::{LinkedRow, StoreError, state_from_db};

/// Values per statement (ids and subs together): far below both backends' bind limits.
pub const RECONCILE_VALUES_PER_STATEMENT: usize = 500;

const COLUMNS: &str = "cognito_username, kratos_identity_id, external_id, state";

/// The rows whose Kratos identity id is one of `identity_ids` or whose external id is one of
/// `subs` (at least one of them not empty).
pub fn rows_for_identities<'a, DB>(
    identity_ids: &[&'a str],
    subs: &[&'a str],
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Bind<'a, DB>,
{
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM users WHERE "));
    let mut first = true;
    for (column, values) in [("kratos_identity_id", identity_ids), ("external_id", subs)] {
        if values.is_empty() {
            continue;
        }
        if !first {
            query.push(" OR ");
        }
        first = false;
        query.push(column).push(" IN ");
        push_list(&mut query, values);
    }
    query
}

/// Move the users among `usernames` still `pending` or `needs_recovery` to `migrated` via
/// `kratos`; returns the usernames moved.
pub fn mark_migrated_in_kratos<'a, DB>(
    usernames: &[&'a str],
    at: chrono::DateTime<chrono::Utc>,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Bind<'a, DB>,
    chrono::DateTime<chrono::Utc>: Bind<'a, DB>,
{
    let mut query = QueryBuilder::new(
        "UPDATE users SET state = 'migrated', migrated_via = 'kratos', migrated_at = ",
    );
    query.push_bind(at).push(", updated_at = ").push_bind(at);
    query.push(" WHERE state IN ('pending', 'needs_recovery') AND cognito_username IN ");
    push_list(&mut query, usernames);
    query.push(" RETURNING cognito_username");
    query
}

/// `$1` the last username of the previous page (`NULL`: from the start), `$2` how many.
pub const ROWS_AFTER: &str = "
SELECT cognito_username, kratos_identity_id, external_id, state FROM users
WHERE $1 IS NULL OR cognito_username > $1
ORDER BY cognito_username LIMIT $2";

/// A row of these statements, its state not parsed yet.
#[derive(sqlx::FromRow)]
pub struct LinkedRowRaw {
    cognito_username: String,
    kratos_identity_id: Option<String>,
    external_id: Option<String>,
    state: String,
}

impl TryFrom<LinkedRowRaw> for LinkedRow {
    type Error = StoreError;

    fn try_from(row: LinkedRowRaw) -> Result<Self, StoreError> {
        Ok(LinkedRow {
            cognito_username: row.cognito_username,
            kratos_identity_id: row.kratos_identity_id,
            external_id: row.external_id,
            state: state_from_db(row.state)?,
        })
    }
}

/// `impl ReconcileStore` for a backend, the same for both.
macro_rules! reconcile_store_impl {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use $crate::store::sql::reconcile::{
                self, LinkedRowRaw, RECONCILE_VALUES_PER_STATEMENT as CHUNK,
            };
            use $crate::store::{LinkedRow, StoreError};

            #[async_trait::async_trait]
            impl $crate::store::ReconcileStore for $store {
                async fn rows_for_identities(
                    &self,
                    identity_ids: &[&str],
                    subs: &[&str],
                ) -> Result<Vec<LinkedRow>, StoreError> {
                    let mut rows = Vec::new();
                    let mut seen = std::collections::HashSet::new();
                    let half = CHUNK / 2;
                    let chunks = identity_ids
                        .len()
                        .div_ceil(half)
                        .max(subs.len().div_ceil(half));
                    for chunk in 0..chunks {
                        let start = chunk * half;
                        let ids = &identity_ids
                            [start.min(identity_ids.len())..(start + half).min(identity_ids.len())];
                        let subs = &subs[start.min(subs.len())..(start + half).min(subs.len())];
                        let mut query = reconcile::rows_for_identities(ids, subs);
                        let raw: Vec<LinkedRowRaw> =
                            query.build_query_as().fetch_all(&self.pool).await?;
                        for row in raw {
                            let row = LinkedRow::try_from(row)?;
                            if seen.insert(row.cognito_username.clone()) {
                                rows.push(row);
                            }
                        }
                    }
                    Ok(rows)
                }

                async fn mark_migrated_in_kratos(
                    &self,
                    cognito_usernames: &[&str],
                    at: DateTime<Utc>,
                ) -> Result<Vec<String>, StoreError> {
                    let mut moved = Vec::new();
                    if cognito_usernames.is_empty() {
                        return Ok(moved);
                    }
                    let mut tx = self.writer.begin().await?;
                    for usernames in cognito_usernames.chunks(CHUNK) {
                        let mut query = reconcile::mark_migrated_in_kratos(usernames, at);
                        let names: Vec<(String,)> =
                            query.build_query_as().fetch_all(&mut *tx).await?;
                        moved.extend(names.into_iter().map(|(name,)| name));
                    }
                    tx.commit().await?;
                    Ok(moved)
                }

                async fn rows_after(
                    &self,
                    after: Option<&str>,
                    limit: i64,
                ) -> Result<Vec<LinkedRow>, StoreError> {
                    let raw: Vec<LinkedRowRaw> = sqlx::query_as(reconcile::ROWS_AFTER)
                        .bind(after)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                    raw.into_iter().map(LinkedRow::try_from).collect()
                }
            }
        };
    };
}

pub(crate) use reconcile_store_impl;
