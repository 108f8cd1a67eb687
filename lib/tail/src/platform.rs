//! What differs between Unix and Windows when tailing: how a tailed file is opened, and positional
//! reads. (File identity is in `identity.rs`, path and glob styles in `discover/pattern.rs`.)
//!
//! Invariants:
//! - Every file the tailer reads is opened with [`open_shared`]. On Windows that asks for
//!   `FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE`, so the application that writes the
//!   file can keep writing, rename it (rotate) and delete it while the tailer holds it open, as
//!   on Unix, where an open descriptor never gets in the way of those.
//! - Reads are positional ([`FileExt::read_at`], [`FileExt::read_exact_at`]): the tailer never
//!   relies on a file cursor. On Windows a positional read also moves the handle's cursor, which
//!   nothing else uses.

use std::fs::File;
use std::io;
use std::path::Path;

#[cfg(unix)]
pub(crate) use std::os::unix::fs::FileExt;

/// Win32 `FILE_SHARE_READ`: others may open the file for reading.
#[cfg(windows)]
const FILE_SHARE_READ: u32 = 0x1;
/// Win32 `FILE_SHARE_WRITE`: others may open the file for writing (the application logging to it).
#[cfg(windows)]
const FILE_SHARE_WRITE: u32 = 0x2;
/// Win32 `FILE_SHARE_DELETE`: others may rename or delete the file while it is open here.
#[cfg(windows)]
const FILE_SHARE_DELETE: u32 = 0x4;
/// The share mode of every handle the tailer opens.
#[cfg(windows)]
pub(crate) const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

/// Opens `path` for reading without keeping its writer from writing, renaming or deleting it.
pub(crate) fn open_shared(path: &Path) -> io::Result<File> {
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .share_mode(SHARE_ALL)
            .open(path)
    }
    #[cfg(not(windows))]
    {
        File::open(path)
    }
}

/// Positional reads on Windows, with the names and contract of `std::os::unix::fs::FileExt`.
#[cfg(windows)]
pub(crate) trait FileExt {
    /// Reads up to `buf.len()` bytes at `offset`; 0 at or past the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Reads exactly `buf.len()` bytes at `offset`; `UnexpectedEof` when the file is shorter.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => break,
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if buf.is_empty() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "failed to fill whole buffer",
            ))
        }
    }
}

#[cfg(windows)]
impl FileExt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(self, buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn shared_handle_reads_positionally_and_survives_rename_and_delete() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("app.log");
        let mut writer = File::create(&path).expect("create");
        writer.write_all(b"one\ntwo\n").expect("write");
        let file = open_shared(&path).expect("open");
        let mut buf = [0u8; 4];
        file.read_exact_at(&mut buf, 4).expect("read");
        assert_eq!(&buf, b"two\n");
        assert_eq!(file.read_at(&mut buf, 8).expect("read at end"), 0);
        let err = file.read_exact_at(&mut buf, 6).expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // The writer rotates and deletes the file while it is open here.
        let rotated = dir.path().join("app.log.1");
        std::fs::rename(&path, &rotated).expect("rename while open");
        writer.write_all(b"three\n").expect("write after rename");
        let mut rest = [0u8; 6];
        file.read_exact_at(&mut rest, 8).expect("read after rename");
        assert_eq!(&rest, b"three\n");
        std::fs::remove_file(&rotated).expect("delete while open");
        file.read_exact_at(&mut buf, 0).expect("read after delete");
        assert_eq!(&buf, b"one\n");
    }
}
