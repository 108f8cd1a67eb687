//! The batcher: receives lines from an input on the input's own thread, frames them into a
//! protobuf `RecordList`, compresses the batch once with zstd and appends it to the spool together
//! with the read positions it covers (DESIGN.md §10 "compress once", invariant 1).
//!
//! Invariants:
//! - A position is handed to the spool in the same append as the lines before it, so after a crash
//!   the spool's positions never run ahead of its records.
//! - A batch closes at `max_records`, `max_bytes` (uncompressed) or `max_wait`, whichever is first.
//! - No per-line allocation: records are encoded straight into one reusable buffer; the batch's
//!   header fields (host, sources, time zone) are appended after the records (protobuf fields may
//!   come in any order), so the buffer is compressed as is.
//! - `append` blocks while the spool is full: the input stops reading (when_full = block). An
//!   append that fails (disk full, I/O error) keeps the batch and is retried until it succeeds
//!   or the spool is closed (`crate::spool_blocked`); only a closed spool ends the input.
//! - A batch never exceeds `max_bytes` uncompressed, header included, so it stays under the
//!   collector's caps (config validation bounds `max_bytes`). A record that would not fit an empty
//!   batch is cut to fit it, with `truncated_from` set to its original length.
//!
//! ```text
//! buffer = { 0x1A len Record }*  then  0x0A host, { 0x12 len Source }*, 0x22 agent_tz,
//!          0x28 first observed_ns
//! Record = 0x08 source, [0x10 observed_ns], 0x1A raw, [0x20 truncated_from], [0x28 kind],
//!          [0x30 event_ns], { 0x3A len (0x0A key, 0x12 value) }*, [0x42 original]
//!          (attributes given pre-encoded, [`EncodedAttributes`], are copied in as they are)
//!          observed_ns only when it differs from the record before (0 = same as before)
//! ```
//!
//! Inputs other than files (journald, syslog, event log) and re-encoded files add a
//! [`RecordExtra`] (event time, attributes, original bytes) with [`Batcher::push_event`], and
//! persist their position with [`Batcher::set_position`]: a position whose `path` is the
//! input's own resume token (a journald cursor, an event-log bookmark), stored in the same
//! spool append as the record it follows, exactly like a file offset.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logship_spool::{NewBatch, Position, Spool, SpoolError};
use logship_tail::{SinkClosed, SourceId};
use prost::encoding::encoded_len_varint;

use crate::config::BatchLimits;
use crate::spool_blocked::{Retry, SpoolBlocked};
use wire::{field_len, put_bytes, put_key_len, put_varint_field};

mod attributes;
mod sink;
mod wire;

pub use attributes::EncodedAttributes;
pub use sink::{lost_range_gap, report_lost_ranges};

/// Lines between two reads of the wall clock (lines read together share their observed time).
const CLOCK_EVERY: u32 = 64;
/// Batch buffer kept while the input is quiet.
const IDLE_BUF_BYTES: usize = 64 << 10;
/// Record kind of an explicit gap (proto `RECORD_KIND_GAP`).
const KIND_GAP: u64 = 1;
/// Upper bound of a record's encoded size besides its raw bytes (keys, lengths, varints).
const RECORD_OVERHEAD: usize = 48;
/// Upper bound of the header's fixed fields besides host and time zone (observed_ns varint).
const HEADER_FIXED: usize = 12;

/// Why a batch could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The spool refused or failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// zstd failed (out of memory).
    #[error("compressing a batch failed: {0}")]
    Compress(#[source] std::io::Error),
}

/// Counters of one batcher, shared with heartbeats.
#[derive(Debug, Default)]
pub struct BatcherStats {
    /// Gap records emitted.
    pub gaps: AtomicU64,
    /// Syslog UDP datagrams dropped (full spool, or the kernel's receive buffer).
    pub udp_dropped: AtomicU64,
    /// Malformed byte sequences replaced by U+FFFD while decoding a file input's lines.
    pub decode_errors: AtomicU64,
    /// Multiline records cut at `multiline.max_bytes` (their remaining lines skipped).
    pub multiline_truncated: AtomicU64,
}

