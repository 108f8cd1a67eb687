//! The in-memory index and counters guarded by the spool mutex.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::{LostRange, Position};

/// Where one record sits and what it holds (positions kept for the ledger on deletion).
#[derive(Clone, Debug)]
pub(crate) struct RecordMeta {
    /// Byte offset of the frame in its segment.
    pub(crate) offset: u64,
    pub(crate) frame_len: u64,
    pub(crate) meta_len: u32,
    pub(crate) first_seq: u64,
    pub(crate) count: u32,
    pub(crate) uncompressed_len: u64,
    pub(crate) positions: Vec<Position>,
}

impl RecordMeta {
    /// One past the last seq of the record.
    pub(crate) fn end_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }
}

/// One segment file and the index of its records.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
    /// Bytes in the file (header included).
    pub(crate) len: u64,
    pub(crate) records: Vec<RecordMeta>,
    /// Positional reads, fsync and (if `writable`) appends.
    pub(crate) file: Arc<File>,
    /// True for the one segment that receives appends.
    pub(crate) writable: bool,
}

impl Segment {
    /// One past the last seq held (== `first_seq` when empty).
    pub(crate) fn end_seq(&self) -> u64 {
        self.records
            .last()
            .map_or(self.first_seq, RecordMeta::end_seq)
    }

    /// All records are `<= acked_through`.
    pub(crate) fn fully_acked(&self, acked_through: u64) -> bool {
        self.end_seq() <= acked_through.saturating_add(1)
    }
}

/// Merged read positions: last wins per key, `Position::FORGET` removes the key.
#[derive(Clone, Debug, Default)]
pub(crate) struct Positions(BTreeMap<String, Position>);

impl Positions {
    pub(crate) fn apply(&mut self, positions: &[Position]) {
        for p in positions {
            if p.offset == Position::FORGET {
                self.0.remove(&p.key);
            } else {
                self.0.insert(p.key.clone(), p.clone());
            }
        }
    }

    /// Sorted by key.
    pub(crate) fn to_vec(&self) -> Vec<Position> {
        self.0.values().cloned().collect()
    }
}

/// Everything guarded by the spool mutex.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Ordered by `first_seq`; only the last one may be writable.
    pub(crate) segments: VecDeque<Segment>,
    pub(crate) next_seq: u64,
    pub(crate) durable_next_seq: u64,
    pub(crate) acked_through: u64,
    /// Sum of `Segment::len`.
    pub(crate) bytes: u64,
    pub(crate) unsynced_bytes: u64,
    /// When the oldest unsynced write happened.
    pub(crate) dirty_since: Option<Instant>,
    /// [`crate::Spool::sync_soon`] asked the fsync thread not to wait for its interval.
    pub(crate) sync_requested: bool,
    /// Files of closed segments written since the last fsync.
    pub(crate) pending_sync: Vec<Arc<File>>,
    /// A segment file was created since the last directory fsync.
    pub(crate) dir_dirty: bool,
    /// Ledger positions: the persisted ledger plus records of deleted segments.
    pub(crate) ledger: Positions,
    /// Damage found while running (reads), for the agent to report.
    pub(crate) lost: Vec<LostRange>,
    /// Appends are refused.
    pub(crate) closed: bool,
    /// `close` finished its final fsync: durable waiters return.
    pub(crate) drained: bool,
    /// The last handle is gone: the fsync thread exits.
    pub(crate) stop: bool,
    pub(crate) blocked_appends: u64,
    /// Appends waiting for space right now (the spool is full while > 0).
    pub(crate) waiting_appends: u64,
    pub(crate) quarantined_segments: u64,
}

impl State {
    /// Something was written that is not yet fsync'd.
    pub(crate) fn dirty(&self) -> bool {
        self.durable_next_seq < self.next_seq
            || self.unsynced_bytes > 0
            || self.dir_dirty
            || !self.pending_sync.is_empty()
    }

    /// The writable segment, if any.
    pub(crate) fn writer(&self) -> Option<&Segment> {
        self.segments.back().filter(|s| s.writable)
    }

    /// (segment index, record index) of the first record with count > 0 that contains `seq`
    /// or starts after it.
    pub(crate) fn locate(&self, seq: u64) -> Option<(usize, usize)> {
        let first = self.segments.partition_point(|s| s.end_seq() <= seq);
        for (si, seg) in self.segments.iter().enumerate().skip(first) {
            let start = seg.records.partition_point(|r| r.end_seq() <= seq);
            if let Some(ri) = (start..seg.records.len()).find(|&ri| seg.records[ri].count > 0) {
                return Some((si, ri));
            }
        }
        None
    }
}
