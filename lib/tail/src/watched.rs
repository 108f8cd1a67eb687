//! One open file: its identity, key, read position, and the per-pass read step
//! (grow check, chunked reads with a prefix check after each read, idle flush).

use crate::platform::FileExt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::TailConfig;
use crate::framing::{Bom, Framing, Sniffed, sniff};
use crate::identity::{FileId, Fingerprint, PrefixCheck, make_key};
use crate::lines::{Cut, LineState, ReadError};
use crate::{LineSink, SourceId};

/// Maximum chunks read from one file per pass, so one busy file cannot starve the others.
const MAX_CHUNKS_PER_POLL: usize = 8;

/// Reusable buffers shared by all files of a tailer.
pub(crate) struct Buffers {
    /// Chunk buffer; holds a maximal line plus terminator.
    pub(crate) chunk: Vec<u8>,
    /// Long and idle-flushed lines are re-read here (`max_line_bytes`).
    pub(crate) line: Vec<u8>,
    /// Fingerprint reads.
    pub(crate) prefix: Vec<u8>,
}

/// Everything a read pass needs besides the file itself.
pub(crate) struct PollCx<'a> {
    pub(crate) cfg: &'a TailConfig,
    pub(crate) bufs: &'a mut Buffers,
    pub(crate) sink: &'a mut dyn LineSink,
    pub(crate) now: Instant,
}

/// Result of one read pass over a file.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Polled {
    /// Bytes were consumed or a line was emitted.
    pub(crate) progressed: bool,
    /// Everything up to the current size was examined.
    pub(crate) at_eof: bool,
}

/// A file held open by the tailer.
pub(crate) struct Watched {
    /// Last path the file was seen at (stale once it was rotated to an unmatched path).
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) id: FileId,
    /// Stable key; `None` until the file was opened with at least one byte.
    pub(crate) key: Option<String>,
    /// Sink id for the current (key, path); `None` until registered or after a rename.
    pub(crate) source: Option<SourceId>,
    /// Fingerprint used for matching; grows up to `fingerprint_bytes` (the key does not change).
    pub(crate) fp: Fingerprint,
    pub(crate) lines: LineState,
    /// Where lines end, decided from the configured framing and the file's byte-order mark
    /// before the first line is read; `None` until then (see `framing.rs`).
    framing: Option<Framing>,
    /// The byte-order mark the file starts with, told to the sink after each `open_source`.
    bom: Option<Bom>,
    /// Largest size seen; a smaller size means truncation.
    pub(crate) seen_size: u64,
    /// When the file last grew (or was opened).
    pub(crate) last_change: Instant,
    /// When the prefix was last checked (an idle file is re-checked every glob interval, which
    /// catches a truncate-and-rewrite that did not change the size).
    last_verify: Instant,
    /// The last read failed; set until a read succeeds (one gap record per failure streak).
    pub(crate) read_failing: bool,
    /// Set while this file looks like a copy of the given open file (copytruncate with globs that
    /// match the copies): it is not read, so that the truncation of the original can claim it.
    pub(crate) shadow_of: Option<FileId>,
    /// When the file was first missed at every matched path (rotated away or deleted).
    pub(crate) detached_since: Option<Instant>,
}

// === impl Buffers ===

impl Buffers {
    pub(crate) fn new(cfg: &TailConfig) -> Buffers {
        Buffers {
            chunk: vec![0; cfg.chunk_bytes()],
            line: vec![0; cfg.max_line_bytes],
            prefix: Vec::with_capacity(cfg.fingerprint_bytes),
        }
    }
}

// === impl Watched ===

impl Watched {
    /// A file read from `lines.offset` with no key yet.
    pub(crate) fn new(path: PathBuf, file: File, id: FileId, now: Instant) -> Watched {
        Watched {
            path,
            file,
            id,
            key: None,
            source: None,
            fp: Fingerprint { len: 0, crc: 0 },
            lines: LineState::at(0),
            framing: None,
            bom: None,
            seen_size: 0,
            last_change: now,
            last_verify: now,
            read_failing: false,
            shadow_of: None,
            detached_since: None,
        }
    }

    /// A file resumed at `offset` under an existing key.
    pub(crate) fn resumed(
        path: PathBuf,
        file: File,
        id: FileId,
        key: String,
        fp: Fingerprint,
        offset: u64,
        now: Instant,
    ) -> Watched {
        let mut w = Watched::new(path, file, id, now);
        w.key = Some(key);
        w.fp = fp;
        w.lines = LineState::at(offset);
        w.seen_size = offset;
        w
    }

