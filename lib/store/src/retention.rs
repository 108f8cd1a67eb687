//! Retention: whole sealed segments removed oldest first, by age and by total size, and the
//! removal recorded in the chain so that `verify` tells retention from tampering.
//!
//! # The retention record
//!
//! Before any file is deleted, [`Store::retain`] appends one record of [`COLLECTOR_IDENTITY`]
//! (stream [`retention_stream`], input [`RETENTION_INPUT`]) whose raw text is
//! [`RETENTION_PREFIX`] followed by the JSON of a [`RetentionRecord`]: the segments removed
//! (number, file name, blocks, records, bytes, the absolute block count through each one and
//! the hash of its last block), the chain base before this round, the per-stream watermarks of
//! everything removed so far, and the records each consumer had not passed (`undelivered`).
//! The record is fsync'd; only then are the segment files and their index and fields
//! sidecars deleted, oldest first, and the directory entries fsync'd.
//!
//! # Invariants
//!
//! - **Only whole sealed segments, oldest first, contiguous**: the active segment is never
//!   removed, and a segment is removed only together with every older one, so the store is
//!   always a suffix of the chain.
//! - **The latest record is always in the store**: it is appended to the active segment, which
//!   this round does not remove; a later round that removes its segment appends a newer one
//!   naming the same information (watermarks and chain base are cumulative).
//! - **Chain base** ([`chain_base`]): when the oldest remaining segment `m` is not segment 0,
//!   the latest record must name segment `m - 1` (or name `m` as the first it removes: a crash
//!   between the record and the deletions); its absolute block count and last hash are where
//!   `verify` starts numbering and the `prev_hash` the first remaining block must carry.
//!   Segments missing without such a record are an unrecorded removal: a problem.
//! - **Consumers hold back age, not size**: a segment that a named consumer (a forwarder, the
//!   normalizer) has not passed is removed by age only once every consumer is past it; the
//!   size cap removes it anyway and the records each consumer never read are counted in the
//!   record (`undelivered`) and in the returned [`RetentionReport`]. The cursor itself then
//!   reports the removed range as [`crate::Skipped`] on its next read.
//! - **Counted as the consumer would have taken them**: a consumer that takes every record is
//!   counted from the segment index (nothing read). For a consumer with a filter (a forwarder
//!   narrowed to some agents, inputs, datasets or `--where` conditions) the caller passes an
//!   [`UnreadCounter`], and every block the consumer had not read in the removed segments is
//!   read, checked against its CRC and handed to it, so `undelivered` holds only the records
//!   the consumer would have delivered. That read happens before the removal, on the caller's
//!   thread (the store writer: ingest waits for it; it costs what the forwarder itself would
//!   have spent deciding on those records). A block that cannot be read or fails its CRC is
//!   counted whole: an unknowable loss is reported as a loss, never hidden.
//! - **Watermarks survive**: the record carries the highest seq of every stream in what was
//!   removed, and [`crate::Store::open`] merges them back, so an agent's or the collector's
//!   own streams never reuse a seq (and so an event id) after their blocks are gone.
//! - **Age** of a sealed segment is the creation time of the segment after it (when it was
//!   sealed: no block in it was committed later), not the agents' record times.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::block::{self, GENESIS_HASH, HASH_LEN};
use crate::checkpoint::COLLECTOR_IDENTITY;
use crate::index::SegmentIndex;
use crate::segment::{self, SegmentInfo, SegmentReader, Step};
use crate::writer::{Store, now_ns, sync_dir};
use crate::{CursorPos, StoreError};

/// Stream prefix of the retention records (followed by the store id).
pub const RETENTION_STREAM_PREFIX: &str = "retention-";
/// Input name of the retention records.
pub const RETENTION_INPUT: &str = "retention";
/// Prefix of a retention record's raw text (the JSON of a [`RetentionRecord`] follows).
pub const RETENTION_PREFIX: &str = "LOGSHIP-RETENTION v1 ";

/// The stream of the retention records of the store `store_id`.
pub fn retention_stream(store_id: &str) -> String {
    format!("{RETENTION_STREAM_PREFIX}{store_id}")
}

/// When segments may go. `None` = no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetentionPolicy {
    /// Remove sealed segments sealed longer ago than this (nanoseconds).
    pub max_age_ns: Option<i64>,
    /// Remove the oldest sealed segments while the segment files total more than this.
    pub max_bytes: Option<u64>,
}

