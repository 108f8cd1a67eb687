//! The collector's evidence store: append-only, hash-chained, time-partitioned segment files
//! holding agent batches verbatim ("compress once"), with a per-segment index sidecar.
//! One writer ([`Store`], owned by the collector); any number of readers ([`search`],
//! [`verify`]) in other processes; consumers that follow the writer in commit order, each with a
//! durable [`Cursor`] of its own name (the normalizer, forwarders).
//!
//! # On-disk format
//!
//! ```text
//! <dir>/LOCK                                   exclusive lock of the single writer
//! <dir>/store-id                               the store's random id (hex), named by checkpoints
//! <dir>/segments/<YYYY-MM-DD>/<start-ns:020>-<n:010>.seg   segment n (UTC date of its creation)
//! <dir>/segments/<YYYY-MM-DD>/<start-ns:020>-<n:010>.idx   index sidecar, written when sealed
//! <dir>/segments/<YYYY-MM-DD>/<start-ns:020>-<n:010>.fld   fields sidecar (derived, written by
//!                                              the normalizer; format in [`fields`])
//! <dir>/segments/<YYYY-MM-DD>/<start-ns:020>-<n:010>.fidx  field index (module `fieldindex`),
//!                                              written by the normalizer once the segment is sealed
//! <dir>/quarantine/<segment stem>@<offset>.tail   damaged tail moved out of a last segment
//! <dir>/cursors/<consumer>.cur                 a consumer's durable place (see [`Cursor`])
//!                                              (segments removed by retention are simply absent;
//!                                              their record is in the chain)
//!
//! segment  := seg_header block*
//! seg_header (16 B) := magic "LOGSHSEG" | version u32 = 1 | crc32c(magic|version) u32
//!
//! block    := magic "LSB1" | header_len u32 | header | header_crc u32
//!             | payload | fields | hash [32] | crc u32
//! header   := flags u8 (bit0 = has fields) | first_seq u64 | count u32
//!             | min_time_ns i64 | max_time_ns i64 | payload_len u64 | fields_len u64
//!             | prev_hash [32] | agent str | stream_id str | host str | n_inputs u16 | input str*
//! str      := len u16 | utf-8 bytes                         (all integers little-endian)
//! header_crc = crc32c(magic .. end of header)   -> lengths are trusted only after this check
//! hash       = SHA-256(prev_hash | header | payload | fields)
//! crc        = crc32c(magic .. end of hash)
//! payload    = the agent's zstd RecordList, byte for byte; record i has seq first_seq + i
//! fields     = zstd JSON lines, one object per record, in record order (optional)
//!
//! sidecar  := crc32c-hex(json) "\n" json   (segment length, block/record counts, time range,
//!             hosts, inputs, agents, per-stream max seq, first/last hash)
//! ```
//!
//! # Invariants
//!
//! - **Chain**: every block's `prev_hash` is the `hash` of the block before it in store order
//!   (segment `n` order, then file order); the first block of segment `n+1` links to the last
//!   block of segment `n`; the very first block links to 32 zero bytes.
//! - **Exactly once**: per (agent, stream_id), blocks are stored with strictly increasing,
//!   non-overlapping seq ranges; [`Store::append`] rejects `first_seq <= watermark`.
//! - **Durability**: nothing is acknowledged before [`Store::sync`] returned; a new segment's
//!   file and directory entry are fsync'd when it is created.
//! - **Crash safety**: after a crash at any point, [`Store::open`] cuts the last segment back
//!   to its last complete, checksummed block (truncate + fsync) and reports the cut bytes;
//!   a block is never half kept. Watermarks and chain head are rebuilt from what remains.
//! - **Torn is not damaged**: only a block that is *not all there* (a head cut short, or a
//!   checksummed head whose frame runs past the end of the file, or zero bytes a crash left) is
//!   a torn write and simply cut. Complete frames whose checksum fails after the last good
//!   block, or bytes with no valid head, may be fsync'd and acknowledged records: they are
//!   copied to `quarantine/` (fsync'd) before the cut, reported by open
//!   ([`RecoveryReport::quarantined`]) and by every [`verify`] run until an operator removes
//!   the file. Their records do not count towards watermarks, so an agent that never got the
//!   ack resends them and they are stored again; records that were acked show up in `verify`
//!   as missing seqs beside the quarantine file.
//! - **Corruption never stops the pipeline**: a damaged block is skipped (readers resync on the
//!   next block magic whose header CRC checks out) and reported with segment and offset;
//!   a missing, stale or damaged sidecar is rebuilt by the writer and ignored by readers.
//! - **Limits of tamper evidence**: [`verify`] detects changed bytes, removed, re-ordered or
//!   inserted blocks and truncation of any sealed segment (the next segment's first
//!   `prev_hash` no longer matches). Removing whole blocks from the *end* of the last segment,
//!   or rewriting the store from some block on with every later hash recomputed, leaves a
//!   valid chain that the data alone cannot distinguish. Signed checkpoints cover both
//!   ([`checkpoint`](crate::Checkpoint), [`verify_with_witness`]): the collector signs the
//!   chain head and block count every few minutes and stores the text as a record of its own
//!   ([`COLLECTOR_IDENTITY`]) that forwarders carry off the box; a checkpoint past the end of
//!   the store, or whose head differs from the recomputed one, is a problem. What remains: a
//!   change made after the last checkpoint that reached the SOC, and (for someone holding the
//!   witness key) new checkpoints signed over a rewritten store, which cannot replace the ones
//!   the SOC already holds. Retention removes the oldest segments *with* a record in the
//!   chain: someone who deletes old segments and forges such a record must insert a block into
//!   the chain, which the checkpoints the SOC holds catch; what retention removed can no
//!   longer be checked at all (its checkpoints are reported as covering removed blocks).
//! - **Block numbers are absolute**: a checkpoint's `blocks` counts from the first block ever
//!   written ([`Store::chain_len`]). Retention ([`Store::retain`], module `retention`) removes
//!   whole sealed segments, oldest first, after appending a record of [`COLLECTOR_IDENTITY`]
//!   (stream [`retention_stream`]) naming the segments, their block count and the hash of their
//!   last block; `verify` and [`Store::open`] start numbering at that count with that hash as
//!   the expected `prev_hash`, so later checkpoints still check, checkpoints over removed
//!   blocks are reported as such ([`CheckpointResult::removed`]), not as failures, and segments
//!   missing without such a record are still a problem.
//! - **Evidence archives** ([`export`], [`verify_archive`]): a contiguous run of the chain
//!   ending exactly at a signed checkpoint, with the link into the rest of the chain, checked on
//!   any machine (see the `archive` module).

