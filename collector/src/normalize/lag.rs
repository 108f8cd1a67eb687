//! The fields lag: how far the fields on disk trail the records in the store, as shown in
//! `status.json` (`fields_lag_records`, `fields_lag_seconds`).
//!
//! ```text
//! store writer ─ after each fsync ─► StoredTimes.record(records_stored, now)
//! normalizer   ─ after each block ─► NormalizeStats.fields_done (records passed, all time)
//! status.json  ─ every 500 ms     ─► fields_lag(stored, times, stats)
//!                                      records = records_stored − fields_done
//!                                      seconds = now − time the oldest of those was stored
//! ```
//!
//! Definitions:
//! - A record's fields are *ready* when the normalizer has appended its block's column to the
//!   sidecar file (written, in the page cache, so `search` reads it; fsync'd at the normalizer's
//!   next cursor commit, at most a second later), or has decided that its fields are computed at
//!   search time (a block it could not parse, a column the block carries inline).
//! - `fields_lag_records`: records stored whose fields are not ready.
//! - `fields_lag_seconds`: 0 when `fields_lag_records` is 0; otherwise the time since the oldest
//!   such record was committed to the store (to the store writer's group commit, i.e. to the
//!   millisecond). Records stored before this collector process started count from its start.
//!
//! Invariants:
//! - [`StoredTimes`] is bounded ([`MAX_POINTS`]): when full, its two oldest points are merged
//!   into one that keeps the older time, so the age it reports can only be overstated, never
//!   understated, and memory stays fixed however far the normalizer falls behind (or when it is
//!   off and nobody trims the list).
//! - Both figures are `null` while the normalizer has not measured its position yet (the walk
//!   over the store at start) and when normalization is off.
//!
//! Known limit: the records of a range the cursor steps over as unreadable (damage, counted in
//! `normalize_failed_blocks`) are not known by number, so they stay in `fields_lag_records`
//! until the collector restarts and counts the store again. (`records_stored` leaves out the
//! collector's own checkpoint and retention records; the worker leaves them out of its position
//! too, see `Worker::counted`.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::NormalizeStats;

/// Most points kept (each a commit of the store writer not yet passed by the normalizer).
pub const MAX_POINTS: usize = 4096;

/// When the store's record count reached each value: `(records_stored, at)` in commit order.
#[derive(Debug, Default)]
pub struct StoredTimes {
    points: Mutex<VecDeque<(u64, Instant)>>,
}

/// The lag of the fields behind the store at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldsLag {
    /// Records stored whose fields are not ready.
    pub records: u64,
    /// Age of the oldest of them, in seconds (0 when there is none).
    pub seconds: f64,
}

impl StoredTimes {
    /// Notes that `records_stored` records were stored (committed) at `at`.
    pub fn record(&self, records_stored: u64, at: Instant) {
        let mut points = self
            .points
            .lock()
            .expect("stored times lock is never poisoned");
        if points.back().is_some_and(|&(n, _)| n >= records_stored) {
            return;
        }
        if points.len() >= MAX_POINTS
            && let (Some((_, older)), Some((n, _))) = (points.pop_front(), points.pop_front())
        {
            points.push_front((n, older));
        }
        points.push_back((records_stored, at));
    }

    /// When the record numbered `done + 1` (the oldest whose fields are not ready) was stored,
    /// at the latest; forgets the points at or below `done`. `None` if no point covers it.
    pub fn stored_after(&self, done: u64) -> Option<Instant> {
        let mut points = self
            .points
            .lock()
            .expect("stored times lock is never poisoned");
        while points.front().is_some_and(|&(n, _)| n <= done) {
            points.pop_front();
        }
        points.front().map(|&(_, at)| at)
    }

    /// Points held (for tests and the bound).
    pub fn len(&self) -> usize {
        self.points
            .lock()
            .expect("stored times lock is never poisoned")
            .len()
    }

    /// Whether no point is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The lag now, or `None` while the normalizer has not measured its position yet.
/// `started` is when this collector process started (the age of records stored before it).
pub fn fields_lag(
    records_stored: &AtomicU64,
    times: &StoredTimes,
    stats: &NormalizeStats,
    started: Instant,
    now: Instant,
) -> Option<FieldsLag> {
    if !stats.fields_done_known.load(Ordering::Acquire) {
        return None;
    }
    // `done` first: it never passes the count of records stored when it is read.
    let done = stats.fields_done.load(Ordering::Acquire);
    let records = records_stored.load(Ordering::Acquire).saturating_sub(done);
    // Always called: it also forgets the points the normalizer has passed.
    let oldest = times.stored_after(done);
    let seconds = if records == 0 {
        0.0
    } else {
        let at = oldest.unwrap_or(started).min(now);
        now.duration_since(at).as_secs_f64()
    };
    Some(FieldsLag { records, seconds })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stats(done: Option<u64>) -> NormalizeStats {
        let stats = NormalizeStats::default();
        if let Some(done) = done {
            stats.fields_done.store(done, Ordering::Relaxed);
            stats.fields_done_known.store(true, Ordering::Relaxed);
        }
        stats
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_record_without_fields() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let times = StoredTimes::default();
        times.record(100, at(1));
        times.record(250, at(2));
        times.record(400, at(5));
        let now = at(10);
        assert_eq!(
            fields_lag(&AtomicU64::new(400), &times, &stats(None), start, now),
            None
        );
        let lag = |done| {
            fields_lag(&AtomicU64::new(400), &times, &stats(Some(done)), start, now).unwrap()
        };
        // Record 1 was stored at 1 s.
        assert_eq!(
            lag(0),
            FieldsLag {
                records: 400,
                seconds: 9.0
            }
        );
        // Record 101 was stored by the commit at 2 s.
        assert_eq!(
            lag(100),
            FieldsLag {
                records: 300,
                seconds: 8.0
            }
        );
        assert_eq!(
            lag(399),
            FieldsLag {
                records: 1,
                seconds: 5.0
            }
        );
        assert_eq!(
            lag(400),
            FieldsLag {
                records: 0,
                seconds: 0.0
            }
        );
        assert!(
            times.is_empty(),
            "points passed by the normalizer are dropped"
        );
        // Stored before any point: counted from the start of the process.
        assert_eq!(
            fields_lag(&AtomicU64::new(500), &times, &stats(Some(400)), start, now).unwrap(),
            FieldsLag {
                records: 100,
                seconds: 10.0
            }
        );
    }

    #[test]
    fn a_full_list_merges_its_oldest_points_and_overstates_only() {
        let start = Instant::now();
        let times = StoredTimes::default();
        for i in 0..(MAX_POINTS as u64 + 10) {
            times.record(10 * (i + 1), start + Duration::from_millis(i));
        }
        times.record(5, start); // not newer: ignored
        assert_eq!(times.len(), MAX_POINTS);
        let now = start + Duration::from_secs(100);
        // Record 15 was really stored at 1 ms; the merged point says 0 ms: older, never younger.
        let lag = fields_lag(
            &AtomicU64::new(u64::MAX / 2),
            &times,
            &stats(Some(14)),
            start,
            now,
        )
        .unwrap();
        assert!(lag.seconds >= 100.0 - 0.001, "{lag:?}");
        // A point past the merged ones keeps its own time.
        let last = 10 * (MAX_POINTS as u64 + 10);
        let lag = fields_lag(
            &AtomicU64::new(last),
            &times,
            &stats(Some(last - 1)),
            start,
            now,
        )
        .unwrap();
        let want = 100.0 - (MAX_POINTS as f64 + 9.0) / 1000.0;
        assert!((lag.seconds - want).abs() < 1e-6, "{lag:?}");
    }
}
