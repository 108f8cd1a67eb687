//! `reserve`: a file of zeros kept in the spool directory so acks can still write the ledger when
//! the disk is full. Deleting acked segments requires a durable ledger first; on a full disk that
//! write fails, nothing is freed, and appends would wait forever. The reserve breaks that cycle:
//! when a ledger write fails for lack of space, the reserve is deleted and the write retried; the
//! reserve is written again once an ack has freed segments.
//!
//! Invariant: the reserve is never needed for correctness (a missing reserve only loses the
//! fallback); it is not a segment and recovery ignores it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::SpoolError;

/// Name of the reserve file in the spool directory.
const RESERVE_FILE: &str = "reserve";
/// Largest reserve: room for a ledger of several thousand positions.
const MAX_RESERVE_BYTES: u64 = 1 << 20;
/// Smallest reserve.
const MIN_RESERVE_BYTES: u64 = 64 << 10;

/// Reserve size for a spool capped at `max_bytes`: 1/64 of it, between 64 KiB and 1 MiB.
pub(crate) fn size_for(max_bytes: u64) -> u64 {
    (max_bytes / 64).clamp(MIN_RESERVE_BYTES, MAX_RESERVE_BYTES)
}

fn path(dir: &Path) -> PathBuf {
    dir.join(RESERVE_FILE)
}

/// Writes a reserve of `size` bytes if it is missing or short. Returns whether it is in place.
pub(crate) fn ensure(dir: &Path, size: u64) -> bool {
    let p = path(dir);
    if fs::metadata(&p).is_ok_and(|m| m.len() >= size) {
        return true;
    }
    match write(&p, size) {
        Ok(()) => true,
        Err(error) => {
            // A file that could not be completed would only take space: remove it.
            if let Err(remove) = fs::remove_file(&p)
                && remove.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %remove, "Cannot remove a partial spool reserve.");
            }
            tracing::debug!(path = %p.display(), %error, "Spool reserve not written.");
            false
        }
    }
}

fn write(p: &Path, size: u64) -> io::Result<()> {
    let mut f = File::create(p)?;
    let zeros = vec![0u8; 64 << 10];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// Deletes the reserve to make room; returns whether there was one.
pub(crate) fn release(dir: &Path) -> bool {
    let p = path(dir);
    match fs::remove_file(&p) {
        Ok(()) => {
            tracing::warn!(path = %p.display(), "Spool disk full; released the reserve to record acks.");
            true
        }
        Err(_) => false,
    }
}

/// True when `error` means the file system has no space (or quota) left.
pub(crate) fn is_no_space(error: &SpoolError) -> bool {
    match error {
        SpoolError::Io { source, .. } => {
            source.kind() == io::ErrorKind::StorageFull
                || source.kind() == io::ErrorKind::QuotaExceeded
        }
        _ => false,
    }
}