/// The chain position before the oldest remaining block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChainBase {
    /// Blocks removed (absolute count of the blocks before the first remaining one).
    pub blocks: u64,
    /// Hash (hex) of the last removed block; 64 zeros when none was removed.
    pub last_hash: String,
    /// Records in the removed blocks.
    #[serde(default)]
    pub records: u64,
}

/// One removed segment, as named by a [`RetentionRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedSegment {
    /// Segment number.
    pub n: u64,
    /// File name of the segment.
    pub file: String,
    /// Blocks in it.
    pub blocks: u64,
    /// Records in it.
    pub records: u64,
    /// Bytes of the segment file.
    pub bytes: u64,
    /// Absolute block count through the end of this segment.
    pub blocks_through: u64,
    /// Absolute record count through the end of this segment.
    #[serde(default)]
    pub records_through: u64,
    /// Hash (hex) of its last block.
    pub last_hash: String,
    /// When it was sealed (creation time of the next segment), Unix ns.
    pub sealed_ns: i64,
}

/// The JSON of a retention record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRecord {
    /// Format version (1).
    pub v: u32,
    /// Store id.
    pub store: String,
    /// When the removal was decided, Unix ns.
    pub time_ns: i64,
    /// `"max_age_days"`, `"max_bytes"` or both, comma-separated.
    pub reason: String,
    /// Chain base before this round.
    pub before: ChainBase,
    /// Segments removed by this round, oldest first.
    pub removed: Vec<RemovedSegment>,
    /// Consumer name -> records it had not passed in the removed segments (size cap only).
    pub undelivered: BTreeMap<String, u64>,
    /// agent -> stream -> highest seq in everything removed so far.
    pub watermarks: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Counts, for consumers with a filter, how many records of a block they would have taken
/// (see the module doc). Consumers for which [`UnreadCounter::filters`] is false are counted
/// from the segment index without reading anything.
pub trait UnreadCounter {
    /// Whether consumer `name` filters records (false: it takes every record).
    fn filters(&self, name: &str) -> bool;
    /// How many records of `block` (payload and fields column included) consumer `name` would
    /// have taken.
    fn count(&mut self, name: &str, block: &crate::CursorBlock) -> u64;
}

/// The [`UnreadCounter`] of consumers that take every record.
#[derive(Debug, Clone, Copy, Default)]
pub struct TakesAll;

impl UnreadCounter for TakesAll {
    fn filters(&self, _: &str) -> bool {
        false
    }

    fn count(&mut self, _: &str, block: &crate::CursorBlock) -> u64 {
        u64::from(block.count)
    }
}

/// What one [`Store::retain`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// The record appended (None: nothing was removed).
    pub record: Option<RetentionRecord>,
    /// Bytes of segment files removed.
    pub bytes: u64,
    /// Segment files that could not be deleted after the record was stored (logged; the next
    /// round deletes them).
    pub delete_failures: u64,
}

/// The chain base of a store whose oldest segment is `segments[0]`, with the watermarks of
/// what was removed: `Ok(None)` when nothing was removed (segment 0 is there, or the store is
/// empty); `Err` (the reason) when segments are missing and no retention record accounts for
/// them.
pub(crate) fn chain_base(
    segments: &[SegmentInfo],
) -> Result<Option<(ChainBase, RetentionRecord)>, String> {
    let Some(first) = segments.first() else {
        return Ok(None);
    };
    if first.n == 0 {
        return Ok(None);
    }
    let m = first.n;
    let record = latest_record(segments).ok_or_else(|| {
        format!(
            "segments 0 to {} are missing and no retention record names them",
            m - 1
        )
    })?;
    let base = if record.removed.first().is_some_and(|r| r.n == m) {
        record.before.clone()
    } else if let Some(r) = record.removed.iter().find(|r| r.n + 1 == m) {
        ChainBase {
            blocks: r.blocks_through,
            last_hash: r.last_hash.clone(),
            records: r.records_through,
        }
    } else {
        let named = match (record.removed.first(), record.removed.last()) {
            (Some(a), Some(b)) => format!("segments {} to {}", a.n, b.n),
            _ => "no segment".into(),
        };
        return Err(format!(
            "segment {} is missing and the latest retention record names {named} \
             (segments removed without a retention record)",
            m - 1
        ));
    };
    Ok(Some((base, record)))
}

