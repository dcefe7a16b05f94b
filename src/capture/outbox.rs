//! The outbox worker `serve` runs: delivers the hashes captured while Kratos was unavailable,
//! with backoff, and deletes each one once it is in Kratos or no longer needed (the user
//! migrated another way, has no identity, or Kratos refuses it for good). Entries live in the
//! database, so a restart loses none; several replicas share them (each entry is claimed).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;

use super::{Delivered, Delivery, Recipient};
use crate::domain::UserState;
use crate::store::OutboxEntry;

/// How often the worker looks for due entries when nothing wakes it.
pub const OUTBOX_POLL: Duration = Duration::from_secs(5);
/// Entries taken per round.
const BATCH: i64 = 20;
/// An entry taken by a worker is left alone by the others this long (more than a delivery
/// may take); only a worker that dies mid-delivery leaves an entry waiting for it.
const LEASE: Duration = Duration::from_secs(60);
/// Backoff after the n-th failed delivery: 2 s, 4 s, … up to 5 minutes, with jitter.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Time allowed for one delivery.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Run until `stop` turns true: deliver what is due, then sleep until woken or
/// [`OUTBOX_POLL`] passes. A stop finishes the delivery in flight and hands the other
/// entries taken back at once, so that a restart (or another replica) need not wait for
/// their lease.
pub async fn deliver_forever(delivery: Arc<Delivery>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let handled = deliver_due(&delivery, &stop).await;
        refresh_gauges(&delivery).await;
        if handled == BATCH as usize {
            continue;
        }
        tokio::select! {
            _ = delivery.queued.notified() => {}
            _ = tokio::time::sleep(OUTBOX_POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Publish the outbox's depth and oldest age.
pub async fn refresh_gauges(delivery: &Delivery) {
    match delivery.store.outbox_status().await {
        Ok(status) => delivery
            .metrics
            .outbox(status.depth, status.oldest_age_secs),
        Err(error) => {
            delivery.metrics.store_error("outbox_status");
            tracing::warn!(%error, "cannot read the capture outbox");
        }
    }
}

/// One round: claim the due entries and try each (until `stop`); how many were taken.
pub async fn deliver_due(delivery: &Delivery, stop: &watch::Receiver<bool>) -> usize {
    let now = chrono::Utc::now();
    let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let entries = match delivery
        .store
        .claim_due_captures(now, lease_until, BATCH)
        .await
    {
        Ok(entries) => entries,
        Err(error) => {
            delivery.metrics.store_error("outbox_claim");
            tracing::warn!(%error, "cannot read the capture outbox");
            return 0;
        }
    };
    let taken = entries.len();
    let mut entries = entries.into_iter();
    for entry in entries.by_ref() {
        deliver_one(delivery, entry).await;
        if *stop.borrow() {
            break;
        }
    }
    for entry in entries {
        release(delivery, &entry).await;
    }
    taken
}

async fn deliver_one(delivery: &Delivery, entry: OutboxEntry) {
    let username = entry.cognito_username.as_str();
    let row = match delivery.store.user(username).await {
        Ok(row) => row,
        Err(error) => {
            delivery.metrics.store_error("outbox_user");
            postpone(delivery, &entry, &format!("store: {error}")).await;
            return;
        }
    };
    if row
        .as_ref()
        .is_some_and(|row| row.state == UserState::Migrated)
    {
        drop_entry(delivery, username, "dropped_migrated").await;
        return;
    }
    let identity_id = entry.kratos_identity_id.as_deref().or(row
        .as_ref()
        .and_then(|row| row.kratos_identity_id.as_deref()));
    let sub = entry
        .cognito_sub
        .as_deref()
        .or(row.as_ref().and_then(|row| row.external_id.as_deref()));
    let recipient = Recipient {
        username,
        identity_id,
        sub,
        identifiers: vec![username],
    };
    let delivered = tokio::time::timeout(
        DELIVERY_TIMEOUT,
        delivery.deliver(&recipient, &entry.password_hash),
    )
    .await;
    match delivered {
        Ok(Ok(Delivered::Written(identity_id))) => {
            match delivery
                .store
                .complete_capture(username, &identity_id, chrono::Utc::now())
                .await
            {
                Ok(()) => {
                    delivery.metrics.outbox_delivery("delivered");
                    tracing::info!(
                        user = crate::domain::redact(username),
                        attempts = entry.attempts,
                        "delivered a captured password to Kratos"
                    );
                }
                Err(error) => {
                    // Kratos has it; the entry is taken again after its lease, finds the
                    // password set, and is dropped then.
                    delivery.metrics.store_error("capture_complete");
                    tracing::error!(%error, "delivered, but the outbox entry could not be cleared");
                }
            }
        }
        Ok(Ok(Delivered::AlreadySet)) => {
            drop_entry(delivery, username, "dropped_migrated").await;
        }
        Ok(Ok(Delivered::NoIdentity)) => {
            tracing::warn!(
                user = crate::domain::redact(username),
                "no Kratos identity for a queued password; dropped"
            );
            drop_entry(delivery, username, "dropped_no_identity").await;
        }
        Ok(Err(error)) if !error.is_transient() => {
            tracing::error!(%error, "Kratos refused a queued password; dropped");
            drop_entry(delivery, username, "dropped_refused").await;
        }
        Ok(Err(error)) => postpone(delivery, &entry, &error.to_string()).await,
        Err(_) => postpone(delivery, &entry, "no answer in time").await,
    }
}

async fn drop_entry(delivery: &Delivery, username: &str, result: &'static str) {
    match delivery.store.drop_capture(username).await {
        Ok(()) => delivery.metrics.outbox_delivery(result),
        Err(error) => {
            delivery.metrics.store_error("outbox_drop");
            tracing::warn!(%error, "cannot delete an outbox entry; it is taken again later");
        }
    }
}

async fn postpone(delivery: &Delivery, entry: &OutboxEntry, why: &str) {
    let wait = retry_after(entry.attempts);
    let next_at = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    delivery.metrics.outbox_delivery("retry");
    tracing::warn!(
        reason = why,
        attempts = entry.attempts,
        retry_in_secs = wait.as_secs(),
        "Kratos still unavailable for a queued password"
    );
    if let Err(error) = delivery
        .store
        .postpone_capture(&entry.cognito_username, next_at, why)
        .await
    {
        delivery.metrics.store_error("outbox_postpone");
        tracing::warn!(%error, "cannot reschedule an outbox entry; its lease decides");
    }
}

/// Hand an entry taken but not tried back: due at once.
async fn release(delivery: &Delivery, entry: &OutboxEntry) {
    if let Err(error) = delivery
        .store
        .postpone_capture(
            &entry.cognito_username,
            chrono::Utc::now(),
            "released at shutdown",
        )
        .await
    {
        delivery.metrics.store_error("outbox_postpone");
        tracing::warn!(%error, "cannot hand an outbox entry back; its lease decides");
    }
}

/// The wait after the `attempts`-th failed delivery: doubling from [`FIRST_RETRY`], capped at
/// [`MAX_RETRY`], then between half of that and all of it.
fn retry_after(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    let full = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
    rand::rng().random_range(full / 2..=full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_five_minutes() {
        for (attempts, full) in [(1, 2), (2, 4), (3, 8), (8, 256), (9, 300), (40, 300)] {
            for _ in 0..20 {
                let wait = retry_after(attempts);
                let full = Duration::from_secs(full);
                assert!(wait >= full / 2 && wait <= full, "{attempts}: {wait:?}");
            }
        }
    }
}
