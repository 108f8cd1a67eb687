//! `Spool::open`'s recovery: load the ledger, scan segments, truncate a torn tail, quarantine
//! damaged segments, drop fully acked ones and rebuild the in-memory index.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{error, info, warn};

use crate::io::{fsync_dir, parse_segment_name, quarantine, sync_read_only};
use crate::ledger::{self, Ledger, LoadError};
use crate::record::HEADER_LEN;
use crate::scan::{Scan, scan_segment};
use crate::state::{Positions, RecordMeta, Segment, State};
use crate::{LostRange, Recovered, SpoolConfig, SpoolError};

/// A segment that survived the scan.
struct Kept {
    first_seq: u64,
    path: PathBuf,
    records: Vec<RecordMeta>,
}

impl Kept {
    fn end_seq(&self) -> u64 {
        self.records
            .last()
            .map_or(self.first_seq, RecordMeta::end_seq)
    }
    fn len(&self) -> u64 {
        self.records
            .last()
            .map_or(HEADER_LEN, |r| r.offset + r.frame_len)
    }
}

/// Rebuilds the spool state from `config.dir` (which the caller has locked).
pub(crate) fn recover(config: &SpoolConfig) -> Result<(State, Recovered), SpoolError> {
    let dir = config.dir.as_path();
    let ledger_path = ledger::ledger_path(dir);
    let ledger_existed = ledger_path
        .try_exists()
        .map_err(SpoolError::io("stat", &ledger_path))?;
    let (mut ledger, ledger_found) = load_ledger(dir)?;
    let names = list_segments(dir)?;
    // A damaged ledger is not a first run: files were read before, positions are just lost.
    let first_run = !ledger_existed && names.is_empty();
    if !ledger_found && !names.is_empty() {
        warn!(dir = %dir.display(), "Spool ledger missing; starting a new stream over the existing segments.");
    }
    let mut lost = Vec::new();
    let kept = scan_all(dir, &names, &mut lost);
    let mut state = State {
        acked_through: ledger.acked_through,
        ..State::default()
    };
    let positions = index_segments(&mut state, &mut ledger, ledger_found, kept, dir)?;
    let lost_end = lost.iter().map(|l| l.last_seq + 1).max().unwrap_or(1);
    let seg_end = state.segments.back().map_or(1, Segment::end_seq);
    state.next_seq = seg_end.max(lost_end).max(state.acked_through + 1);
    state.durable_next_seq = state.next_seq;
    state.bytes = state.segments.iter().map(|s| s.len).sum();
    state.quarantined_segments = lost.len() as u64;
    finish_writer(&mut state.segments, state.next_seq, dir)?;
    info!(dir = %dir.display(), next_seq = state.next_seq, acked_through = state.acked_through,
        segments = state.segments.len(), lost = lost.len(), "Spool recovered.");
    let recovered = Recovered {
        stream_id: ledger.stream_id,
        next_seq: state.next_seq,
        acked_through: state.acked_through,
        positions: positions.to_vec(),
        first_run,
        lost,
    };
    Ok((state, recovered))
}

/// Merges positions (ledger, then every surviving record in seq order), indexes the segments
/// still needed and deletes fully acked ones after folding their positions into the ledger.
/// Returns the merged positions.
fn index_segments(
    state: &mut State,
    ledger: &mut Ledger,
    ledger_found: bool,
    kept: Vec<Kept>,
    dir: &Path,
) -> Result<Positions, SpoolError> {
    let mut positions = ledger.positions.clone();
    state.ledger = ledger.positions.clone();
    let mut acked = Vec::new();
    for k in kept {
        for r in &k.records {
            positions.apply(&r.positions);
        }
        if k.fully_acked_by(state.acked_through) {
            state.ledger = positions.clone();
            acked.push(k.path);
        } else {
            state.segments.push_back(open_segment(k)?);
        }
    }
    if !ledger_found || !acked.is_empty() {
        ledger.positions = state.ledger.clone();
        ledger::store(dir, ledger)?;
    }
    acked.iter().for_each(|p| remove_acked(p));
    Ok(positions)
}

impl Kept {
    fn fully_acked_by(&self, acked_through: u64) -> bool {
        self.end_seq() <= acked_through + 1
    }
}

fn load_ledger(dir: &Path) -> Result<(Ledger, bool), SpoolError> {
    match ledger::load(dir) {
        Ok(Some(l)) => Ok((l, true)),
        Ok(None) => Ok((ledger::fresh(), false)),
        Err(LoadError::Io(e)) => Err(e),
        Err(LoadError::Damaged(reason)) => {
            let moved = quarantine(dir, &ledger::ledger_path(dir));
            error!(%reason, quarantined = %moved.display(), "Spool ledger damaged; starting a new stream.");
            Ok((ledger::fresh(), false))
        }
    }
}

/// Segment files sorted by first seq; other files are left alone.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(SpoolError::io("list directory", dir))? {
        let entry = entry.map_err(SpoolError::io("list directory", dir))?;
        let name = entry.file_name();
        if let Some(seq) = name.to_str().and_then(parse_segment_name) {
            names.push((seq, entry.path()));
        }
    }
    names.sort_unstable_by_key(|(seq, _)| *seq);
    drop_empty_tail(&mut names);
    Ok(names)
}

