//! File identity: (device, inode) plus a CRC-32C fingerprint of the file's first bytes, and the
//! stable key derived from them when a file is first keyed (format in the crate docs).
//!
//! On Windows the pair is (volume serial number, file index) from `GetFileInformationByHandle`
//! (through `winapi-util`), read on an open handle: std's `Metadata` has no stable accessor for
//! them. Like (device, inode), the pair stays the same across renames within a volume and
//! differs between two files that exist at the same time. The file index is 64 bits: unique on
//! NTFS; on ReFS (128-bit ids) Windows documents it as possibly not unique.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::platform::FileExt;

/// Device and inode of a file (Windows: volume serial number and file index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// CRC-32C of the first `len` bytes of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

/// Outcome of comparing a file's current prefix with a known fingerprint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PrefixCheck {
    /// The file starts with the fingerprinted bytes (the fingerprint may have grown).
    Same(Fingerprint),
    /// The file is shorter than the fingerprint or starts differently.
    Different,
}

// === impl FileId ===

impl FileId {
    /// Identity of an open file.
    #[cfg(unix)]
    pub(crate) fn of_file(file: &File) -> io::Result<FileId> {
        Ok(FileId::of_meta(&file.metadata()?))
    }

    /// Identity of the file at `path` (symlinks followed).
    #[cfg(unix)]
    pub(crate) fn of_path(path: &Path) -> io::Result<FileId> {
        Ok(FileId::of_meta(&std::fs::metadata(path)?))
    }

    /// Identity of the file at `path` whose metadata (symlinks followed) was just read. Unix:
    /// from the metadata, no further system call. Windows: [`FileId::of_path`].
    pub(crate) fn of_found(path: &Path, meta: &std::fs::Metadata) -> io::Result<FileId> {
        #[cfg(unix)]
        {
            let _ = path;
            Ok(FileId::of_meta(meta))
        }
        #[cfg(windows)]
        {
            let _ = meta;
            FileId::of_path(path)
        }
    }

    #[cfg(unix)]
    fn of_meta(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Identity of an open file.
    #[cfg(windows)]
    pub(crate) fn of_file(file: &File) -> io::Result<FileId> {
        let info = winapi_util::file::information(file)?;
        Ok(FileId {
            dev: info.volume_serial_number(),
            ino: info.file_index(),
        })
    }

    /// Identity of the file at `path` (symlinks followed). The handle asks for no data access
    /// (as std's `fs::metadata` does), so it never conflicts with the share mode of the
    /// application that writes the file.
    #[cfg(windows)]
    pub(crate) fn of_path(path: &Path) -> io::Result<FileId> {
        use std::os::windows::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .access_mode(0)
            .share_mode(crate::platform::SHARE_ALL)
            .open(path)?;
        FileId::of_file(&file)
    }
}

// === impl Fingerprint ===

impl Fingerprint {
    /// Fingerprint of the first `min(size, max_len)` bytes of `file`.
    pub(crate) fn compute(
        file: &File,
        size: u64,
        max_len: usize,
        buf: &mut Vec<u8>,
    ) -> io::Result<Fingerprint> {
        let want = size.min(max_len as u64) as usize;
        let got = read_prefix(file, buf, want)?;
        Ok(Fingerprint {
            len: got.len() as u64,
            crc: crc32c::crc32c(got),
        })
    }

    /// Checks that `file` starts with the fingerprinted bytes, and extends the fingerprint to
    /// `min(size, max_len)` bytes when the file has grown.
    pub(crate) fn check(
        &self,
        file: &File,
        size: u64,
        max_len: usize,
        buf: &mut Vec<u8>,
    ) -> io::Result<PrefixCheck> {
        let want = size.min(max_len as u64).max(self.len) as usize;
        let got = read_prefix(file, buf, want)?;
        let fp_len = self.len as usize;
        if got.len() < fp_len || crc32c::crc32c(&got[..fp_len]) != self.crc {
            return Ok(PrefixCheck::Different);
        }
        let crc = crc32c::crc32c_append(self.crc, &got[fp_len..]);
        Ok(PrefixCheck::Same(Fingerprint {
            len: got.len() as u64,
            crc,
        }))
    }