mod archive;
mod block;
mod checkpoint;
mod cursor;
mod fieldindex;
pub mod fields;
mod fuzz;
mod index;
mod progress;
mod quarantine;
mod read;
mod recovery;
mod retention;
mod search;
mod segment;
#[doc(hidden)]
pub mod tamper;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

#[doc(hidden)]
pub use archive::{
    ARCHIVE_FORMAT, ArchiveError, ArchiveReport, BLOCKS_FILE, BlockSummary, CHECKPOINTS_FILE,
    ExportReport, ExportRequest, FileSum, MANIFEST, Manifest, PUBLIC_KEY_FILE, README_FILE, export,
    read_manifest, reseal_manifest, verify_archive,
};
pub use checkpoint::{
    CHECKPOINT_INPUT, CHECKPOINT_PREFIX, CHECKPOINT_STREAM_PREFIX, COLLECTOR_IDENTITY, Checkpoint,
    CheckpointError, FoundCheckpoint, MAX_LINE_BYTES, PublicKey, WitnessKey, checkpoint_stream,
    find_checkpoints, find_checkpoints_in, store_id,
};
pub use cursor::{
    Backlog, CURSORS_DIR, CommitWatch, Cursor, CursorBlock, CursorItem, CursorPos, POLL_INTERVAL,
    SavedCursor, Skipped, backlog, check_name as check_cursor_name, cursor_path, load_cursor,
    position_since, save_cursor,
};
pub use fieldindex::{
    FieldIndexBuilder, FieldIndexError, FieldProbe, INDEXED_FIELDS, MAX_FILE_BYTES, MAX_POSTINGS,
    MAX_VALUE_LEN, MAX_VALUES,
};
pub use fuzz::fuzz_segment;
pub use progress::{Progress, Watch};
pub use quarantine::{QuarantinedTail, quarantined};
pub use read::read_block_payload;
pub use retention::{
    ChainBase, RETENTION_INPUT, RETENTION_PREFIX, RETENTION_STREAM_PREFIX, RemovedSegment,
    RetentionPolicy, RetentionRecord, RetentionReport, TakesAll, UnreadCounter,
    parse_record as parse_retention_record, retention_stream,
};
pub use search::{
    FieldsRow, Query, RecordView, SearchStats, search, search_watched, search_with_cap,
};
pub use verify::{
    CheckpointResult, VerifyReport, Witness, verify, verify_watched, verify_with_witness,
};
pub use writer::{BlockInput, BlockRef, Store, StoreStats};

