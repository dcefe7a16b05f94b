//! The brute-force guard's in-process half: sliding windows of failures per user and per
//! client address group, with attempts in flight counted as failures. The store's claim is
//! the guard across replicas; this half holds on its own when the store is slow or down (so
//! an outage never opens Cognito to unguarded guessing), and it refuses in-process bursts
//! before they reach the store.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::time::Instant;

use crate::config::GuardLimits;
use crate::domain::GuardEffect;
use crate::metrics::GuardLimit;

/// Most keys (users plus address groups) remembered; past it, keys without failures in the
/// window are forgotten first, then the oldest. Bounded memory under a spray of identifiers.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
struct Window {
    failures: VecDeque<Instant>,
    in_flight: u32,
    last_seen: Option<Instant>,
}

impl Window {
    fn prune(&mut self, horizon: Option<Instant>) {
        if let Some(horizon) = horizon {
            while self.failures.front().is_some_and(|at| *at <= horizon) {
                self.failures.pop_front();
            }
        }
    }

    fn count(&self) -> usize {
        self.failures.len() + self.in_flight as usize
    }

    fn idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0
    }
}

/// Which windows a granted attempt holds; hand it back to [`LocalGuard::settle`].
#[derive(Debug)]
pub struct LocalTicket {
    key: String,
    ip: Option<String>,
}

pub struct LocalGuard {
    limits: GuardLimits,
    windows: Mutex<HashMap<String, Window>>,
}

fn ip_key(group: &str) -> String {
    format!("ip {group}")
}

fn user_key(key: &str) -> String {
    format!("user {key}")
}

impl LocalGuard {
    pub fn new(limits: GuardLimits) -> Self {
        Self {
            limits,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn horizon(&self, now: Instant) -> Option<Instant> {
        now.checked_sub(self.limits.window)
    }

    /// Count the attempt in flight, or name the limit it would pass.
    pub fn claim(&self, key: &str, ip: Option<&str>) -> Result<LocalTicket, GuardLimit> {
        let now = Instant::now();
        let horizon = self.horizon(now);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let user = user_key(key);
        let ip = ip.map(ip_key);
        let over = |windows: &mut HashMap<String, Window>, name: &str, limit: u32| {
            limit > 0
                && windows.get_mut(name).is_some_and(|window| {
                    window.prune(horizon);
                    window.count() >= limit as usize
                })
        };
        if over(&mut windows, &user, self.limits.identifier_failures) {
            return Err(GuardLimit::Identifier);
        }
        if let Some(ip) = &ip
            && over(&mut windows, ip, self.limits.ip_failures)
        {
            return Err(GuardLimit::Ip);
        }
        if windows.len() + 2 > MAX_KEYS {
            evict(&mut windows, horizon);
        }
        for name in std::iter::once(&user).chain(ip.as_ref()) {
            let window = windows.entry(name.clone()).or_default();
            window.in_flight += 1;
            window.last_seen = Some(now);
        }
        Ok(LocalTicket { key: user, ip })
    }

    /// The attempt's end: a failure stays in the windows, a match clears the user's.
    pub fn settle(&self, ticket: LocalTicket, effect: Option<GuardEffect>) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        for name in std::iter::once(&ticket.key).chain(ticket.ip.as_ref()) {
            let Some(window) = windows.get_mut(name) else {
                continue;
            };
            window.in_flight = window.in_flight.saturating_sub(1);
            match effect {
                Some(GuardEffect::Failure) => window.failures.push_back(now),
                Some(GuardEffect::Success) if *name == ticket.key => window.failures.clear(),
                _ => {}
            }
        }
    }

    /// A failure that needed no claim (an identifier or password that cannot be a Cognito
    /// credential).
    pub fn note_failure(&self, key: Option<&str>, ip: Option<&str>) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() + 2 > MAX_KEYS {
            evict(&mut windows, self.horizon(now));
        }
        for name in key.map(user_key).into_iter().chain(ip.map(ip_key)) {
            let window = windows.entry(name).or_default();
            window.failures.push_back(now);
            window.last_seen = Some(now);
        }
    }