    /// True when `file` starts with exactly the fingerprinted bytes.
    pub(crate) fn matches(&self, file: &File, buf: &mut Vec<u8>) -> bool {
        matches!(self.check(file, 0, 0, buf), Ok(PrefixCheck::Same(_)))
    }
}

/// The stable key of a file, computed once when it is first keyed.
pub(crate) fn make_key(id: FileId, fp: Fingerprint) -> String {
    format!("{}:{}:{}:{:08x}", id.dev, id.ino, fp.len, fp.crc)
}

/// Parses a key made by [`make_key`].
pub(crate) fn parse_key(key: &str) -> Option<(FileId, Fingerprint)> {
    let mut parts = key.split(':');
    let dev = parts.next()?.parse().ok()?;
    let ino = parts.next()?.parse().ok()?;
    let len = parts.next()?.parse().ok()?;
    let crc = u32::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() || len == 0 {
        return None;
    }
    Some((FileId { dev, ino }, Fingerprint { len, crc }))
}

/// Reads up to `want` bytes from the start of `file` (fewer at EOF).
fn read_prefix<'a>(file: &File, buf: &'a mut Vec<u8>, want: usize) -> io::Result<&'a [u8]> {
    buf.resize(want, 0);
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(&buf[..filled])
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn key_round_trips() {
        let id = FileId { dev: 2049, ino: 77 };
        let fp = Fingerprint {
            len: 6,
            crc: 0xdead_beef,
        };
        let key = make_key(id, fp);
        assert_eq!(key, "2049:77:6:deadbeef");
        assert_eq!(parse_key(&key), Some((id, fp)));
        assert_eq!(parse_key("1:2:3"), None);
        assert_eq!(parse_key("1:2:0:00000000"), None);
    }

    #[test]
    fn identity_follows_the_file_through_rename_not_the_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&a, b"1\n").expect("write");
        std::fs::write(&b, b"2\n").expect("write");
        let id_a = FileId::of_path(&a).expect("id");
        assert_ne!(id_a, FileId::of_path(&b).expect("id"));
        let open = crate::platform::open_shared(&a).expect("open");
        assert_eq!(FileId::of_file(&open).expect("id"), id_a);
        let moved = dir.path().join("a.log.1");
        std::fs::rename(&a, &moved).expect("rename");
        assert_eq!(FileId::of_path(&moved).expect("id"), id_a);
        // Wine reports volume serial 0 for a handle whose file was renamed after it was opened;
        // the tailer reads an open handle's identity only right after opening it.
        if !running_under_wine() {
            assert_eq!(FileId::of_file(&open).expect("id"), id_a);
        }
    }

    fn running_under_wine() -> bool {
        cfg!(windows) && std::env::var_os("WINEPREFIX").is_some()
    }

    #[test]
    fn short_fingerprint_matches_grown_file_and_grows() {
        let mut tmp = tempfile::NamedTempFile::new().expect("temp file");
        tmp.write_all(b"one\n").expect("write");
        let mut buf = Vec::new();
        let file = tmp.as_file();
        let fp = Fingerprint::compute(file, 4, 1024, &mut buf).expect("fingerprint");
        assert_eq!(fp.len, 4);
        tmp.write_all(b"two\n").expect("write");
        let grown = match fp.check(tmp.as_file(), 8, 1024, &mut buf).expect("check") {
            PrefixCheck::Same(grown) => grown,
            PrefixCheck::Different => panic!("prefix must still match"),
        };
        assert_eq!(grown.len, 8);
        assert_eq!(grown.crc, crc32c::crc32c(b"one\ntwo\n"));
        assert!(fp.matches(tmp.as_file(), &mut buf));
        tmp.as_file().set_len(0).expect("truncate");
        assert!(!fp.matches(tmp.as_file(), &mut buf));
    }
}
