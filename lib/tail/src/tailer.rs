//! The tailer loop: glob re-scans (new, renamed, vanished files), read passes over every open file,
//! truncation and copytruncate handling, release of drained rotated files, adaptive idle backoff.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{StartAt, TailConfig};
use crate::discover::Matcher;
use crate::identity::FileId;
use crate::lines::ReadError;
use crate::platform;
use crate::recover::{self, Lost};
use crate::watched::{Buffers, PollCx, Watched};
use crate::{Checkpoint, LineSink, SinkClosed, TailError};

mod positions;
mod truncation;

pub use positions::PositionsHandle;

/// Maximum number of files held open. Files found past this limit are not opened (a WARN per
/// file at most every minute) and are picked up by a later re-scan once rotated files are released;
/// lines written to such a file and rotated away before it could be opened are not read.
pub const MAX_OPEN_FILES: usize = 1024;

/// First sleep after an idle pass; doubles up to `poll_interval_ms`.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Repeated warnings about one path are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Follows the files matched by one input's globs. Runs on a dedicated thread (see [`Tailer::run`]).
pub struct Tailer {
    cfg: TailConfig,
    matcher: Matcher,
    files: HashMap<FileId, Watched>,
    bufs: Buffers,
    /// Checkpoints not found at start-up, reported as gaps when `run` starts.
    lost: Vec<Lost>,
    /// Last warning per path, to rate-limit repeated warnings.
    warned: HashMap<PathBuf, Instant>,
    next_scan: Instant,
    last_tick: Instant,
    shared: PositionsHandle,
}

// === impl Tailer ===

impl Tailer {
    /// `checkpoints`: positions restored from the spool. `first_run`: the agent has no state at all
    /// (start_at applies only then; files found later, or at a restart, are read from the beginning).
    pub fn new(
        config: TailConfig,
        checkpoints: Vec<Checkpoint>,
        first_run: bool,
    ) -> Result<Tailer, TailError> {
        config.validate()?;
        let matcher = Matcher::new(&config.include, &config.exclude)?;
        let now = Instant::now();
        let mut tailer = Tailer {
            bufs: Buffers::new(&config),
            cfg: config,
            matcher,
            files: HashMap::new(),
            lost: Vec::new(),
            warned: HashMap::new(),
            next_scan: now,
            last_tick: now,
            shared: PositionsHandle::default(),
        };
        let found = tailer.matcher.scan();
        let (resumed, lost) = recover::restore(
            checkpoints,
            &found,
            &tailer.matcher,
            &mut tailer.bufs.prefix,
            now,
        );
        tailer.lost = lost;
        for w in resumed {
            tailer.files.insert(w.id, w);
        }
        let at_end = first_run && tailer.cfg.start_at == StartAt::End;
        for f in found {
            if !tailer.files.contains_key(&f.id) {
                tailer.add_new(f.path, at_end, now);
            }
        }
        tailer.next_scan = now + tailer.glob_interval();
        tailer.shared.set(tailer.positions());
        Ok(tailer)
    }

    /// Runs until the sink returns SinkClosed or `stop` becomes true. Checks `stop` at least every
    /// poll interval, and between files; a sink call that blocks (back-pressure) delays that check,
    /// so a sink that is shutting down should return `SinkClosed` rather than keep blocking.
    /// Checkpoints not found by [`Tailer::new`] are reported first, as gaps.
    pub fn run(&mut self, sink: &mut dyn LineSink, stop: &AtomicBool) -> Result<(), TailError> {
        let outcome = self.run_until_closed(sink, stop);
        self.shared.set(self.positions());
        match outcome {
            Ok(()) => tracing::debug!(input = %self.cfg.input, "Tailer stopped."),
            Err(SinkClosed) => {
                tracing::debug!(input = %self.cfg.input, "Sink closed; tailer stopped.")
            }
        }
        Ok(())
    }

    /// A handle to read positions from another thread while `run` is running.
    pub fn positions_handle(&self) -> PositionsHandle {
        self.shared.clone()
    }