/// The newest retention record in the store (segments walked newest first; a sealed segment
/// whose index shows no retention stream is skipped).
fn latest_record(segments: &[SegmentInfo]) -> Option<RetentionRecord> {
    for (i, info) in segments.iter().enumerate().rev() {
        let sealed = i + 1 < segments.len();
        if sealed
            && let Some(index) = SegmentIndex::read_unchecked(&segment::sidecar_path(&info.path))
        {
            let has = index
                .streams
                .get(COLLECTOR_IDENTITY)
                .is_some_and(|s| s.keys().any(|k| k.starts_with(RETENTION_STREAM_PREFIX)));
            if !has {
                continue;
            }
        }
        if let Some(r) = last_record_in(&info.path) {
            return Some(r);
        }
    }
    None
}

/// The last readable retention record in one segment.
fn last_record_in(path: &Path) -> Option<RetentionRecord> {
    let reader = SegmentReader::open(path).ok()?;
    let mut pos = segment::SEGMENT_HEADER_LEN;
    let mut found = None;
    let mut frame = Vec::new();
    let mut scratch = Vec::new();
    loop {
        match reader.step(pos).ok()? {
            Step::Block {
                offset,
                header,
                head_len,
                frame_len,
            } => {
                pos = offset + frame_len;
                if header.agent != COLLECTOR_IDENTITY
                    || !header.stream_id.starts_with(RETENTION_STREAM_PREFIX)
                {
                    continue;
                }
                if reader.read_frame(offset, frame_len, &mut frame).is_err() {
                    continue;
                }
                let parts = block::split_frame(&header, head_len, &frame);
                if !parts.crc_ok {
                    continue;
                }
                let cap = crate::DEFAULT_MAX_DECOMPRESSED_BYTES;
                let Ok(list) =
                    logship_proto::payload::decode_payload(parts.payload, cap, &mut scratch)
                else {
                    continue;
                };
                for r in &list.records {
                    if let Some(rec) = parse_record(&r.raw) {
                        found = Some(rec);
                    }
                }
            }
            Step::Corrupt { next, .. } => pos = next,
            Step::Tail { .. } | Step::End => return found,
        }
    }
}

/// A retention record from its raw text.
pub fn parse_record(raw: &[u8]) -> Option<RetentionRecord> {
    let text = std::str::from_utf8(raw).ok()?;
    let json = text.strip_prefix(RETENTION_PREFIX)?;
    let rec: RetentionRecord = serde_json::from_str(json).ok()?;
    (rec.v == 1).then_some(rec)
}

/// A sealed segment considered for removal.
struct Candidate {
    info: SegmentInfo,
    index: SegmentIndex,
    sealed_ns: i64,
}

// === impl Store (retention) ===

impl Store {
    /// Applies `policy`: picks the oldest sealed segments to remove (see the module doc), and
    /// if any, appends and fsyncs the retention record, then deletes them. `consumers` are the
    /// cursor names that hold back removal by age (and whose loss the size cap records).
    pub fn retain(
        &mut self,
        policy: &RetentionPolicy,
        consumers: &[String],
        host: &str,
    ) -> Result<RetentionReport, StoreError> {
        self.retain_counting(policy, consumers, host, &mut TakesAll)
    }

