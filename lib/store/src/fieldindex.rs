//! Field index: for each sealed segment, which blocks hold which values of the fields worth
//! indexing ([`INDEXED_FIELDS`]), so a field search (`--where user.name=alice`) skips the
//! segments and blocks that cannot match without reading them.
//!
//! The index is built by a consumer that computes the fields (the collector's normalizer) and
//! is told plain facts: "block `b` of segment `s` has text value `v` for field `f`"
//! ([`FieldIndexBuilder::add`]), "… has a value that is not text" ([`FieldIndexBuilder::add_other`])
//! and "every field value of block `b` was added" ([`FieldIndexBuilder::block_done`]). It does not
//! depend on how the fields are stored. When the builder first hears of a later segment, the
//! earlier one is sealed (the writer never appends to it again); its index is written by the
//! next [`FieldIndexBuilder::flush`], which the consumer calls once the fields the index
//! describes are durable (so an index never covers a block whose fields a crash lost).
//!
//! # On-disk format
//!
//! ```text
//! <dir>/segments/<YYYY-MM-DD>/<segment stem>.fidx   beside the segment it describes
//!
//! file     := magic "LSFIDX2\n" | head_len u32 | crc32c(head) u32 | head | section * n_fields
//! head     := segment_len u64 | n_blocks u32 | block_offset u64 * n_blocks   (strictly ascending)
//!             | n_fields u16 | (name str | section_len u64 | crc32c(section) u32) * n_fields
//! section  := field_body     (the sections follow the head in the order the head lists them;
//!                             the file ends with the last one)
//! field_body := overflowed u8 (1: values not kept, every block may match)
//!             | other postings      (blocks where the field has a value that is not text:
//!                                    a number, a bool, null, an object, an over-long text)
//!             | n_values u32 | (value str | postings) * n_values   (values strictly ascending)
//! postings := n u32 | block_ordinal u32 * n   (strictly ascending, each < n_blocks)
//! str      := len u16 | utf-8 bytes                               (all integers little-endian)
//! ```
//!
//! A block ordinal is the block's position in the head's `block_offset` list; only the blocks
//! listed there are *covered*: the builder saw all of their field values. The head is small
//! (a few hundred bytes) and each section has its own checksum, so a search reads the head
//! and the sections of the fields it probes, never the whole file (the IP sections are most
//! of it).
//!
//! # Invariants
//!
//! - **No false negatives.** A block is skipped only when it is covered and, for some probe
//!   `field = value`, the field is indexed, not overflowed, and neither `value` nor a non-text
//!   value of the field occurs in the block. This mirrors `FieldFilter`'s `=` exactly: a text
//!   value matches only the same bytes (case-sensitive), arrays match when an element does
//!   (each element is added), and numbers and bools compare by value, which the index does not
//!   model (they are "other", so the block may match). Every other comparison (`!=`, ranges,
//!   CIDR networks) gives no probe: the index cannot help and the block is read.
//! - **Trusted only when checked and matching.** A file is used only when its magic and head
//!   CRC check out, its head is consistent, its length is the head's plus every section's, and
//!   its `segment_len` equals the segment file's length now; otherwise it is ignored and the
//!   segment is scanned. A section is used only when its CRC checks out and its structure is
//!   consistent; otherwise its field says nothing (every covered block may hold any of its
//!   values) while the file's other fields still skip blocks. A file of the first format
//!   (`LSFIDX1`, one CRC over the whole body) fails the magic check: its segment is scanned.
//!   Blocks not covered (the builder started in the middle of the segment after a restart, a
//!   block could not be parsed) are always read. The active segment has no index.
//! - **Atomic.** Written tmp → fsync → rename → fsync directory: a crash leaves no file or a
//!   whole one. Retention removes it with its segment.
//! - **Bounded.** A field keeps at most [`MAX_VALUES`] distinct values and [`MAX_POSTINGS`]
//!   (value, block) pairs per segment; past either it is marked overflowed and its values are
//!   dropped (searches on it read every block). Texts longer than [`MAX_VALUE_LEN`] count as
//!   "other". A reader refuses files over [`MAX_FILE_BYTES`].
//! - **Hashing.** The value sets hash attacker-influenced log text with foldhash's
//!   `fast::RandomState`, not SipHash: its seed is random per process and per map, so an
//!   attacker cannot precompute colliding values, and each set is bounded by [`MAX_VALUES`] and
//!   rebuilt per segment, so even a collision flood costs at most that many probes per value.

