//! Rotation-safe file tailing: finds files by glob, follows each file by identity (device, inode and a
//! fingerprint of its first bytes) through rename, copytruncate, truncation and delete-while-open, and
//! hands every line synchronously to a [`LineSink`] on the tailer's own thread.
//!
//! Design constraints:
//! - Polling is the source of truth (no inotify): one pass reads every open file to EOF (bounded per
//!   file per pass), a glob re-scan every `glob_interval_ms` finds new, renamed and vanished files.
//! - A file's key is computed once, when it is first opened with at least one byte, and never changes:
//!
//! ```text
//! key = "{dev}:{ino}:{fp_len}:{crc32c:08x}"
//!        dev, ino  device and inode of the file when it was first keyed
//!        fp_len    number of leading bytes covered by the fingerprint (1..=fingerprint_bytes)
//!        crc32c    CRC-32C of those fp_len bytes
//! ```
//!
//!   Later candidates are matched by comparing the same prefix length, so short files have no blind
//!   spot. Internally the fingerprint grows up to `fingerprint_bytes` as the file grows (the key does
//!   not), which makes copy and truncation detection sharper.
//! - A line is emitted once: the read offset only advances past bytes handed to the sink. Lines from a
//!   rotated file are drained to EOF before its handle is released; bytes that cannot be recovered are
//!   reported as a gap, never dropped silently.
//! - No per-line allocation: one reusable read buffer per tailer, lines are slices of it.
//! - At most [`MAX_OPEN_FILES`] files are held open; files past the limit are not opened (a WARN per
//!   file at most once a minute) until rotated files are released; every re-scan retries them.
//!
//! Semantics worth knowing:
//! - A last line without a newline is emitted after the file stayed unchanged for `idle_flush_ms`
//!   (or when the file is released); bytes appended later to that same line start a new line.
//! - Lines end at the byte 0x0A, or at the UTF-16 code unit 0x000A when the input's framing or
//!   the file's byte-order mark says UTF-16 (`framing.rs`); a mark is never part of a line.
//! - Lines longer than `max_line_bytes` are cut; the rest up to the newline is skipped and the line
//!   reports its full original length in `truncated_from`.
//! - `StartAt::End` on a first run starts at the current size of each file found by the first scan,
//!   which can be in the middle of a line. Such a file has a position (see [`Tailer::positions`])
//!   before any line is emitted; an agent that persists positions only from `line`/`gap` calls
//!   re-reads it from 0 after a restart.
//! - Rename to another matched name: same key, `open_source` again with the new path. Rename to an
//!   unmatched name, or delete: drained to EOF, released after `max(idle_flush_ms,
//!   glob_interval_ms)` without growth, then `close_source`.
//! - Copytruncate: the old key continues in the copy (`open_source(key, copy_path)`) from the old
//!   offset; the truncated file restarts at 0 under a new key. No copy: a gap for the bytes seen
//!   but not yet read, then `close_source`. An unreadable file logs a WARN and is retried; a read
//!   error on an open file also emits one gap record per failure streak (no bytes skipped).
//! - Restart recovery order is documented in `recover.rs`; an unresolvable checkpoint becomes a gap.
//! - Unix and Windows. On Windows the identity is (volume serial number, file index), files are
//!   opened with `FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE` so the writer can rotate
//!   and delete them, and globs take drive letters and backslashes (`platform.rs`, `identity.rs`,
//!   `discover/pattern.rs`).
//!
//! Known limits (inherent to polling, or documented trade-offs):
//! - A file created and rotated away between two glob re-scans is never seen.
//! - When the globs also match copytruncate copies (`app.log*`), a new file that starts with the
//!   whole fingerprint of an open file in the same directory is held back (not read) for
//!   10 × `glob_interval_ms` after its last change, so the truncation can claim it as the copy;
//!   if none does, it is read from 0 as a file of its own (a plain `cp` is read late, not lost).
//!   A file held back this way whose original is short can be mistaken for a copy.
//! - A truncate-and-rewrite whose new content starts with the same fingerprinted bytes (the same
//!   first `fingerprint_bytes`, or the whole of a shorter file) and reaches at least the old size
//!   before the next check cannot be told from appends; such a rewrite also gets the same key.
//! - A last line is flushed after `idle_flush_ms` even if the writer was merely slow.

mod config;
mod discover;
mod framing;
mod identity;
mod lines;
mod platform;
mod recover;
mod tailer;
mod watched;

use std::path::Path;

pub use config::{
    DEFAULT_FINGERPRINT_BYTES, DEFAULT_GLOB_INTERVAL_MS, DEFAULT_IDLE_FLUSH_MS,
    DEFAULT_MAX_LINE_BYTES, DEFAULT_POLL_INTERVAL_MS, DEFAULT_READ_BUF_BYTES, StartAt, TailConfig,
};
pub use framing::{Bom, Framing};
pub use tailer::{MAX_OPEN_FILES, PositionsHandle, Tailer};

/// The regular files matching `include` minus `exclude` right now, found as the tailer finds
/// them (for `check-config`, which warns about a pattern that matches nothing).
pub fn matching_files(
    include: &[String],
    exclude: &[String],
) -> Result<Vec<std::path::PathBuf>, TailError> {
    let matcher = discover::Matcher::new(include, exclude)?;
    Ok(matcher.scan().into_iter().map(|f| f.path).collect())
}