    /// Current read positions (for heartbeats).
    pub fn positions(&self) -> Vec<Checkpoint> {
        let mut out: Vec<Checkpoint> = self
            .files
            .values()
            .filter_map(|w| {
                let key = w.key.clone()?;
                let path = w.path().to_string_lossy().into_owned();
                Some(Checkpoint {
                    key,
                    path,
                    offset: w.lines.offset,
                })
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.key.cmp(&b.key)));
        out
    }

    fn run_until_closed(
        &mut self,
        sink: &mut dyn LineSink,
        stop: &AtomicBool,
    ) -> Result<(), SinkClosed> {
        self.report_lost(sink)?;
        let poll_max = Duration::from_millis(self.cfg.poll_interval_ms);
        let mut backoff = MIN_BACKOFF.min(poll_max);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= self.next_scan {
                self.scan(now);
                self.next_scan = now + self.glob_interval();
                self.shared.set(self.positions());
            }
            let progressed = self.poll_all(sink, stop)?;
            sink.tick()?;
            self.last_tick = Instant::now();
            if progressed {
                backoff = MIN_BACKOFF.min(poll_max);
                continue;
            }
            let until_scan = self.next_scan.saturating_duration_since(Instant::now());
            std::thread::sleep(backoff.min(until_scan));
            backoff = (backoff * 2).min(poll_max);
        }
        Ok(())
    }

    /// Reports checkpoints whose file was not found at start-up as gaps, then forgets them.
    fn report_lost(&mut self, sink: &mut dyn LineSink) -> Result<(), SinkClosed> {
        while let Some(lost) = self.lost.last() {
            let cp = &lost.checkpoint;
            let source = sink.open_source(&cp.key, Path::new(&cp.path))?;
            sink.gap(source, &lost.message, cp.offset)?;
            sink.close_source(source)?;
            self.lost.pop();
        }
        Ok(())
    }

    /// Re-scans the globs: opens new files, follows renames, marks vanished files as detached.
    fn scan(&mut self, now: Instant) {
        let mut by_id: HashMap<FileId, Vec<PathBuf>> = HashMap::new();
        for f in self.matcher.scan() {
            by_id.entry(f.id).or_default().push(f.path);
        }
        for w in self.files.values_mut() {
            let Some(paths) = by_id.get(&w.id) else {
                w.detached_since.get_or_insert(now);
                continue;
            };
            w.detached_since = None;
            if !paths.contains(&w.path) {
                let new_path = paths.iter().min().expect("grouped paths are never empty");
                tracing::info!(from = %w.path.display(), to = %new_path.display(), "File renamed.");
                w.path = new_path.clone();
                w.source = None;
            }
        }
        for (id, mut paths) in by_id {
            if !self.files.contains_key(&id) {
                paths.sort();
                self.add_new(paths.swap_remove(0), false, now);
            }
        }
    }

    /// Opens a newly found file, read from the start (or from its end when `at_end`).
    fn add_new(&mut self, path: PathBuf, at_end: bool, now: Instant) {
        if self.files.len() >= MAX_OPEN_FILES {
            if warn_due(&mut self.warned, &path, now) {
                tracing::warn!(path = %path.display(), limit = MAX_OPEN_FILES, "Open file limit reached; file not tailed yet.");
            }
            return;
        }
        let opened = platform::open_shared(&path)
            .and_then(|file| Ok((file.metadata()?, FileId::of_file(&file)?, file)));
        let (meta, id, file) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                if warn_due(&mut self.warned, &path, now) {
                    tracing::warn!(path = %path.display(), %error, "Cannot open file; will retry.");
                }
                return;
            }
        };
        if self.files.contains_key(&id) {
            return;
        }
        self.warned.remove(&path);
        tracing::info!(path = %path.display(), "Tailing new file.");
        let mut w = Watched::new(path, file, id, now);
        w.shadow_of = recover::original_of(&self.files, &w, meta.len(), &mut self.bufs.prefix);
        if w.shadow_of.is_some() {
            tracing::info!(path = %w.path.display(), "New file looks like a copy of an open file; holding it back.");
            w.seen_size = meta.len();
        } else if at_end {
            w.skip_to_end(meta.len(), &self.cfg, &mut self.bufs.prefix);
        }
        self.files.insert(id, w);
    }

    /// One read pass over every open file. Returns whether anything was read.
    fn poll_all(&mut self, sink: &mut dyn LineSink, stop: &AtomicBool) -> Result<bool, SinkClosed> {
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        let mut progressed = false;
        for id in ids {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if self.last_tick.elapsed() >= Duration::from_millis(self.cfg.poll_interval_ms) {
                sink.tick()?;
                self.last_tick = Instant::now();
            }
            progressed |= self.poll_one(id, sink)?;
        }
        Ok(progressed)
    }

    fn poll_one(&mut self, id: FileId, sink: &mut dyn LineSink) -> Result<bool, SinkClosed> {
        let now = Instant::now();
        let Some(w) = self.files.get_mut(&id) else {
            return Ok(false);
        };
        let shadow_wait = Duration::from_millis(self.cfg.glob_interval_ms.saturating_mul(10));
        if w.promote_if_unclaimed(now, shadow_wait) {
            tracing::info!(path = %w.path.display(), "Copy-like file was not claimed; reading it as a new file.");
        }
        let mut cx = PollCx {
            cfg: &self.cfg,
            bufs: &mut self.bufs,
            sink,
            now,
        };
        match w.poll(&mut cx) {
            Ok(polled) => {
                w.read_failing = false;
                let idle = Duration::from_millis(self.cfg.release_idle_ms());
                if w.releasable(polled, now, idle) {
                    self.release(id, sink)?;
                    return Ok(true);
                }
                Ok(polled.progressed)
            }
            Err(ReadError::Sink) => Err(SinkClosed),
            Err(ReadError::Truncated) => {
                self.on_truncated(id, sink)?;
                Ok(true)
            }
            Err(ReadError::Io(error)) => {
                self.on_read_error(id, &error, sink, now)?;
                Ok(false)
            }
        }
    }

    /// Logs a read error (rate-limited) and makes the stall explicit with one gap record per
    /// failure streak (no bytes are skipped; the read is retried on the next pass).
    fn on_read_error(
        &mut self,
        id: FileId,
        error: &std::io::Error,
        sink: &mut dyn LineSink,
        now: Instant,
    ) -> Result<(), SinkClosed> {
        let Some(w) = self.files.get_mut(&id) else {
            return Ok(());
        };
        if warn_due(&mut self.warned, &w.path, now) {
            tracing::warn!(path = %w.path.display(), %error, "Cannot read file; will retry.");
        }
        if let (false, Some(source)) = (w.read_failing, w.source) {
            let offset = w.lines.offset;
            let message = format!("read error at offset {offset}: {error}; retrying");
            sink.gap(source, &message, offset)?;
        }
        w.read_failing = true;
        Ok(())
    }

    /// Emits the pending partial line of a drained, rotated-away file and forgets it.
    fn release(&mut self, id: FileId, sink: &mut dyn LineSink) -> Result<(), SinkClosed> {
        let Some(mut w) = self.files.remove(&id) else {
            return Ok(());
        };
        let mut cx = PollCx {
            cfg: &self.cfg,
            bufs: &mut self.bufs,
            sink,
            now: Instant::now(),
        };
        let flushed = w.flush(&mut cx);
        let Some(source) = w.source else {
            return Ok(());
        };
        match flushed {
            Ok(_) => {}
            Err(ReadError::Sink) => return Err(SinkClosed),
            Err(ReadError::Truncated | ReadError::Io(_)) => {
                let end = w.lines.read_end;
                let message = format!(
                    "last line unreadable at release; {} bytes after offset {} not read",
                    end - w.lines.offset,
                    w.lines.offset
                );
                sink.gap(source, &message, end)?;
            }
        }
        tracing::info!(path = %w.path.display(), offset = w.lines.offset, "Released rotated file.");
        sink.close_source(source)
    }

    fn glob_interval(&self) -> Duration {
        Duration::from_millis(self.cfg.glob_interval_ms)
    }
}

/// True when a warning about `path` is due (first time, or `WARN_EVERY` after the last one).
fn warn_due(warned: &mut HashMap<PathBuf, Instant>, path: &Path, now: Instant) -> bool {
    if let Some(last) = warned.get(path)
        && now.saturating_duration_since(*last) < WARN_EVERY
    {
        return false;
    }
    if warned.len() >= MAX_OPEN_FILES * 4 {
        warned.clear();
    }
    warned.insert(path.to_path_buf(), now);
    true
}
