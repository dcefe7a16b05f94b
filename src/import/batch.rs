//! One batch of mapped users on its way into Kratos: cut from the front of the queue, sent
//! (conflicts looked up and linked), and its rows, failures and the page token committed in
//! one transaction.

use std::collections::{HashSet, VecDeque};

use chrono::Utc;
use futures_util::StreamExt;

use super::ledger::Ledger;
use super::mapping::MappedUser;
use super::send;
use crate::domain::redact;
use crate::kratos::{
    BatchBody, ItemResult, KratosAdmin, KratosError, KratosLine, MAX_BATCH_BODY_BYTES,
};
use crate::store::{ImportCommit, ImportFailure, ImportedUser, Store, StoreError};

/// Conflict lookups in flight at once.
const LOOKUP_CONCURRENCY: usize = 8;

/// A mapped user waiting to be sent, its create body serialised once.
pub(super) struct Queued {
    pub user: MappedUser,
    pub body: Vec<u8>,
}

/// What one batch produced: a row for each user Kratos holds now, a failure for the rest.
#[derive(Default)]
pub(super) struct Sent {
    pub rows: Vec<ImportedUser>,
    pub failures: Vec<ImportFailure>,
    pub created: i64,
    pub linked: i64,
}

/// A batch from the front of `queue`: at most `limit` identities, and within Kratos's 5 MB
/// request cap.
pub(super) fn cut(queue: &mut VecDeque<Queued>, limit: usize) -> (Vec<Queued>, BatchBody) {
    let mut batch = BatchBody::new();
    let mut members = Vec::new();
    while let Some(next) = queue.front() {
        let full = members.len() == limit
            || (!members.is_empty() && batch.size_with(&next.body) > MAX_BATCH_BODY_BYTES);
        if full {
            break;
        }
        let next = queue.pop_front().expect("a front entry");
        batch.push(&next.body);
        members.push(next);
    }
    (members, batch.finish())
}

/// One `PATCH /admin/identities` (on Kratos v1.3.x, with its creates checked and re-sent
/// after a rollback); conflicts are looked up and linked. Counted only once every answer
/// is in: a batch that fails half way is not committed, and `--resume` sends (and counts)
/// its users again.
pub(super) async fn send(
    kratos: &KratosAdmin,
    line: KratosLine,
    batch: &BatchBody,
    members: &[Queued],
) -> Result<Sent, KratosError> {
    let bodies: Vec<&[u8]> = members
        .iter()
        .map(|member| member.body.as_slice())
        .collect();
    let results = send::create_batch(kratos, line, batch, &bodies).await?;
    let mut sent = Sent {
        rows: Vec::with_capacity(members.len()),
        ..Sent::default()
    };
    let mut conflicts = Vec::new();
    let members = members.iter().map(|member| &member.user);
    for (user, result) in members.zip(results) {
        match result {
            ItemResult::Created { identity_id } => {
                sent.created += 1;
                sent.rows.push(imported(user, identity_id, true));
            }
            ItemResult::Conflict => conflicts.push(user),
            ItemResult::Failed { status, message } => {
                // Kratos's message may quote trait values: it goes to the store, not the log.
                tracing::warn!(user = %redact(&user.username), status, "Kratos refused an identity");
                sent.failures.push(failure(user, status, message));
            }
        }
    }
    let lookups: Vec<_> = futures_util::stream::iter(conflicts)
        .map(|user| async move {
            let found = send::find_imported(kratos, line, user).await;
            (user, found)
        })
        .buffer_unordered(LOOKUP_CONCURRENCY)
        .collect()
        .await;
    for (user, found) in lookups {
        match found? {
            Some(identity_id) => {
                sent.linked += 1;
                sent.rows.push(imported(user, identity_id, false));
            }
            None => {
                let which = if line.accepts_external_id() {
                    "no identity has this external_id, and none holding this user's \
                     identifiers has its sub (metadata_admin.cognito.sub)"
                } else {
                    "no identity holding this user's identifiers has its sub \
                     (metadata_admin.cognito.sub)"
                };
                sent.failures.push(failure(
                    user,
                    Some(409),
                    format!(
                        "Kratos reports a conflict, but {which}: another identity probably \
                         holds the same identifier (e-mail address)"
                    ),
                ));
            }
        }
    }
    Ok(sent)
}

