//! When `pending` reaches zero at the recent rate of migrations.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;

/// The days whose migrations make the recent rate.
pub const PROJECTION_WINDOW_DAYS: u32 = 7;

/// The projection and what it rests on. `date` is `None` with a `reason` when there is no
/// trend to extend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub date: Option<NaiveDate>,
    /// Migrations per day over the window.
    pub rate_per_day: f64,
    pub window_days: u32,
    pub pending: i64,
    pub reason: Option<&'static str>,
}

impl Projection {
    /// `migrated_in_window`: migrations in the [`PROJECTION_WINDOW_DAYS`] before `now`.
    pub fn new(pending: i64, migrated_in_window: i64, now: DateTime<Utc>) -> Self {
        let window_days = PROJECTION_WINDOW_DAYS;
        let rate_per_day = migrated_in_window as f64 / f64::from(window_days);
        let (date, reason) = if pending <= 0 {
            (None, Some("no user is pending"))
        } else if migrated_in_window <= 0 {
            (
                None,
                Some("no migrations in the last 7 days: no trend to extend"),
            )
        } else {
            let days = (pending as f64 / rate_per_day).ceil() as u64;
            let date = now.date_naive().checked_add_days(Days::new(days));
            (date, date.is_none().then_some("beyond any calendar"))
        };
        Self {
            date,
            rate_per_day,
            window_days,
            pending,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn pending_users_at_the_recent_rate() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap();
        // 70 migrations in 7 days: 10 a day; 95 pending take 10 days (the last day partly).
        let projection = Projection::new(95, 70, now);
        assert_eq!(projection.rate_per_day, 10.0);
        assert_eq!(projection.date, NaiveDate::from_ymd_opt(2026, 12, 11));
        assert_eq!(projection.reason, None);
        // Exactly divisible: 100 pending at 10 a day, 10 days.
        let exact = Projection::new(100, 70, now);
        assert_eq!(exact.date, NaiveDate::from_ymd_opt(2026, 12, 11));
    }

    #[test]
    fn no_trend_or_nothing_pending_gives_no_date_and_says_why() {
        let now = Utc::now();
        let stalled = Projection::new(40, 0, now);
        assert_eq!(stalled.date, None);
        assert!(stalled.reason.unwrap().contains("no migrations"));
        let done = Projection::new(0, 30, now);
        assert_eq!(done.date, None);
        assert_eq!(done.reason, Some("no user is pending"));
    }
}
