//! Segment files: naming and listing, the segment header, and a tolerant block-by-block
//! reader that never trusts a length it has not checksummed.
//!
//! The reader walks a segment as a sequence of [`Step`]s. A damaged block head is skipped by
//! resynchronising on the next block magic whose head CRC checks out, so a flipped byte costs
//! one block, never the rest of the segment, and never a panic or an endless loop (every step
//! moves strictly forward).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::block::{self, BLOCK_MAGIC, BlockHeader, HeaderError, PREFIX_LEN};

/// Magic opening every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"LOGSHSEG";
/// Current segment format version.
pub(crate) const SEGMENT_VERSION: u32 = 1;
/// Segment header: magic, version u32 LE, crc32c u32 LE of the first 12 bytes.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// Sub-directory holding the date directories.
pub(crate) const SEGMENTS_DIR: &str = "segments";
/// Chunk size used while searching for the next block magic.
const RESYNC_CHUNK: usize = 1 << 20;

/// A segment file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub(crate) path: PathBuf,
    /// Position in the chain of segments (0, 1, 2, ...); defines store order.
    pub(crate) n: u64,
    /// Wall-clock creation time, Unix nanoseconds (from the name).
    pub(crate) start_ns: i64,
}

/// One step of a walk over a segment.
#[derive(Debug)]
pub(crate) enum Step {
    /// A block whose head checks out and whose frame lies inside the file.
    Block {
        offset: u64,
        header: BlockHeader,
        head_len: usize,
        frame_len: u64,
    },
    /// Bytes `[offset, next)` hold no valid block; a valid head starts at `next`.
    Corrupt {
        offset: u64,
        next: u64,
        reason: String,
    },
    /// Bytes `[offset, len)` hold no complete block. `torn` is true when they are the start of
    /// a block that is simply not all there (a head cut short, or a checksummed head whose
    /// frame runs past the end of the file: a torn or in-progress write); false when they are
    /// damaged bytes in which no valid head can be found.
    Tail {
        offset: u64,
        reason: String,
        torn: bool,
    },
    /// The walk reached the end of the file exactly at a block boundary.
    End,
}

/// Positioned reader over one segment file, bounded by the length seen at open.
#[derive(Debug)]
pub(crate) struct SegmentReader {
    file: File,
    len: u64,
}

// === naming ===

/// Path of segment `n` created at `start_ns`.
pub(crate) fn segment_path(dir: &Path, n: u64, start_ns: i64) -> PathBuf {
    let (y, m, d) = civil_from_unix_ns(start_ns);
    dir.join(SEGMENTS_DIR)
        .join(format!("{y:04}-{m:02}-{d:02}"))
        .join(format!("{:020}-{n:010}.seg", start_ns.max(0)))
}

/// Path of a segment's index sidecar.
pub(crate) fn sidecar_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// Lists every segment under `dir`, in chain order (by `n`). Foreign files are ignored.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<SegmentInfo>> {
    let root = dir.join(SEGMENTS_DIR);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for day in entries {
        let day = day?;
        if !day.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(day.path())? {
            let path = file?.path();
            if let Some((start_ns, n)) = parse_name(&path) {
                out.push(SegmentInfo { path, n, start_ns });
            }
        }
    }
    out.sort_by_key(|s| (s.n, s.start_ns));
    Ok(out)
}

pub(crate) fn parse_name(path: &Path) -> Option<(i64, u64)> {
    if path.extension()? != "seg" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let (start, n) = stem.split_once('-')?;
    Some((start.parse().ok()?, n.parse().ok()?))
}

