//! The `[[evtx]]` input: watches a folder and imports every `.evtx` file put in it, exactly once,
//! with the same reader as `import-evtx` ([`super::file::import_file`]).
//!
//! Invariants:
//! - A file is read once its size and modification time stayed the same between two listings
//!   (a copy in progress is not read half-way); it is known by its content (SHA-256), so a copy
//!   or a renamed file is not stored again, and its position (`"{input}|sha256:HEX"`, as for
//!   `import-evtx`) moves in the same spool append as its events: a restart or kill at any point
//!   resumes the file where the spool says, storing every event once.
//! - A file that is not a readable `.evtx` is logged once and left alone until it changes; an
//!   unreadable part of a file becomes a gap record (as for `import-evtx`). A folder that cannot
//!   be listed is reported in the heartbeat (`input_errors`) and listed again at the next scan.
//! - A file that changes after it was read has a new identity and is read again in full (its
//!   earlier events stored twice); this is logged as a warning. Files must be put in whole.
//! - What is remembered per file in memory is bounded by the files in the folder: entries of
//!   files no longer listed are dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use logship_tail::{Checkpoint, LineSink};

use super::file::{FileError, Progress, identify, import_file};
use crate::batcher::Batcher;
use crate::config::EvtxInput;
use crate::input_errors::InputErrors;

/// How often the batcher's clock and age flush run, and the stop flag is looked at.
const TICK: Duration = Duration::from_millis(100);

/// What the input knows of one file of the folder.
#[derive(Debug)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    /// Size and time were the same at the last listing.
    stable: bool,
    /// Read to its end (or refused as not an .evtx) in this state.
    done: bool,
}

/// Starts the input thread. `checkpoints` are the input's positions (prefix removed).
pub fn spawn(
    config: EvtxInput,
    checkpoints: &[Checkpoint],
    batcher: Batcher,
    errors: InputErrors,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let stored: HashMap<String, Progress> = checkpoints
        .iter()
        .filter(|c| c.key.starts_with("sha256:"))
        .map(|c| (c.key.clone(), Progress::from_position(c.offset, &c.path)))
        .collect();
    let name = config.name.clone();
    std::thread::Builder::new()
        .name(format!("input-{name}"))
        .spawn(move || {
            let mut watch = Watch {
                config,
                batcher,
                stored,
                seen: HashMap::new(),
                errors,
            };
            watch.run(&stop);
            if let Err(error) = watch.batcher.flush() {
                tracing::warn!(input = %watch.config.name, %error,
                    "Last batch not spooled; its events will be read again.");
            }
        })
}

struct Watch {
    config: EvtxInput,
    batcher: Batcher,
    /// Progress by file identity, as spooled.
    stored: HashMap<String, Progress>,
    seen: HashMap<PathBuf, Seen>,
    errors: InputErrors,
}

impl Watch {
    fn run(&mut self, stop: &AtomicBool) {
        let mut last_scan: Option<Instant> = None;
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                if self.batcher.tick().is_err() {
                    return;
                }
            }
            if last_scan.is_none_or(|t| t.elapsed() >= self.config.scan_interval) {
                last_scan = Some(Instant::now());
                if self.scan(stop).is_err() {
                    return;
                }
                continue;
            }
            std::thread::sleep(TICK);
        }
    }

    /// Lists the folder and reads the files that are ready. Err = the spool was closed.
    fn scan(&mut self, stop: &AtomicBool) -> Result<(), FileError> {
        let name = self.config.name.clone();
        let listing = match std::fs::read_dir(&self.config.folder) {
            Ok(l) => l,
            Err(e) => {
                self.errors.set(
                    &name,
                    &format!("cannot list {}: {e}", self.config.folder.display()),
                );
                return Ok(());
            }
        };
        self.errors.clear(&name);
        let mut present = Vec::new();
        for entry in listing.flatten() {
            let path = entry.path();
            let is_evtx = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("evtx"));
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !is_evtx || !meta.is_file() {
                continue;
            }
            let (len, modified) = (meta.len(), meta.modified().ok());
            present.push(path.clone());
            let seen = self.seen.entry(path.clone()).or_insert(Seen {
                len,
                modified,
                stable: false,
                done: false,
            });
            if seen.len != len || seen.modified != modified {
                if seen.done {
                    tracing::warn!(input = %self.config.name, file = %path.display(),
                        "An .evtx file changed after it was read; it is read again as a new \
                         file, so events it already had are stored twice (copy files into the \
                         folder whole: copy elsewhere, then move them in).");
                }
                *seen = Seen {
                    len,
                    modified,
                    stable: false,
                    done: false,
                };
                continue;
            }
            seen.stable = true;
            if seen.done {
                continue;
            }
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let done = self.read(&path, stop)?;
            if let Some(seen) = self.seen.get_mut(&path) {
                seen.done = done;
            }
        }
        self.seen.retain(|p, _| present.contains(p));
        Ok(())
    }

    /// Imports one stable file; true when it needs no more reading in its current state.
    fn read(&mut self, path: &std::path::Path, stop: &AtomicBool) -> Result<bool, FileError> {
        let name = &self.config.name;
        let id = match identify(path) {
            Ok(id) => id,
            Err(error) => {
                tracing::warn!(input = %name, %error, "Cannot read an .evtx file; trying again.");
                return Ok(false);
            }
        };
        let before = self.stored.get(&id).cloned().unwrap_or_default();
        match import_file(&mut self.batcher, path, &id, &before, stop) {
            Ok(report) => {
                if report.imported > 0 || report.unreadable > 0 {
                    tracing::info!(input = %name, file = %path.display(), imported = report.imported,
                        already = report.already, unreadable = report.unreadable,
                        interrupted = report.interrupted, "Imported an .evtx file.");
                }
                self.stored.insert(id, report.progress);
                Ok(!report.interrupted)
            }
            Err(FileError::Closed) => Err(FileError::Closed),
            Err(error) => {
                tracing::warn!(input = %name, %error,
                    "Not an .evtx file the agent can read; left alone until it changes.");
                Ok(true)
            }
        }
    }
}