/// Default size at which a segment is sealed and a new one started.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default age at which a segment is sealed (time partition).
pub const DEFAULT_SEGMENT_MAX_AGE_SECS: u64 = 3600;
/// Default cap on a decompressed payload or fields column when reading.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// Store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root directory of the store.
    pub dir: PathBuf,
    /// Seal the active segment once appending a block would take it past this many bytes.
    pub segment_max_bytes: u64,
    /// Seal the active segment once it is this old (wall clock since its creation).
    pub segment_max_age_secs: u64,
    /// Cap on the decompressed size of a payload or fields column when reading.
    pub max_decompressed_bytes: usize,
}

/// What [`Store::open`] found and repaired.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Segments found.
    pub segments: u64,
    /// Blocks found (in sealed segments, as recorded by their index).
    pub blocks: u64,
    /// Bytes cut from the end of the last segment (a torn write).
    pub truncated_tail_bytes: u64,
    /// Damaged blocks seen while recovering (kept in place, skipped by readers).
    pub corrupt: Vec<CorruptBlock>,
    /// Damaged blocks at the end of the last segment, moved to the quarantine folder.
    pub quarantined: Vec<QuarantinedTail>,
}

/// A damaged region of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptBlock {
    /// Segment file.
    pub segment: PathBuf,
    /// Byte offset of the damaged block (or region) in the segment.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation failed; `path` is the file or directory involved.
    #[error("store i/o error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the writer lock of this store.
    #[error("store {path} is locked by another writer process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The block's first seq is not above the stored watermark of its stream (a duplicate or
    /// overlapping batch); the caller drops or trims it and acks up to `watermark`.
    #[error("block {agent}/{stream_id} first_seq {first_seq} is not above watermark {watermark}")]
    SeqNotAboveWatermark {
        /// Agent of the block.
        agent: String,
        /// Stream of the block.
        stream_id: String,
        /// Rejected first seq.
        first_seq: u64,
        /// Highest stored seq of the stream.
        watermark: u64,
    },
    /// The block cannot be stored as given (zero count, oversize strings or body).
    #[error("invalid block: {0}")]
    InvalidBlock(&'static str),
    /// An earlier write or fsync failed; the writer must be reopened (fsync errors cannot be
    /// retried safely).
    #[error("store writer is unusable after an earlier i/o failure; reopen it")]
    Poisoned,
}

// === impl StoreConfig ===

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: PathBuf::from("store"),
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            segment_max_age_secs: DEFAULT_SEGMENT_MAX_AGE_SECS,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

// === impl StoreError ===

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

/// Stable event id of a record: lowercase hex of the first 16 bytes of
/// SHA-256("{agent}\n{stream_id}\n{seq}").
pub fn event_id(agent: &str, stream_id: &str, seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(agent.as_bytes());
    h.update(b"\n");
    h.update(stream_id.as_bytes());
    h.update(b"\n");
    h.update(seq.to_string().as_bytes());
    hex::encode(&h.finalize()[..16])
}