/// Rows, failures, totals and the page token (moved past every fully sent page) in one
/// transaction. Without rows or failures, only when the token moved.
pub(super) async fn commit(
    store: &dyn Store,
    ledger: &mut Ledger,
    rows: Vec<ImportedUser>,
    mut failures: Vec<ImportFailure>,
) -> Result<(), StoreError> {
    let covered = ledger.cover();
    if rows.is_empty() && failures.is_empty() && !covered.moved {
        return Ok(());
    }
    let rows = last_row_per_user(rows);
    failures.extend(covered.failures);
    let failed = store
        .commit_import(&ImportCommit {
            run_id: ledger.id,
            at: Utc::now(),
            users: &rows,
            failures: &failures,
            next_token: ledger.token.as_deref(),
            counters: ledger.committed_counters(),
            duration_ms: ledger.duration_ms(),
        })
        .await?;
    ledger.failures_stored(failed);
    Ok(())
}

/// A user listed twice in one batch (pages shifting while users sign up) is created once and
/// linked once; one row each, the last, or Postgres refuses to upsert a row twice in one
/// statement.
/// The row keeps `created` when any of the user's rows has it (created once, then linked to
/// that same identity).
fn last_row_per_user(rows: Vec<ImportedUser>) -> Vec<ImportedUser> {
    let created: HashSet<String> = rows
        .iter()
        .filter(|row| row.created)
        .map(|row| row.cognito_username.clone())
        .collect();
    let mut seen = HashSet::new();
    let mut unique: Vec<ImportedUser> = rows
        .into_iter()
        .rev()
        .filter(|row| seen.insert(row.cognito_username.clone()))
        .map(|mut row| {
            row.created = created.contains(&row.cognito_username);
            row
        })
        .collect();
    unique.reverse();
    unique
}

fn imported(user: &MappedUser, identity_id: String, created: bool) -> ImportedUser {
    ImportedUser {
        cognito_username: user.username.clone(),
        email_normalized: user.email_normalized.clone(),
        external_id: user.external_id.clone(),
        kratos_identity_id: identity_id,
        state: user.state,
        created,
    }
}

pub(super) fn failure(user: &MappedUser, status: Option<u16>, reason: String) -> ImportFailure {
    ImportFailure {
        cognito_username: user.username.clone(),
        external_id: Some(user.external_id.clone()),
        status: status.map(i32::from),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserState;

    fn row(username: &str, identity: &str) -> ImportedUser {
        ImportedUser {
            cognito_username: username.to_owned(),
            email_normalized: None,
            external_id: format!("sub-{username}"),
            kratos_identity_id: identity.to_owned(),
            state: UserState::Pending,
            created: true,
        }
    }

    #[test]
    fn a_user_listed_twice_keeps_one_row_the_last() {
        let linked = |username, identity| ImportedUser {
            created: false,
            ..row(username, identity)
        };
        let rows = vec![
            row("a", "1"),
            row("b", "2"),
            linked("a", "1-linked"),
            row("c", "3"),
            linked("d", "4"),
        ];
        let unique: Vec<(String, String, bool)> = last_row_per_user(rows)
            .into_iter()
            .map(|row| (row.cognito_username, row.kratos_identity_id, row.created))
            .collect();
        // a was created by this batch, then linked: it stays created (undo may delete it).
        assert_eq!(
            unique,
            [
                ("b".to_owned(), "2".to_owned(), true),
                ("a".to_owned(), "1-linked".to_owned(), true),
                ("c".to_owned(), "3".to_owned(), true),
                ("d".to_owned(), "4".to_owned(), false)
            ]
        );
    }
}
