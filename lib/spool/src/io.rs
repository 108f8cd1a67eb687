//! Small file helpers: segment naming, positional reads, directory fsync, quarantine.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::SpoolError;

/// Extension of segment files.
pub(crate) const SEGMENT_EXT: &str = "seg";
/// Folder (inside the spool dir) that receives damaged segments.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";

/// Lock file held (flock-style) for the life of an open spool.
pub(crate) const LOCK_FILE: &str = "lock";

/// Creates `dir` if needed and takes its exclusive lock; the lock lasts as long as the `File`.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    fs::create_dir_all(dir).map_err(SpoolError::io("create directory", dir))?;
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(SpoolError::io("open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(SpoolError::io("lock", &path)(e)),
    }
}

/// `dir/00000000000000000042.seg`.
pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.{SEGMENT_EXT}"))
}

/// The first seq encoded in a segment file name, or None if the name is not ours.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Reads exactly `buf.len()` bytes at `offset` without moving a shared cursor.
#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Reads exactly `buf.len()` bytes at `offset` (the cursor moves, but appends are in append mode).
#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes creations, renames and deletions inside `dir` durable.
///
/// Windows has no directory fsync (std cannot open a directory for flushing, and
/// `FlushFileBuffers` is defined for files and volumes): this is a no-op there. Every file the
/// spool creates is flushed with `sync_all` (`FlushFileBuffers`) before it counts, and a rename
/// is followed by [`sync_renamed`]; on NTFS flushing a file commits the metadata journal up to that
/// point, creations and renames included. Deletions are not flushed: a deleted segment that
/// reappears after a power cut holds only acked batches and is removed again at recovery.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(SpoolError::io("directory fsync", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Flushes a file that `file` holds open read-only. Unix fsync works on any descriptor;
/// Windows' `FlushFileBuffers` needs write access, so there the file is opened again for writing
/// (the flush covers the file, whichever handle wrote it).
pub(crate) fn sync_read_only(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(windows)]
    {
        let _ = file;
        fs::OpenOptions::new().write(true).open(path)?.sync_all()
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        file.sync_all()
    }
}

/// Makes the rename of a file to `path` (in `dir`) durable: the directory fsync on Unix; on
/// Windows a flush of the renamed file itself (see [`fsync_dir`]).
pub(crate) fn sync_renamed(dir: &Path, path: &Path) -> Result<(), SpoolError> {
    #[cfg(windows)]
    {
        let _ = dir;
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.sync_all())
            .map_err(SpoolError::io("fsync after rename", path))
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        fsync_dir(dir)
    }
}

/// Moves a damaged file into `dir/quarantine/` (never overwriting an earlier one) and returns
/// its new path. On failure the file stays where it is and its old path is returned.
pub(crate) fn quarantine(dir: &Path, path: &Path) -> PathBuf {
    match try_quarantine(dir, path) {
        Ok(to) => to,
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "Cannot move a damaged spool file to quarantine.");
            path.to_path_buf()
        }
    }
}

fn try_quarantine(dir: &Path, path: &Path) -> io::Result<PathBuf> {
    let qdir = dir.join(QUARANTINE_DIR);
    fs::create_dir_all(&qdir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut to = qdir.join(&name);
    let mut n = 1;
    while to.try_exists()? {
        to = qdir.join(format!("{name}.{n}"));
        n += 1;
    }
    fs::rename(path, &to)?;
    // Best effort: a lost rename only means the file is found and quarantined again.
    if let Err(error) = fsync_dir(dir).and_then(|()| fsync_dir(&qdir)) {
        tracing::warn!(%error, "Cannot fsync the spool directory after a quarantine.");
    }
    Ok(to)
}
