//! The spool's instance lineage (`<spool>/instance.json`): which running agent process ships
//! this spool, and which processes shipped it before.
//!
//! Every start of the agent draws a new random instance id and records it here, with the ids
//! of the earlier starts (newest first, at most [`MAX_PREVIOUS`]), before anything is sent. The
//! collector keeps the last instance it accepted per (agent, stream): a restart names that id
//! among its previous ones; a copy of the spool (a cloned machine or copied agent folder) started
//! alongside or after the original does not, and is refused instead of having its records
//! dropped as duplicates (docs/ARCHITECTURE.md, "Security model").
//!
//! Invariant: the file is replaced atomically (temp file, fsync, rename, directory fsync; on
//! Windows a flush of the renamed file instead of the directory fsync), so a crash leaves either
//! the old or the new lineage, never a torn one.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// File name inside the spool directory.
pub const FILE_NAME: &str = "instance.json";
/// Earlier instance ids kept and sent (with the first batch of each stream): an agent restarted
/// this many times without shipping anything in between would look like a copy.
pub const MAX_PREVIOUS: usize = 64;

/// This process's instance id and the ids that ran the spool before it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lineage {
    /// Id of this start (32 lowercase hex characters).
    pub current: String,
    /// Earlier starts, newest first.
    pub previous: Vec<String>,
}

/// Reads the spool's lineage, starts a new instance on top of it, and persists the result.
pub fn start(spool_dir: &Path) -> Result<Lineage> {
    let path = spool_dir.join(FILE_NAME);
    let old = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Lineage>(&bytes).unwrap_or_else(|error| {
            tracing::warn!(path = %path.display(), %error,
                "Instance file is damaged; starting a new lineage.");
            Lineage::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Lineage::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let lineage = next(old, rand::random::<u128>());
    write_atomic(spool_dir, &serde_json::to_vec(&lineage)?)?;
    Ok(lineage)
}

/// The lineage after one more start with random `seed`.
fn next(old: Lineage, seed: u128) -> Lineage {
    let mut previous = Vec::with_capacity(MAX_PREVIOUS);
    if !old.current.is_empty() {
        previous.push(old.current);
    }
    previous.extend(old.previous);
    previous.truncate(MAX_PREVIOUS);
    Lineage {
        current: format!("{seed:032x}"),
        previous,
    }
}

fn write_atomic(dir: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    let path = dir.join(FILE_NAME);
    std::fs::rename(&tmp, &path)?;
    sync_renamed(dir, &path)
}

/// Makes the rename durable: the directory fsync on Unix. Windows cannot fsync a directory; there
/// the renamed file itself is flushed, which on NTFS commits the metadata journal (rename
/// included) up to that point.
fn sync_renamed(dir: &Path, path: &Path) -> Result<()> {
    #[cfg(windows)]
    {
        let _ = dir;
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.sync_all()?;
    }
    #[cfg(not(windows))]
    {
        let _ = path;
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_start_adds_one_and_keeps_the_newest_previous_ids() {
        let dir = tempfile::tempdir().unwrap();
        let first = start(dir.path()).unwrap();
        assert!(first.previous.is_empty());
        assert_eq!(first.current.len(), 32);
        let second = start(dir.path()).unwrap();
        assert_eq!(second.previous, std::slice::from_ref(&first.current));
        assert_ne!(second.current, first.current);
        let mut l = second;
        for i in 0..100u128 {
            l = next(l, i);
        }
        assert_eq!(l.previous.len(), MAX_PREVIOUS);
        assert_eq!(l.previous[0], format!("{:032x}", 98));
    }

    #[test]
    fn a_copied_spool_starts_a_sibling_not_a_successor() {
        let dir = tempfile::tempdir().unwrap();
        let base = start(dir.path()).unwrap();
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(dir.path().join(FILE_NAME), copy.path().join(FILE_NAME)).unwrap();
        let original = start(dir.path()).unwrap();
        let clone = start(copy.path()).unwrap();
        assert_eq!(original.previous[0], base.current);
        assert_eq!(clone.previous[0], base.current);
        assert!(!clone.previous.contains(&original.current));
    }
}
