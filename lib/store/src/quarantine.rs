//! Damaged tails moved out of the last segment at open, kept byte for byte as evidence.
//!
//! ```text
//! <dir>/quarantine/<segment file stem>@<offset>.tail   bytes [offset, old end) of that segment
//! ```
//!
//! Invariants:
//! - A tail is written and fsync'd here (file and directory) *before* the segment is cut, so
//!   the bytes exist in one of the two places at every moment.
//! - Nothing in this folder is ever deleted by the store; [`crate::verify`] reports every file
//!   in it as a problem until an operator has looked at it and removed it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Sub-directory holding quarantined tails.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";
const SUFFIX: &str = ".tail";

/// A damaged tail moved out of a segment at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedTail {
    /// The quarantine file holding the bytes.
    pub file: PathBuf,
    /// File name of the segment the bytes were cut from.
    pub segment: String,
    /// Offset in that segment where the bytes started.
    pub offset: u64,
    /// Number of bytes kept.
    pub bytes: u64,
}

/// Copies bytes `[offset, end of file)` of `segment` into the quarantine folder of the store
/// in `dir` and makes the copy durable. Returns the quarantine file.
pub(crate) fn save_tail(dir: &Path, segment: &Path, offset: u64) -> io::Result<PathBuf> {
    let qdir = dir.join(QUARANTINE_DIR);
    std::fs::create_dir_all(&qdir)?;
    let stem = segment
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("segment");
    let target = qdir.join(format!("{stem}@{offset}{SUFFIX}"));
    let mut src = File::open(segment)?;
    src.seek(SeekFrom::Start(offset))?;
    let tmp = target.with_extension("tail.tmp");
    let mut out = File::create(&tmp)?;
    io::copy(&mut src.by_ref(), &mut out)?;
    out.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    File::open(&qdir)?.sync_all()?;
    Ok(target)
}

/// Every quarantined tail of the store in `dir`, sorted by file name. A store without a
/// quarantine folder has none.
pub fn quarantined(dir: &Path) -> io::Result<Vec<QuarantinedTail>> {
    let qdir = dir.join(QUARANTINE_DIR);
    let entries = match std::fs::read_dir(&qdir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((segment, offset)) = parse_name(&name) else {
            continue;
        };
        found.push(QuarantinedTail {
            file: entry.path(),
            segment: format!("{segment}.seg"),
            offset,
            bytes: entry.metadata()?.len(),
        });
    }
    found.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(found)
}

fn parse_name(name: &str) -> Option<(&str, u64)> {
    let (segment, offset) = name.strip_suffix(SUFFIX)?.rsplit_once('@')?;
    Some((segment, offset.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_temporaries_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("00000000000000000001-0000000003.seg");
        std::fs::write(&seg, b"0123456789").unwrap();
        let file = save_tail(dir.path(), &seg, 4).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"456789");
        std::fs::write(file.with_extension("tail.tmp"), b"x").unwrap();
        let found = quarantined(dir.path()).unwrap();
        assert_eq!(
            found,
            vec![QuarantinedTail {
                file,
                segment: "00000000000000000001-0000000003.seg".into(),
                offset: 4,
                bytes: 6,
            }]
        );
        assert!(quarantined(&dir.path().join("nope")).unwrap().is_empty());
    }
}
