//! Migrations per day or hour by `via`, with the cumulative total, every bucket of the range
//! present (a chart needs the empty ones too).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use serde::Serialize;

use crate::store::{Bucket, BucketCount};

/// Most buckets one timeline answers (about 2.7 years of days, 41 days of hours).
pub const MAX_BUCKETS: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    #[error("`from` must be before `to`")]
    EmptyRange,
    #[error("the range holds more than {MAX_BUCKETS} buckets; narrow it or use bucket=day")]
    TooManyBuckets,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRow {
    /// The bucket's label: `2026-12-01` (day) or `2026-12-01T19` (hour), UTC.
    pub start: String,
    pub hook: i64,
    pub capture: i64,
    pub reset: i64,
    pub kratos: i64,
    pub total: i64,
    /// Every migration up to the end of this bucket.
    pub cumulative: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub bucket: &'static str,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Migrations before `from`.
    pub before: i64,
    pub buckets: Vec<TimelineRow>,
}

impl Timeline {
    /// `from` rounded down to its bucket, `to` up: the range the store is asked for.
    pub fn range(
        bucket: Bucket,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), TimelineError> {
        if from >= to {
            return Err(TimelineError::EmptyRange);
        }
        let step = step(bucket);
        let start = from.duration_trunc(step).unwrap_or(from);
        let mut end = to.duration_trunc(step).unwrap_or(to);
        if end < to {
            end += step;
        }
        if (end - start).num_seconds() / step.num_seconds() > MAX_BUCKETS {
            return Err(TimelineError::TooManyBuckets);
        }
        Ok((start, end))
    }

    /// Rows for every bucket of `[from, to)` (as [`Timeline::range`] gave them) from the
    /// store's counts.
    pub fn build(
        bucket: Bucket,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        before: i64,
        counts: &[BucketCount],
    ) -> Self {
        let mut by_label: BTreeMap<&str, Vec<&BucketCount>> = BTreeMap::new();
        for count in counts {
            by_label.entry(&count.bucket).or_default().push(count);
        }
        let step = step(bucket);
        let mut cumulative = before;
        let mut buckets = Vec::new();
        let mut at = from;
        while at < to {
            let start = bucket.label(at);
            let mut row = TimelineRow {
                start,
                hook: 0,
                capture: 0,
                reset: 0,
                kratos: 0,
                total: 0,
                cumulative: 0,
            };
            for count in by_label.get(row.start.as_str()).into_iter().flatten() {
                match count.via.as_deref() {
                    Some("hook") => row.hook += count.count,
                    Some("capture") => row.capture += count.count,
                    Some("reset") => row.reset += count.count,
                    Some("kratos") => row.kratos += count.count,
                    _ => {}
                }
                row.total += count.count;
            }
            cumulative += row.total;
            row.cumulative = cumulative;
            buckets.push(row);
            at += step;
        }
        Self {
            bucket: bucket.as_str(),
            from,
            to,
            before,
            buckets,
        }
    }
}

fn step(bucket: Bucket) -> TimeDelta {
    match bucket {
        Bucket::Day => Duration::days(1),
        Bucket::Hour => Duration::hours(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 30, 0).unwrap()
    }

    fn count(bucket: &str, via: &str, count: i64) -> BucketCount {
        BucketCount {
            bucket: bucket.to_owned(),
            via: Some(via.to_owned()),
            count,
        }
    }

    #[test]
    fn every_day_of_the_range_with_counts_by_via_and_a_running_total() {
        let (from, to) = Timeline::range(Bucket::Day, at(1, 9), at(3, 9)).unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(to, Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap());
        let counts = [
            count("2026-12-01", "hook", 3),
            count("2026-12-01", "capture", 2),
            count("2026-12-03", "kratos", 1),
            count("2026-12-03", "reset", 4),
        ];
        let timeline = Timeline::build(Bucket::Day, from, to, 10, &counts);
        let rows: Vec<(&str, i64, i64, i64)> = timeline
            .buckets
            .iter()
            .map(|row| {
                (
                    row.start.as_str(),
                    row.hook + row.capture,
                    row.total,
                    row.cumulative,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("2026-12-01", 5, 5, 15),
                ("2026-12-02", 0, 0, 15),
                ("2026-12-03", 0, 5, 20)
            ]
        );
        assert_eq!(timeline.buckets[2].kratos, 1);
        assert_eq!(timeline.buckets[2].reset, 4);
    }

    #[test]
    fn hours_are_labelled_like_the_store_and_ranges_are_bounded() {
        let (from, to) = Timeline::range(Bucket::Hour, at(1, 9), at(1, 11)).unwrap();
        let timeline = Timeline::build(
            Bucket::Hour,
            from,
            to,
            0,
            &[count("2026-12-01T10", "hook", 2)],
        );
        let labels: Vec<&str> = timeline
            .buckets
            .iter()
            .map(|row| row.start.as_str())
            .collect();
        assert_eq!(labels, ["2026-12-01T09", "2026-12-01T10", "2026-12-01T11"]);
        assert_eq!(timeline.buckets[1].hook, 2);
        assert_eq!(
            Timeline::range(Bucket::Hour, at(1, 0), at(1, 0) + Duration::days(42)),
            Err(TimelineError::TooManyBuckets)
        );
        assert_eq!(
            Timeline::range(Bucket::Day, at(2, 0), at(1, 0)),
            Err(TimelineError::EmptyRange)
        );
    }
}
