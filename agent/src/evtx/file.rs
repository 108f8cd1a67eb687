//! Reading one exported `.evtx` file into a [`Batcher`], exactly once across interruptions.
//!
//! A file is known by its content ([`identify`]: SHA-256 of every byte), never by its path, so a
//! copy or a renamed export is the same file. Its spool position (key `"{input}|sha256:HEX"`)
//! says how far the import got:
//! - `offset` = the highest record id spooled so far;
//! - `path` = a [`Progress`] as JSON: how many *late* records (an id not above every id before it
//!   in the file) and how many *unreadable* parts (recorded as gap records) were spooled so far,
//!   and the file's path for people.
//!
//! Invariants:
//! - Records are read in the order the `evtx` crate gives (chunk by chunk from the oldest chunk,
//!   record by record), which is record id order in any log Windows wrote; the order is fixed for
//!   a given file, so counting late records and unreadable parts identifies them across runs.
//! - The position moves in the same spool append as the record or gap it follows (the batcher's
//!   invariant), so after a kill at any point a rerun skips exactly what is on the spool:
//!   in-order records with an id up to `offset`, the first `late` late records and the first
//!   `unreadable` unreadable parts.
//! - An unreadable record or chunk becomes one gap record (kind gap) naming the file and the
//!   error; reading goes on with the next record or chunk. A panic of the parser is caught and
//!   ends the file the same way (one gap for the rest of it); the next file is read.
//! - The offset is never `u64::MAX` (the spool's "forgotten" marker): a record with that id (a
//!   damaged header) counts as late.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use evtx::{EvtxParser, ParserSettings};
use logship_tail::{LineSink, SinkClosed};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::record::{EventRecord, Known};
use crate::batcher::Batcher;

/// Records between two batcher ticks (a batch older than `max_wait` is closed on a tick, so the
/// shipper sees a large file's first events while the rest is read).
const TICK_EVERY: u64 = 64;
/// The gap message's reason when the parser panics.
const PANICKED: &str = "the evtx parser failed (panic); the rest of the file is not read";

/// Why a file could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an EVTX file (or its header is damaged beyond use).
    #[error("{path} is not a readable .evtx file: {reason}")]
    NotEvtx {
        /// The file.
        path: String,
        /// The parser's error and its causes.
        reason: String,
    },
    /// The spool was closed (the agent is stopping).
    #[error("the spool was closed")]
    Closed,
}

impl From<SinkClosed> for FileError {
    fn from(_: SinkClosed) -> Self {
        FileError::Closed
    }
}

/// How far the import of one file got: the spool position of the file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Highest record id spooled (the position's `offset`); 0 = none.
    #[serde(skip)]
    pub last_record_id: u64,
    /// Late records spooled (ids not above every id before them in the file).
    pub late: u64,
    /// Unreadable parts spooled as gap records.
    pub unreadable: u64,
    /// The file's path when it was imported (for people; not used to resume).
    pub file: String,
}

impl Progress {
    /// The progress persisted in a position (`offset`, `path` = the JSON token).
    pub fn from_position(offset: u64, token: &str) -> Progress {
        let mut p: Progress = serde_json::from_str(token).unwrap_or_else(|error| {
            tracing::warn!(%error, token, "Unreadable evtx import position; resuming by record id only.");
            Progress::default()
        });
        p.last_record_id = offset;
        p
    }

    /// The JSON kept in the position's `path`.
    pub fn token(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings and numbers always serializes")
    }
}

/// What the import of one file did.
#[derive(Debug, Default, Clone)]
pub struct FileReport {
    /// Events spooled by this run.
    pub imported: u64,
    /// Events skipped because an earlier run spooled them.
    pub already: u64,
    /// Unreadable parts in the file (recorded as gaps by this run or an earlier one).
    pub unreadable: u64,
    /// Late records in the file (an id not above every id before it).
    pub late: u64,
    /// The run was stopped before the end of the file.
    pub interrupted: bool,
    /// Where the import stands now.
    pub progress: Progress,
}

