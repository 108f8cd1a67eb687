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
//! - `append` blocks while the spool is full: the input stops reading (when_full = block).
//!
//! ```text
//! buffer = { 0x1A len Record }*  then  0x0A host, { 0x12 len Source }*, 0x22 agent_tz,
//!          0x28 first observed_ns
//! Record = 0x08 source, [0x10 observed_ns], 0x1A raw, [0x20 truncated_from], [0x28 kind]
//!          observed_ns only when it differs from the record before (0 = same as before)
//! ```

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use logship_spool::{NewBatch, Position, Spool, SpoolError};
use logship_tail::{LineSink, SinkClosed, SourceId};
use prost::encoding::{encode_varint, encoded_len_varint};

use crate::config::BatchLimits;

/// Lines between two reads of the wall clock (lines read together share their observed time).
const CLOCK_EVERY: u32 = 64;
/// Batch buffer kept while the input is quiet.
const IDLE_BUF_BYTES: usize = 64 << 10;
/// Record kind of an explicit gap (proto `RECORD_KIND_GAP`).
const KIND_GAP: u64 = 1;

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
        })
    }

    /// Shared counters.
    pub fn stats(&self) -> Arc<BatcherStats> {
        self.stats.clone()
    }

    /// Closes the current batch, if any, and appends it to the spool.
    pub fn flush(&mut self) -> Result<(), BatchError> {
        if self.count == 0 {
            return self.flush_positions();
        }
        self.encode_header();
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
        self.spool.append(batch)?;
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
        self.spool.append(batch)?;
        Ok(())
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
        self.spool.append(batch)?;
        Ok(())
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
        let s = &mut self.sources[source.0 as usize];
        if let Some(i) = s.in_batch {
            return i;
        }
        let i = self.batch_sources.len() as u32;
        s.in_batch = Some(i);
        self.batch_sources.push(source.0);
        i
    }

    fn push_record(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        kind: u64,
    ) -> Result<(), SinkClosed> {
        let projected = self.buf.len() + raw.len() + 32;
        if self.count > 0
            && (self.count >= self.limits.max_records || projected > self.limits.max_bytes)
        {
            self.flush_or_close()?;
        }
        self.tick_clock();
        let index = self.batch_index(source);
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

impl LineSink for Batcher {
    fn open_source(&mut self, key: &str, path: &Path) -> Result<SourceId, SinkClosed> {
        // Positions are namespaced per input in the spool (see `run`).
        let key = format!("{}|{key}", self.input);
        let path = path.to_string_lossy().into_owned();
        if let Some(i) = self.sources.iter().position(|s| s.key == key) {
            let s = &mut self.sources[i];
            if s.path != path {
                // Renamed: the path in the batch's source table must change too.
                if s.in_batch.is_some() {
                    self.flush_or_close()?;
                }
                self.sources[i].path = path;
            }
            return Ok(SourceId(i as u32));
        }
        self.sources.push(Source {
            key,
            path,
            in_batch: None,
            pending_offset: None,
        });
        Ok(SourceId(self.sources.len() as u32 - 1))
    }

    fn line(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        offset_after: u64,
    ) -> Result<(), SinkClosed> {
        self.push_record(source, raw, truncated_from, 0)?;
        self.sources[source.0 as usize].pending_offset = Some(offset_after);
        Ok(())
    }

    fn gap(
        &mut self,
        source: SourceId,
        message: &str,
        offset_after: u64,
    ) -> Result<(), SinkClosed> {
        let path = self.sources[source.0 as usize].path.clone();
        tracing::error!(input = %self.input, path = %path, message, "Data could not be read; recording a gap.");
        self.push_record(source, message.as_bytes(), 0, KIND_GAP)?;
        self.sources[source.0 as usize].pending_offset = Some(offset_after);
        self.stats.gaps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn close_source(&mut self, source: SourceId) -> Result<(), SinkClosed> {
        // Persist the "forget" at once (after the lines before it): a crash before the next
        // batch must not leave a position for a file that no longer exists.
        self.sources[source.0 as usize].pending_offset = Some(u64::MAX);
        self.flush_or_close()
    }

    fn tick(&mut self) -> Result<(), SinkClosed> {
        self.now_ns = wall_clock_ns();
        self.since_clock = 0;
        if self.due() {
            self.flush_or_close()?;
            // A batch closed by age means a low rate: give back the big buffers until the
            // next burst (the allocator returns them to the OS, see `crate::memory`).
            self.release_buffers();
        }
        Ok(())
    }
}

/// Appends a gap record for a spool range lost to corruption (no file source).
pub fn lost_range_gap(batcher: &mut Batcher, message: &str) -> Result<(), SinkClosed> {
    let id = batcher.open_source("spool", Path::new("spool"))?;
    batcher.push_record(id, message.as_bytes(), 0, KIND_GAP)?;
    batcher.stats.gaps.fetch_add(1, Ordering::Relaxed);
    Ok(())
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

fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_key_len(buf: &mut Vec<u8>, field: u32, len: usize) {
    buf.push(((field << 3) | 2) as u8);
    encode_varint(len as u64, buf);
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key_len(buf, field, bytes.len());
    buf.extend_from_slice(bytes);
}

fn put_varint_field(buf: &mut Vec<u8>, field: u32, value: u64) {
    buf.push((field << 3) as u8);
    encode_varint(value, buf);
}

#[cfg(test)]
mod tests;