struct Source {
    key: String,
    path: String,
    /// Index in the current batch's source table, if used by it.
    in_batch: Option<u32>,
    /// Offset to persist with the current batch, if it moved.
    pending_offset: Option<u64>,
    /// Resume token persisted in the position's `path` instead of `path` (journald cursor).
    pending_token: Option<String>,
}

/// What a record carries besides its raw bytes (proto `Record` fields 6 to 8).
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordExtra<'a> {
    /// Event time the input knows, Unix nanoseconds; 0 = unknown.
    pub event_ns: i64,
    /// Name/value attributes (journald fields, the syslog sender), in the order given.
    pub attributes: &'a [(&'a str, &'a str)],
    /// The bytes as read, when `raw` is a re-encoding of them. Dropped only if the record has
    /// to be cut to fit a batch; `truncated_from` then gives their length.
    pub original: Option<&'a [u8]>,
}

impl RecordExtra<'_> {
    /// Encoded bytes of the extra fields.
    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if self.event_ns != 0 {
            len += 1 + encoded_len_varint(self.event_ns as u64);
        }
        for (k, v) in self.attributes {
            len += field_len(field_len(k.len()) + field_len(v.len()));
        }
        if let Some(o) = self.original {
            len += field_len(o.len());
        }
        len
    }
}

/// Frames lines of one input into compressed batches on the spool.
pub struct Batcher {
    spool: Spool,
    limits: BatchLimits,
    input: String,
    host: String,
    agent_tz: String,
    sources: Vec<Source>,
    batch_sources: Vec<u32>,
    buf: Vec<u8>,
    count: u32,
    opened_at: Option<Instant>,
    now_ns: i64,
    since_clock: u32,
    /// Observed time of the current batch's first record.
    batch_first_ns: i64,
    /// Observed time of the record last encoded.
    last_ns: i64,
    compressor: zstd::bulk::Compressor<'static>,
    stats: Arc<BatcherStats>,
    /// Encoded size of the header `encode_header` will append for the current batch.
    header_len: usize,
    retry: Retry,
}

// === impl Batcher ===

impl Batcher {
    /// A batcher for input `input`, writing to `spool`.
    pub fn new(
        spool: Spool,
        limits: BatchLimits,
        input: String,
        host: String,
        agent_tz: String,
    ) -> std::io::Result<Self> {
        let header_len = base_header_len(&host, &agent_tz);
        let retry = SpoolBlocked::default().retry_for(&input);
        Ok(Batcher {
            spool,
            limits,
            input,
            host,
            agent_tz,
            sources: Vec::new(),
            batch_sources: Vec::new(),
            buf: Vec::with_capacity(IDLE_BUF_BYTES),
            count: 0,
            opened_at: None,
            now_ns: wall_clock_ns(),
            since_clock: 0,
            batch_first_ns: 0,
            last_ns: 0,
            compressor: compressor(limits.zstd_level)?,
            stats: Arc::default(),
            header_len,
            retry,
        })
    }

    /// Reports failed appends of this input to `blocked` (heartbeats read it).
    pub fn report_to(mut self, blocked: &SpoolBlocked) -> Self {
        self.retry = blocked.retry_for(&self.input);
        self
    }

    /// Records in the open batch (0 when none is open).
    pub fn pending_records(&self) -> u32 {
        self.count
    }

    /// Shared counters.
    pub fn stats(&self) -> Arc<BatcherStats> {
        self.stats.clone()
    }

    /// [`Batcher::flush`] at the end of a burst: also asks the spool to fsync now rather than
    /// at the end of its interval, so the burst's last batch ships at once (nothing more is
    /// coming to share that fsync with).
    pub fn flush_burst(&mut self) -> Result<(), BatchError> {
        self.flush()?;
        self.spool.sync_soon();
        Ok(())
    }

