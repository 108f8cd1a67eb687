//! The agent.toml file as written by people (serde structs, one doc paragraph per field).

use std::path::{Path, PathBuf};
use std::time::Duration;

use logship_tail::{StartAt, TailConfig};
use serde::Deserialize;

use super::{BatchLimits, FileInput, ShipperConfig};
use crate::file_input::{Boundary, Multiline, TextConfig, encoding_for_label, framing_of};

/// Top level of agent.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Format version; only 1 exists.
    pub version: u32,
    /// Where to ship.
    pub collector: RawCollector,
    /// Disk spool.
    #[serde(default)]
    pub spool: RawSpool,
    /// Batch bounds.
    #[serde(default)]
    pub batch: RawBatch,
    /// Connection behaviour.
    #[serde(default)]
    pub shipper: RawShipper,
    /// File inputs.
    #[serde(default)]
    pub file: Vec<RawFile>,
    /// journald inputs.
    #[serde(default)]
    pub journald: Vec<super::journald::RawJournald>,
    /// Syslog receivers.
    #[serde(default)]
    pub syslog: Vec<crate::syslog::RawSyslog>,
    /// Windows Event Log inputs.
    #[serde(default)]
    pub eventlog: Vec<super::eventlog::RawEventlog>,
    /// Folders of exported `.evtx` files.
    #[serde(default)]
    pub evtx: Vec<super::evtx_input::RawEvtx>,
}

/// `[collector]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollector {
    /// HOST:PORT list, tried in order (failover).
    pub endpoints: Vec<String>,
    /// CA certificate of the collector (relative to the config file).
    pub ca_cert: PathBuf,
    /// Agent certificate.
    pub cert: PathBuf,
    /// Agent private key (mode 0600).
    pub key: PathBuf,
}

/// `[spool]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSpool {
    /// Spool directory (relative to the config file).
    pub dir: PathBuf,
    /// Cap on spool bytes on disk; when reached, inputs stop reading (when_full = block).
    pub max_bytes: u64,
    /// Segment file size.
    pub segment_max_bytes: u64,
    /// fsync at least this often while data is pending.
    pub fsync_interval_ms: u64,
    /// fsync once this many bytes are pending (0 = only the interval).
    pub fsync_bytes: u64,
}

/// `[batch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBatch {
    /// Records per batch.
    pub max_records: u32,
    /// Uncompressed bytes per batch.
    pub max_bytes: usize,
    /// A batch is closed when its oldest record is this old.
    pub max_wait_ms: u64,
    /// zstd compression level (1 = fastest).
    pub zstd_level: i32,
}

/// `[shipper]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShipper {
    /// Batches sent but not yet acked.
    pub max_in_flight: usize,
    /// First reconnect delay (doubles, with jitter).
    pub backoff_initial_ms: u64,
    /// Largest reconnect delay.
    pub backoff_max_ms: u64,
    /// How often host facts and health are reported.
    pub heartbeat_interval_secs: u64,
}

/// `[[file]]`: one file input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// Input name, attached to every record.
    pub name: String,
    /// Glob patterns of files to read.
    pub include: Vec<String>,
    /// Glob patterns to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// For files present at the agent's very first start: "beginning" or "end".
    #[serde(default = "default_start_at")]
    pub start_at: StartAt,
    /// Longer lines are cut; the record keeps the original length.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// A last line without newline is sent after the file was idle this long.
    #[serde(default = "default_idle_flush_ms")]
    pub idle_flush_ms: u64,
    /// Character encoding of the files, a WHATWG label ("utf-8", "shift_jis", "euc-jp",
    /// "utf-16le", "utf-16be", "windows-1252"...). A byte-order mark in a file wins.
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Joins continuation lines (stack traces) into one record.
    #[serde(default)]
    pub multiline: Option<RawMultiline>,
}