/// An error and its sources, `: `-separated (the `evtx` crate's errors say little on their own).
fn describe(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts
        .iter()
        .map(|p| p.trim_end_matches('.'))
        .collect::<Vec<_>>()
        .join(": ")
}

/// The identity of a file: `sha256:` and the hex SHA-256 of its content.
pub fn identify(path: &Path) -> Result<String, FileError> {
    let io = |source| FileError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex_of(&hasher.finalize())))
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        write!(s, "{b:02x}").expect("writing to a String cannot fail");
        s
    })
}

/// The parser settings of the import: compact XML (no indentation), one thread, every chunk
/// read whatever its checksum (a log not closed cleanly keeps stale checksums; a chunk that is
/// really damaged fails to parse and becomes a gap).
fn settings() -> ParserSettings {
    ParserSettings::new()
        .indent(false)
        .validate_checksums(false)
}

/// Reads `path` (identity `id`) into `batcher`, skipping what `done` says is already spooled.
/// Returns early, with `interrupted` set, once `stop` is set.
pub fn import_file(
    batcher: &mut Batcher,
    path: &Path,
    id: &str,
    done: &Progress,
    stop: &AtomicBool,
) -> Result<FileReport, FileError> {
    let shown = path.display().to_string();
    let mut parser = EvtxParser::from_path(path)
        .map_err(|error| FileError::NotEvtx {
            path: shown.clone(),
            reason: describe(&error),
        })?
        .with_configuration(settings());
    let source = batcher.open_source(id, path)?;
    let mut report = FileReport {
        progress: Progress {
            file: shown.clone(),
            ..done.clone()
        },
        ..FileReport::default()
    };
    let mut max_id = 0u64;
    let mut seen = 0u64;
    let mut records = parser.records();
    loop {
        // A parser panic (a file shaped in a way the crate does not expect) ends this file like
        // an unreadable part: the rest of the file is one gap, the next file is read.
        let (item, panicked) = match catch_unwind(AssertUnwindSafe(|| records.next())) {
            Ok(Some(Ok(rec))) => (Ok(rec), false),
            Ok(Some(Err(error))) => (Err(describe(&error)), false),
            Ok(None) => break,
            Err(_) => (Err(PANICKED.to_string()), true),
        };
        if stop.load(Ordering::SeqCst) {
            report.interrupted = true;
            return Ok(report);
        }
        seen += 1;
        if seen.is_multiple_of(TICK_EVERY) {
            batcher.tick()?;
        }
        let p = &mut report.progress;
        match item {
            Ok(rec) => {
                let record_id = rec.event_record_id;
                // u64::MAX is the spool's "forgotten" offset: such an id (a damaged header)
                // never becomes the position, it is counted as a late record.
                if record_id > max_id && record_id != u64::MAX {
                    max_id = record_id;
                    if record_id <= done.last_record_id {
                        report.already += 1;
                        continue;
                    }
                    p.last_record_id = record_id;
                } else {
                    report.late += 1;
                    if report.late <= done.late {
                        report.already += 1;
                        continue;
                    }
                    tracing::warn!(file = %shown, record_id, after = max_id,
                        "Record id out of order; importing it anyway.");
                    p.late = report.late;
                }
                let known = Known {
                    record_id: Some(record_id),
                    event_ns: i64::try_from(rec.timestamp.as_nanosecond()).ok(),
                    message: None,
                };
                EventRecord::from_xml(&rec.data, known).push(batcher, source)?;
                batcher.set_position(source, Some(p.token()), p.last_record_id);
                report.imported += 1;
            }
            Err(error) => {
                report.unreadable += 1;
                if report.unreadable > done.unreadable {
                    p.unreadable = report.unreadable;
                    let message = format!(
                        "import-evtx: {shown}: unreadable part after record id {max_id}: {error}"
                    );
                    tracing::error!(file = %shown, after_record_id = max_id, %error,
                        "Part of the file is unreadable; recording a gap.");
                    batcher.push_gap(source, &message)?;
                    batcher.set_position(source, Some(p.token()), p.last_record_id);
                }
                if panicked {
                    break;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
