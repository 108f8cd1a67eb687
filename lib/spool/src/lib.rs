//! The agent's spool: a crash-safe, byte-capped disk queue of compressed batches.
//!
//! Inputs append compressed batches ([`Spool::append`]); the shipper reads the same bytes back
//! ([`Spool::read_from`]) once they are fsync'd, and frees them with a cumulative [`Spool::ack`].
//! The spool is the source of truth for file read positions after a crash ([`Recovered::positions`]).
//!
//! # On-disk format
//!
//! ```text
//! <dir>/
//!   ledger.json                 {"version":1,"stream_id":"<32 hex>","acked_through":N,
//!                                "positions":[{"key":..,"path":..,"offset":..}, ..]}
//!   ledger.json.tmp             transient: written, fsync'd, renamed over ledger.json
//!   00000000000000000001.seg    a segment, named by the first seq it holds (20 decimal digits)
//!   quarantine/                 damaged segments (and a damaged ledger) moved aside, never read
//!   reserve                     zeros (max_bytes/64, 64 KiB..1 MiB), deleted to write the ledger
//!                               when the disk is full
//!   lock                        empty; exclusively locked while a spool has the directory open
//!
//! segment  := header record*
//! header   := magic "LSSPOOL\0" (8 bytes) | version u32 (= 1) | reserved u32 (= 0)
//! record   := len u32 | crc32c(body) u32 | body (len bytes)
//! body     := first_seq u64 | count u32 | uncompressed_len u64
//!             | npos u32 | npos * (key_len u32 | key utf-8 | path_len u32 | path utf-8 | offset u64)
//!             | payload (the rest of the body: the compressed batch, verbatim)
//! ```
//!
//! All integers are little endian. A record holds the seqs `first_seq .. first_seq + count`
//! (`count` may be 0 for a record that only carries positions; readers skip it).
//!
//! # Invariants
//!
//! - Inside a segment, the first record starts at the seq in the file name and each next record
//!   starts where the previous one ended; segments hold disjoint, increasing seq ranges.
//! - Every record with `seq < durable_next_seq` has been fsync'd (file data and directory entry).
//!   Only durable batches are handed to the shipper.
//! - A segment is deleted only on ack, once all its records are `<= acked_through`, and only
//!   after `ledger.json` recording that `acked_through` and the positions of the deleted records
//!   is durable. The ledger is written only when segments are deleted (not on every ack), so after
//!   a restart a partially acked segment may be re-sent: delivery is at-least-once.
//! - Only the last segment may end in a torn record (a crash mid-append); recovery truncates it.
//!   Trailing segments holding no record (a crash right after a roll) are removed first, so the
//!   segment before them counts as the last one.
//!   Any other damage (bad header, bad record in the middle, bad record in an older segment)
//!   quarantines the whole segment and reports its seq range in [`Recovered::lost`].
//! - The segment files on disk never exceed `max_bytes` in total: `append` blocks until acks
//!   free space (`when_full = block`); a single batch that can never fit is rejected.
//! - A full disk never blocks acks for good: a ledger write that fails for lack of space is
//!   retried after deleting `reserve` (written again after the next ack that frees segments), and
//!   a repeated ack retries deleting segments a failed ledger write kept.
//! - Seqs are never reused for new data: after recovery `next_seq` is past every surviving record,
//!   past every quarantined range and past `acked_through`.

mod ack;
mod append;
mod error;
mod fuzz;
mod io;
mod ledger;
mod read;
mod record;
mod recover;
mod reserve;
mod scan;
mod spool;
mod state;
mod sync;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use error::SpoolError;
#[doc(hidden)]
pub use fuzz::fuzz_segment;
pub use spool::Spool;

/// Spool settings (validated by [`Spool::open`]).
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// Directory holding the segments, the ledger and the quarantine folder.
    pub dir: PathBuf,
    /// Cap on the total bytes of segment files on disk. Reaching it blocks `append` (when_full = block).
    pub max_bytes: u64,
    /// A segment file is closed and a new one started past this size.
    pub segment_max_bytes: u64,
    /// fsync at least this often while there is unsynced data (0 = fsync after every append).
    pub fsync_interval_ms: u64,
    /// fsync as soon as this many bytes are unsynced (0 = no byte trigger).
    pub fsync_bytes: u64,
}

/// Default cap on the spool's segment bytes.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default size past which a segment is closed.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Default fsync interval.
pub const DEFAULT_FSYNC_INTERVAL_MS: u64 = 200;
/// Default unsynced-bytes fsync trigger.
pub const DEFAULT_FSYNC_BYTES: u64 = 4 * 1024 * 1024;

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("spool"),
            max_bytes: DEFAULT_MAX_BYTES,
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            fsync_interval_ms: DEFAULT_FSYNC_INTERVAL_MS,
            fsync_bytes: DEFAULT_FSYNC_BYTES,
        }
    }
}

/// A read position to persist with a batch: `key` is opaque to the spool (the agent uses file
/// identity); `path` is the last known path; `offset` the byte offset after the last line in the
/// batch. `offset == u64::MAX` ([`Position::FORGET`]) means "forget this key".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub key: String,
    pub path: String,
    pub offset: u64,
}

impl Position {
    /// The offset that removes a key from the merged positions (file gone and fully read).
    pub const FORGET: u64 = u64::MAX;
}

/// A batch to append: `count` records whose compressed bytes are `payload`.
#[derive(Clone, Debug, Default)]
pub struct NewBatch {
    pub count: u32,
    pub uncompressed_len: u64,
    pub payload: Vec<u8>,
    pub positions: Vec<Position>,
}

/// A durable batch read back for shipping: seqs `first_seq .. first_seq + count`.
#[derive(Clone, Debug)]
pub struct StoredBatch {
    pub first_seq: u64,
    pub count: u32,
    pub uncompressed_len: u64,
    pub payload: Vec<u8>,
}

/// What [`Spool::open`] found on disk.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// 32 lowercase hex chars, random, created on first open, fixed for the life of the spool dir.
    pub stream_id: String,
    /// The seq the next appended record gets (1 for a fresh spool).
    pub next_seq: u64,
    /// 0 if nothing was acked.
    pub acked_through: u64,
    /// Merged read positions (ledger, then every surviving batch in seq order, last wins per
    /// key; forgotten keys removed), sorted by key.
    pub positions: Vec<Position>,
    /// True when the spool dir had no state at all.
    pub first_run: bool,
    /// Seq ranges lost to corruption (their segments were quarantined).
    pub lost: Vec<LostRange>,
}

/// A seq range lost to a damaged segment.
#[derive(Clone, Debug)]
pub struct LostRange {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Where the segment was quarantined.
    pub segment: PathBuf,
    pub reason: String,
}

/// Counters and gauges for metrics.
#[derive(Clone, Debug, Default)]
pub struct SpoolStats {
    /// Bytes of segment files on disk.
    pub bytes: u64,
    /// Records (batches) in the segments on disk, acked or not.
    pub batches: u64,
    /// Seqs held by those batches.
    pub records: u64,
    pub next_seq: u64,
    pub durable_next_seq: u64,
    pub acked_through: u64,
    /// Segments quarantined since open (at recovery or when a read found damage).
    pub quarantined_segments: u64,
    /// Appends that had to wait for space.
    pub blocked_appends: u64,
    /// Appends waiting for space right now: > 0 means the spool is full.
    pub waiting_appends: u64,
}