use std::collections::HashMap;
use std::io::Write;

use foldhash::fast::RandomState;
use std::path::{Path, PathBuf};

use crate::segment;

/// The fields the index keeps, in file order.
pub const INDEXED_FIELDS: [&str; 8] = [
    "user.name",
    "source.ip",
    "destination.ip",
    "host.name",
    "event.dataset",
    "event.outcome",
    "email.from.address",
    "url.domain",
];
/// Distinct values of one field kept per segment; past it the field is overflowed.
pub const MAX_VALUES: usize = 100_000;
/// (value, block) pairs of one field kept per segment; past it the field is overflowed.
pub const MAX_POSTINGS: usize = 4_000_000;
/// Longest text value indexed as text (bytes); longer ones count as "other".
pub const MAX_VALUE_LEN: usize = 1024;
/// Largest index file a reader accepts.
pub const MAX_FILE_BYTES: u64 = 512 << 20;
const MAGIC: &[u8; 8] = b"LSFIDX2\n";
/// Magic, head length and head CRC.
const PREFIX_LEN: usize = 16;

/// "Only records whose `field` equals the text `value` can match": a hint that lets a search
/// skip blocks. It never filters records itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProbe {
    /// Field name (one of [`INDEXED_FIELDS`] to be of any use).
    pub field: String,
    /// Exact text value.
    pub value: String,
}

/// Why an index file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FieldIndexError {
    /// Writing the file failed.
    #[error("field index {path}: {source}")]
    Io {
        /// The index file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The segment is no longer in the store (removed by retention).
    #[error("segment {0} not found in the store")]
    SegmentGone(u64),
}

/// Path of a segment's field index.
pub(crate) fn path(segment: &Path) -> PathBuf {
    segment.with_extension("fidx")
}

/// Index of one field under construction.
#[derive(Debug, Default)]
struct FieldBuild {
    overflowed: bool,
    other: Vec<u32>,
    values: HashMap<Box<str>, ValueBlocks, RandomState>,
    postings: usize,
    /// The text value added last and the block it was added for (`None`: nothing cached):
    /// the same value again in the same block (a block of one format repeats its dataset,
    /// outcome and host on every record) is already posted and needs no lookup.
    last: String,
    last_ord: Option<u32>,
}

/// The blocks of one value, ascending. The first needs no allocation of its own: most values
/// of the address and user fields are seen in one block only.
#[derive(Debug)]
struct ValueBlocks {
    first: u32,
    more: Vec<u32>,
}

impl ValueBlocks {
    fn last(&self) -> u32 {
        self.more.last().copied().unwrap_or(self.first)
    }

    /// Appends `ord` unless it is already last; true when appended.
    fn push(&mut self, ord: u32) -> bool {
        let fresh = self.last() != ord;
        if fresh {
            self.more.push(ord);
        }
        fresh
    }

    /// Removes `ord` if it is last; false when nothing is left.
    fn pop(&mut self, ord: u32) -> (bool, bool) {
        if self.last() != ord {
            (false, true)
        } else if self.more.pop().is_some() {
            (true, true)
        } else {
            (true, false)
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.first).chain(self.more.iter().copied())
    }

    fn len(&self) -> usize {
        1 + self.more.len()
    }
}

/// The index of one segment under construction.
#[derive(Debug)]
struct SegmentBuild {
    segment: u64,
    /// Offsets of covered blocks, ascending.
    blocks: Vec<u64>,
    /// Offset of the block being added (its ordinal is `blocks.len()`), if any.
    open: Option<u64>,
    fields: Vec<FieldBuild>,
}