    /// Keys the file now and skips what it holds (`StartAt::End`).
    pub(crate) fn skip_to_end(&mut self, size: u64, cfg: &TailConfig, buf: &mut Vec<u8>) {
        if size == 0 {
            return;
        }
        if let Ok(fp) = Fingerprint::compute(&self.file, size, cfg.fingerprint_bytes, buf) {
            self.key = Some(make_key(self.id, fp));
            self.fp = fp;
            self.lines = LineState::at(size);
            self.seen_size = size;
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads new bytes (bounded), emits complete lines, flushes an idle partial line.
    pub(crate) fn poll(&mut self, cx: &mut PollCx<'_>) -> Result<Polled, ReadError> {
        let size = self.file.metadata()?.len();
        let idle_result = Polled {
            progressed: false,
            at_eof: true,
        };
        if self.shadow_of.is_some() {
            self.observe_growth(size, cx.now);
            return Ok(idle_result);
        }
        self.check_identity(cx, size)?;
        self.observe_growth(size, cx.now);
        let Some(source) = self.ensure_source(cx)? else {
            return Ok(idle_result);
        };
        let mut polled = Polled::default();
        for _ in 0..MAX_CHUNKS_PER_POLL {
            if self.lines.read_end >= self.seen_size || !self.read_chunk(cx, source)? {
                break;
            }
            polled.progressed = true;
        }
        polled.at_eof = self.lines.read_end >= self.seen_size;
        let idle = cx.now.saturating_duration_since(self.last_change);
        if polled.at_eof && idle >= Duration::from_millis(cx.cfg.idle_flush_ms) {
            polled.progressed |= self.flush(cx)?;
        }
        Ok(polled)
    }

    /// Fails with `Truncated` when the file shrank, or (checked on growth and every glob
    /// interval) no longer starts with its fingerprint.
    fn check_identity(&mut self, cx: &mut PollCx<'_>, size: u64) -> Result<(), ReadError> {
        if size < self.seen_size {
            return Err(ReadError::Truncated);
        }
        let verify_every = Duration::from_millis(cx.cfg.glob_interval_ms);
        let verify_due = cx.now.saturating_duration_since(self.last_verify) >= verify_every;
        if self.key.is_some() && (size > self.seen_size || verify_due) {
            self.verify_prefix(cx, size)?;
            self.last_verify = cx.now;
        }
        Ok(())
    }

    /// Records a size change (shadows also record shrinking).
    fn observe_growth(&mut self, size: u64, now: Instant) {
        if size > self.seen_size || (self.shadow_of.is_some() && size != self.seen_size) {
            self.seen_size = size;
            self.last_change = now;
        }
    }

    /// Emits a pending partial line now (idle flush, or before releasing the file).
    pub(crate) fn flush(&mut self, cx: &mut PollCx<'_>) -> Result<bool, ReadError> {
        let Some(source) = self.source else {
            return Ok(false);
        };
        if !self.lines.has_partial() {
            return Ok(false);
        }
        self.verify_prefix(cx, self.seen_size)?;
        let sink = &mut *cx.sink;
        let mut emit = |raw: &[u8], t: u64, o: u64| sink.line(source, raw, t, o);
        let max = cx.cfg.max_line_bytes;
        let end = self.lines.read_end;
        let cut = Cut {
            framing: self.framing.unwrap_or_default(),
            max,
        };
        self.lines
            .flush_partial(end, cut, &self.file, &mut cx.bufs.line, &mut emit)
    }

    /// Registers the file with the sink (keying it and deciding its framing first if needed).
    /// `None`: the file is empty, or its first bytes may still become a byte-order mark.
    pub(crate) fn ensure_source(
        &mut self,
        cx: &mut PollCx<'_>,
    ) -> Result<Option<SourceId>, ReadError> {
        if let Some(source) = self.source {
            return Ok(Some(source));
        }
        if self.key.is_none() {
            if self.seen_size == 0 {
                return Ok(None);
            }
            let max = cx.cfg.fingerprint_bytes;
            let fp = Fingerprint::compute(&self.file, self.seen_size, max, &mut cx.bufs.prefix)?;
            if fp.len == 0 {
                return Err(ReadError::Truncated);
            }
            self.fp = fp;
            self.key = Some(make_key(self.id, fp));
        }
        if self.framing.is_none() && !self.decide_framing(cx)? {
            return Ok(None);
        }
        let key = self.key.as_deref().expect("keyed just above");
        let source = cx.sink.open_source(key, &self.path)?;
        if let Some(bom) = self.bom {
            cx.sink.byte_order_mark(source, bom)?;
        }
        self.source = Some(source);
        Ok(Some(source))
    }

    /// Reads the first bytes for a byte-order mark; a fresh file's first line starts after it.
    /// False while the bytes so far are only the start of a mark and the file is not idle.
    fn decide_framing(&mut self, cx: &mut PollCx<'_>) -> Result<bool, ReadError> {
        let mut head = [0u8; 3];
        let n = self.seen_size.min(head.len() as u64) as usize;
        self.file.read_exact_at(&mut head[..n], 0)?;
        let idle = cx.now.saturating_duration_since(self.last_change);
        let final_look = idle >= Duration::from_millis(cx.cfg.idle_flush_ms);
        let Sniffed::Known(framing, bom) = sniff(&head[..n], cx.cfg.framing, final_look) else {
            return Ok(false);
        };
        self.framing = Some(framing);
        self.bom = bom;
        if let Some(bom) = bom
            && self.lines.offset < bom.bytes()
        {
            self.lines = LineState::at(bom.bytes());
        }
        Ok(true)
    }

    /// Reads one chunk at the read position and emits its lines. False at EOF.
    fn read_chunk(&mut self, cx: &mut PollCx<'_>, source: SourceId) -> Result<bool, ReadError> {
        let start = self.lines.read_start();
        let n = loop {
            match self.file.read_at(&mut cx.bufs.chunk, start) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        let end = start + n as u64;
        if end <= self.lines.read_end {
            return Ok(false);
        }
        // A rewrite from the start before this read shows here: never emit such bytes.
        self.verify_prefix(cx, self.seen_size.max(end))?;
        self.seen_size = self.seen_size.max(end);
        let sink = &mut *cx.sink;
        let mut emit = |raw: &[u8], t: u64, o: u64| sink.line(source, raw, t, o);
        let max = cx.cfg.max_line_bytes;
        let cut = Cut {
            framing: self.framing.unwrap_or_default(),
            max,
        };
        let (chunk, line) = (&cx.bufs.chunk[..n], &mut cx.bufs.line);
        self.lines
            .split(chunk, start, cut, &self.file, line, &mut emit)?;
        Ok(true)
    }

    /// Checks the file still starts with its fingerprint, growing the fingerprint if possible.
    fn verify_prefix(&mut self, cx: &mut PollCx<'_>, size: u64) -> Result<(), ReadError> {
        let max = cx.cfg.fingerprint_bytes;
        match self.fp.check(&self.file, size, max, &mut cx.bufs.prefix)? {
            PrefixCheck::Same(fp) => {
                self.fp = fp;
                Ok(())
            }
            PrefixCheck::Different => Err(ReadError::Truncated),
        }
    }

    /// After copytruncate: this identity (key, offset) continues in `copy`, whose file handle the
    /// caller already swapped in. The copy is complete; it is drained and then released unless it
    /// sits at a matched path.
    pub(crate) fn continue_in_copy(&mut self, path: PathBuf, id: FileId, now: Instant) {
        self.path = path;
        self.id = id;
        self.source = None;
        self.lines = LineState::at(self.lines.offset);
        self.seen_size = self.lines.offset;
        self.last_change = now;
        self.detached_since = Some(now);
    }

    /// A copy-like file that no truncation claimed within `wait` of its last change is a file of
    /// its own: read it from the start. Returns whether it was promoted.
    pub(crate) fn promote_if_unclaimed(&mut self, now: Instant, wait: Duration) -> bool {
        if self.shadow_of.is_none() || now.saturating_duration_since(self.last_change) < wait {
            return false;
        }
        self.shadow_of = None;
        self.seen_size = 0;
        self.lines = LineState::at(0);
        self.framing = None;
        self.last_change = now;
        true
    }

    /// True when a rotated-away or deleted file has been drained and idle long enough to release.
    pub(crate) fn releasable(&self, polled: Polled, now: Instant, idle: Duration) -> bool {
        let Some(since) = self.detached_since else {
            return false;
        };
        polled.at_eof
            && now.saturating_duration_since(since) >= idle
            && now.saturating_duration_since(self.last_change) >= idle
    }
}