/// Removes trailing segments that hold no record (a crash right after a roll can leave one, and
/// the segment before it, whose torn tail was never fsync'd, must then count as the last one).
fn drop_empty_tail(names: &mut Vec<(u64, PathBuf)>) {
    while let Some((_, path)) = names.last() {
        let empty = fs::metadata(path).is_ok_and(|m| m.len() <= HEADER_LEN);
        if !empty {
            return;
        }
        if let Err(error) = fs::remove_file(path) {
            warn!(path = %path.display(), %error, "Cannot remove an empty spool segment.");
            return;
        }
        info!(path = %path.display(), "Removed an empty trailing spool segment.");
        names.pop();
    }
}

/// A segment file found on disk.
struct Candidate<'a> {
    first_seq: u64,
    path: &'a Path,
    /// The first seq of the next segment file, which bounds what this one held.
    next_name: Option<u64>,
}

fn scan_all(dir: &Path, names: &[(u64, PathBuf)], lost: &mut Vec<LostRange>) -> Vec<Kept> {
    let mut kept: Vec<Kept> = Vec::new();
    for (i, (first_seq, path)) in names.iter().enumerate() {
        let next_name = names.get(i + 1).map(|(seq, _)| *seq);
        let c = Candidate {
            first_seq: *first_seq,
            path,
            next_name,
        };
        let scan = if kept.last().is_some_and(|k| k.end_seq() > c.first_seq) {
            let reason = "segment overlaps the previous one".to_string();
            Scan::Corrupt {
                reason,
                known_end_seq: c.first_seq,
            }
        } else {
            scan_segment(path, c.first_seq, next_name.is_none())
        };
        if let Some(k) = settle(dir, &c, scan, lost) {
            kept.push(k);
        }
    }
    kept
}

/// Acts on a scan: keeps a clean segment, truncates a torn one, quarantines a damaged one.
fn settle(dir: &Path, c: &Candidate<'_>, scan: Scan, lost: &mut Vec<LostRange>) -> Option<Kept> {
    let records = match scan {
        Scan::Clean { records } => records,
        Scan::Torn {
            records,
            valid_len,
            reason,
        } => match truncate_torn(c.path, valid_len, &reason) {
            Ok(true) => records,
            Ok(false) => return None,
            Err(e) => {
                let known = records.last().map_or(c.first_seq, RecordMeta::end_seq);
                lost.push(quarantine_lost(dir, c, known, e.to_string()));
                return None;
            }
        },
        Scan::Corrupt {
            reason,
            known_end_seq,
        } => {
            lost.push(quarantine_lost(dir, c, known_end_seq, reason));
            return None;
        }
    };
    Some(Kept {
        first_seq: c.first_seq,
        path: c.path.to_path_buf(),
        records,
    })
}

fn quarantine_lost(dir: &Path, c: &Candidate<'_>, known_end_seq: u64, reason: String) -> LostRange {
    let first_seq = c.first_seq;
    let last_seq = c
        .next_name
        .map_or(known_end_seq.saturating_sub(1), |n| n - 1)
        .max(first_seq);
    let segment = quarantine(dir, c.path);
    error!(path = %c.path.display(), quarantined = %segment.display(), first_seq, last_seq, %reason,
        "Spool segment damaged; quarantined.");
    LostRange {
        first_seq,
        last_seq,
        segment,
        reason,
    }
}

/// Cuts a torn tail; returns false when nothing valid was left and the file was removed.
fn truncate_torn(path: &Path, valid_len: u64, reason: &str) -> Result<bool, SpoolError> {
    warn!(path = %path.display(), valid_len, %reason, "Spool segment has a torn tail; truncating it.");
    if valid_len < HEADER_LEN {
        fs::remove_file(path).map_err(SpoolError::io("remove torn segment", path))?;
        return Ok(false);
    }
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(SpoolError::io("open", path))?;
    f.set_len(valid_len)
        .map_err(SpoolError::io("truncate", path))?;
    f.sync_all().map_err(SpoolError::io("fsync", path))?;
    Ok(true)
}

fn remove_acked(path: &Path) {
    if let Err(error) = fs::remove_file(path) {
        warn!(path = %path.display(), %error, "Cannot remove an acked spool segment.");
    }
}

fn open_segment(k: Kept) -> Result<Segment, SpoolError> {
    let file = File::open(&k.path).map_err(SpoolError::io("open segment", &k.path))?;
    Ok(Segment {
        first_seq: k.first_seq,
        len: k.len(),
        file: Arc::new(file),
        writable: false,
        path: k.path,
        records: k.records,
    })
}

/// Makes everything recovered durable and reopens the last segment for appends when it ends
/// exactly at `next_seq`.
fn finish_writer(
    segments: &mut VecDeque<Segment>,
    next_seq: u64,
    dir: &Path,
) -> Result<(), SpoolError> {
    for seg in segments.iter() {
        sync_read_only(&seg.file, &seg.path).map_err(SpoolError::io("fsync", &seg.path))?;
    }
    fsync_dir(dir)?;
    if let Some(last) = segments.back_mut().filter(|s| s.end_seq() == next_seq) {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&last.path)
            .map_err(SpoolError::io("open segment", &last.path))?;
        last.file = Arc::new(file);
        last.writable = true;
    }
    Ok(())
}