/// Builds the field index of each segment from the blocks' values, in store order.
#[derive(Debug)]
pub struct FieldIndexBuilder {
    store_dir: PathBuf,
    current: Option<SegmentBuild>,
    /// Sealed segments whose index waits for [`FieldIndexBuilder::flush`].
    sealed: Vec<SegmentBuild>,
}

// === impl FieldIndexBuilder ===

impl FieldIndexBuilder {
    /// A builder for the store at `store_dir`.
    pub fn new(store_dir: impl Into<PathBuf>) -> Self {
        FieldIndexBuilder {
            store_dir: store_dir.into(),
            current: None,
            sealed: Vec::new(),
        }
    }

    /// Block `block` (its offset) of segment `segment` has the text `value` for `field`.
    /// Fields not in [`INDEXED_FIELDS`] are ignored. Moving to a later segment seals the
    /// earlier one (written by the next [`FieldIndexBuilder::flush`]).
    pub fn add(&mut self, segment: u64, block: u64, field: &str, value: &str) {
        if let Some(f) = field_no(field) {
            self.add_nth(segment, block, f, value);
        }
    }

    /// [`FieldIndexBuilder::add`] for the field `INDEXED_FIELDS[f]` (a caller walking
    /// [`INDEXED_FIELDS`] saves the name lookup). An `f` past the list is ignored.
    pub fn add_nth(&mut self, segment: u64, block: u64, f: usize, value: &str) {
        if f >= INDEXED_FIELDS.len() {
            return;
        }
        let Some(build) = self.at(segment, block) else {
            return;
        };
        let ord = build.blocks.len() as u32;
        let fb = &mut build.fields[f];
        if value.len() > MAX_VALUE_LEN {
            push_ord(&mut fb.other, ord);
        } else if !fb.overflowed {
            if fb.last_ord == Some(ord) && fb.last == value {
                return;
            }
            match fb.values.get_mut(value) {
                Some(p) => {
                    if p.push(ord) {
                        fb.postings += 1;
                    }
                }
                None => {
                    let p = ValueBlocks {
                        first: ord,
                        more: Vec::new(),
                    };
                    fb.values.insert(value.into(), p);
                    fb.postings += 1;
                }
            }
            if fb.values.len() > MAX_VALUES || fb.postings > MAX_POSTINGS {
                fb.overflowed = true;
                fb.values = HashMap::default();
                fb.last_ord = None;
            } else {
                fb.last.clear();
                fb.last.push_str(value);
                fb.last_ord = Some(ord);
            }
        }
    }

    /// Block `block` of segment `segment` has a value for `field` that is not text.
    pub fn add_other(&mut self, segment: u64, block: u64, field: &str) {
        let Some(f) = field_no(field) else {
            return;
        };
        if let Some(build) = self.at(segment, block) {
            let ord = build.blocks.len() as u32;
            push_ord(&mut build.fields[f].other, ord);
        }
    }

    /// Every field value of the block was added: the block is covered. A block never marked
    /// done (its fields could not be computed) stays uncovered and is always read.
    pub fn block_done(&mut self, segment: u64, block: u64) {
        if let Some(build) = self.at(segment, block) {
            build.open = None;
            build.blocks.push(block);
        }
    }

