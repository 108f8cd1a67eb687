//! Tailer configuration: the runtime knobs of one file input, with defaults and validation.

use serde::Deserialize;

use crate::TailError;
use crate::framing::Framing;

/// Default maximum line length in bytes; longer lines are cut.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
/// Default time a file must stay unchanged before a last line without newline is emitted.
pub const DEFAULT_IDLE_FLUSH_MS: u64 = 1000;
/// Default maximum sleep between read passes when idle.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 250;
/// Default interval between glob re-scans.
pub const DEFAULT_GLOB_INTERVAL_MS: u64 = 1000;
/// Default number of leading bytes covered by a file fingerprint.
pub const DEFAULT_FINGERPRINT_BYTES: usize = 1024;
/// Default size of the reusable read buffer.
pub const DEFAULT_READ_BUF_BYTES: usize = 256 * 1024;

/// Configuration of one tailer (one file input).
#[derive(Clone, Debug)]
pub struct TailConfig {
    /// Input name, e.g. "varlog".
    pub input: String,
    /// Glob patterns, e.g. "/var/log/*.log", "/var/log/**/*.log".
    pub include: Vec<String>,
    /// Glob patterns of paths to ignore even if included.
    pub exclude: Vec<String>,
    /// Where to start in files seen for the first time on the very first run.
    pub start_at: StartAt,
    /// Longer lines are cut to this many bytes (default 64 KiB).
    pub max_line_bytes: usize,
    /// A last line without newline is emitted after the file stayed unchanged this long.
    pub idle_flush_ms: u64,
    /// Maximum sleep between passes when idle (adaptive backoff from ~10 ms up to this).
    pub poll_interval_ms: u64,
    /// Re-scan for new files this often.
    pub glob_interval_ms: u64,
    /// Leading bytes covered by the file fingerprint.
    pub fingerprint_bytes: usize,
    /// Size of the reusable read buffer.
    pub read_buf_bytes: usize,
    /// Where lines end: at byte 0x0A (default) or at the UTF-16 code unit 0x000A. A file's
    /// byte-order mark overrides it (see [`Framing`]).
    pub framing: Framing,
}

/// Where to start reading a file seen for the first time on the very first run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Read the whole file.
    Beginning,
    /// Skip what is already in the file.
    End,
}

// === impl TailConfig ===

impl Default for TailConfig {
    fn default() -> Self {
        TailConfig {
            input: String::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            start_at: StartAt::Beginning,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            idle_flush_ms: DEFAULT_IDLE_FLUSH_MS,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            glob_interval_ms: DEFAULT_GLOB_INTERVAL_MS,
            fingerprint_bytes: DEFAULT_FINGERPRINT_BYTES,
            read_buf_bytes: DEFAULT_READ_BUF_BYTES,
            framing: Framing::Bytes,
        }
    }
}

impl TailConfig {
    /// Checks cross-field rules and returns all problems at once.
    pub fn validate(&self) -> Result<(), TailError> {
        let mut problems = Vec::new();
        if self.include.is_empty() {
            problems.push("include must name at least one pattern".to_owned());
        }
        if self.max_line_bytes == 0 {
            problems.push("max_line_bytes must be at least 1".to_owned());
        }
        if self.fingerprint_bytes == 0 {
            problems.push("fingerprint_bytes must be at least 1".to_owned());
        }
        if self.poll_interval_ms == 0 {
            problems.push("poll_interval_ms must be at least 1".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TailError::Config(problems))
        }
    }

    /// Size of the chunk buffer: large enough to always hold a maximal line plus its terminator.
    pub(crate) fn chunk_bytes(&self) -> usize {
        self.read_buf_bytes.max(self.max_line_bytes + 4096)
    }

    /// How long a rotated-away or deleted file must stay idle before its handle is released.
    pub(crate) fn release_idle_ms(&self) -> u64 {
        self.idle_flush_ms.max(self.glob_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_reports_every_problem_and_bad_globs_are_rejected() {
        let cfg = TailConfig {
            max_line_bytes: 0,
            fingerprint_bytes: 0,
            ..TailConfig::default()
        };
        match cfg.validate() {
            Err(TailError::Config(problems)) => assert_eq!(problems.len(), 3, "{problems:?}"),
            other => panic!("expected config problems, got {other:?}"),
        }
        let cfg = TailConfig {
            include: vec!["/var/log/[.log".to_owned()],
            ..TailConfig::default()
        };
        let err = crate::Tailer::new(cfg, Vec::new(), true)
            .err()
            .expect("invalid glob");
        assert!(matches!(err, TailError::Glob { .. }), "{err}");
        assert!(err.to_string().starts_with("invalid glob pattern"));
    }
}