    /// Keys remembered, for tests.
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.windows.lock().unwrap().len()
    }
}

/// Make room: drop windows with nothing left in them, then the longest unseen tenth.
fn evict(windows: &mut HashMap<String, Window>, horizon: Option<Instant>) {
    windows.retain(|_, window| {
        window.prune(horizon);
        !window.idle()
    });
    if windows.len() + 2 > MAX_KEYS {
        let mut seen: Vec<(Option<Instant>, String)> = windows
            .iter()
            .filter(|(_, window)| window.in_flight == 0)
            .map(|(name, window)| (window.last_seen, name.clone()))
            .collect();
        seen.sort();
        for (_, name) in seen.into_iter().take(MAX_KEYS / 10) {
            windows.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn guard(identifier: u32, ip: u32) -> LocalGuard {
        LocalGuard::new(GuardLimits {
            identifier_failures: identifier,
            ip_failures: ip,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn attempts_in_flight_count_until_settled() {
        let guard = guard(3, 0);
        let tickets: Vec<_> = (0..3)
            .map(|_| guard.claim("alice", None).unwrap())
            .collect();
        assert_eq!(
            guard.claim("alice", None).unwrap_err(),
            GuardLimit::Identifier
        );
        assert!(guard.claim("bob", None).is_ok());
        let mut tickets = tickets.into_iter();
        guard.settle(tickets.next().unwrap(), None);
        let fourth = guard
            .claim("alice", None)
            .expect("a neutral end frees its place");
        guard.settle(fourth, Some(GuardEffect::Failure));
        assert_eq!(
            guard.claim("alice", None).unwrap_err(),
            GuardLimit::Identifier
        );
        for ticket in tickets {
            guard.settle(ticket, Some(GuardEffect::Failure));
        }
        assert_eq!(
            guard.claim("alice", None).unwrap_err(),
            GuardLimit::Identifier
        );
    }

    #[test]
    fn a_match_clears_the_user_but_not_the_address() {
        let guard = guard(2, 3);
        for _ in 0..2 {
            let ticket = guard.claim("alice", Some("203.0.113.9")).unwrap();
            guard.settle(ticket, Some(GuardEffect::Failure));
        }
        assert_eq!(
            guard.claim("alice", Some("203.0.113.9")).unwrap_err(),
            GuardLimit::Identifier
        );
        let ticket = guard.claim("bob", Some("203.0.113.9")).unwrap();
        guard.settle(ticket, Some(GuardEffect::Success));
        let ticket = guard
            .claim("carol", Some("203.0.113.9"))
            .expect("a match is no failure of the address");
        guard.settle(ticket, Some(GuardEffect::Failure));
        assert_eq!(
            guard.claim("dave", Some("203.0.113.9")).unwrap_err(),
            GuardLimit::Ip,
            "three failures from the address"
        );
        assert!(guard.claim("carol", Some("198.51.100.1")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_leave_the_window() {
        let guard = guard(1, 0);
        guard.note_failure(Some("alice"), None);
        assert!(guard.claim("alice", None).is_err());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(guard.claim("alice", None).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_identifiers() {
        let guard = guard(5, 0);
        for n in 0..(MAX_KEYS + 5_000) {
            guard.note_failure(Some(&format!("user-{n}")), None);
        }
        assert!(guard.keys() <= MAX_KEYS, "{}", guard.keys());
        // The newest are still counted.
        for _ in 0..4 {
            guard.note_failure(Some(&format!("user-{}", MAX_KEYS + 4_999)), None);
        }
        assert!(
            guard
                .claim(&format!("user-{}", MAX_KEYS + 4_999), None)
                .is_err()
        );
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let guard = guard(0, 0);
        for _ in 0..100 {
            guard.note_failure(Some("alice"), Some("203.0.113.9"));
        }
        assert!(guard.claim("alice", Some("203.0.113.9")).is_ok());
    }
}