    /// Writes the index of every sealed segment not written yet. Call it only once the fields
    /// of the blocks marked done are durable. A segment whose index cannot be written is
    /// dropped (searches read it whole); the first error is returned after trying them all.
    pub fn flush(&mut self) -> Result<(), FieldIndexError> {
        let mut first = Ok(());
        for build in std::mem::take(&mut self.sealed) {
            if let Err(e) = self.write(build)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// Drops what was added for the open block, if any (its values must not be kept under
    /// the ordinal the next block will use).
    fn abandon_open(build: &mut SegmentBuild) {
        if build.open.take().is_none() {
            return;
        }
        let ord = build.blocks.len() as u32;
        for fb in &mut build.fields {
            if fb.other.last() == Some(&ord) {
                fb.other.pop();
            }
            fb.last_ord = None;
            fb.values.retain(|_, p| {
                let (popped, left) = p.pop(ord);
                if popped {
                    fb.postings -= 1;
                }
                left
            });
        }
    }

    /// The build of `segment` with `block` open; seals the previous segment when the segment
    /// changed. `None`: the block is already covered and is ignored.
    fn at(&mut self, segment: u64, block: u64) -> Option<&mut SegmentBuild> {
        let same = self.current.as_ref().is_some_and(|b| b.segment == segment);
        if !same {
            if let Some(mut done) = self.current.take()
                && segment > done.segment
            {
                Self::abandon_open(&mut done);
                self.sealed.push(done);
            }
            self.current = Some(SegmentBuild {
                segment,
                blocks: Vec::new(),
                open: None,
                fields: (0..INDEXED_FIELDS.len())
                    .map(|_| FieldBuild::default())
                    .collect(),
            });
        }
        let build = self.current.as_mut().expect("set above");
        if build.open.is_some_and(|o| o != block) {
            Self::abandon_open(build);
        }
        // A block at or before a covered one (handed out again): already accounted.
        if build.blocks.last().is_some_and(|&last| block <= last) {
            return None;
        }
        build.open = Some(block);
        Some(build)
    }

    /// Writes the index of a sealed segment.
    fn write(&self, mut build: SegmentBuild) -> Result<(), FieldIndexError> {
        Self::abandon_open(&mut build);
        let segments =
            segment::list_segments(&self.store_dir).map_err(|source| FieldIndexError::Io {
                path: self.store_dir.clone(),
                source,
            })?;
        let info = segments
            .iter()
            .find(|s| s.n == build.segment)
            .ok_or(FieldIndexError::SegmentGone(build.segment))?;
        let target = path(&info.path);
        let io = |source| FieldIndexError::Io {
            path: target.clone(),
            source,
        };
        let segment_len = std::fs::metadata(&info.path).map_err(io)?.len();
        let bytes = encode(&build, segment_len);
        write_atomic(&target, &bytes).map_err(io)?;
        tracing::debug!(segment = build.segment, blocks = build.blocks.len(), path = %target.display(),
            "Wrote a field index.");
        Ok(())
    }
}

/// Appends `ord` unless it is already last.
fn push_ord(p: &mut Vec<u32>, ord: u32) {
    if p.last() != Some(&ord) {
        p.push(ord);
    }
}

fn field_no(field: &str) -> Option<usize> {
    INDEXED_FIELDS.iter().position(|f| *f == field)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_postings(out: &mut Vec<u8>, p: &[u32]) {
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    for ord in p {
        out.extend_from_slice(&ord.to_le_bytes());
    }
}

/// A field's section (see the module doc).
fn encode_section(fb: &FieldBuild) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(u8::from(fb.overflowed));
    put_postings(&mut out, &fb.other);
    let mut values: Vec<_> = fb.values.iter().collect();
    values.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for (v, p) in values {
        put_str(&mut out, v);
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        for ord in p.iter() {
            out.extend_from_slice(&ord.to_le_bytes());
        }
    }
    out
}

/// The whole file (see the module doc).
fn encode(build: &SegmentBuild, segment_len: u64) -> Vec<u8> {
    let sections: Vec<Vec<u8>> = build.fields.iter().map(encode_section).collect();
    let mut head = Vec::new();
    head.extend_from_slice(&segment_len.to_le_bytes());
    head.extend_from_slice(&(build.blocks.len() as u32).to_le_bytes());
    for off in &build.blocks {
        head.extend_from_slice(&off.to_le_bytes());
    }
    head.extend_from_slice(&(INDEXED_FIELDS.len() as u16).to_le_bytes());
    for (name, section) in INDEXED_FIELDS.iter().zip(&sections) {
        put_str(&mut head, name);
        head.extend_from_slice(&(section.len() as u64).to_le_bytes());
        head.extend_from_slice(&crc32c::crc32c(section).to_le_bytes());
    }
    let total = PREFIX_LEN + head.len() + sections.iter().map(Vec::len).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&head).to_le_bytes());
    out.extend_from_slice(&head);
    for section in &sections {
        out.extend_from_slice(section);
    }
    out
}

