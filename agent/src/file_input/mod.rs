//! The file input's text stage, between the tailer and the batcher: decodes each line from the
//! input's `encoding` into UTF-8 (`decode.rs`) and, with `multiline`, joins continuation lines
//! into one record (`multiline.rs`). It is a [`LineSink`] wrapping the input's [`Batcher`].
//!
//! ```text
//! Tailer ──line(raw bytes, offset)──► FileInputSink ──push_event(text, original)──► Batcher
//!   (cuts lines at 0x0A, or at the       decode → [multiline buffer per file]     set_position
//!    UTF-16 unit 0x000A; reports BOMs)
//! ```
//!
//! Invariants:
//! - Offsets stay byte offsets in the original file; a record's position (just past its last
//!   line) is handed to the batcher only together with the record, so positions never run
//!   ahead of records, and a record buffered when the agent dies or stops is read again from
//!   its first line at the next start (nothing lost, nothing duplicated). A stop does not emit
//!   buffered records for that reason.
//! - A record's text is UTF-8. Its original bytes go with it whenever they differ from the
//!   text (re-encoded or invalid input), so evidence is never re-encoded away. Malformed
//!   sequences are replaced by U+FFFD and counted (`decode_errors` in heartbeats).
//! - A file's byte-order mark wins over the configured encoding (the tailer reports it).
//! - Buffered records are bounded per record (`multiline.max_bytes`, the rest of an oversized
//!   record is skipped and counted in `truncated_from`, and in `multiline_truncated`) and per
//!   input ([`held_cap`]: past it the largest buffered record is emitted early, as on its
//!   timeout).
//! - Before a gap or the end of a file (`close_source`) the file's buffered record is emitted
//!   first, so records stay in file order with the gap.

mod decode;
mod multiline;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use encoding_rs::Encoding;
use logship_tail::{Bom, LineSink, SinkClosed, SourceId};

use crate::batcher::{BatchError, Batcher, BatcherStats, RecordExtra};
use decode::{decode_line, encoding_of_bom, newline_in};
pub(crate) use decode::{encoding_for_label, framing_of};
pub use multiline::{Boundary, Multiline};
use multiline::{Line, Pending};

/// How a file input turns lines into records.
#[derive(Clone, Debug)]
pub struct TextConfig {
    /// Encoding of the input's files (a file's byte-order mark overrides it).
    pub encoding: &'static Encoding,
    /// Joining of continuation lines, if configured.
    pub multiline: Option<Multiline>,
}

/// Bytes all buffered records of one input may hold (text and original bytes together):
/// eight records of `max_bytes`, at least 16 MiB.
pub fn held_cap(max_bytes: usize) -> usize {
    max_bytes.saturating_mul(8).max(16 << 20)
}

/// Per-file state.
struct FileText {
    encoding: &'static Encoding,
    pending: Option<Pending>,
}

/// The text stage of one file input (see the module docs).
pub struct FileInputSink {
    batcher: Batcher,
    config: TextConfig,
    files: Vec<FileText>,
    buf: String,
    stats: Arc<BatcherStats>,
    /// Files with a buffered record.
    pending: usize,
    /// Bytes held by buffered records.
    held: usize,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            encoding: encoding_rs::UTF_8,
            multiline: None,
        }
    }
}

// === impl FileInputSink ===

impl FileInputSink {
    /// The text stage in front of `batcher`.
    pub fn new(batcher: Batcher, config: TextConfig) -> Self {
        FileInputSink {
            stats: batcher.stats(),
            batcher,
            config,
            files: Vec::new(),
            buf: String::new(),
            pending: 0,
            held: 0,
        }
    }

    /// Appends the current batch to the spool. Buffered multiline records are not emitted:
    /// their lines are read again at the next start (their position was not persisted).
    pub fn flush(&mut self) -> Result<(), BatchError> {
        if self.pending > 0 {
            tracing::debug!(
                records = self.pending,
                "Incomplete multiline records left to be read again at the next start."
            );
        }
        self.batcher.flush()
    }

    /// Emits the buffered record of `source`, if any, with its position.
    fn emit(&mut self, source: SourceId) -> Result<(), SinkClosed> {
        let Some(p) = self.files[source.0 as usize].pending.take() else {
            return Ok(());
        };
        self.pending -= 1;
        self.held -= p.held();
        send(&mut self.batcher, &self.stats, source, &p)
    }

