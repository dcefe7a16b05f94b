//! What the admin API reads: the users list (cursor pages in username order), migrations per
//! time bucket and `via`, and counts of migrations in a time range.

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;

use super::StoreError;
use crate::domain::UserState;

/// One user as the stragglers list shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UserListing {
    pub cognito_username: String,
    /// The verified e-mail the import recorded (lower-cased), if any.
    pub email: Option<String>,
    pub state: String,
    pub migrated_via: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The outcome of the user's newest attempt (hook or capture).
    pub last_outcome: Option<String>,
    /// The user's attempts still in the attempt log.
    pub attempts: i64,
}

/// How the timeline groups migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Day,
    Hour,
}

impl Bucket {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "day" => Some(Bucket::Day),
            "hour" => Some(Bucket::Hour),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Hour => "hour",
        }
    }

    /// The bucket's label for a time, as the store groups by it: `2026-12-01` or `2026-12-01T19`.
    pub fn label(self, at: DateTime<Utc>) -> String {
        match self {
            Bucket::Day => at.format("%Y-%m-%d").to_string(),
            Bucket::Hour => at.format("%Y-%m-%dT%H").to_string(),
        }
    }
}

/// How a count of migrations in `[from, to)` is read: the whole UTC hours from the
/// `user_counts` rollup (as hour labels, `first <= hour < end`; `""` from the start), the
/// parts shorter than an hour at either end from `users` through its `migrated_at` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourSplit {
    pub hours: Option<(String, String)>,
    pub parts: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl HourSplit {
    pub fn new(from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> Self {
        let hour = TimeDelta::hours(1);
        let floor = |at: DateTime<Utc>| at.duration_trunc(hour).unwrap_or(at);
        let to_floor = floor(to);
        let from_ceil = from.map(|from| {
            let start = floor(from);
            if start < from { start + hour } else { start }
        });
        match (from, from_ceil) {
            (Some(from), Some(from_ceil)) if from_ceil >= to_floor => Self {
                hours: None,
                parts: if from < to {
                    vec![(from, to)]
                } else {
                    Vec::new()
                },
            },
            _ => {
                let mut parts = Vec::new();
                if let (Some(from), Some(from_ceil)) = (from, from_ceil)
                    && from < from_ceil
                {
                    parts.push((from, from_ceil));
                }
                if to_floor < to {
                    parts.push((to_floor, to));
                }
                let first = from_ceil
                    .map(|at| Bucket::Hour.label(at))
                    .unwrap_or_default();
                Self {
                    hours: Some((first, Bucket::Hour.label(to_floor))),
                    parts,
                }
            }
        }
    }
}

/// Migrations of one bucket by one `via`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BucketCount {
    /// [`Bucket::label`] of the bucket.
    pub bucket: String,
    pub via: Option<String>,
    pub count: i64,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Up to `limit` users after `after` in username order (`""` for the first page), of one
    /// state or all.
    async fn users_page(
        &self,
        state: Option<UserState>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<UserListing>, StoreError>;
    /// Migrations with `from <= migrated_at < to`, per bucket and `via`, buckets in order.
    async fn migrations_by_bucket(
        &self,
        bucket: Bucket,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BucketCount>, StoreError>;
    /// Migrations with `from <= migrated_at < to` (`from` `None`: since the start).
    async fn migrated_between(
        &self,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
    ) -> Result<i64, StoreError>;
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, minute, 0)
            .unwrap()
    }

    fn hours(first: &str, end: &str) -> Option<(String, String)> {
        Some((first.to_owned(), end.to_owned()))
    }

    #[test]
    fn a_range_splits_into_whole_hours_and_the_parts_at_its_ends() {
        let cases = [
            // (from, to, whole hours, parts)
            (
                Some(at(1, 9, 30)),
                at(3, 14, 15),
                hours("2026-12-01T10", "2026-12-03T14"),
                vec![(at(1, 9, 30), at(1, 10, 0)), (at(3, 14, 0), at(3, 14, 15))],
            ),
            (
                Some(at(1, 9, 0)),
                at(1, 12, 0),
                hours("2026-12-01T09", "2026-12-01T12"),
                vec![],
            ),
            (None, at(2, 0, 0), hours("", "2026-12-02T00"), vec![]),
            (
                None,
                at(2, 0, 1),
                hours("", "2026-12-02T00"),
                vec![(at(2, 0, 0), at(2, 0, 1))],
            ),
            // Inside one hour, or across one hour boundary with no whole hour between.
            (
                Some(at(1, 9, 10)),
                at(1, 9, 50),
                None,
                vec![(at(1, 9, 10), at(1, 9, 50))],
            ),
            (
                Some(at(1, 9, 10)),
                at(1, 10, 50),
                None,
                vec![(at(1, 9, 10), at(1, 10, 50))],
            ),
            (Some(at(1, 9, 10)), at(1, 9, 10), None, vec![]),
        ];
        for (from, to, whole, parts) in cases {
            let split = HourSplit::new(from, to);
            assert_eq!(split.hours, whole, "{from:?}..{to}");
            assert_eq!(split.parts, parts, "{from:?}..{to}");
        }
    }
}