    /// [`Store::retain`], with the records a filtering consumer never read counted by
    /// `counter` (only what it would have taken).
    pub fn retain_counting(
        &mut self,
        policy: &RetentionPolicy,
        consumers: &[String],
        host: &str,
        counter: &mut dyn UnreadCounter,
    ) -> Result<RetentionReport, StoreError> {
        let dir = self.dir().to_path_buf();
        let now = now_ns();
        let candidates = self.sealed_candidates()?;
        let mut positions = Vec::new();
        for name in consumers {
            let pos = crate::load_cursor(&dir, name)
                .ok()
                .flatten()
                .map_or(CursorPos::default(), |c| c.pos);
            positions.push((name.clone(), pos));
        }
        let mut total = self.stats().bytes;
        let mut chosen: Vec<&Candidate> = Vec::new();
        let (mut by_age, mut by_size) = (false, false);
        for c in &candidates {
            let over = policy.max_bytes.is_some_and(|max| total > max);
            let old = policy
                .max_age_ns
                .is_some_and(|age| now.saturating_sub(c.sealed_ns) > age);
            let passed = positions
                .iter()
                .all(|(_, p)| passed(*p, c.info.n, c.index.segment_len));
            if over {
                by_size = true;
            } else if old && passed {
                by_age = true;
            } else {
                break;
            }
            total = total.saturating_sub(c.index.segment_len);
            chosen.push(c);
        }
        if chosen.is_empty() {
            return Ok(RetentionReport::default());
        }
        let mut undelivered = BTreeMap::new();
        for (name, pos) in &positions {
            let mut lost = 0;
            for c in &chosen {
                lost += match counter.filters(name) {
                    false => unread_records(c, *pos),
                    true => unread_matching(c, *pos, name, counter),
                };
            }
            if lost > 0 {
                undelivered.insert(name.clone(), lost);
            }
        }
        let (before, mut watermarks) = self.retention_base();
        let mut through = before.blocks;
        let mut records_through = before.records;
        let mut removed = Vec::new();
        for c in &chosen {
            through += c.index.blocks;
            records_through += c.index.records;
            for (agent, streams) in &c.index.streams {
                let marks = watermarks.entry(agent.clone()).or_default();
                for (stream, &seq) in streams {
                    let m = marks.entry(stream.clone()).or_default();
                    *m = (*m).max(seq);
                }
            }
            removed.push(RemovedSegment {
                n: c.info.n,
                file: c
                    .info
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                blocks: c.index.blocks,
                records: c.index.records,
                bytes: c.index.segment_len,
                blocks_through: through,
                records_through,
                last_hash: c
                    .index
                    .last_hash
                    .clone()
                    .unwrap_or_else(|| before_hash(&removed, &before)),
                sealed_ns: c.sealed_ns,
            });
        }
        let reason = match (by_age, by_size) {
            (true, true) => "max_age_days,max_bytes",
            (true, false) => "max_age_days",
            _ => "max_bytes",
        };
        let record = RetentionRecord {
            v: 1,
            store: self.id().to_string(),
            time_ns: now,
            reason: reason.into(),
            before,
            removed,
            undelivered,
            watermarks,
        };
        let text = format!(
            "{RETENTION_PREFIX}{}",
            serde_json::to_string(&record).expect("serialising plain data cannot fail")
        );
        let stream = retention_stream(self.id());
        let seq = self.watermark(COLLECTOR_IDENTITY, &stream) + 1;
        let block =
            crate::checkpoint::record_block(&text, &stream, host, now, seq, RETENTION_INPUT);
        self.append_block(block)?;
        self.sync()?;
        let mut report = RetentionReport::default();
        // Oldest first, stopping at the first failure: the store must stay a suffix of the
        // chain. What is left is removed by the next round (with a record of its own).
        let mut deleted = 0;
        for c in &chosen {
            match delete_segment(&c.info.path) {
                Ok(()) => {
                    report.bytes += c.index.segment_len;
                    deleted += 1;
                }
                Err(error) => {
                    report.delete_failures += 1;
                    tracing::error!(segment = %c.info.path.display(), %error,
                        "Could not delete a segment removed by retention; the next round retries.");
                    break;
                }
            }
        }
        self.note_removed(&record, deleted);
        report.record = Some(record);
        Ok(report)
    }

    /// The sealed segments, oldest first, with their index and seal time.
    fn sealed_candidates(&self) -> Result<Vec<Candidate>, StoreError> {
        let dir = self.dir();
        let segments = segment::list_segments(dir).map_err(StoreError::io(dir))?;
        let active = self.committed().map(|p| p.segment);
        let mut out = Vec::new();
        for pair in segments.windows(2) {
            let (info, next) = (&pair[0], &pair[1]);
            if Some(info.n) == active {
                break;
            }
            let len = std::fs::metadata(&info.path)
                .map_err(StoreError::io(&info.path))?
                .len();
            let index = match SegmentIndex::read(&segment::sidecar_path(&info.path), len) {
                Some(index) => index,
                None => {
                    SegmentIndex::scan(&info.path)
                        .map_err(StoreError::io(&info.path))?
                        .0
                }
            };
            out.push(Candidate {
                info: info.clone(),
                index,
                sealed_ns: next.start_ns,
            });
        }
        Ok(out)
    }
}

