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
//! Record = 0x08 source, [0x10 observed_ns], 0x1A raw, [0x20 truncated_from], [0x28 kind]
//!          observed_ns only when it differs from the record before (0 = same as before)
//! ```

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logship_spool::{NewBatch, Position, Spool, SpoolError};
use logship_tail::{SinkClosed, SourceId};
use prost::encoding::encoded_len_varint;

use crate::config::BatchLimits;
use crate::spool_blocked::{Retry, SpoolBlocked};
use wire::{field_len, put_bytes, put_key_len, put_varint_field};

mod sink;
mod wire;

pub use sink::lost_range_gap;

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
}

struct Source {
    key: String,
    path: String,
    /// Index in the current batch's source table, if used by it.
    in_batch: Option<u32>,
    /// Offset to persist with the current batch, if it moved.
    pending_offset: Option<u64>,
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

    /// Shared counters.
    pub fn stats(&self) -> Arc<BatcherStats> {
        self.stats.clone()
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

    fn take_positions(&mut self) -> Vec<Position> {
        let mut out = Vec::new();
        for s in &mut self.sources {
            s.in_batch = None;
            if let Some(offset) = s.pending_offset.take() {
                out.push(Position {
                    key: s.key.clone(),
                    path: s.path.clone(),
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
    fn fit<'r>(&self, raw: &'r [u8], truncated_from: u64) -> (&'r [u8], u64) {
        let used = self.buf.len() + self.header_len + RECORD_OVERHEAD;
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
        let projected = self.buf.len()
            + self.header_len
            + self.source_header_len(source)
            + raw.len()
            + RECORD_OVERHEAD;
        if self.count > 0
            && (self.count >= self.limits.max_records || projected > self.limits.max_bytes)
        {
            self.flush_or_close()?;
        }
        self.tick_clock();
        let index = self.batch_index(source);
        // Alone in its batch and still too large: cut it (the batch closes right after it).
        let (raw, truncated_from) = self.fit(raw, truncated_from);
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

/// Header bytes of a batch with no source: host, time zone and the first observed time.
fn base_header_len(host: &str, agent_tz: &str) -> usize {
    field_len(host.len()) + field_len(agent_tz.len()) + HEADER_FIXED
}

#[cfg(test)]
mod tests;
