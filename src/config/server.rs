//! The `[server]` section: where the hook listens, its workers and request timeout.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on (`server.listen`).
    pub listen: SocketAddr,
    /// Worker threads; `None` means one per core (`server.workers`).
    pub workers: Option<usize>,
    /// Time a client has to send a request's head, and again its body
    /// (`server.request_timeout_ms`); slower clients get 408 or 400.
    pub request_timeout_ms: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: None,
            request_timeout_ms: 5000,
        }
    }
}

impl ServerSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(super) fn check_for_serving(&self) -> Result<(), ConfigError> {
        if self.workers == Some(0) {
            return Err(invalid(
                "server.workers",
                "must be at least 1 (or unset: one per core)",
            ));
        }
        // actix times request heads against a clock it refreshes every 500 ms: below a
        // second, fresh connections can be cut off before they send anything.
        if !(1000..=60_000).contains(&self.request_timeout_ms) {
            return Err(invalid(
                "server.request_timeout_ms",
                "must be between 1000 and 60000",
            ));
        }
        Ok(())
    }
}
