//! Fields sidecars: the normalized fields of a segment's blocks, precomputed by the collector's
//! normalizer and read by search, one sidecar per segment, next to it and removed with it.
//!
//! ```text
//! <dir>/segments/<YYYY-MM-DD>/<segment stem>.fld          fields of the blocks of <stem>.seg
//!
//! file   := magic "LSFLD002" entry*
//! entry  := block_offset u64 | count u32 | len u32 | block_tag [8] | head_crc u32
//!           | body_crc u32 | body
//! block_tag = the first 8 bytes of the block's chained hash
//! head_crc = crc32c(block_offset | count | len | block_tag)  -> `len` trusted only after this
//! body_crc = crc32c(body)
//! body   := zstd(column)                           (see [`column`] for the column format)
//!                                                  (integers little-endian)
//! ```
//!
//! `block_offset` is the offset of the block in its segment (a [`crate::CursorPos`] offset),
//! `count` its record count and `block_tag` names the block itself: a column is used only for
//! the block at that offset whose hash starts with the tag, so a column never lands on another
//! block (one stored at the same offset after recovery cut and quarantined a damaged tail).
//! The column has exactly `count` rows, row `i` being record `i`.
//!
//! # Invariants
//!
//! - **Derived data, never wrong fields**: a sidecar only ever adds speed. Readers
//!   ([`SidecarIndex`]) stop at the first entry whose head fails its CRC or runs past the end,
//!   and refuse an entry whose body fails its CRC, does not decompress within the cap, or whose
//!   column does not check ([`Column::decode`]) or has another record count than the block:
//!   the fields of those blocks are then computed at search time with the same parsers.
//! - **One writer** ([`FieldsWriter`], the normalizer): entries are appended in block order;
//!   on reopening a sidecar the writer cuts it back to its last entry that checks whole (a torn
//!   or damaged tail), and a block the sidecar already covers is not appended again
//!   ([`FieldsWriter::covered`]). [`FieldsWriter::sync`] fsyncs every sidecar written since the
//!   last sync (the normalizer calls it before its cursor commits past those blocks).
//! - **Removed with its segment**: retention deletes `<stem>.fld` together with `<stem>.seg`
//!   and `<stem>.idx`; the writer never leaves a sidecar whose segment is gone (it checks after
//!   creating one, and removes such orphans when it starts).

mod column;
mod reader;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use column::{Column, ColumnBuilder, ColumnError, StrList, ValueRef};
pub use reader::BlockColumns;

use crate::segment;

const MAGIC: &[u8; 8] = b"LSFLD002";
const HEAD: usize = 32;
/// Bytes of the block hash an entry carries.
pub const TAG_LEN: usize = 8;

/// The tag of a block: the first [`TAG_LEN`] bytes of its chained hash.
pub fn block_tag(hash: &[u8; 32]) -> [u8; TAG_LEN] {
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&hash[..TAG_LEN]);
    t
}
/// zstd level of a column: the column is already compact, level 1 is cheap and halves it.
const ZSTD_LEVEL: i32 = 1;

/// Path of the fields sidecar of a segment file.
pub fn sidecar_path(segment: &Path) -> PathBuf {
    segment.with_extension("fld")
}

/// Index entry of one block's column in a sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the block in its segment.
    pub block_offset: u64,
    /// Records in the block.
    pub count: u32,
    /// The block's tag ([`block_tag`]).
    pub tag: [u8; TAG_LEN],
    /// Where the body starts in the sidecar.
    body_at: u64,
    len: u32,
    body_crc: u32,
}

fn head(block_offset: u64, count: u32, len: u32, tag: &[u8; TAG_LEN]) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[..8].copy_from_slice(&block_offset.to_le_bytes());
    h[8..12].copy_from_slice(&count.to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    h[16..24].copy_from_slice(tag);
    h
}

fn parse_head(h: &[u8; HEAD], at: u64, file_len: u64) -> Option<Entry> {
    let le32 = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if crc32c::crc32c(&h[..24]) != le32(24) {
        return None;
    }
    let e = Entry {
        block_offset: u64::from_le_bytes(h[..8].try_into().ok()?),
        count: le32(8),
        tag: h[16..24].try_into().ok()?,
        body_at: at + HEAD as u64,
        len: le32(12),
        body_crc: le32(28),
    };
    (e.body_at + u64::from(e.len) <= file_len).then_some(e)
}

/// Walks the entry heads of a sidecar: every entry whose head checks and whose body is all
/// there, in file order, and the offset where that valid run ends.
fn scan_heads(file: &File) -> std::io::Result<(Vec<Entry>, u64)> {
    let len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let mut magic = [0u8; 8];
    if len < MAGIC.len() as u64 || r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Ok((Vec::new(), 0));
    }
    let mut at = MAGIC.len() as u64;
    let mut entries = Vec::new();
    let mut h = [0u8; HEAD];
    while at + HEAD as u64 <= len {
        r.read_exact(&mut h)?;
        let Some(e) = parse_head(&h, at, len) else {
            break;
        };
        r.seek_relative(i64::from(e.len))?;
        at = e.body_at + u64::from(e.len);
        entries.push(e);
    }
    Ok((entries, at))
}

