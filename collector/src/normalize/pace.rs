//! Ingest first, in time as well as in CPU: while agents' batches are being stored, the
//! normalizer rests between blocks, so the cores' caches, memory bandwidth and the disk belong
//! to the ack path; after the burst it catches up at full speed.
//!
//! ```text
//! store writer ─ each commit that stored records ─► WriterStats.last_stored_ns
//! normalizer   ─ before reading the next block ──► Pace::rest(): while ingest is active
//!                                                   (a commit within ACTIVE_WITHIN) sleep up to
//!                                                   REST_PER_WORK × the work since the last rest
//! ```
//!
//! Why not the scheduler alone: the normalizer's threads already run at a lower nice value
//! ([`super::worker`]), which decides who gets a core when both want one. On a machine with a
//! core to spare, ingest (agent, TLS, decode checks, fsync'd appends) does not fill both, so the
//! normalizer ran beside it at full speed and still slowed it by 10–20 % (measured in
//! docs/BENCHMARKS.md, "Fields ready") through what the cores share.
//!
//! Invariants:
//! - Progress is guaranteed: the normalizer works at least `1 / (1 + REST_PER_WORK)` of the
//!   time even under endless ingest, so the fields lag stays bounded whatever the load.
//! - A rest ends as soon as ingest goes quiet (checked every [`STEP`]), and there is none when
//!   nothing was stored within [`ACTIVE_WITHIN`] (a catch-up after a restart or a burst runs
//!   unpaced).
//! - A wall clock that jumps only shortens rests (a commit time in the future or long past
//!   counts as quiet): pacing can delay fields, never stop them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Ingest is active while the last commit that stored records is younger than this. An agent
/// sends only fsync'd batches, so a burst arrives as a cluster of batches per spool fsync
/// (every 200 ms by default, `[spool] fsync_interval_ms`): the window spans the gap between two
/// clusters with room to spare. (At 100 ms the normalizer ran unpaced for half of each gap and
/// took a fifth of a core through a UDP burst: docs/BENCHMARKS.md, "Syslog into storage".)
const ACTIVE_WITHIN: Duration = Duration::from_millis(500);
/// Rest per unit of work while ingest is active: 3 gives the normalizer a quarter of the time.
const REST_PER_WORK: u32 = 3;
/// How often a rest checks whether ingest went quiet.
const STEP: Duration = Duration::from_millis(5);
/// Longest single rest, however long the work before it took.
const MAX_REST: Duration = Duration::from_secs(2);

/// The normalizer's pacing state.
#[derive(Debug)]
pub(super) struct Pace {
    /// When the work since the last rest began.
    working_since: Instant,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            working_since: Instant::now(),
        }
    }
}

impl Pace {
    /// Rests while ingest is active (see the module doc), then starts counting work again.
    /// `last_stored_ns` is the writer's Unix-ns time of its last commit that stored records.
    pub(super) fn rest(&mut self, last_stored_ns: &AtomicI64) {
        let budget = rest_for(self.working_since.elapsed());
        let started = Instant::now();
        while let Some(nap) = next_nap(
            started.elapsed(),
            budget,
            last_stored_ns.load(Ordering::Relaxed),
            jiff::Timestamp::now().as_nanosecond() as i64,
        ) {
            std::thread::sleep(nap);
        }
        self.working_since = Instant::now();
    }

    /// The thread waited for the store (caught up): waiting is not work, so no rest is owed.
    pub(super) fn waited(&mut self) {
        self.working_since = Instant::now();
    }
}

/// How long to rest after `worked` while ingest stays active.
fn rest_for(worked: Duration) -> Duration {
    (worked * REST_PER_WORK).min(MAX_REST)
}

/// The next sleep of a rest that has lasted `rested` of its `budget`, with the last commit
/// that stored records at `last_ns` and the clock at `now_ns` (Unix ns); `None` ends the rest.
fn next_nap(rested: Duration, budget: Duration, last_ns: i64, now_ns: i64) -> Option<Duration> {
    (rested < budget && active(last_ns, now_ns)).then(|| STEP.min(budget - rested))
}

/// Whether a commit at `last_ns` (Unix ns, 0 = none) means ingest is active at `now_ns`.
fn active(last_ns: i64, now_ns: i64) -> bool {
    let window = ACTIVE_WITHIN.as_nanos() as i64;
    last_ns != 0 && (0..window).contains(&(now_ns - last_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const NOW: i64 = 1_800_000_000_000 * MS;

    #[test]
    fn active_only_within_the_window_after_a_commit() {
        assert!(active(NOW, NOW));
        assert!(
            active(NOW - 499 * MS, NOW),
            "the gap between two spool fsyncs"
        );
        assert!(!active(NOW - 500 * MS, NOW), "quiet after the window");
        assert!(!active(0, NOW), "nothing stored since the start");
        assert!(
            !active(NOW + MS, NOW),
            "a commit in the future (clock stepped back)"
        );
    }

    #[test]
    fn rest_is_three_times_the_work_up_to_a_cap() {
        assert_eq!(
            rest_for(Duration::from_millis(40)),
            Duration::from_millis(120)
        );
        assert_eq!(rest_for(Duration::ZERO), Duration::ZERO);
        assert_eq!(rest_for(Duration::from_secs(5)), MAX_REST);
    }

    #[test]
    fn naps_in_steps_while_ingest_is_active_and_ends_when_quiet_or_spent() {
        let ms = Duration::from_millis;
        let budget = ms(120);
        // Active: steps of STEP, the last one cut to what is left of the budget.
        assert_eq!(next_nap(ms(0), budget, NOW - 10 * MS, NOW), Some(STEP));
        assert_eq!(next_nap(ms(118), budget, NOW - 10 * MS, NOW), Some(ms(2)));
        // Spent, or ingest quiet (no commit for the window, none at all, clock stepped back).
        assert_eq!(next_nap(ms(120), budget, NOW - 10 * MS, NOW), None);
        assert_eq!(next_nap(ms(0), budget, NOW - 600 * MS, NOW), None);
        assert_eq!(next_nap(ms(0), budget, 0, NOW), None);
        assert_eq!(next_nap(ms(0), budget, NOW + 10 * MS, NOW), None);
        // No work, no rest.
        assert_eq!(next_nap(ms(0), rest_for(ms(0)), NOW, NOW), None);
    }
}
