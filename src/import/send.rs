//! Every Kratos call of an import: the line read once per run, one batch into Kratos with
//! results that hold on every Kratos line, and the lookup that links a conflict to the identity
//! an earlier run created, each retried while Kratos is briefly unavailable.
//!
//! Kratos v1.3.x rolls a whole `PATCH /admin/identities` back when one item fails, yet answers
//! `action: create` with ids for the others. There, after any per-item error, every reported
//! create is checked with `GET /admin/identities?ids=…` and the missing ones are sent again
//! (without the failed items), a bounded number of times. From v25.4.0 on, the answer is true.
//! A conflict is looked up by external id from v25.4.0 on; v1.3.x refuses `external_id` on
//! create, so there the user's sub is kept in `metadata_admin` and looked up by identifier.

use std::time::Duration;

use super::mapping::MappedUser;
use crate::kratos::{BatchBody, ItemResult, KratosAdmin, KratosError, KratosLine, LineSource};

/// Attempts per Kratos request when Kratos is briefly unavailable (5xx, 429, no answer).
const KRATOS_ATTEMPTS: u32 = 3;
const KRATOS_RETRY_BASE: Duration = Duration::from_millis(500);

/// Which Kratos line the admin API belongs to (its version decides what a create may carry,
/// how large a batch may be and whether batch answers are true), read once per run:
/// `GET /admin/version`, else a probe of the lookup route.
pub(super) async fn detect_line(kratos: &KratosAdmin) -> Result<KratosLine, KratosError> {
    let (line, source) = with_retries("GET /admin/version", || kratos.detect_line()).await?;
    match source {
        LineSource::Version(version) => {
            tracing::info!(%line, %version, "Kratos line from GET /admin/version");
        }
        LineSource::Probe { version } => tracing::info!(
            %line,
            version = version.as_deref().unwrap_or("none"),
            "Kratos line from a probe of GET /admin/identities/by/external (no release \
             version at GET /admin/version)"
        ),
    }
    Ok(line)
}

/// Sends of one batch at most: the first, then re-sends of what a rollback lost.
pub(super) const MAX_SENDS: usize = 4;

/// Per item of `bodies` (in order), what Kratos did, every `Created` checked where Kratos's
/// answer cannot be believed. `first` is `bodies` as one finished [`BatchBody`].
pub(super) async fn create_batch(
    kratos: &KratosAdmin,
    line: KratosLine,
    first: &BatchBody,
    bodies: &[&[u8]],
) -> Result<Vec<ItemResult>, KratosError> {
    debug_assert_eq!(first.len(), bodies.len());
    let mut results: Vec<Option<ItemResult>> = vec![None; bodies.len()];
    let mut pending: Vec<usize> = (0..bodies.len()).collect();
    for send in 1..=MAX_SENDS {
        let answers = if send == 1 {
            with_retries("PATCH /admin/identities", || kratos.batch_create(first)).await?
        } else {
            let mut batch = BatchBody::new();
            for &index in &pending {
                batch.push(bodies[index]);
            }
            let batch = batch.finish();
            with_retries("PATCH /admin/identities", || kratos.batch_create(&batch)).await?
        };
        let mut created = Vec::new();
        let mut errors = 0;
        for (&index, answer) in pending.iter().zip(answers) {
            match answer {
                ItemResult::Created { identity_id } => created.push((index, identity_id)),
                other => {
                    errors += 1;
                    results[index] = Some(other);
                }
            }
        }
        // A re-send is checked as well: it only happens because Kratos answered untruly.
        let check = !line.batch_results_are_true() && (errors > 0 || send > 1);
        if !check || created.is_empty() {
            for (index, identity_id) in created {
                results[index] = Some(ItemResult::Created { identity_id });
            }
            pending.clear();
            break;
        }
        let ids: Vec<String> = created.iter().map(|(_, id)| id.clone()).collect();
        let stored =
            with_retries("GET /admin/identities?ids", || kratos.existing_ids(&ids)).await?;
        pending.clear();
        for (index, identity_id) in created {
            if stored.contains(&identity_id) {
                results[index] = Some(ItemResult::Created { identity_id });
            } else {
                pending.push(index);
            }
        }
        if pending.is_empty() {
            break;
        }
        tracing::warn!(
            send,
            errors,
            lost = pending.len(),
            "Kratos {line} answered `create` for identities it rolled back (one failed item \
             undoes its whole batch); sending those again"
        );
    }
    for index in pending {
        results[index] = Some(ItemResult::Failed {
            status: None,
            message: format!(
                "Kratos reported this identity created but did not store it, {MAX_SENDS} times \
                 (Kratos v1.3.x rolls back a whole batch when one identity in it fails); a \
                 rerun retries it"
            ),
        });
    }
    Ok(results
        .into_iter()
        .map(|result| result.expect("every item has a result"))
        .collect())
}