fn read_body(file: &File, e: &Entry, out: &mut Vec<u8>) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    out.resize(e.len as usize, 0);
    file.read_exact_at(out, e.body_at)?;
    Ok(crc32c::crc32c(out) == e.body_crc)
}

/// The readable entries of one segment's sidecar, for search.
#[derive(Debug)]
pub struct SidecarIndex {
    file: File,
    entries: Vec<Entry>,
    body: Vec<u8>,
    plain: Vec<u8>,
}

impl SidecarIndex {
    /// Opens the sidecar of `segment`; `None` when it does not exist or holds no readable entry.
    pub fn open(segment: &Path) -> Option<SidecarIndex> {
        let file = File::open(sidecar_path(segment)).ok()?;
        let (mut entries, _) = scan_heads(&file).ok()?;
        if entries.is_empty() {
            return None;
        }
        entries.sort_by_key(|e| e.block_offset);
        Some(SidecarIndex {
            file,
            entries,
            body: Vec::new(),
            plain: Vec::new(),
        })
    }

    /// Entries found.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The column of the block at `block_offset` whose tag is `tag`, with `count` records, or
    /// `None` when the sidecar has none that checks (see the module invariants).
    pub fn column(
        &mut self,
        block_offset: u64,
        tag: &[u8; TAG_LEN],
        count: u32,
        cap: usize,
    ) -> Option<Column> {
        let from = self
            .entries
            .partition_point(|e| e.block_offset < block_offset);
        let e = *self.entries[from..]
            .iter()
            .take_while(|e| e.block_offset == block_offset)
            .find(|e| &e.tag == tag)?;
        if e.count != count || !read_body(&self.file, &e, &mut self.body).ok()? {
            return None;
        }
        logship_proto::payload::decompress_capped(&self.body, cap, &mut self.plain).ok()?;
        Column::decode(std::mem::take(&mut self.plain), count).ok()
    }
}

/// A stored block and how many columns its segment's sidecar holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCoverage {
    /// Segment number.
    pub segment: u64,
    /// Offset of the block in the segment.
    pub offset: u64,
    /// Agent identity that stored the block.
    pub agent: String,
    /// The agent's stream.
    pub stream_id: String,
    /// Seq of the first record.
    pub first_seq: u64,
    /// Records in the block.
    pub count: u32,
    /// The block's tag ([`block_tag`]).
    pub tag: [u8; TAG_LEN],
    /// Readable sidecar entries for the block (same offset, tag and record count; normally 0
    /// or 1).
    pub columns: u32,
}

/// Every readable block of the store at `store_dir`, in store order, with the number of
/// sidecar columns it has: what the normalizer has done, for reports and tests.
pub fn coverage(store_dir: &Path) -> std::io::Result<Vec<BlockCoverage>> {
    let mut out = Vec::new();
    for info in segment::list_segments(store_dir)? {
        let reader = match segment::SegmentReader::open(&info.path) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let entries = SidecarIndex::open(&info.path).map_or_else(Vec::new, |s| s.entries);
        let mut pos = segment::SEGMENT_HEADER_LEN;
        loop {
            match reader.step(pos)? {
                segment::Step::Block {
                    offset,
                    header,
                    frame_len,
                    ..
                } => {
                    let tag = block_tag(&reader.read_hash(offset, frame_len)?);
                    let columns = entries
                        .iter()
                        .filter(|e| {
                            e.block_offset == offset && e.count == header.count && e.tag == tag
                        })
                        .count() as u32;
                    out.push(BlockCoverage {
                        segment: info.n,
                        offset,
                        agent: header.agent,
                        stream_id: header.stream_id,
                        first_seq: header.first_seq,
                        count: header.count,
                        tag,
                        columns,
                    });
                    pos = offset + frame_len;
                }
                segment::Step::Corrupt { next, .. } => pos = next,
                segment::Step::Tail { .. } | segment::Step::End => break,
            }
        }
    }
    Ok(out)
}

/// An open sidecar being appended to.
struct Open {
    file: File,
    /// The blocks (offset, tag) the sidecar holds a column for.
    covered: std::collections::HashSet<(u64, [u8; TAG_LEN])>,
    dirty: bool,
}

/// Appends block columns to the sidecars of a store's segments (the normalizer's side).
pub struct FieldsWriter {
    store_dir: PathBuf,
    /// Segment number → segment file (refreshed when a number is not found).
    segments: HashMap<u64, PathBuf>,
    /// The sidecars written since the last sync; the last one is the one appended to.
    open: Vec<(u64, Open)>,
    frame: Vec<u8>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for FieldsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldsWriter")
            .field("store_dir", &self.store_dir)
            .finish_non_exhaustive()
    }
}

impl FieldsWriter {
    /// A writer for the store at `store_dir`; removes sidecars whose segment is gone.
    pub fn new(store_dir: &Path) -> FieldsWriter {
        let w = FieldsWriter {
            store_dir: store_dir.to_path_buf(),
            segments: HashMap::new(),
            open: Vec::new(),
            frame: Vec::new(),
            compressor: None,
        };
        w.remove_orphans();
        w
    }

