//! The tailer's side of the batcher: [`LineSink`] calls become records and pending positions.

use std::path::Path;
use std::sync::atomic::Ordering;

use logship_tail::{LineSink, SinkClosed, SourceId};

use super::{Batcher, KIND_GAP, Source, wall_clock_ns};

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
            pending_token: None,
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
        self.set_position(source, None, offset_after);
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

/// Appends one gap record per spool range lost to corruption, each logged; false once the
/// spool is closed.
pub fn report_lost_ranges(batcher: &mut Batcher, lost: Vec<logship_spool::LostRange>) -> bool {
    for l in lost {
        let message = format!(
            "logship-agent: spool records {}..={} lost to corruption ({}); segment quarantined at {}",
            l.first_seq,
            l.last_seq,
            l.reason,
            l.segment.display()
        );
        tracing::error!(first_seq = l.first_seq, last_seq = l.last_seq, reason = %l.reason,
            "Spool records lost to corruption.");
        if lost_range_gap(batcher, &message).is_err() {
            return false;
        }
    }
    true
}

/// Appends a gap record for a spool range lost to corruption (no file source).
pub fn lost_range_gap(batcher: &mut Batcher, message: &str) -> Result<(), SinkClosed> {
    let id = batcher.open_source("spool", Path::new("spool"))?;
    batcher.push_record(id, message.as_bytes(), 0, KIND_GAP)?;
    batcher.stats.gaps.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