fn write_atomic(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = target.with_extension("fidx.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, target)?;
    if let Some(parent) = target.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// What a segment's field index says about a set of probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidates {
    /// Covered block offsets, ascending.
    blocks: Vec<u64>,
    /// Per covered block: may a record of it satisfy every probe?
    may: Vec<bool>,
}

// === impl Candidates ===

impl Candidates {
    /// Reads `segment`'s index and evaluates `probes`; `None` when there is no usable index
    /// (missing, damaged, stale for a segment of `segment_len` bytes). Reads the head and the
    /// probed fields' sections only; adds the bytes read to `bytes_read`.
    pub(crate) fn read(
        segment: &Path,
        segment_len: u64,
        probes: &[FieldProbe],
        bytes_read: &mut u64,
    ) -> Option<Self> {
        let file = std::fs::File::open(path(segment)).ok()?;
        let len = file.metadata().ok()?.len();
        if len > MAX_FILE_BYTES {
            return None;
        }
        let mut src = FileSource { file, len, read: 0 };
        let c = Candidates::parse(&mut src, segment_len, probes);
        *bytes_read += src.read;
        c
    }

    /// [`Candidates::read`] on any source of the file's bytes.
    fn parse(src: &mut dyn Source, segment_len: u64, probes: &[FieldProbe]) -> Option<Self> {
        let file_len = src.len();
        let prefix = src.read_at(0, PREFIX_LEN)?;
        let mut r = Reader(&prefix);
        if r.take(8)? != MAGIC {
            return None;
        }
        let head_len = r.u32()? as usize;
        let head_crc = r.u32()?;
        if (PREFIX_LEN + head_len) as u64 > file_len {
            return None;
        }
        let head = src.read_at(PREFIX_LEN as u64, head_len)?;
        if crc32c::crc32c(&head) != head_crc {
            return None;
        }
        let mut r = Reader(&head);
        if r.u64()? != segment_len {
            return None;
        }
        let n_blocks = r.u32()? as usize;
        let mut blocks = Vec::with_capacity(n_blocks.min(head.len() / 8));
        for _ in 0..n_blocks {
            let off = r.u64()?;
            if blocks.last().is_some_and(|&last| off <= last) {
                return None;
            }
            blocks.push(off);
        }
        // The sections: (name, where, length, crc), laid out one after the other.
        let n_fields = r.u16()?;
        let mut sections = Vec::with_capacity(usize::from(n_fields));
        let mut at = (PREFIX_LEN + head_len) as u64;
        for _ in 0..n_fields {
            let name = r.str()?;
            let len = r.u64()?;
            let crc = r.u32()?;
            sections.push((name, at, len, crc));
            at = at.checked_add(len)?;
        }
        if !r.0.is_empty() || at != file_len {
            return None;
        }
        // Per probe: the blocks that may hold its value; `None` = every block may (a field
        // the file does not index, an overflowed one, or one whose section does not check).
        let mut allowed: Vec<Option<Vec<bool>>> = vec![None; probes.len()];
        for &(name, at, len, crc) in &sections {
            if !probes.iter().any(|p| p.field.as_bytes() == name) {
                continue;
            }
            let section = usize::try_from(len)
                .ok()
                .and_then(|len| src.read_at(at, len))
                .filter(|s| crc32c::crc32c(s) == crc);
            let Some(section) = section else {
                tracing::warn!(field = %String::from_utf8_lossy(name),
                    "A field index section does not check: its blocks are read.");
                continue;
            };
            for (i, p) in probes.iter().enumerate() {
                if p.field.as_bytes() == name {
                    allowed[i] = Reader(&section)
                        .field(n_blocks, p.value.as_bytes())
                        .flatten();
                }
            }
        }
        let mut may = vec![true; n_blocks];
        for a in allowed.iter().flatten() {
            for (m, ok) in may.iter_mut().zip(a) {
                *m &= *ok;
            }
        }
        Some(Candidates { blocks, may })
    }

    /// False only when the block at `offset` is covered and cannot match.
    pub(crate) fn block_may_match(&self, offset: u64) -> bool {
        match self.blocks.binary_search(&offset) {
            Ok(i) => self.may[i],
            Err(_) => true,
        }
    }

    /// True when the index covers `blocks` blocks and none of them can match (the segment,
    /// holding exactly `blocks` readable blocks, can be skipped whole).
    pub(crate) fn rules_out_all(&self, blocks: u64) -> bool {
        self.blocks.len() as u64 == blocks && self.may.iter().all(|m| !m)
    }
}

/// Positioned reads of an index file's bytes.
trait Source {
    /// Length of the file.
    fn len(&self) -> u64;
    /// `n` bytes at `at`; `None` when they are not all there.
    fn read_at(&mut self, at: u64, n: usize) -> Option<Vec<u8>>;
}

/// An index file on disk, counting the bytes read.
struct FileSource {
    file: std::fs::File,
    len: u64,
    read: u64,
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, at: u64, n: usize) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        if at.checked_add(n as u64)? > self.len {
            return None;
        }
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, at).ok()?;
        self.read += n as u64;
        Some(buf)
    }
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&mut self, at: u64, n: usize) -> Option<Vec<u8>> {
        let at = usize::try_from(at).ok()?;
        Some(self.get(at..at.checked_add(n)?)?.to_vec())
    }
}