/// (year, month, day) in UTC of a Unix-nanosecond time (Howard Hinnant's civil_from_days).
pub(crate) fn civil_from_unix_ns(ns: i64) -> (i64, u32, u32) {
    let z = ns.div_euclid(86_400 * 1_000_000_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The 16-byte segment header.
pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

// === impl SegmentReader ===

impl SegmentReader {
    pub(crate) fn open(path: &Path) -> io::Result<SegmentReader> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(SegmentReader { file, len })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// Checks the segment header; `Err` carries the reason.
    pub(crate) fn check_header(&self) -> io::Result<Result<(), String>> {
        if self.len < SEGMENT_HEADER_LEN {
            return Ok(Err("segment header is cut short".into()));
        }
        let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
        self.file.read_exact_at(&mut h, 0)?;
        Ok(if h == segment_header() {
            Ok(())
        } else {
            Err("segment header is damaged or of an unknown version".into())
        })
    }

    /// The step starting at `pos` (a block boundary or the first byte after the header).
    pub(crate) fn step(&self, pos: u64) -> io::Result<Step> {
        if pos >= self.len {
            return Ok(Step::End);
        }
        match self.read_head(pos)? {
            Ok((header, head_len)) => {
                let frame_len = block::frame_len(head_len, header.body_len());
                if pos + frame_len <= self.len {
                    Ok(Step::Block {
                        offset: pos,
                        header,
                        head_len,
                        frame_len,
                    })
                } else {
                    let reason = "block extends past the end of the file".to_string();
                    Ok(Step::Tail {
                        offset: pos,
                        reason,
                        torn: true,
                    })
                }
            }
            Err(e) => Ok(match self.resync(pos + 1)? {
                Some(next) => Step::Corrupt {
                    offset: pos,
                    next,
                    reason: e.to_string(),
                },
                None => Step::Tail {
                    offset: pos,
                    torn: e == HeaderError::Short,
                    reason: e.to_string(),
                },
            }),
        }
    }

    /// Reads a whole frame into `buf` (resized to `frame_len`).
    pub(crate) fn read_frame(
        &self,
        offset: u64,
        frame_len: u64,
        buf: &mut Vec<u8>,
    ) -> io::Result<()> {
        buf.resize(frame_len as usize, 0);
        self.file.read_exact_at(buf, offset)
    }

    /// Reads the stored hash of a frame without reading its body.
    pub(crate) fn read_hash(
        &self,
        offset: u64,
        frame_len: u64,
    ) -> io::Result<[u8; block::HASH_LEN]> {
        let mut hash = [0u8; block::HASH_LEN];
        self.file
            .read_exact_at(&mut hash, offset + frame_len - 36)?;
        Ok(hash)
    }

    fn read_head(&self, pos: u64) -> io::Result<Result<(BlockHeader, usize), HeaderError>> {
        let avail = self.len - pos;
        if avail < PREFIX_LEN as u64 {
            return Ok(Err(HeaderError::Short));
        }
        let mut prefix = [0u8; PREFIX_LEN];
        self.file.read_exact_at(&mut prefix, pos)?;
        let header_len = match block::parse_prefix(&prefix) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        let head_len = block::head_len(header_len);
        if (head_len as u64) > avail {
            return Ok(Err(HeaderError::Short));
        }
        let mut head = vec![0u8; head_len];
        self.file.read_exact_at(&mut head, pos)?;
        Ok(block::decode_head(&head).map(|h| (h, head_len)))
    }

    /// Offset of the first valid block head at or after `from`, if any.
    fn resync(&self, from: u64) -> io::Result<Option<u64>> {
        let mut chunk = vec![0u8; RESYNC_CHUNK];
        let mut start = from;
        while start < self.len {
            let n = (self.len - start).min(RESYNC_CHUNK as u64) as usize;
            self.file.read_exact_at(&mut chunk[..n], start)?;
            for hit in memchr::memmem::find_iter(&chunk[..n], &BLOCK_MAGIC) {
                let at = start + hit as u64;
                if self.read_head(at)?.is_ok() {
                    return Ok(Some(at));
                }
            }
            if start + n as u64 >= self.len {
                break;
            }
            // Overlap so a magic split across chunks is still found.
            start += (n - (BLOCK_MAGIC.len() - 1)) as u64;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix_ns(0), (1970, 1, 1));
        assert_eq!(civil_from_unix_ns(-1), (1969, 12, 31));
        // 2024-02-29T12:00:00Z
        assert_eq!(
            civil_from_unix_ns(1_709_208_000 * 1_000_000_000),
            (2024, 2, 29)
        );
        // 2000-03-01T00:00:00Z
        assert_eq!(
            civil_from_unix_ns(951_868_800 * 1_000_000_000),
            (2000, 3, 1)
        );
    }

    #[test]
    fn names_round_trip_and_sort_by_n() {
        let dir = tempfile::tempdir().unwrap();
        let a = segment_path(dir.path(), 10, 2_000_000_000_000_000_000);
        let b = segment_path(dir.path(), 2, 1_000);
        for p in [&a, &b] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
            std::fs::write(sidecar_path(p), b"").unwrap();
        }
        let listed = list_segments(dir.path()).unwrap();
        assert_eq!(listed.iter().map(|s| s.n).collect::<Vec<_>>(), vec![2, 10]);
        assert_eq!(listed[0].path, b);
        assert_eq!(listed[1].start_ns, 2_000_000_000_000_000_000);
    }
}