/// The identity an earlier run (or an earlier item of this batch) created for `user`, after
/// Kratos reported a conflict: by external id from v25.4.0 on; else (v1.3.x, or an identity
/// imported while Kratos was still v1.3.x, which has no external id) by the user's
/// identifiers, accepting only an identity whose `metadata_admin.cognito.sub` is the user's.
pub(super) async fn find_imported(
    kratos: &KratosAdmin,
    line: KratosLine,
    user: &MappedUser,
) -> Result<Option<String>, KratosError> {
    if line.accepts_external_id() {
        let found = with_retries("GET /admin/identities/by/external", || {
            kratos.identity_by_external_id(&user.external_id)
        })
        .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    for identifier in &user.identifiers {
        let listed = with_retries("GET /admin/identities?credentials_identifier", || {
            kratos.identities_by_identifier(identifier)
        })
        .await?;
        if let Some(identity) = listed
            .into_iter()
            .find(|identity| identity.cognito_sub.as_deref() == Some(user.external_id.as_str()))
        {
            return Ok(Some(identity.id));
        }
    }
    Ok(None)
}

/// Retry transient Kratos errors a few times, doubling the pause.
async fn with_retries<T, F, Fut>(what: &'static str, send: F) -> Result<T, KratosError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, KratosError>>,
{
    let mut attempt = 1;
    loop {
        match send().await {
            Err(error) if error.is_transient() && attempt < KRATOS_ATTEMPTS => {
                tracing::warn!(what, attempt, %error, "Kratos unavailable; retrying");
                tokio::time::sleep(KRATOS_RETRY_BASE * 2u32.pow(attempt - 1)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::UserState;
    use crate::kratos::fake::{FakeKratos, FakeOptions};
    use crate::kratos::tests::client;

    /// A create body as the import sends it to `line`.
    fn body(line: KratosLine, sub: &str, email: &str) -> Vec<u8> {
        let mut body = json!({
            "schema_id": "default",
            "traits": {"email": email},
            "metadata_admin": {"cognito": {"sub": sub}},
        });
        if line.accepts_external_id() {
            body["external_id"] = sub.into();
        }
        serde_json::to_vec(&body).unwrap()
    }

    /// Create bodies for `sub-<name>` with `<name>@example.com`, one per name.
    fn bodies(line: KratosLine, names: &[&str]) -> Vec<Vec<u8>> {
        names
            .iter()
            .map(|name| body(line, &format!("sub-{name}"), &format!("{name}@example.com")))
            .collect()
    }

    /// An identity as the import wrote it under Kratos v1.3.x: no external id, the sub in
    /// `metadata_admin`.
    fn insert_v1_3_identity(fake: &FakeKratos, sub: &str, email: &str) -> String {
        fake.insert(json!({
            "traits": {"email": email},
            "metadata_admin": {"cognito": {"sub": sub}},
        }))
    }

    fn user(sub: &str, email: &str) -> MappedUser {
        MappedUser {
            username: format!("user-{sub}"),
            external_id: sub.to_owned(),
            identifiers: vec![email.to_owned()],
            email_normalized: None,
            state: UserState::Pending,
            identity: Value::Null,
        }
    }

    async fn send(kratos: &KratosAdmin, line: KratosLine, bodies: &[Vec<u8>]) -> Vec<ItemResult> {
        let mut first = BatchBody::new();
        for body in bodies {
            first.push(body);
        }
        let first = first.finish();
        let bodies: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        create_batch(kratos, line, &first, &bodies).await.unwrap()
    }

    fn created_ids(results: &[ItemResult]) -> Vec<&str> {
        results
            .iter()
            .filter_map(|result| match result {
                ItemResult::Created { identity_id } => Some(identity_id.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn on_v1_3_a_batch_rolled_back_by_a_conflict_is_checked_and_sent_again() {
        let line = KratosLine::Legacy;
        let fake = FakeKratos::start(FakeOptions::legacy()).await;
        // Someone else holds c@example.com.
        fake.insert(json!({"traits": {"email": "c@example.com"}}));
        let kratos = client(&fake.url);
        let bodies = bodies(line, &["a", "b", "c", "d", "e"]);
        let results = send(&kratos, line, &bodies).await;

        assert_eq!(results[2], ItemResult::Conflict);
        let created = created_ids(&results);
        assert_eq!(created.len(), 4, "{results:?}");
        let stored: Vec<String> = fake.identities().into_iter().map(|s| s.id).collect();
        assert_eq!(
            stored.len(),
            5,
            "the other identity and our four, once each"
        );
        for id in created {
            assert!(
                stored.iter().any(|stored| stored == id),
                "{id} is not stored"
            );
        }
        assert_eq!(
            fake.counts(|c| (c.patches, c.id_lookups)),
            (2, 2),
            "the rolled-back creates were checked, sent again, and checked again"
        );

        // The conflict belongs to someone else: no identity with our sub holds the e-mail.
        let found = find_imported(&kratos, line, &user("sub-c", "c@example.com")).await;
        assert_eq!(found.unwrap(), None);
    }

    #[tokio::test]
    async fn on_v1_3_a_user_listed_twice_is_created_once_and_linked_once() {
        let line = KratosLine::Legacy;
        let fake = FakeKratos::start(FakeOptions::legacy()).await;
        let kratos = client(&fake.url);
        let bodies = bodies(line, &["a", "b", "a"]);
        let results = send(&kratos, line, &bodies).await;
        assert_eq!(results[2], ItemResult::Conflict);
        let created = created_ids(&results);
        assert_eq!(created.len(), 2);
        assert_eq!(fake.identities().len(), 2);

        let linked = find_imported(&kratos, line, &user("sub-a", " A@Example.com "))
            .await
            .unwrap();
        assert_eq!(linked.as_deref(), Some(created[0]));
    }

    #[tokio::test]
    async fn on_v1_3_a_batch_without_errors_is_believed() {
        let line = KratosLine::Legacy;
        let fake = FakeKratos::start(FakeOptions::legacy()).await;
        let kratos = client(&fake.url);
        let bodies = bodies(line, &["a", "b"]);
        let results = send(&kratos, line, &bodies).await;
        assert_eq!(created_ids(&results).len(), 2);
        assert_eq!(fake.counts(|c| (c.patches, c.id_lookups)), (1, 0));
    }

    #[tokio::test]
    async fn creates_that_never_stick_are_failures_after_a_bounded_number_of_sends() {
        let line = KratosLine::Legacy;
        let fake = FakeKratos::start(FakeOptions {
            store_nothing: true,
            ..FakeOptions::legacy()
        })
        .await;
        fake.insert(json!({"traits": {"email": "c@example.com"}}));
        let kratos = client(&fake.url);
        let bodies = bodies(line, &["a", "c"]);
        let results = send(&kratos, line, &bodies).await;
        assert_eq!(results[1], ItemResult::Conflict);
        let ItemResult::Failed { status, message } = &results[0] else {
            panic!("expected a failure: {results:?}");
        };
        assert_eq!(*status, None);
        assert!(message.contains("did not store"), "{message}");
        assert_eq!(fake.counts(|c| c.patches), MAX_SENDS);
        assert_eq!(fake.counts(|c| c.id_lookups), MAX_SENDS);
    }

    #[tokio::test]
    async fn on_v25_4_and_later_answers_are_true_and_conflicts_use_the_external_id() {
        let line = KratosLine::Current;
        let fake = FakeKratos::start(FakeOptions::current()).await;
        let theirs =
            fake.insert(json!({"traits": {"email": "a@example.com"}, "external_id": "sub-a"}));
        let kratos = client(&fake.url);
        let bodies = bodies(line, &["a", "b"]);
        let results = send(&kratos, line, &bodies).await;
        assert_eq!(results[0], ItemResult::Conflict);
        assert_eq!(created_ids(&results).len(), 1);
        assert_eq!(fake.counts(|c| (c.patches, c.id_lookups)), (1, 0));
        let linked = find_imported(&kratos, line, &user("sub-a", "a@example.com"))
            .await
            .unwrap();
        assert_eq!(linked, Some(theirs));
        assert_eq!(fake.counts(|c| (c.probes, c.identifier_lookups)), (1, 0));
    }

    #[tokio::test]
    async fn after_an_upgrade_an_identity_imported_under_v1_3_is_found_by_identifier_and_sub() {
        let line = KratosLine::Current;
        let fake = FakeKratos::start(FakeOptions::current()).await;
        let ours = insert_v1_3_identity(&fake, "sub-a", "a@example.com");
        let kratos = client(&fake.url);
        let found = find_imported(&kratos, line, &user("sub-a", "a@example.com"))
            .await
            .unwrap();
        assert_eq!(found, Some(ours));
        assert_eq!(fake.counts(|c| (c.probes, c.identifier_lookups)), (1, 1));
        // Someone else's identity with that e-mail is never linked.
        let stranger = find_imported(&kratos, line, &user("sub-z", "a@example.com"))
            .await
            .unwrap();
        assert_eq!(stranger, None);
    }

    #[tokio::test]
    async fn on_v1_3_conflicts_try_every_identifier_until_the_sub_matches() {
        let line = KratosLine::Legacy;
        let fake = FakeKratos::start(FakeOptions::legacy()).await;
        let ours = insert_v1_3_identity(&fake, "sub-a", "second@example.com");
        insert_v1_3_identity(&fake, "sub-z", "first@example.com");
        let kratos = client(&fake.url);
        let mut mapped = user("sub-a", "first@example.com");
        mapped.identifiers.push("second@example.com".to_owned());
        let found = find_imported(&kratos, line, &mapped).await.unwrap();
        assert_eq!(found, Some(ours));
        assert_eq!(fake.counts(|c| c.identifier_lookups), 2);
        mapped.identifiers.clear();
        assert_eq!(find_imported(&kratos, line, &mapped).await.unwrap(), None);
    }
}