/// A bounds-checked little-endian reader.
struct Reader<'a>(&'a [u8]);

/// A postings list still in the file's bytes.
struct Postings<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()? as usize;
        let s = self.take(len)?;
        std::str::from_utf8(s).ok()?;
        Some(s)
    }
    /// Reads a whole field body; the blocks that may hold `want` (`None`: every block may,
    /// the field overflowed). `None` (outer) when the body is malformed.
    #[allow(clippy::option_option)]
    fn field(mut self, n_blocks: usize, want: &[u8]) -> Option<Option<Vec<bool>>> {
        let overflowed = match self.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let mut allowed = vec![false; n_blocks];
        self.postings(n_blocks)?.set(&mut allowed);
        let n_values = self.u32()?;
        let mut prev: Option<&[u8]> = None;
        for _ in 0..n_values {
            let value = self.str()?;
            if prev.is_some_and(|p| value <= p) {
                return None;
            }
            prev = Some(value);
            let p = self.postings(n_blocks)?;
            if value == want {
                p.set(&mut allowed);
            }
        }
        if !self.0.is_empty() {
            return None;
        }
        Some((!overflowed).then_some(allowed))
    }

    /// A postings list whose ordinals are checked strictly ascending and below `n_blocks`.
    fn postings(&mut self, n_blocks: usize) -> Option<Postings<'a>> {
        let n = self.u32()? as usize;
        let raw = self.take(n.checked_mul(4)?)?;
        let mut prev = None;
        for c in raw.chunks_exact(4) {
            let ord = u32::from_le_bytes(c.try_into().ok()?);
            if ord as usize >= n_blocks || prev.is_some_and(|p| ord <= p) {
                return None;
            }
            prev = Some(ord);
        }
        Some(Postings(raw))
    }
}

