//! SQL of the confirmation hooks ([`crate::store::ConfirmStore`]), the same for both
//! backends. Each change is one conditional `UPDATE` by Cognito username, tried from the
//! strongest to the weakest: each is atomic on its own, so a concurrent change only makes a
//! later, weaker one apply.

/// The rows carrying the identity id (`$1`) or the external id (`$2`). Rows are
/// [`crate::store::Candidate`]s.
pub const ROWS_OF_IDENTITY: &str = "
SELECT cognito_username, kratos_identity_id, external_id FROM users
WHERE kratos_identity_id = $1 OR external_id = $2
ORDER BY cognito_username LIMIT 8";

/// `last_seen_at` moves forward only: Kratos calls the hooks asynchronously, so two calls
/// may arrive out of order. (SQLite compares sqlx's RFC 3339 texts, which sort in time.)
macro_rules! seen_at {
    () => {
        "last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < $2 THEN $2
                            ELSE last_seen_at END, updated_at = $2"
    };
}

/// `$1` username, `$2` now, `$3` via, `$4` `confirmed_at` to set when none (or NULL).
pub const MIGRATE_SEEN_IN_KRATOS: &str = concat!(
    "UPDATE users SET state = 'migrated', migrated_via = $3, migrated_at = $2,
     confirmed_at = COALESCE(confirmed_at, $4), ",
    seen_at!(),
    " WHERE cognito_username = $1 AND state IN ('pending', 'needs_recovery')"
);

/// `$1` username, `$2` now.
pub const CONFIRM_MIGRATED: &str = concat!(
    "UPDATE users SET confirmed_at = $2, ",
    seen_at!(),
    " WHERE cognito_username = $1 AND state = 'migrated' AND confirmed_at IS NULL"
);

/// `$1` username, `$2` now.
pub const NOTE_SEEN: &str = concat!(
    "UPDATE users SET ",
    seen_at!(),
    " WHERE cognito_username = $1"
);

/// `impl ConfirmStore` for a backend, the same for both.
macro_rules! confirm_store_impl {
    ($store:ty) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use $crate::store::sql::confirm;
            use $crate::store::{
                Candidate, ConfirmOutcome, KratosIdentityRef, Resolution, StoreError,
            };

            impl $store {
                /// The row of `identity` by the binding rule's id half.
                async fn row_of_identity(
                    &self,
                    identity: KratosIdentityRef<'_>,
                ) -> Result<Resolution, StoreError> {
                    let candidates: Vec<Candidate> = sqlx::query_as(confirm::ROWS_OF_IDENTITY)
                        .bind(identity.identity_id)
                        .bind(identity.external_id)
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(Resolution::by_identity(
                        identity.identity_id,
                        identity.external_id,
                        &candidates,
                    ))
                }

                /// Try `steps` in order on the row of `identity`; the first that changes it
                /// names the outcome.
                async fn confirm_steps(
                    &self,
                    identity: KratosIdentityRef<'_>,
                    at: DateTime<Utc>,
                    migrate_via: &str,
                    confirms: bool,
                ) -> Result<ConfirmOutcome, StoreError> {
                    let username = match self.row_of_identity(identity).await? {
                        Resolution::User(username) => username,
                        Resolution::IdentityMismatch => {
                            return Ok(ConfirmOutcome::IdentityMismatch);
                        }
                        Resolution::NoMatch | Resolution::Ambiguous => {
                            return Ok(ConfirmOutcome::NoMatch);
                        }
                    };
                    let migrated = sqlx::query(confirm::MIGRATE_SEEN_IN_KRATOS)
                        .bind(&username)
                        .bind(at)
                        .bind(migrate_via)
                        .bind(confirms.then_some(at))
                        .execute(&self.writer)
                        .await?;
                    if migrated.rows_affected() > 0 {
                        return Ok(ConfirmOutcome::Migrated);
                    }
                    if confirms {
                        let confirmed = sqlx::query(confirm::CONFIRM_MIGRATED)
                            .bind(&username)
                            .bind(at)
                            .execute(&self.writer)
                            .await?;
                        if confirmed.rows_affected() > 0 {
                            return Ok(ConfirmOutcome::Confirmed);
                        }
                    }
                    let seen = sqlx::query(confirm::NOTE_SEEN)
                        .bind(&username)
                        .bind(at)
                        .execute(&self.writer)
                        .await?;
                    Ok(if seen.rows_affected() > 0 {
                        ConfirmOutcome::Seen
                    } else {
                        // Deleted meanwhile.
                        ConfirmOutcome::NoMatch
                    })
                }
            }

            #[async_trait::async_trait]
            impl $crate::store::ConfirmStore for $store {
                async fn confirm_login(
                    &self,
                    identity: KratosIdentityRef<'_>,
                    at: DateTime<Utc>,
                ) -> Result<ConfirmOutcome, StoreError> {
                    self.confirm_steps(identity, at, "kratos", true).await
                }

                async fn password_set_in_kratos(
                    &self,
                    identity: KratosIdentityRef<'_>,
                    at: DateTime<Utc>,
                ) -> Result<ConfirmOutcome, StoreError> {
                    self.confirm_steps(identity, at, "reset", false).await
                }
            }
        };
    };
}

pub(crate) use confirm_store_impl;
