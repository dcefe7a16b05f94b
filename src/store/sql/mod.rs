//! The SQL both backends share, by what it owns, and the half of `impl Store` /
//! `impl ImportStore` that is the same for both (only the pool type differs).
//!
//! `$N` placeholders work in Postgres and in SQLite (through sqlx), and the tables have the
//! same columns in both migration sets. The backends' own statements (Postgres's
//! one-statement record and claim, SQLite's transaction and INSERT … SELECT claim) live here
//! too, beside the statements they are built from; each backend's file runs its own.
//!
//! The shared half is a macro rather than a generic over `sqlx::Database`: each expansion
//! names a concrete pool, so it needs no trait bounds on every type it binds and decodes. Each
//! expansion is wrapped in `const _: () = { … };`, a scope of its own for its imports.
//! Reads go to `self.pool`; writes go to `self.writer` (SQLite: its one writing connection).

pub mod admin;
pub mod attempts;
pub mod confirm;
pub mod finalize;
pub mod guard;
pub mod import;
pub mod lease;
pub mod outbox;
pub mod reconcile;
pub mod users;

/// `impl Store` for a backend: its own methods (`migrate`, `record_attempt`, `claim`) as
/// given, and the reads and pruning, which are the same for both. (The own methods are
/// expanded inside the macro's scope: they see its imports too.)
macro_rules! store_impl {
    ($store:ty, { $($own:tt)* }) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use $crate::store::sql;
            use $crate::store::{
                AttemptRecord, Candidate, Progress, Resolution, StoreError, UserLookup, UserRecord,
            };

            #[async_trait::async_trait]
            impl $crate::store::Store for $store {
                $($own)*

                async fn ping(&self) -> Result<(), StoreError> {
                    sqlx::query("SELECT 1").execute(&self.pool).await?;
                    Ok(())
                }

                async fn resolve(&self, lookup: UserLookup<'_>) -> Result<Resolution, StoreError> {
                    let candidates: Vec<Candidate> =
                        sql::users::bind_lookup!(sqlx::query_as(sql::users::CANDIDATES), lookup)
                            .fetch_all(&self.pool)
                            .await?;
                    Ok(Resolution::decide(&lookup, &candidates))
                }

                async fn user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
                    let row: Option<sql::users::UserRow> = sqlx::query_as(sql::users::SELECT_USER)
                        .bind(username)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(UserRecord::try_from).transpose()
                }

                async fn recent_attempts(
                    &self,
                    limit: i64,
                ) -> Result<Vec<AttemptRecord>, StoreError> {
                    let query = sqlx::query_as(sql::attempts::RECENT_ATTEMPTS).bind(limit);
                    Ok(query.fetch_all(&self.pool).await?)
                }

                async fn prune_attempts(
                    &self,
                    before: DateTime<Utc>,
                    limit: i64,
                ) -> Result<u64, StoreError> {
                    let query = sqlx::query(sql::attempts::PRUNE_ATTEMPTS).bind(before).bind(limit);
                    Ok(query.execute(&self.writer).await?.rows_affected())
                }

                async fn progress(&self) -> Result<Progress, StoreError> {
                    self.fold_user_counts().await?;
                    let since = Utc::now()
                        - chrono::Duration::hours($crate::store::ATTEMPTS_WINDOW_HOURS);
                    let states = sqlx::query_as(sql::users::STATE_COUNTS)
                        .fetch_all(&self.pool)
                        .await?;
                    let mfa_dropped = sqlx::query_scalar(sql::users::MFA_DROPPED_COUNT)
                        .fetch_one(&self.pool)
                        .await?;
                    let outcomes = sqlx::query_as(sql::attempts::OUTCOME_COUNTS)
                        .bind(since)
                        .fetch_all(&self.pool)
                        .await?;
                    let outbox = $crate::store::CaptureStore::outbox_status(self).await?;
                    Progress::from_counts(states, mfa_dropped, since, outcomes, outbox)
                }
            }
        };
    };
}