    /// Closes the current batch, if any, and appends it to the spool. A failed append is
    /// retried until it succeeds; only a closed spool returns an error.
    pub fn flush(&mut self) -> Result<(), BatchError> {
        if self.count == 0 {
            return self.flush_positions();
        }
        self.encode_header();
        debug_assert!(self.buf.len() <= self.limits.max_bytes || self.count == 1);
        let payload = self
            .compressor
            .compress(&self.buf)
            .map_err(BatchError::Compress)?;
        let positions = self.take_positions();
        let batch = NewBatch {
            count: self.count,
            uncompressed_len: self.buf.len() as u64,
            payload,
            positions,
        };
        self.buf.clear();
        self.count = 0;
        self.opened_at = None;
        self.batch_sources.clear();
        self.header_len = base_header_len(&self.host, &self.agent_tz);
        self.append(&batch)
    }

    /// Appends `batch`, retrying failures (`crate::spool_blocked`) until the spool is closed.
    fn append(&mut self, batch: &NewBatch) -> Result<(), BatchError> {
        let spool = &self.spool;
        self.retry
            .run(|| spool.is_closed(), || spool.append_ref(batch))?;
        Ok(())
    }

    /// With no lines pending, persists moved positions (e.g. a forgotten file) on their own.
    fn flush_positions(&mut self) -> Result<(), BatchError> {
        let positions = self.take_positions();
        if positions.is_empty() {
            return Ok(());
        }
        let batch = NewBatch {
            count: 0,
            uncompressed_len: 0,
            payload: Vec::new(),
            positions,
        };
        self.append(&batch)
    }

    /// Appends a record that carries only read positions (no lines), e.g. the starting
    /// positions of files read from their end.
    pub fn record_positions(
        &mut self,
        positions: &[logship_tail::Checkpoint],
    ) -> Result<(), BatchError> {
        if positions.is_empty() {
            return Ok(());
        }
        let positions = positions
            .iter()
            .map(|c| Position {
                key: format!("{}|{}", self.input, c.key),
                path: c.path.clone(),
                offset: c.offset,
            })
            .collect();
        let batch = NewBatch {
            count: 0,
            uncompressed_len: 0,
            payload: Vec::new(),
            positions,
        };
        self.append(&batch)
    }

    /// One record of a non-file input (or a re-encoded line) with its extra fields. The
    /// batch closes first if the record would not fit it; a record too large for an empty
    /// batch is cut (its `original` dropped) with `truncated_from` set.
    pub fn push_event(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        extra: &RecordExtra<'_>,
    ) -> Result<(), SinkClosed> {
        self.push_record_with(source, raw, truncated_from, 0, extra, &[])
    }

    /// One record whose only extra fields are `attributes`, encoded once for many records (a
    /// syslog peer's datagrams): the same record as [`Batcher::push_event`] with those
    /// attributes, at the cost of one copy instead of encoding them again.
    pub fn push_with_attributes(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        attributes: &EncodedAttributes,
    ) -> Result<(), SinkClosed> {
        let extra = RecordExtra::default();
        self.push_record_with(
            source,
            raw,
            truncated_from,
            0,
            &extra,
            attributes.as_bytes(),
        )
    }

    /// Sets the position persisted with the current batch for `source`: `offset`, and `token`
    /// in the position's `path` (None keeps the source's path). Call it after the record(s) it
    /// follows, as the file input does with offsets.
    pub fn set_position(&mut self, source: SourceId, token: Option<String>, offset: u64) {
        let s = &mut self.sources[source.0 as usize];
        s.pending_offset = Some(offset);
        s.pending_token = token;
    }