/// The hash before the first of `removed` when a removed segment holds no block.
fn before_hash(removed: &[RemovedSegment], before: &ChainBase) -> String {
    removed
        .last()
        .map_or_else(|| before.last_hash.clone(), |r| r.last_hash.clone())
}

/// True when a consumer at `pos` has read all of segment `n` (of length `len`).
fn passed(pos: CursorPos, n: u64, len: u64) -> bool {
    pos.segment > n || (pos.segment == n && pos.offset >= len)
}

/// Records of candidate `c` that a consumer at `pos` has not read.
fn unread_records(c: &Candidate, pos: CursorPos) -> u64 {
    if pos.segment > c.info.n {
        return 0;
    }
    if pos.segment < c.info.n || pos.offset <= segment::SEGMENT_HEADER_LEN {
        return c.index.records;
    }
    let Ok(reader) = SegmentReader::open(&c.info.path) else {
        return c.index.records;
    };
    let mut at = pos.offset;
    let mut n = 0;
    loop {
        match reader.step(at) {
            Ok(Step::Block {
                offset,
                header,
                frame_len,
                ..
            }) => {
                n += u64::from(header.count);
                at = offset + frame_len;
            }
            Ok(Step::Corrupt { next, .. }) => at = next,
            _ => return n,
        }
    }
}

/// The records of the blocks of `c` at or after `pos` that `counter` says consumer `name`
/// would have taken. A block that cannot be read, or fails its CRC, counts whole.
fn unread_matching(
    c: &Candidate,
    pos: CursorPos,
    name: &str,
    counter: &mut dyn UnreadCounter,
) -> u64 {
    if pos.segment > c.info.n {
        return 0;
    }
    let Ok(reader) = SegmentReader::open(&c.info.path) else {
        return c.index.records;
    };
    let mut at = match pos.segment < c.info.n {
        true => segment::SEGMENT_HEADER_LEN,
        false => pos.offset.max(segment::SEGMENT_HEADER_LEN),
    };
    let (mut n, mut frame) = (0, Vec::new());
    loop {
        match reader.step(at) {
            Ok(Step::Block {
                offset,
                header,
                head_len,
                frame_len,
            }) => {
                let here = CursorPos {
                    segment: c.info.n,
                    offset,
                };
                let next = CursorPos {
                    segment: c.info.n,
                    offset: offset + frame_len,
                };
                let count = u64::from(header.count);
                n += match reader.read_frame(offset, frame_len, &mut frame) {
                    Err(_) => count,
                    Ok(()) => {
                        let parts = block::split_frame(&header, head_len, &frame);
                        match parts.crc_ok {
                            false => count,
                            true => {
                                let body = (
                                    bytes::Bytes::copy_from_slice(parts.payload),
                                    parts.fields.map(bytes::Bytes::copy_from_slice),
                                );
                                let hash = parts.stored_hash;
                                let b = crate::cursor::header_block(
                                    here,
                                    next,
                                    header,
                                    Some(body),
                                    hash,
                                );
                                counter.count(name, &b)
                            }
                        }
                    }
                };
                at = next.offset;
            }
            Ok(Step::Corrupt { next, .. }) => at = next,
            _ => return n,
        }
    }
}

/// Deletes a segment, its index sidecar and its fields sidecar, then fsyncs the directory (and
/// removes it when it is left empty).
fn delete_segment(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    for sidecar in [
        segment::sidecar_path(path),
        crate::fields::sidecar_path(path),
        crate::fieldindex::path(path),
    ] {
        match std::fs::remove_file(sidecar) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    if let Some(day) = path.parent() {
        sync_dir(day).map_err(|e| std::io::Error::other(e.to_string()))?;
        if std::fs::read_dir(day)?.next().is_none() {
            std::fs::remove_dir(day).ok();
        }
    }
    Ok(())
}

/// The genesis base (nothing removed).
pub(crate) fn genesis_base() -> ChainBase {
    ChainBase {
        blocks: 0,
        last_hash: hex::encode(GENESIS_HASH),
        records: 0,
    }
}

/// Decodes a base's hash.
pub(crate) fn base_hash(base: &ChainBase) -> Option<[u8; HASH_LEN]> {
    let mut h = [0u8; HASH_LEN];
    hex::decode_to_slice(&base.last_hash, &mut h).ok()?;
    Some(h)
}
