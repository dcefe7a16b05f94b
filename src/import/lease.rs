//! One real import at a time per database: a lease row in the store, taken atomically when
//! free or expired, renewed by a heartbeat, given up at the end. Its times are the database's,
//! so importers on several machines agree; a killed import blocks the next one for one
//! `ttl` at most.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{LeaseClaim, LeaseHolder, Store, StoreError};

/// How long a lease lasts without renewal, and how often its holder renews it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    pub ttl: Duration,
    pub heartbeat: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            heartbeat: Duration::from_secs(5),
        }
    }
}

/// Why this process does not hold the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another real import holds it; this one did nothing.
    #[error("{}", refusal(.0))]
    AlreadyRunning(LeaseHolder),
    #[error(
        "the import lease changed hands {ACQUIRE_ATTEMPTS} times while this import tried to \
         take it; try again"
    )]
    ChangedHands,
    #[error("the import lease was taken over before the run started")]
    TakenOverBeforeStart,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Claims in a row that find the lease changing hands before giving up.
const ACQUIRE_ATTEMPTS: usize = 3;

/// The lease this process holds; [`release`](Lease::release) it at the end.
pub(super) struct Lease {
    store: Arc<dyn Store>,
    token: String,
    holder: String,
    timing: LeaseTiming,
    heartbeat: JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

impl Lease {
    /// Take the lease, or say who holds it.
    pub async fn acquire(store: Arc<dyn Store>, timing: LeaseTiming) -> Result<Self, LeaseError> {
        let token = format!("{:032x}", rand::random::<u128>());
        let holder = holder();
        let claim = LeaseClaim {
            token: &token,
            holder: &holder,
            ttl: timing.ttl,
        };
        for _ in 0..ACQUIRE_ATTEMPTS {
            let before = store.import_lease().await?;
            if store.acquire_import_lease(&claim).await? {
                if let Some(previous) = before.filter(|previous| previous.expired) {
                    tracing::warn!(
                        previous_holder = %previous.holder,
                        previous_run_id = previous.run_id,
                        heartbeat_at = %previous.heartbeat_at,
                        "took over an expired import lease (its import stopped without \
                         releasing it)"
                    );
                }
                let (lost_sender, lost) = watch::channel(false);
                let heartbeat = tokio::spawn(renew(
                    store.clone(),
                    token.clone(),
                    holder.clone(),
                    timing,
                    lost_sender,
                ));
                return Ok(Self {
                    store,
                    token,
                    holder,
                    timing,
                    heartbeat,
                    lost,
                });
            }
            match store.import_lease().await? {
                Some(current) if !current.expired => {
                    return Err(LeaseError::AlreadyRunning(current));
                }
                // Released or expired since the claim: claim again.
                _ => continue,
            }
        }
        Err(LeaseError::ChangedHands)
    }

    /// Name the run in the lease, for whoever is refused next.
    pub async fn attach(&self, run_id: i64) -> Result<(), LeaseError> {
        if self
            .store
            .renew_import_lease(&self.claim(), Some(run_id))
            .await?
        {
            Ok(())
        } else {
            Err(LeaseError::TakenOverBeforeStart)
        }
    }

    /// Resolves if the lease is found taken over by another import.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            if lost.wait_for(|lost| *lost).await.is_err() {
                // The heartbeat has ended without losing the lease: never.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stop renewing and give the lease up; a failure only delays the next import until the
    /// lease expires.
    pub async fn release(self) {
        self.heartbeat.abort();
        if let Err(error) = self.store.release_import_lease(&self.token).await {
            tracing::warn!(
                %error,
                ttl_secs = self.timing.ttl.as_secs(),
                "could not release the import lease; the next import can start once it expires"
            );
        }
    }

    fn claim(&self) -> LeaseClaim<'_> {
        LeaseClaim {
            token: &self.token,
            holder: &self.holder,
            ttl: self.timing.ttl,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Renew every `timing.heartbeat` until the lease is found taken over. A failed renewal is
/// retried at the next beat (the database may be back by then).
async fn renew(
    store: Arc<dyn Store>,
    token: String,
    holder: String,
    timing: LeaseTiming,
    lost: watch::Sender<bool>,
) {
    let claim = LeaseClaim {
        token: &token,
        holder: &holder,
        ttl: timing.ttl,
    };
    let mut beats = tokio::time::interval(timing.heartbeat);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beats.tick().await;
    loop {
        beats.tick().await;
        match store.renew_import_lease(&claim, None).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!("the import lease was taken over by another import; stopping");
                lost.send_replace(true);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "could not renew the import lease; retrying");
            }
        }
    }
}

/// Host and process id, for the message another import shows.
fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "an unknown host".to_owned());
    format!("{host}, pid {}", std::process::id())
}

/// Why an import is refused while another holds the lease.
pub(super) fn refusal(current: &LeaseHolder) -> String {
    let at = |time: chrono::DateTime<chrono::Utc>| time.format("%Y-%m-%d %H:%M:%S UTC");
    let run = match (current.run_id, current.run_started_at) {
        (Some(id), Some(started)) => format!("run {id} (started {})", at(started)),
        (Some(id), None) => format!("run {id}"),
        (None, _) => "a run not recorded yet (its import is starting)".to_owned(),
    };
    format!(
        "another import is running: {run} on {}, holding the import lease since {}, last \
         heartbeat {}. Nothing was sent to Kratos; run this again once it has ended. If that \
         process is gone, its lease expires at {} and the next import takes over. \
         (`--dry-run` is never refused.)",
        current.holder,
        at(current.acquired_at),
        at(current.heartbeat_at),
        at(current.expires_at),
    )
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn held(run_id: Option<i64>) -> LeaseHolder {
        let at = |minute| Utc.with_ymd_and_hms(2026, 12, 1, 10, minute, 0).unwrap();
        LeaseHolder {
            holder: "build-7, pid 4242".to_owned(),
            run_id,
            run_started_at: run_id.map(|_| at(0)),
            acquired_at: at(1),
            heartbeat_at: at(2),
            expires_at: at(3),
            expired: false,
        }
    }

    #[test]
    fn the_refusal_names_the_run_its_start_host_pid_and_expiry() {
        let message = refusal(&held(Some(7)));
        for part in [
            "another import is running: run 7 (started 2026-12-01 10:00:00 UTC) on build-7, pid 4242",
            "since 2026-12-01 10:01:00 UTC",
            "last heartbeat 2026-12-01 10:02:00 UTC",
            "expires at 2026-12-01 10:03:00 UTC",
            "Nothing was sent to Kratos",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        assert!(refusal(&held(None)).contains("a run not recorded yet"));
    }
}