    /// Appends a gap record (kind gap) for `source`, e.g. a jump in a journal or event log.
    pub fn push_gap(&mut self, source: SourceId, message: &str) -> Result<(), SinkClosed> {
        self.push_record(source, message.as_bytes(), 0, KIND_GAP)?;
        self.stats
            .gaps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn take_positions(&mut self) -> Vec<Position> {
        let mut out = Vec::new();
        for s in &mut self.sources {
            s.in_batch = None;
            if let Some(offset) = s.pending_offset.take() {
                let path = s.pending_token.take().unwrap_or_else(|| s.path.clone());
                out.push(Position {
                    key: s.key.clone(),
                    path,
                    offset,
                });
            }
        }
        out
    }

    fn encode_header(&mut self) {
        put_bytes(&mut self.buf, 1, self.host.as_bytes());
        for &id in &self.batch_sources {
            let path = &self.sources[id as usize].path;
            let len = field_len(self.input.len()) + field_len(path.len());
            put_key_len(&mut self.buf, 2, len);
            put_bytes(&mut self.buf, 1, self.input.as_bytes());
            put_bytes(&mut self.buf, 2, path.as_bytes());
        }
        put_bytes(&mut self.buf, 4, self.agent_tz.as_bytes());
        put_varint_field(&mut self.buf, 5, self.batch_first_ns as u64);
    }

    /// Index of `source` in the current batch's source table, adding it if needed.
    fn batch_index(&mut self, source: SourceId) -> u32 {
        if let Some(i) = self.sources[source.0 as usize].in_batch {
            return i;
        }
        self.header_len += self.source_header_len(source);
        let i = self.batch_sources.len() as u32;
        self.sources[source.0 as usize].in_batch = Some(i);
        self.batch_sources.push(source.0);
        i
    }

    /// Header bytes `source` adds to the current batch (0 when it is already in it).
    fn source_header_len(&self, source: SourceId) -> usize {
        let s = &self.sources[source.0 as usize];
        if s.in_batch.is_some() {
            return 0;
        }
        field_len(field_len(self.input.len()) + field_len(s.path.len()))
    }

    /// `raw` cut so the record fits the current batch under `max_bytes`, and the
    /// `truncated_from` to record (the original length when cut here).
    fn fit<'r>(&self, raw: &'r [u8], truncated_from: u64, extra_len: usize) -> (&'r [u8], u64) {
        let used = self.buf.len() + self.header_len + RECORD_OVERHEAD + extra_len;
        let room = self.limits.max_bytes.saturating_sub(used);
        if raw.len() <= room {
            return (raw, truncated_from);
        }
        let original = if truncated_from > 0 {
            truncated_from
        } else {
            raw.len() as u64
        };
        (&raw[..room], original)
    }

    fn push_record(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        kind: u64,
    ) -> Result<(), SinkClosed> {
        self.push_record_with(
            source,
            raw,
            truncated_from,
            kind,
            &RecordExtra::default(),
            &[],
        )
    }