pub(crate) use admin::admin_store_impl;
pub(crate) use confirm::confirm_store_impl;
pub(crate) use finalize::finalize_store_impl;
pub(crate) use outbox::outbox_store_impl;
pub(crate) use reconcile::reconcile_store_impl;
pub(crate) use store_impl;

/// `impl ImportStore` for a backend, the same for both; `$clock` names the backend's
/// [`lease::Clock`].
macro_rules! import_store_impl {
    ($store:ty, $clock:ident) => {
        const _: () = {
            use std::collections::HashMap;

            use chrono::{DateTime, Utc};

            use $crate::store::sql::import::{self, IMPORT_ROWS_PER_STATEMENT as CHUNK};
            use $crate::store::sql::lease;
            use $crate::store::{
                ImportCommit, ImportFailure, ImportRun, LeaseClaim, LeaseHolder, RunStatus,
                RunUpdate, StoreError,
            };

            const CLOCK: lease::Clock = lease::Clock::$clock;

            impl $store {
                /// The newest runs first, with the dry runs or without.
                async fn newest_import_runs(
                    &self,
                    with_dry_runs: bool,
                    limit: i64,
                ) -> Result<Vec<ImportRun>, StoreError> {
                    let rows: Vec<import::ImportRunRow> = sqlx::query_as(import::IMPORT_RUNS)
                        .bind(with_dry_runs)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                    rows.into_iter().map(ImportRun::try_from).collect()
                }
            }

            #[async_trait::async_trait]
            impl $crate::store::ImportStore for $store {
                async fn imported_external_ids(
                    &self,
                    external_ids: &[&str],
                ) -> Result<HashMap<String, Option<i64>>, StoreError> {
                    if external_ids.is_empty() {
                        return Ok(HashMap::new());
                    }
                    let mut query = import::imported_external_ids(external_ids);
                    let rows: Vec<(String, Option<i64>)> =
                        query.build_query_as().fetch_all(&self.pool).await?;
                    Ok(rows.into_iter().collect())
                }

                async fn any_imported_user(&self) -> Result<bool, StoreError> {
                    let count: i64 = sqlx::query_scalar(import::ANY_IMPORTED_USER)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(count > 0)
                }

                async fn refresh_emails(
                    &self,
                    emails: &[(&str, Option<&str>)],
                ) -> Result<(), StoreError> {
                    for rows in emails.chunks(CHUNK) {
                        let mut query = import::refresh_emails(rows);
                        query.build().execute(&self.writer).await?;
                    }
                    Ok(())
                }

                async fn start_import_run(
                    &self,
                    dry_run: bool,
                    at: DateTime<Utc>,
                    estimated_users: Option<i64>,
                ) -> Result<i64, StoreError> {
                    Ok(sqlx::query_scalar(import::START_IMPORT_RUN)
                        .bind(dry_run)
                        .bind(at)
                        .bind(estimated_users)
                        .fetch_one(&self.writer)
                        .await?)
                }

                async fn latest_real_import_run(&self) -> Result<Option<ImportRun>, StoreError> {
                    Ok(self.newest_import_runs(false, 1).await?.pop())
                }

                async fn import_runs(&self, limit: i64) -> Result<Vec<ImportRun>, StoreError> {
                    self.newest_import_runs(true, limit).await
                }

                async fn import_failures(
                    &self,
                    run_id: i64,
                    limit: i64,
                ) -> Result<Vec<ImportFailure>, StoreError> {
                    let query = sqlx::query_as(import::IMPORT_FAILURES)
                        .bind(run_id)
                        .bind(limit);
                    Ok(query.fetch_all(&self.pool).await?)
                }

                async fn commit_import(
                    &self,
                    commit: &ImportCommit<'_>,
                ) -> Result<i64, StoreError> {
                    let (run_id, at) = (commit.run_id, commit.at);
                    let mut tx = self.writer.begin().await?;
                    for users in commit.users.chunks(CHUNK) {
                        let mut query = import::upsert_imported_users(run_id, at, users);
                        query.build().execute(&mut *tx).await?;
                    }
                    let failures = import::last_failure_per_user(commit.failures);
                    for failures in failures.chunks(CHUNK) {
                        let mut query = import::upsert_import_failures(run_id, at, failures);
                        query.build().execute(&mut *tx).await?;
                    }
                    // After the failures: a user both failed and imported in this commit (listed
                    // twice) is imported.
                    for users in commit.users.chunks(CHUNK) {
                        let mut query = import::forget_import_failures(run_id, users);
                        query.build().execute(&mut *tx).await?;
                    }
                    let failed: i64 = import::bind_run_update!(
                        sqlx::query_scalar(import::UPDATE_IMPORT_RUN),
                        run_id,
                        RunStatus::Running,
                        commit.next_token,
                        commit.counters,
                        commit.duration_ms,
                        at,
                        None::<DateTime<Utc>>,
                        None::<&str>
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(failed)
                }

                async fn update_import_run(
                    &self,
                    update: &RunUpdate<'_>,
                ) -> Result<i64, StoreError> {
                    let finished_at = (update.status != RunStatus::Running).then_some(update.at);
                    Ok(import::bind_run_update!(
                        sqlx::query_scalar(import::UPDATE_IMPORT_RUN),
                        update.run_id,
                        update.status,
                        update.next_token,
                        update.counters,
                        update.duration_ms,
                        update.at,
                        finished_at,
                        update.error
                    )
                    .fetch_one(&self.writer)
                    .await?)
                }

                async fn acquire_import_lease(
                    &self,
                    claim: &LeaseClaim<'_>,
                ) -> Result<bool, StoreError> {
                    let statement = lease::acquire_import_lease(CLOCK);
                    let query = sqlx::query_scalar::<_, String>(&statement)
                        .bind(claim.token)
                        .bind(claim.holder)
                        .bind(claim.ttl.as_secs_f64());
                    Ok(query.fetch_optional(&self.writer).await?.is_some())
                }

                async fn renew_import_lease(
                    &self,
                    claim: &LeaseClaim<'_>,
                    run_id: Option<i64>,
                ) -> Result<bool, StoreError> {
                    let statement = lease::renew_import_lease(CLOCK);
                    let query = sqlx::query(&statement)
                        .bind(claim.token)
                        .bind(run_id)
                        .bind(claim.ttl.as_secs_f64());
                    Ok(query.execute(&self.writer).await?.rows_affected() == 1)
                }

                async fn release_import_lease(&self, token: &str) -> Result<(), StoreError> {
                    let query = sqlx::query(lease::RELEASE_IMPORT_LEASE).bind(token);
                    query.execute(&self.writer).await?;
                    Ok(())
                }

                async fn import_lease(&self) -> Result<Option<LeaseHolder>, StoreError> {
                    let statement = lease::select_import_lease(CLOCK);
                    let query = sqlx::query_as(&statement);
                    Ok(query.fetch_optional(&self.writer).await?)
                }

                async fn import_run(&self, run_id: i64) -> Result<Option<ImportRun>, StoreError> {
                    let row: Option<import::ImportRunRow> = sqlx::query_as(import::IMPORT_RUN)
                        .bind(run_id)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(ImportRun::try_from).transpose()
                }

                async fn created_by_run(
                    &self,
                    run_id: i64,
                    after: &str,
                    limit: i64,
                ) -> Result<Vec<$crate::store::CreatedByRun>, StoreError> {
                    let rows: Vec<import::CreatedByRunRow> = sqlx::query_as(import::CREATED_BY_RUN)
                        .bind(run_id)
                        .bind(after)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                    rows.into_iter().map(TryFrom::try_from).collect()
                }

                async fn delete_unmigrated(
                    &self,
                    run_id: i64,
                    username: &str,
                ) -> Result<bool, StoreError> {
                    let result = sqlx::query(import::DELETE_UNMIGRATED)
                        .bind(run_id)
                        .bind(username)
                        .execute(&self.writer)
                        .await?;
                    Ok(result.rows_affected() == 1)
                }
            }
        };
    };
}

pub(crate) use import_store_impl;