impl Postings<'_> {
    /// Sets `a[ord]` for every ordinal (checked in range when read).
    fn set(&self, a: &mut [bool]) {
        for c in self.0.chunks_exact(4) {
            let ord = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize;
            a[ord] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(field: &str, value: &str) -> FieldProbe {
        FieldProbe {
            field: field.into(),
            value: value.into(),
        }
    }

    /// Three blocks at offsets 16, 100, 200: alice in 16 and 200, a numeric user in 100,
    /// failure in 200; block 300 was never done.
    fn sample() -> SegmentBuild {
        let mut b = FieldIndexBuilder::new("/nonexistent");
        b.add(0, 16, "user.name", "alice");
        b.add(0, 16, "event.outcome", "success");
        b.add(0, 16, "message", "ignored");
        b.block_done(0, 16);
        b.add_other(0, 100, "user.name");
        b.block_done(0, 100);
        b.add(0, 200, "user.name", "alice");
        b.add(0, 200, "user.name", "Alice");
        b.add(0, 200, "event.outcome", "failure");
        b.block_done(0, 200);
        b.add(0, 300, "user.name", "bob");
        let mut build = b.current.take().unwrap();
        FieldIndexBuilder::abandon_open(&mut build);
        build
    }

    fn file(build: &SegmentBuild, segment_len: u64) -> Vec<u8> {
        encode(build, segment_len)
    }

    fn parse(bytes: &[u8], segment_len: u64, probes: &[FieldProbe]) -> Option<Candidates> {
        Candidates::parse(&mut { bytes }, segment_len, probes)
    }

    /// Where each field's section lies in `bytes` (name, start, end), from the head.
    fn sections(bytes: &[u8]) -> Vec<(String, usize, usize)> {
        let head_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let mut r = Reader(&bytes[PREFIX_LEN..PREFIX_LEN + head_len]);
        r.u64().unwrap();
        let n = r.u32().unwrap() as usize;
        r.take(n * 8).unwrap();
        let mut at = PREFIX_LEN + head_len;
        (0..r.u16().unwrap())
            .map(|_| {
                let name = String::from_utf8(r.str().unwrap().to_vec()).unwrap();
                let len = r.u64().unwrap() as usize;
                r.u32().unwrap();
                at += len;
                (name, at - len, at)
            })
            .collect()
    }

    #[test]
    fn exact_values_skip_blocks_and_everything_else_may_match() {
        let bytes = file(&sample(), 999);
        let c = |probes: &[FieldProbe]| parse(&bytes, 999, probes).unwrap();
        let alice = c(&[probe("user.name", "alice")]);
        // 100 has a non-text user.name: it may equal anything numerically.
        assert_eq!(alice.may, vec![true, true, true]);
        let both = c(&[
            probe("user.name", "alice"),
            probe("event.outcome", "failure"),
        ]);
        assert_eq!(both.may, vec![false, false, true]);
        assert!(!both.block_may_match(16) && both.block_may_match(200));
        assert!(both.block_may_match(300), "an uncovered block is read");
        let bob = c(&[probe("user.name", "bob")]);
        assert_eq!(
            bob.may,
            vec![false, true, false],
            "bob's block was never done"
        );
        let case = c(&[probe("user.name", "ALICE")]);
        assert_eq!(case.may, vec![false, true, false], "= is case-sensitive");
        let nobody = c(&[probe("event.outcome", "unknown")]);
        assert!(nobody.rules_out_all(3) && !nobody.rules_out_all(4));
        let unindexed = c(&[probe("process.name", "sshd")]);
        assert_eq!(unindexed.may, vec![true, true, true]);
        assert_eq!(c(&[]).may, vec![true, true, true]);
    }

    #[test]
    fn damaged_head_stale_or_truncated_files_are_not_used() {
        let bytes = file(&sample(), 999);
        let p = [probe("user.name", "alice")];
        assert!(parse(&bytes, 999, &p).is_some());
        assert!(parse(&bytes, 998, &p).is_none(), "stale");
        let first_section = sections(&bytes)[0].1;
        for i in 0..bytes.len() {
            if i < first_section {
                let mut bad = bytes.clone();
                bad[i] ^= 0x01;
                assert!(parse(&bad, 999, &p).is_none(), "flipped head byte {i}");
            }
            assert!(parse(&bytes[..i], 999, &p).is_none(), "cut at {i}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(parse(&longer, 999, &p).is_none(), "trailing byte");
    }

    #[test]
    fn a_damaged_section_says_nothing_about_its_field_only() {
        let bytes = file(&sample(), 999);
        let outcome = [probe("event.outcome", "failure")];
        let alice = [probe("user.name", "alice")];
        let both = [alice[0].clone(), outcome[0].clone()];
        let good = |probes: &[FieldProbe]| parse(&bytes, 999, probes).unwrap().may;
        assert_eq!(good(&outcome), vec![false, false, true]);
        assert_eq!(good(&[probe("user.name", "bob")]), vec![false, true, false]);
        let secs = sections(&bytes);
        let (_, from, to) = secs.iter().find(|s| s.0 == "user.name").unwrap().clone();
        for i in from..to {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let c = |probes: &[FieldProbe]| parse(&bad, 999, probes).unwrap().may;
            // user.name's section is not trusted: every covered block may hold any user.
            assert_eq!(c(&[probe("user.name", "bob")]), vec![true; 3], "byte {i}");
            assert_eq!(c(&alice), vec![true; 3], "byte {i}");
            // The other fields still skip blocks, alone and beside the damaged one.
            assert_eq!(c(&outcome), good(&outcome), "byte {i}");
            assert_eq!(c(&both), good(&outcome), "byte {i}");
        }
    }

    #[test]
    fn a_search_reads_the_head_and_the_probed_sections_only() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("x.seg");
        let mut b = FieldIndexBuilder::new("/nonexistent");
        for i in 0..5000 {
            b.add(0, 16, "source.ip", &format!("10.0.{}.{}", i / 256, i % 256));
        }
        b.add(0, 16, "user.name", "alice");
        b.block_done(0, 16);
        let build = b.current.take().unwrap();
        let bytes = file(&build, 7);
        std::fs::write(path(&seg), &bytes).unwrap();
        let mut read = 0;
        let c = Candidates::read(&seg, 7, &[probe("user.name", "bob")], &mut read).unwrap();
        assert_eq!(c.may, vec![false]);
        let ip = sections(&bytes)
            .into_iter()
            .find(|s| s.0 == "source.ip")
            .unwrap();
        assert!(
            read < (bytes.len() - (ip.2 - ip.1)) as u64,
            "read {read} of {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn a_value_of_an_abandoned_block_is_posted_again_for_the_next_block() {
        let mut b = FieldIndexBuilder::new("/nonexistent");
        b.add(0, 16, "user.name", "alice");
        b.add(0, 16, "user.name", "alice");
        // 16 is never done: 50 takes its ordinal; alice must be posted again (the builder's
        // "same value, same block" shortcut must not remember the abandoned block).
        b.add(0, 50, "user.name", "alice");
        b.add(0, 50, "event.outcome", "success");
        b.block_done(0, 50);
        b.add_nth(0, 60, 0, "alice");
        b.add_nth(0, 60, 0, "bob");
        b.add_nth(0, 60, 0, "alice");
        b.add_nth(0, 60, INDEXED_FIELDS.len(), "ignored");
        b.block_done(0, 60);
        let build = b.current.take().unwrap();
        assert_eq!(build.fields[0].postings, 3);
        let bytes = file(&build, 5);
        let c = |v: &str| parse(&bytes, 5, &[probe("user.name", v)]).unwrap().may;
        assert_eq!(c("alice"), vec![true, true]);
        assert_eq!(c("bob"), vec![false, true]);
        assert_eq!(c("carol"), vec![false, false]);
    }

    /// The bytes of [`sample`]'s file as the builder wrote them before it kept its value sets
    /// with foldhash and its first posting inline: the format did not change.
    #[test]
    fn the_file_bytes_are_those_of_the_format() {
        let bytes = file(&sample(), 999);
        assert_eq!((bytes.len(), crc32c::crc32c(&bytes)), (405, 1_828_108_995));
    }

    #[test]
    fn overflowed_fields_say_nothing() {
        let mut b = FieldIndexBuilder::new("/nonexistent");
        for i in 0..=MAX_VALUES {
            b.add(0, 16, "source.ip", &format!("10.{i}"));
        }
        b.block_done(0, 16);
        let build = b.current.take().unwrap();
        assert!(build.fields[1].overflowed && build.fields[1].values.is_empty());
        let bytes = file(&build, 1);
        let c = parse(&bytes, 1, &[probe("source.ip", "192.0.2.1")]).unwrap();
        assert_eq!(c.may, vec![true]);
    }
}