    fn push_record_with(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        kind: u64,
        extra: &RecordExtra<'_>,
        encoded: &[u8],
    ) -> Result<(), SinkClosed> {
        let mut extra = *extra;
        let mut extra_len = extra.encoded_len() + encoded.len();
        let projected = self.buf.len()
            + self.header_len
            + self.source_header_len(source)
            + raw.len()
            + extra_len
            + RECORD_OVERHEAD;
        if self.count > 0
            && (self.count >= self.limits.max_records || projected > self.limits.max_bytes)
        {
            self.flush_or_close()?;
        }
        self.tick_clock();
        let index = self.batch_index(source);
        // Alone in its batch and still too large: cut it (the batch closes right after it).
        let (mut cut, mut cut_from) = self.fit(raw, truncated_from, extra_len);
        if let Some(original) = extra.original.filter(|_| cut.len() < raw.len()) {
            // No room for both: keep the (cut) text, drop the original bytes, and say so with
            // `truncated_from` = their length (the stored record is not all that was read).
            extra.original = None;
            extra_len = extra.encoded_len() + encoded.len();
            let from = if truncated_from > 0 {
                truncated_from
            } else {
                original.len() as u64
            };
            (cut, cut_from) = self.fit(raw, from, extra_len);
        }
        let (raw, truncated_from) = (cut, cut_from);
        if self.count == 0 {
            self.batch_first_ns = self.now_ns;
            self.last_ns = self.now_ns;
        }
        // Omitted (0) means "same as the record before": most records share their read time.
        let observed = if self.now_ns == self.last_ns {
            0
        } else {
            self.now_ns as u64
        };
        self.last_ns = self.now_ns;
        let mut len = 1 + encoded_len_varint(u64::from(index));
        if observed != 0 {
            len += 1 + encoded_len_varint(observed);
        }
        len += field_len(raw.len());
        if truncated_from > 0 {
            len += 1 + encoded_len_varint(truncated_from);
        }
        if kind != 0 {
            len += 1 + encoded_len_varint(kind);
        }
        len += extra_len;
        let buf = &mut self.buf;
        put_key_len(buf, 3, len);
        put_varint_field(buf, 1, u64::from(index));
        if observed != 0 {
            put_varint_field(buf, 2, observed);
        }
        put_bytes(buf, 3, raw);
        if truncated_from > 0 {
            put_varint_field(buf, 4, truncated_from);
        }
        if kind != 0 {
            put_varint_field(buf, 5, kind);
        }
        if extra_len > 0 {
            put_extra(buf, &extra, encoded);
        }
        self.count += 1;
        self.opened_at.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn release_buffers(&mut self) {
        if self.buf.capacity() > IDLE_BUF_BYTES {
            self.buf = Vec::with_capacity(IDLE_BUF_BYTES);
        }
        if let Ok(fresh) = compressor(self.limits.zstd_level) {
            self.compressor = fresh;
        }
    }

    fn tick_clock(&mut self) {
        self.since_clock += 1;
        if self.since_clock >= CLOCK_EVERY {
            self.since_clock = 0;
            self.now_ns = wall_clock_ns();
        }
    }

    fn flush_or_close(&mut self) -> Result<(), SinkClosed> {
        self.flush().map_err(|error| {
            if !matches!(error, BatchError::Spool(SpoolError::Closed)) {
                tracing::error!(%error, input = %self.input, "Appending to the spool failed.");
            }
            SinkClosed
        })
    }

    fn due(&self) -> bool {
        self.opened_at
            .is_some_and(|t| t.elapsed() >= self.limits.max_wait)
    }
}

/// zstd hash table size (log2) of the agent's compressor: 2^11 entries stay in L1/L2 cache and
/// cut zstd's CPU by about a tenth at level 1 for about 5 % more compressed bytes (measured on
/// the benchmark's mixed file), the right trade on an office PC.
const ZSTD_HASH_LOG: u32 = 11;

fn compressor(level: i32) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    if level <= 3 {
        c.set_parameter(zstd::zstd_safe::CParameter::HashLog(ZSTD_HASH_LOG))?;
    }
    Ok(c)
}

fn wall_clock_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// Appends the extra fields of a record (see the layout in the module doc), `encoded`
/// (attribute entries already encoded) after the attributes of `extra`.
fn put_extra(buf: &mut Vec<u8>, extra: &RecordExtra<'_>, encoded: &[u8]) {
    if extra.event_ns != 0 {
        put_varint_field(buf, 6, extra.event_ns as u64);
    }
    attributes::put_attributes(buf, extra.attributes);
    buf.extend_from_slice(encoded);
    if let Some(o) = extra.original {
        put_bytes(buf, 8, o);
    }
}

/// Header bytes of a batch with no source: host, time zone and the first observed time.
fn base_header_len(host: &str, agent_tz: &str) -> usize {
    field_len(host.len()) + field_len(agent_tz.len()) + HEADER_FIXED
}

#[cfg(test)]
mod tests;