    /// Emits records idle for the timeout, then the largest ones while over [`held_cap`].
    fn emit_due(&mut self, now: Instant) -> Result<(), SinkClosed> {
        let Some(ml) = &self.config.multiline else {
            return Ok(());
        };
        let (timeout, cap) = (ml.timeout, held_cap(ml.max_bytes));
        for i in 0..self.files.len() {
            let due = self.files[i]
                .pending
                .as_ref()
                .is_some_and(|p| now.saturating_duration_since(p.last_line_at) >= timeout);
            if due {
                self.emit(SourceId(i as u32))?;
            }
        }
        while self.held > cap {
            let largest = self
                .files
                .iter()
                .enumerate()
                .filter_map(|(i, f)| Some((f.pending.as_ref()?.held(), i)))
                .max();
            let Some((_, i)) = largest else { break };
            self.emit(SourceId(i as u32))?;
        }
        Ok(())
    }
}

impl LineSink for FileInputSink {
    fn open_source(&mut self, key: &str, path: &Path) -> Result<SourceId, SinkClosed> {
        let id = self.batcher.open_source(key, path)?;
        let i = id.0 as usize;
        while self.files.len() <= i {
            self.files.push(FileText {
                encoding: self.config.encoding,
                pending: None,
            });
        }
        // Opened again (renamed): its byte-order mark, if any, is told again right after.
        self.files[i].encoding = self.config.encoding;
        Ok(id)
    }

    fn byte_order_mark(&mut self, source: SourceId, bom: Bom) -> Result<(), SinkClosed> {
        self.files[source.0 as usize].encoding = encoding_of_bom(bom);
        Ok(())
    }

    fn line(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        offset_after: u64,
    ) -> Result<(), SinkClosed> {
        let file = &mut self.files[source.0 as usize];
        let encoding = file.encoding;
        let d = decode_line(encoding, raw, truncated_from > 0, &mut self.buf);
        if d.errors > 0 {
            self.stats
                .decode_errors
                .fetch_add(d.errors, Ordering::Relaxed);
        }
        let Some(ml) = &self.config.multiline else {
            if !d.differs {
                return self.batcher.line(source, raw, truncated_from, offset_after);
            }
            let extra = RecordExtra {
                original: Some(raw),
                ..RecordExtra::default()
            };
            self.batcher
                .push_event(source, d.text.as_bytes(), truncated_from, &extra)?;
            self.batcher.set_position(source, None, offset_after);
            return Ok(());
        };
        let now = Instant::now();
        let line = Line {
            text: d.text,
            raw,
            differs: d.differs,
            truncated_from,
            offset_after,
        };
        match file.pending.as_mut() {
            Some(p) if !ml.starts_record(line.text) => {
                let before = p.held();
                p.push(&line, newline_in(encoding), ml.max_bytes, now);
                self.held += p.held() - before;
            }
            _ => {
                let fresh = Pending::start(&line, now);
                self.held += fresh.held();
                match file.pending.replace(fresh) {
                    Some(done) => {
                        self.held -= done.held();
                        send(&mut self.batcher, &self.stats, source, &done)?;
                    }
                    None => self.pending += 1,
                }
            }
        }
        if self.held > held_cap(ml.max_bytes) {
            self.emit_due(now)?;
        }
        Ok(())
    }

    fn gap(
        &mut self,
        source: SourceId,
        message: &str,
        offset_after: u64,
    ) -> Result<(), SinkClosed> {
        self.emit(source)?;
        self.batcher.gap(source, message, offset_after)
    }

    fn close_source(&mut self, source: SourceId) -> Result<(), SinkClosed> {
        self.emit(source)?;
        self.batcher.close_source(source)
    }

    fn tick(&mut self) -> Result<(), SinkClosed> {
        if self.pending > 0 {
            self.emit_due(Instant::now())?;
        }
        self.batcher.tick()
    }
}

/// Hands a finished record and its position to the batcher.
fn send(
    batcher: &mut Batcher,
    stats: &BatcherStats,
    source: SourceId,
    p: &Pending,
) -> Result<(), SinkClosed> {
    if p.overflowed {
        stats.multiline_truncated.fetch_add(1, Ordering::Relaxed);
    }
    let extra = RecordExtra {
        original: p.original(),
        ..RecordExtra::default()
    };
    batcher.push_event(source, p.text.as_bytes(), p.truncated_from(), &extra)?;
    batcher.set_position(source, None, p.offset_after);
    Ok(())
}

#[cfg(test)]
mod tests;
