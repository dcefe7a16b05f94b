//! Pruning the attempt log (`store.attempts_retention_days`): at `serve`'s start and every
//! hour, attempt rows older than the retention are deleted in small batches.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::store::Store;

const EVERY: Duration = Duration::from_secs(3600);
const BATCH: i64 = 10_000;

/// Run forever (spawn it): prune now, then every hour.
pub async fn prune_attempts_forever(
    store: Arc<dyn Store>,
    retention: Duration,
    metrics: Arc<Metrics>,
) {
    let Ok(retention) = chrono::Duration::from_std(retention) else {
        return;
    };
    loop {
        prune_once(store.as_ref(), retention, &metrics).await;
        tokio::time::sleep(EVERY).await;
    }
}

async fn prune_once(store: &dyn Store, retention: chrono::Duration, metrics: &Metrics) {
    let before = chrono::Utc::now() - retention;
    let mut pruned = 0;
    loop {
        match store.prune_attempts(before, BATCH).await {
            Ok(count) => {
                pruned += count;
                if count < BATCH as u64 {
                    break;
                }
                // Let the hook's own writes in between batches.
                tokio::task::yield_now().await;
            }
            Err(error) => {
                metrics.store_error("prune_attempts");
                tracing::warn!(%error, "pruning old attempt rows failed; trying again in an hour");
                break;
            }
        }
    }
    if pruned > 0 {
        tracing::info!(pruned, %before, "deleted attempt rows past store.attempts_retention_days");
    }
}