/// `multiline = { start = '...' | continue = '...', max_bytes, timeout_ms }` of a `[[file]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMultiline {
    /// Regex: a line matching it starts a record (other lines continue the current one).
    #[serde(default)]
    pub start: Option<String>,
    /// Regex: a line matching it continues the current record (other lines start one).
    #[serde(default, rename = "continue")]
    pub continue_: Option<String>,
    /// Most bytes of the file one record holds; the rest of a longer record is skipped and
    /// the record keeps its whole length in `truncated_from`.
    #[serde(default = "default_multiline_max_bytes")]
    pub max_bytes: usize,
    /// A record is sent once no line was added to it for this long.
    #[serde(default = "default_multiline_timeout_ms")]
    pub timeout_ms: u64,
}

/// Upper bound of `batch.max_bytes`: a batch that does not compress at all (zstd adds at most
/// 1/256) stays under the collector's default caps, 16 MiB per message and 64 MiB decompressed.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

const fn default_start_at() -> StartAt {
    StartAt::Beginning
}
const fn default_max_line_bytes() -> usize {
    64 * 1024
}
const fn default_idle_flush_ms() -> u64 {
    1000
}
fn default_encoding() -> String {
    "utf-8".to_owned()
}
const fn default_multiline_max_bytes() -> usize {
    1 << 20
}
const fn default_multiline_timeout_ms() -> u64 {
    1000
}

impl Default for RawSpool {
    fn default() -> Self {
        let d = logship_spool::SpoolConfig::default();
        RawSpool {
            dir: PathBuf::from("spool"),
            max_bytes: d.max_bytes,
            segment_max_bytes: d.segment_max_bytes,
            fsync_interval_ms: d.fsync_interval_ms,
            fsync_bytes: d.fsync_bytes,
        }
    }
}

impl Default for RawBatch {
    fn default() -> Self {
        RawBatch {
            max_records: 20_000,
            max_bytes: 4 << 20,
            max_wait_ms: 1000,
            zstd_level: 1,
        }
    }
}

impl Default for RawShipper {
    fn default() -> Self {
        RawShipper {
            max_in_flight: 8,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            heartbeat_interval_secs: 30,
        }
    }
}

// === impl RawSpool ===

impl RawSpool {
    pub(super) fn build(self, base: &Path, p: &mut Vec<String>) -> logship_spool::SpoolConfig {
        if self.segment_max_bytes < 64 << 10 {
            p.push("spool.segment_max_bytes must be at least 64 KiB".into());
        }
        if self.max_bytes < 2 * self.segment_max_bytes {
            p.push("spool.max_bytes must be at least twice spool.segment_max_bytes".into());
        }
        logship_spool::SpoolConfig {
            dir: base.join(self.dir),
            max_bytes: self.max_bytes,
            segment_max_bytes: self.segment_max_bytes,
            fsync_interval_ms: self.fsync_interval_ms,
            fsync_bytes: self.fsync_bytes,
        }
    }
}

// === impl RawBatch ===

impl RawBatch {
    pub(super) fn build(self, p: &mut Vec<String>) -> BatchLimits {
        if self.max_records == 0 {
            p.push("batch.max_records must be greater than 0".into());
        }
        if !(1024..=MAX_BATCH_BYTES).contains(&self.max_bytes) {
            p.push(format!(
                "batch.max_bytes must be between 1 KiB and {} MiB (a batch that does not \
                 compress must still fit the collector's default 16 MiB message cap)",
                MAX_BATCH_BYTES >> 20
            ));
        }
        if !(1..=19).contains(&self.zstd_level) {
            p.push("batch.zstd_level must be between 1 and 19".into());
        }
        BatchLimits {
            max_records: self.max_records,
            max_bytes: self.max_bytes,
            max_wait: Duration::from_millis(self.max_wait_ms),
            zstd_level: self.zstd_level,
        }
    }
}

// === impl RawShipper ===

