//! Finding files again: the file behind each checkpoint restored by the agent (restart
//! recovery), and copies of a file (copytruncate).
//!
//! Search order for a checkpoint `(key, path, offset)`, where the key gives (dev, ino) and a prefix
//! fingerprint; a file always has to start with the fingerprinted bytes:
//! 1. the same path with the same (dev, ino);
//! 2. any matched path with the same (dev, ino) (renamed to another matched name);
//! 3. the checkpoint path's directory, matched or not (rotated away while the agent was down):
//!    first the same (dev, ino), then another inode at least `offset` long with the same prefix
//!    (a copytruncate copy), unmatched paths and then newer files first.
//!
//! A checkpoint whose file is not found becomes a gap: lines written after its offset may be lost.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::Checkpoint;
use crate::discover::{Found, Matcher};
use crate::identity::{FileId, Fingerprint, parse_key};
use crate::platform;
use crate::watched::Watched;

/// A checkpoint whose file could not be found; reported to the sink as a gap.
pub(crate) struct Lost {
    pub(crate) checkpoint: Checkpoint,
    pub(crate) message: String,
}

/// A candidate file, opened and checked.
pub(crate) struct Hit {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) id: FileId,
    meta: Metadata,
}

/// Resolves every checkpoint to an open file resumed at its offset, or to a [`Lost`] entry.
pub(crate) fn restore(
    checkpoints: Vec<Checkpoint>,
    found: &[Found],
    matcher: &Matcher,
    buf: &mut Vec<u8>,
    now: Instant,
) -> (Vec<Watched>, Vec<Lost>) {
    let mut claimed = HashSet::new();
    let mut resumed = Vec::new();
    let mut lost = Vec::new();
    for checkpoint in checkpoints {
        let Some((id, fp)) = parse_key(&checkpoint.key) else {
            tracing::warn!(key = %checkpoint.key, "Unrecognised checkpoint key.");
            let message = "unrecognised checkpoint key; read position dropped".to_owned();
            lost.push(Lost {
                checkpoint,
                message,
            });
            continue;
        };
        let Some(hit) = locate(&checkpoint, id, fp, found, matcher, &claimed, buf) else {
            tracing::warn!(path = %checkpoint.path, offset = checkpoint.offset, "Checkpointed file not found.");
            let message = format!(
                "file not found at restart; lines written after offset {} may be lost",
                checkpoint.offset
            );
            lost.push(Lost {
                checkpoint,
                message,
            });
            continue;
        };
        claimed.insert(hit.id);
        let Checkpoint { key, offset, .. } = checkpoint;
        let mut w = Watched::resumed(hit.path, hit.file, hit.id, key, fp, offset, now);
        if !found.iter().any(|f| f.path == w.path) {
            w.detached_since = Some(now);
        }
        tracing::info!(path = %w.path.display(), offset, "Resuming file.");
        resumed.push(w);
    }
    (resumed, lost)
}

fn locate(
    cp: &Checkpoint,
    id: FileId,
    fp: Fingerprint,
    found: &[Found],
    matcher: &Matcher,
    claimed: &HashSet<FileId>,
    buf: &mut Vec<u8>,
) -> Option<Hit> {
    let same_inode = |hit_id: FileId| hit_id == id && !claimed.contains(&hit_id);
    let matched = found.iter().filter(|f| f.id == id).map(|f| f.path.clone());
    for path in std::iter::once(PathBuf::from(&cp.path)).chain(matched) {
        if let Some(hit) = open_if(&path, &same_inode, fp, 0, buf) {
            return Some(hit);
        }
    }
    for path in &dir_entries(Path::new(&cp.path))? {
        if let Some(hit) = open_if(path, &same_inode, fp, 0, buf) {
            return Some(hit);
        }
    }
    let copy = |hit_id: FileId| hit_id != id && !claimed.contains(&hit_id);
    find_copy(Path::new(&cp.path), &copy, fp, cp.offset, matcher, buf)
}

/// Finds a copy of a file in the directory of `path`: a regular file accepted by `accept`, at
/// least `min_len` long, starting with the fingerprinted bytes; unmatched paths first, then the
/// most recently modified.
pub(crate) fn find_copy(
    path: &Path,
    accept: &dyn Fn(FileId) -> bool,
    fp: Fingerprint,
    min_len: u64,
    matcher: &Matcher,
    buf: &mut Vec<u8>,
) -> Option<Hit> {
    let entries = dir_entries(path)?;
    let mut copies: Vec<Hit> = entries
        .iter()
        .filter_map(|p| open_if(p, accept, fp, min_len, buf))
        .collect();
    copies.sort_by_key(|hit| {
        let mtime = hit.meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        (matcher.is_match(&hit.path), Reverse(mtime))
    });
    copies.into_iter().next()
}

/// The open file that a newly found file `candidate` looks like a copy of: same directory, another
/// inode, and `candidate` starts with that file's whole (grown) fingerprint.
pub(crate) fn original_of(
    files: &HashMap<FileId, Watched>,
    candidate: &Watched,
    size: u64,
    buf: &mut Vec<u8>,
) -> Option<FileId> {
    let dir = candidate.path.parent();
    files
        .values()
        .filter(|w| w.key.is_some() && w.shadow_of.is_none() && w.id != candidate.id)
        .filter(|w| w.path.parent() == dir && w.fp.len > 0 && w.fp.len <= size)
        .find(|w| w.fp.matches(&candidate.file, buf))
        .map(|w| w.id)
}

/// The paths in the directory of `path`, sorted.
fn dir_entries(path: &Path) -> Option<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = fs::read_dir(path.parent()?)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Some(entries)
}

/// Opens `path` if it is a regular file accepted by `accept`, at least `min_len` long, starting
/// with the fingerprinted bytes.
fn open_if(
    path: &Path,
    accept: &dyn Fn(FileId) -> bool,
    fp: Fingerprint,
    min_len: u64,
    buf: &mut Vec<u8>,
) -> Option<Hit> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() < min_len || !accept(FileId::of_path(path).ok()?) {
        return None;
    }
    let file = platform::open_shared(path).ok()?;
    let meta = file.metadata().ok()?;
    let id = FileId::of_file(&file).ok()?;
    (accept(id) && fp.matches(&file, buf)).then(|| Hit {
        path: path.to_path_buf(),
        file,
        id,
        meta,
    })
}