    fn remove_orphans(&self) {
        let Ok(days) = std::fs::read_dir(self.store_dir.join(segment::SEGMENTS_DIR)) else {
            return;
        };
        for day in days.flatten() {
            let Ok(files) = std::fs::read_dir(day.path()) else {
                continue;
            };
            for f in files.flatten() {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "fld")
                    && !p.with_extension("seg").try_exists().unwrap_or(true)
                {
                    tracing::info!(path = %p.display(), "Removing the fields of a removed segment.");
                    std::fs::remove_file(&p).ok();
                }
            }
        }
    }

    fn segment_path(&mut self, n: u64) -> std::io::Result<Option<PathBuf>> {
        if !self.segments.contains_key(&n) {
            self.segments = segment::list_segments(&self.store_dir)?
                .into_iter()
                .map(|s| (s.n, s.path))
                .collect();
        }
        Ok(self.segments.get(&n).cloned())
    }

    fn handle(&mut self, n: u64) -> std::io::Result<Option<&mut Open>> {
        if self.open.last().is_none_or(|(m, _)| *m != n) {
            let Some(seg) = self.segment_path(n)? else {
                return Ok(None);
            };
            let Some(open) = open_for_append(&seg)? else {
                return Ok(None);
            };
            self.open.push((n, open));
        }
        Ok(self.open.last_mut().map(|(_, o)| o))
    }

    /// True when the sidecar of segment `segment` already holds the block at `block_offset`
    /// with tag `tag` (written before a restart), or the segment is gone.
    pub fn covered(
        &mut self,
        segment: u64,
        block_offset: u64,
        tag: &[u8; TAG_LEN],
    ) -> std::io::Result<bool> {
        Ok(match self.handle(segment)? {
            Some(o) => o.covered.contains(&(block_offset, *tag)),
            None => true,
        })
    }

    /// Appends the column (see [`ColumnBuilder::finish`]) of the block at `block_offset` of
    /// segment `segment`, holding `count` records. A segment removed meanwhile gets nothing.
    pub fn append(
        &mut self,
        segment: u64,
        block_offset: u64,
        tag: &[u8; TAG_LEN],
        count: u32,
        column: &[u8],
    ) -> std::io::Result<()> {
        let compressor = match &mut self.compressor {
            Some(c) => c,
            None => self
                .compressor
                .insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        frame.resize(HEAD + zstd::zstd_safe::compress_bound(column.len()), 0);
        let n = compressor.compress_to_buffer(column, &mut frame[HEAD..])?;
        frame.truncate(HEAD + n);
        let len = u32::try_from(n).map_err(std::io::Error::other)?;
        let h = head(block_offset, count, len, tag);
        let body_crc = crc32c::crc32c(&frame[HEAD..]);
        frame[..24].copy_from_slice(&h);
        frame[24..28].copy_from_slice(&crc32c::crc32c(&h).to_le_bytes());
        frame[28..32].copy_from_slice(&body_crc.to_le_bytes());
        let written = match self.handle(segment) {
            Ok(Some(o)) => o.file.write_all(&frame).map(|()| {
                o.covered.insert((block_offset, *tag));
                o.dirty = true;
            }),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.frame = frame;
        written
    }

    /// fsyncs every sidecar appended to since the last sync, and closes all but the current one.
    pub fn sync(&mut self) -> std::io::Result<()> {
        for (_, o) in &mut self.open {
            if o.dirty {
                o.file.sync_data()?;
                o.dirty = false;
            }
        }
        let keep = self.open.len().saturating_sub(1);
        self.open.drain(..keep);
        Ok(())
    }
}

/// Opens (or creates) the sidecar of `segment` for appending, cutting a torn or damaged tail;
/// `None` when the segment is gone.
fn open_for_append(segment: &Path) -> std::io::Result<Option<Open>> {
    let path = sidecar_path(segment);
    let created = !path.try_exists()?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    if !segment.try_exists()? {
        // Retention removed the segment while its blocks were being normalized.
        drop(file);
        std::fs::remove_file(&path).ok();
        return Ok(None);
    }
    let (entries, _) = scan_heads(&file)?;
    // Keep the entries whose bodies check too, up to the first that does not.
    let mut body = Vec::new();
    let mut end = MAGIC.len() as u64;
    let mut covered = std::collections::HashSet::new();
    for e in &entries {
        if !read_body(&file, e, &mut body)? {
            break;
        }
        end = e.body_at + u64::from(e.len);
        covered.insert((e.block_offset, e.tag));
    }
    if covered.is_empty() {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(MAGIC)?;
    } else if end != file.metadata()?.len() {
        file.set_len(end)?;
    }
    file.seek(SeekFrom::Start(end))?;
    if created && let Some(dir) = path.parent() {
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
    }
    Ok(Some(Open {
        file,
        covered,
        dirty: false,
    }))
}

#[cfg(test)]
mod tests;