impl RawShipper {
    pub(super) fn build(self, p: &mut Vec<String>) -> ShipperConfig {
        if self.max_in_flight == 0 {
            p.push("shipper.max_in_flight must be greater than 0".into());
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            p.push("shipper.backoff_initial_ms must be > 0 and <= backoff_max_ms".into());
        }
        if self.heartbeat_interval_secs == 0 {
            p.push("shipper.heartbeat_interval_secs must be greater than 0".into());
        }
        ShipperConfig {
            max_in_flight: self.max_in_flight,
            backoff_initial: Duration::from_millis(self.backoff_initial_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_secs),
        }
    }
}

// === impl RawFile ===

impl RawFile {
    /// A file input for `--tail GLOB`.
    pub fn from_tail(name: String, glob: String) -> Self {
        RawFile {
            name,
            include: vec![glob],
            exclude: Vec::new(),
            start_at: default_start_at(),
            max_line_bytes: default_max_line_bytes(),
            idle_flush_ms: default_idle_flush_ms(),
            encoding: default_encoding(),
            multiline: None,
        }
    }

    pub(super) fn build(self, p: &mut Vec<String>) -> Option<FileInput> {
        let before = p.len();
        if self.name.is_empty() {
            p.push("file.name must not be empty".into());
        }
        if self.include.is_empty() {
            p.push(format!(
                "file {:?}: include must list at least one glob",
                self.name
            ));
        }
        for g in self.include.iter().chain(&self.exclude) {
            if let Err(e) = logship_tail::check_glob(g) {
                let e = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
                p.push(format!("file {:?}: bad glob {g:?}: {e}", self.name));
            }
        }
        if self.max_line_bytes < 16 {
            p.push(format!(
                "file {:?}: max_line_bytes must be at least 16",
                self.name
            ));
        }
        let encoding = encoding_for_label(&self.encoding);
        if encoding.is_none() {
            p.push(format!(
                "file {:?}: unknown encoding {:?} (use a label such as utf-8, shift_jis, \
                 euc-jp, utf-16le, utf-16be, windows-1252)",
                self.name, self.encoding
            ));
        }
        let multiline = self
            .multiline
            .and_then(|m| m.build(&self.name, self.max_line_bytes, p));
        if p.len() > before {
            return None;
        }
        let encoding = encoding.expect("checked above");
        let tail = TailConfig {
            input: self.name,
            include: self.include,
            exclude: self.exclude,
            start_at: self.start_at,
            max_line_bytes: self.max_line_bytes,
            idle_flush_ms: self.idle_flush_ms,
            framing: framing_of(encoding),
            ..TailConfig::default()
        };
        let text = TextConfig {
            encoding,
            multiline,
        };
        Some(FileInput { tail, text })
    }
}

// === impl RawMultiline ===

impl RawMultiline {
    fn build(self, input: &str, max_line_bytes: usize, p: &mut Vec<String>) -> Option<Multiline> {
        let before = p.len();
        let boundary = match (self.start, self.continue_) {
            (Some(re), None) => regex(input, "start", &re, p).map(Boundary::Start),
            (None, Some(re)) => regex(input, "continue", &re, p).map(Boundary::Continue),
            _ => {
                p.push(format!(
                    "file {input:?}: multiline needs exactly one of start or continue"
                ));
                None
            }
        };
        if self.max_bytes < max_line_bytes {
            p.push(format!(
                "file {input:?}: multiline.max_bytes ({}) must be at least max_line_bytes ({max_line_bytes})",
                self.max_bytes
            ));
        }
        if self.timeout_ms == 0 {
            p.push(format!(
                "file {input:?}: multiline.timeout_ms must be at least 1"
            ));
        }
        if p.len() > before {
            return None;
        }
        Some(Multiline {
            boundary: boundary?,
            max_bytes: self.max_bytes,
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

/// Compiles a multiline pattern, or records why it is not one.
fn regex(input: &str, key: &str, pattern: &str, p: &mut Vec<String>) -> Option<regex::Regex> {
    match regex::Regex::new(pattern) {
        Ok(re) => Some(re),
        Err(e) => {
            p.push(format!(
                "file {input:?}: multiline.{key} {pattern:?} is not a valid regex: {e}"
            ));
            None
        }
    }
}
