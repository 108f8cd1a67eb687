//! Truncation and copytruncate: continue the old identity in its copy, or report a gap; the
//! truncated file restarts at 0 as a new identity.

use std::fs::File;
use std::time::Instant;

use super::Tailer;
use crate::identity::FileId;
use crate::lines::ReadError;
use crate::recover;
use crate::watched::{PollCx, Watched};
use crate::{LineSink, SinkClosed};

// === impl Tailer ===

impl Tailer {
    /// A file shrank or was rewritten from the start. Lines after our offset are read from a copy
    /// (copytruncate) when one exists in the same directory, else reported as a gap; the truncated
    /// file then restarts at 0 as a new identity (new key).
    pub(super) fn on_truncated(
        &mut self,
        id: FileId,
        sink: &mut dyn LineSink,
    ) -> Result<(), SinkClosed> {
        let Some(mut w) = self.files.remove(&id) else {
            return Ok(());
        };
        let now = Instant::now();
        let original = w.path.clone();
        if w.key.is_none() {
            self.files
                .insert(id, Watched::new(original, w.file, id, now));
            return Ok(());
        }
        let files = &self.files;
        let accept =
            |cid: FileId| cid != id && files.get(&cid).is_none_or(|f| f.shadow_of.is_some());
        let copy = recover::find_copy(
            &w.path,
            &accept,
            w.fp,
            w.lines.offset,
            &self.matcher,
            &mut self.bufs.prefix,
        );
        let truncated_file = match copy {
            Some(copy) => {
                tracing::info!(path = %original.display(), copy = %copy.path.display(), offset = w.lines.offset, "File truncated; reading the rest from its copy.");
                let truncated_file = std::mem::replace(&mut w.file, copy.file);
                self.files.remove(&copy.id);
                w.continue_in_copy(copy.path, copy.id, now);
                self.files.insert(copy.id, w);
                truncated_file
            }
            None => self.report_truncation(w, sink)?,
        };
        let fresh = Watched::new(original, truncated_file, id, now);
        self.files.insert(id, fresh);
        Ok(())
    }

    /// No copy of a truncated file: report the bytes seen but not read as a gap, close the source.
    fn report_truncation(
        &mut self,
        mut w: Watched,
        sink: &mut dyn LineSink,
    ) -> Result<File, SinkClosed> {
        let mut cx = PollCx {
            cfg: &self.cfg,
            bufs: &mut self.bufs,
            sink,
            now: Instant::now(),
        };
        let source = match w.ensure_source(&mut cx) {
            Ok(Some(source)) => source,
            Ok(None) | Err(ReadError::Truncated | ReadError::Io(_)) => return Ok(w.file),
            Err(ReadError::Sink) => return Err(SinkClosed),
        };
        let lost = w.seen_size.saturating_sub(w.lines.offset);
        tracing::warn!(path = %w.path.display(), offset = w.lines.offset, lost, "File truncated; no copy found.");
        if lost > 0 {
            let message = format!(
                "file truncated; {lost} bytes after offset {} not read",
                w.lines.offset
            );
            sink.gap(source, &message, w.seen_size)?;
        }
        sink.close_source(source)?;
        Ok(w.file)
    }
}
