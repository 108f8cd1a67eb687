//! Small file-system helpers: directory sizes, listing by extension, flipping bytes, log tails.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Total size in bytes of the regular files under `dir` (recursive); 0 if it does not exist.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        // Files can vanish between listing and stat (segments are deleted after acks).
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Files under `dir` (recursive) whose name ends with `.{ext}`, sorted by path.
pub fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(files_with_ext(&path, ext)?);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Inverts `len` bytes in the middle of `path`.
pub fn flip_bytes(path: &Path, len: u64) -> Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let size = file.metadata()?.len();
    if size < 2 * len {
        bail!("{} is too small ({size} bytes) to flip", path.display());
    }
    let at = size / 2;
    let mut buf = vec![0u8; usize::try_from(len)?];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut buf)?;
    buf.iter_mut().for_each(|b| *b = !*b);
    file.seek(SeekFrom::Start(at))?;
    file.write_all(&buf)?;
    file.sync_all()?;
    Ok(at)
}

/// Inverts one bit of the byte at `offset` in `path` (a single flipped bit, as a bad disk does).
pub fn flip_bit_at(path: &Path, offset: u64) -> Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut byte = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, offset)?;
    byte[0] ^= 0x10;
    std::os::unix::fs::FileExt::write_all_at(&file, &byte, offset)?;
    file.sync_all()?;
    Ok(())
}

/// The last `max` bytes of a text file (lossy UTF-8).
pub(crate) fn tail_text(path: &Path, max: u64) -> Result<String> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    file.seek(SeekFrom::Start(size.saturating_sub(max)))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