/// Checks that a glob compiles as the tailer compiles it: in the platform's path style (on
/// Windows `\` is a separator, drive letters are literal and case is ignored).
pub fn check_glob(pattern: &str) -> Result<(), TailError> {
    discover::check_glob(pattern)
}

/// A read position as persisted by the agent (identical shape to the spool's Position).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Stable file key (see the crate docs for its format).
    pub key: String,
    /// Last known path of the file.
    pub path: String,
    /// Byte offset just past the last line handed to the sink.
    pub offset: u64,
}

/// How far a read position is behind its file (see [`Checkpoint::behind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Behind {
    /// The file's current size in bytes.
    pub size: u64,
    /// Bytes past the read offset: `size - offset` (0 when the file shrank below the offset).
    pub bytes: u64,
}

// === impl Checkpoint ===

impl Checkpoint {
    /// How far this position is behind the file now at `path`, when that file is still the one
    /// it reads (same device and inode as the key); `None` when it is not (rotated away,
    /// replaced, deleted, a copytruncate copy) or cannot be examined. One `stat`, no open
    /// (Windows: one metadata-only open for the volume serial and file index).
    pub fn behind(&self) -> Option<Behind> {
        let (id, _) = identity::parse_key(&self.key)?;
        let path = std::path::Path::new(&self.path);
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() || identity::FileId::of_found(path, &meta).ok()? != id {
            return None;
        }
        Some(Behind {
            size: meta.len(),
            bytes: meta.len().saturating_sub(self.offset),
        })
    }
}

/// Index of a source registered with the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(pub u32);

/// The sink is shutting down; the tailer stops promptly.
#[derive(Debug)]
pub struct SinkClosed;

/// Where the tailer delivers what it reads. Implemented by the agent's batcher. All calls happen on the
/// tailer thread. Any call may block (back-pressure). Err(SinkClosed) means shut down: stop promptly.
pub trait LineSink {
    /// A file starts being read (or was renamed: same key, new path). Returns the id used in `line`.
    fn open_source(&mut self, key: &str, path: &Path) -> Result<SourceId, SinkClosed>;
    /// One line without its terminator (strip "\n" and a preceding "\r"). `truncated_from` is 0, or the
    /// original length in bytes when the line was cut at max_line_bytes. `offset_after` is the byte
    /// offset just past this line's terminator (or past the last byte, for an idle-flushed last line).
    fn line(
        &mut self,
        source: SourceId,
        raw: &[u8],
        truncated_from: u64,
        offset_after: u64,
    ) -> Result<(), SinkClosed>;
    /// Something could not be read (lost bytes, unreadable file): the agent turns it into an explicit
    /// gap record.
    fn gap(&mut self, source: SourceId, message: &str, offset_after: u64)
    -> Result<(), SinkClosed>;
    /// The file starts with this byte-order mark (called after each `open_source` of such a
    /// file, before its lines). Lines never include the mark, and UTF-16 marks switch the file
    /// to UTF-16 framing whatever the configured [`Framing`]. Sinks that decode text use it.
    fn byte_order_mark(&mut self, source: SourceId, bom: Bom) -> Result<(), SinkClosed> {
        let _ = (source, bom);
        Ok(())
    }
    /// The file is gone and fully read: its checkpoint can be forgotten.
    fn close_source(&mut self, source: SourceId) -> Result<(), SinkClosed>;
    /// Called at least every poll interval (also when idle), so the batcher can flush on time.
    fn tick(&mut self) -> Result<(), SinkClosed>;
}

/// Errors from building or running a [`Tailer`].
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// An include or exclude pattern is not a valid glob.
    #[error("invalid glob pattern {pattern:?}")]
    Glob {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    /// The configuration has problems; all of them are listed.
    #[error("invalid tail config: {}", .0.join("; "))]
    Config(Vec<String>),
}

#[cfg(test)]
mod behind_tests {
    use super::*;
    use identity::{FileId, Fingerprint, make_key};

    fn checkpoint_of(path: &Path, offset: u64) -> Checkpoint {
        let meta = std::fs::metadata(path).expect("stat");
        let fp = Fingerprint { len: 1, crc: 0 };
        Checkpoint {
            key: make_key(FileId::of_found(path, &meta).expect("identity"), fp),
            path: path.display().to_string(),
            offset,
        }
    }

    #[test]
    fn behind_is_size_minus_offset_of_the_same_file_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("app.log");
        std::fs::write(&path, vec![b'x'; 100]).expect("write");
        let cp = checkpoint_of(&path, 40);
        assert_eq!(
            cp.behind(),
            Some(Behind {
                size: 100,
                bytes: 60
            })
        );
        let done = Checkpoint {
            offset: 100,
            ..cp.clone()
        };
        assert_eq!(done.behind().map(|b| b.bytes), Some(0));
        // Truncated below the offset: nothing behind, never a negative or wrapped figure.
        std::fs::write(&path, b"short").expect("truncate");
        assert_eq!(cp.behind(), Some(Behind { size: 5, bytes: 0 }));
        // Rotated away: the file now at the path is another one, so the lag is unknown.
        std::fs::rename(&path, dir.path().join("app.log.1")).expect("rename");
        std::fs::write(&path, vec![b'y'; 10]).expect("new file");
        assert_eq!(cp.behind(), None);
        std::fs::remove_file(&path).expect("delete");
        assert_eq!(cp.behind(), None);
        let bad = Checkpoint {
            key: "journald".into(),
            ..cp
        };
        assert_eq!(bad.behind(), None);
    }
}
