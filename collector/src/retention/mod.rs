//! Retention of the store (`[retention] max_age_days`, `max_bytes`): which consumers hold
//! segments back, when the store writer is asked to apply the policy, and the counters that
//! status.json and `logship-collector forwarders` show.
//!
//! Invariants:
//! - **Single writer**: the decision and the retention record are made by the store writer
//!   thread ([`crate::writer`], message `Retention`), between batches, so the chain has one
//!   writer. It runs at start, every [`timer::EVERY`], and after every commit that sealed a
//!   segment (so the size cap holds as soon as a segment fills).
//! - **Consumers**: every configured forwarder (`forward.<name>`) and the normalizer (when
//!   enabled) hold back removal by age until their cursor is past a segment; the size cap
//!   removes it anyway, and the records each had not read are recorded in the store's
//!   retention record (`undelivered`), logged, counted here and shown per forwarder as
//!   `lost_to_retention` (all time: the counts are read back from the store's retention records
//!   at start). The consumer's cursor reports the removed range as skipped, as for any loss.
//! - **A loss is what the forwarder would have sent**: for a forwarder with a filter (agents,
//!   inputs, datasets, `where`), [`FilteredLoss`] runs each unread removed block through the
//!   forwarder's own [`Matcher`] (decode; fields only when the filter names datasets or `where`
//!   conditions; filter) before the removal, so records its filter would have passed over are
//!   not counted. This reads and decodes those blocks on the store writer thread while ingest
//!   waits (per forced removal: the unread part of the removed segments, once per filtered
//!   forwarder; with datasets or `where` each of those records is normalized again, the work
//!   the forwarder itself would have done on them); forwarders without a filter and the
//!   normalizer are counted from the segment index, reading nothing.
//! - **What goes with a segment**: its index sidecar (`.idx`), its fields sidecar (`.fld`) and its
//!   field index (`.fidx`) are deleted with it; search lists segments, so it never looks for
//!   removed ones. The sidecars are not counted against `max_bytes`.

pub mod timer;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use logship_store::{
    COLLECTOR_IDENTITY, CursorBlock, Query, RetentionPolicy, RetentionReport, UnreadCounter,
};
use serde_json::{Value, json};

use crate::forward::filter::Filter;
use crate::forward::matcher::Matcher;

/// What the writer needs to apply retention.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The limits.
    pub policy: RetentionPolicy,
    /// Cursor names that hold back removal by age.
    pub consumers: Vec<String>,
    /// Host name written in the retention records.
    pub host: String,
    /// Cursor name -> filter of each forwarder, for [`FilteredLoss`].
    pub filters: Vec<(String, Filter)>,
    /// Decompression cap of a block (`max_decompressed_bytes`).
    pub cap: usize,
}

/// Counts the records a forwarder with a filter would have delivered (see the module doc).
pub struct FilteredLoss {
    matchers: HashMap<String, Matcher>,
}

impl FilteredLoss {
    /// Fresh matchers for one retention round.
    pub fn new(plan: &Plan) -> FilteredLoss {
        let matchers = plan
            .filters
            .iter()
            .map(|(name, f)| (name.clone(), Matcher::new(f.clone(), plan.cap)))
            .filter(|(_, m)| !m.takes_all())
            .collect();
        FilteredLoss { matchers }
    }
}

impl UnreadCounter for FilteredLoss {
    fn filters(&self, name: &str) -> bool {
        self.matchers.contains_key(name)
    }

    /// A block the forwarder could not decode counts whole: the loss is reported, not hidden.
    fn count(&mut self, name: &str, block: &CursorBlock) -> u64 {
        let Some(m) = self.matchers.get_mut(name) else {
            return u64::from(block.count);
        };
        m.count(block).unwrap_or(u64::from(block.count))
    }
}

/// Counters of retention, shared with the status file.
#[derive(Debug, Default)]
pub struct RetentionStats {
    /// Rounds run (whether or not they removed anything) since start.
    pub runs: AtomicU64,
    /// Segments removed since start.
    pub segments_removed: AtomicU64,
    /// Bytes of segment files removed since start.
    pub bytes_removed: AtomicU64,
    /// Records removed since start.
    pub records_removed: AtomicU64,
    /// Rounds that failed (logged).
    pub failures: AtomicU64,
    /// Time of the last round, Unix ns (0: none yet).
    pub last_run_ns: AtomicI64,
    /// Consumer cursor name -> records removed before it read them, all time.
    undelivered: Mutex<BTreeMap<String, u64>>,
}

// === impl RetentionStats ===

impl RetentionStats {
    /// Counters seeded with the all-time losses recorded in the store.
    pub fn load(store_dir: &Path) -> RetentionStats {
        let stats = RetentionStats::default();
        *stats.lock() = recorded_losses(store_dir);
        stats
    }

    /// Accounts one round.
    pub fn note(&self, report: &RetentionReport, now_ns: i64) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.last_run_ns.store(now_ns, Ordering::Relaxed);
        let Some(record) = &report.record else {
            return;
        };
        let segments = record.removed.len() as u64;
        let records: u64 = record.removed.iter().map(|s| s.records).sum();
        self.segments_removed.fetch_add(segments, Ordering::Relaxed);
        self.bytes_removed
            .fetch_add(report.bytes, Ordering::Relaxed);
        self.records_removed.fetch_add(records, Ordering::Relaxed);
        let mut lost = self.lock();
        for (name, n) in &record.undelivered {
            *lost.entry(name.clone()).or_default() += n;
        }
    }

    /// Records consumer `cursor` never read because retention removed them (all time).
    pub fn undelivered(&self, cursor: &str) -> u64 {
        self.lock().get(cursor).copied().unwrap_or(0)
    }

    /// The status.json object.
    pub fn snapshot(&self) -> Value {
        let last = self.last_run_ns.load(Ordering::Relaxed);
        json!({
            "runs": self.runs.load(Ordering::Relaxed),
            "segments_removed": self.segments_removed.load(Ordering::Relaxed),
            "bytes_removed": self.bytes_removed.load(Ordering::Relaxed),
            "records_removed": self.records_removed.load(Ordering::Relaxed),
            "failures": self.failures.load(Ordering::Relaxed),
            "last_run": (last != 0).then(|| crate::timearg::format_ns(last)),
            "last_run_unix_ns": last,
            "undelivered": self.lock().clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.undelivered
            .lock()
            .expect("retention counters lock is never poisoned")
    }
}

/// Consumer cursor name -> records it never read, summed over every retention record in the
/// store. A record whose segment a later round removed is summed again by nobody: each round's
/// record names only its own losses, so counts of rounds whose record is gone are lost with it
/// (the log and the SOC, which received the records, keep them).
pub fn recorded_losses(store_dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let query = Query {
        agent: Some(COLLECTOR_IDENTITY.into()),
        input: Some(logship_store::RETENTION_INPUT.into()),
        ..Query::default()
    };
    let found = logship_store::search(store_dir, &query, &mut |r| {
        if let Some(rec) = logship_store::parse_retention_record(r.raw) {
            for (name, n) in rec.undelivered {
                *out.entry(name).or_default() += n;
            }
        }
        true
    });
    if let Err(error) = found {
        tracing::warn!(%error, "Could not read the store's retention records.");
    }
    out
}
