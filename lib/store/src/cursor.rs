//! Durable cursors: the store is the queue. Every consumer of stored blocks (the normalizer,
//! each forwarder) reads them in commit order through a [`Cursor`] of its own name and persists
//! where it got to with [`Cursor::commit`] *after* it has done its work with them.
//!
//! # On-disk format
//!
//! ```text
//! <store>/cursors/<name>.cur   one line, written to <name>.cur.tmp, fsync'd, renamed, dir fsync'd
//! line := "logship-cursor 1 segment=<n> offset=<byte offset> hash=<64 hex> updated_ns=<i64>
//!          crc=<crc32c of everything before " crc=", 8 hex>\n"
//! ```
//!
//! `segment` is the segment number `n` of the block to read next, `offset` the byte offset of
//! that block in it (16, the segment header's length, at the start of a segment), `hash` the
//! chained hash of the last block consumed (64 zeros before the first).
//!
//! # Invariants
//!
//! - **Commit order**: blocks come out in store order (segment `n`, then file order), the order
//!   the single writer appended them; per (agent, stream) that is seq order.
//! - **Committed only**: a cursor given the writer's [`CommitWatch`] never reads past what the
//!   last `fsync` covered, so nothing it hands out can vanish in a crash. A cursor in another
//!   process (no watch) reads complete, checksummed blocks up to the end of the file; a power
//!   loss could take such a block back, and the resume check below notices.
//! - **At least once, exactly after a crash**: the file moves only on [`Cursor::commit`]
//!   (atomic rename, fsync'd), so after a crash a consumer resumes at its last commit and sees
//!   again at most the blocks it had read since then; it never skips one.
//! - **Resume check**: on open, the block at the saved offset must link (`prev_hash`) to the
//!   saved hash. If it does not (the segment changed under the cursor), the cursor looks for
//!   the saved hash in that segment and resumes after it, else at the segment's start (blocks
//!   are then seen again, never skipped).
//! - **A damaged cursor file never stops its consumer**: [`Cursor::open`] sets it aside
//!   (`<name>.cur.damaged-<ns>`, logged) and starts from the oldest block: work is redone, never
//!   skipped. [`load_cursor`] reports it as an error.
//! - **Retention and damage never stop a cursor**: a cursor whose segment was removed moves
//!   to the oldest remaining later segment; a damaged block or region is stepped over. Both
//!   come out as a [`CursorItem::Skipped`] naming the range, so the consumer counts and logs
//!   the loss.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::StoreError;
use crate::block::{self, GENESIS_HASH, HASH_LEN};
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentInfo, SegmentReader, Step};
use crate::writer::{now_ns, sync_dir};

/// Sub-directory of the store holding the cursor files.
pub const CURSORS_DIR: &str = "cursors";
/// How often a cursor without a [`CommitWatch`] looks for new blocks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A place in the store: the block at byte `offset` of segment number `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct CursorPos {
    /// Segment number `n`.
    pub segment: u64,
    /// Byte offset in that segment (a block boundary, or the end of the segment).
    pub offset: u64,
}

/// A saved cursor as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCursor {
    /// Where the consumer resumes.
    pub pos: CursorPos,
    /// Chained hash (hex) of the last block consumed; 64 zeros before the first.
    pub hash: String,
    /// When it was committed (Unix ns).
    pub updated_ns: i64,
}

/// One block read by a cursor.
#[derive(Debug, Clone)]
pub struct CursorBlock {
    /// Where the block starts.
    pub at: CursorPos,
    /// Where the next block starts.
    pub next: CursorPos,
    /// Agent identity that stored it.
    pub agent: String,
    /// The agent's stream id.
    pub stream_id: String,
    /// Host name from the payload.
    pub host: String,
    /// Seq of the first record.
    pub first_seq: u64,
    /// Number of records.
    pub count: u32,
    /// Lowest observed time (Unix ns).
    pub min_time_ns: i64,
    /// Highest observed time (Unix ns).
    pub max_time_ns: i64,
    /// Inputs named in the block.
    pub inputs: Vec<String>,
    /// The agent's zstd `RecordList`, checked against the block CRC.
    pub payload: Bytes,
    /// The inline fields column, if the block has one.
    pub fields: Option<Bytes>,
    /// The block's chained hash (hex).
    pub hash: String,
}

/// A range the cursor stepped over without a block to hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Start of the range.
    pub from: CursorPos,
    /// Where reading resumed.
    pub to: CursorPos,
    /// Why (segments removed, damaged bytes, checksum mismatch).
    pub reason: String,
}

/// What [`Cursor::read_next`] read.
#[derive(Debug, Clone)]
pub enum CursorItem {
    /// The next committed block.
    Block(Box<CursorBlock>),
    /// A range with no readable block (removed segments, damage); the cursor moved past it.
    Skipped(Skipped),
}

/// Headers-only summary of the blocks after a position (for lag reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Blocks after the position.
    pub blocks: u64,
    /// Records in them.
    pub records: u64,
    /// Lowest observed time among them (Unix ns).
    pub oldest_ns: Option<i64>,
}

/// The writer's committed end, shared with in-process cursors: they read only up to it and
/// sleep on it until it moves. Cloning shares the same watch.
#[derive(Debug, Clone, Default)]
pub struct CommitWatch {
    inner: Arc<(Mutex<WatchState>, Condvar)>,
}

#[derive(Debug, Default)]
struct WatchState {
    end: Option<CursorPos>,
    closed: bool,
}

/// A named consumer's durable place in the store.
#[derive(Debug)]
pub struct Cursor {
    store: PathBuf,
    name: String,
    file: PathBuf,
    pos: CursorPos,
    last_hash: [u8; HASH_LEN],
    watch: Option<CommitWatch>,
    segments: Vec<SegmentInfo>,
    reader: Option<SegmentReader>,
    frame: Vec<u8>,
}

// === impl CommitWatch ===

impl CommitWatch {
    /// A watch with nothing committed yet.
    pub fn new() -> CommitWatch {
        CommitWatch::default()
    }

    /// Publishes the committed end (called by the writer after each successful fsync) and
    /// wakes every waiting cursor.
    pub fn publish(&self, end: Option<CursorPos>) {
        let (lock, cv) = &*self.inner;
        let mut s = lock.lock().expect("commit watch lock is never poisoned");
        if s.end != end {
            s.end = end;
            cv.notify_all();
        }
    }

    /// Marks the writer stopped and wakes every waiting cursor ([`CommitWatch::is_closed`]).
    pub fn close(&self) {
        let (lock, cv) = &*self.inner;
        lock.lock()
            .expect("commit watch lock is never poisoned")
            .closed = true;
        cv.notify_all();
    }

    /// Whether the writer has stopped.
    pub fn is_closed(&self) -> bool {
        self.inner
            .0
            .lock()
            .expect("commit watch lock is never poisoned")
            .closed
    }

    /// The committed end last published.
    pub fn end(&self) -> Option<CursorPos> {
        self.inner
            .0
            .lock()
            .expect("commit watch lock is never poisoned")
            .end
    }

    /// Waits until the committed end differs from `seen` (or the watch is closed), at most
    /// `timeout`.
    fn wait_change(&self, seen: Option<CursorPos>, timeout: Duration) {
        let (lock, cv) = &*self.inner;
        let s = lock.lock().expect("commit watch lock is never poisoned");
        let _unused = cv
            .wait_timeout_while(s, timeout, |s| s.end == seen && !s.closed)
            .expect("commit watch lock is never poisoned");
    }
}

// === impl Cursor ===

impl Cursor {
    /// Opens the cursor `name` of the store at `store_dir` (created at the very start of the
    /// store if it has never committed). With `watch`, it reads only what the writer committed.
    pub fn open(
        store_dir: &Path,
        name: &str,
        watch: Option<CommitWatch>,
    ) -> Result<Cursor, StoreError> {
        check_name(name)?;
        let file = cursor_path(store_dir, name);
        let saved = match load_file(&file) {
            Ok(s) => s,
            Err(StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::InvalidData =>
            {
                set_aside(&file)?;
                None
            }
            Err(e) => return Err(e),
        };
        let (pos, last_hash) = match &saved {
            Some(s) => (s.pos, decode_hash(&file, &s.hash)?),
            None => (start_of_store(store_dir)?, GENESIS_HASH),
        };
        let mut cursor = Cursor {
            store: store_dir.to_path_buf(),
            name: name.to_string(),
            file,
            pos,
            last_hash,
            watch,
            segments: Vec::new(),
            reader: None,
            frame: Vec::new(),
        };
        if saved.is_some() {
            cursor.resume_check()?;
        }
        Ok(cursor)
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the next [`Cursor::read_next`] reads.
    pub fn position(&self) -> CursorPos {
        self.pos
    }

    /// Persists the current position (after the last block handed out): written to a
    /// temporary file, fsync'd, renamed over the cursor file, directory fsync'd. Call it only
    /// once the consumer's work with those blocks is durable.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        let saved = SavedCursor {
            pos: self.pos,
            hash: hex::encode(self.last_hash),
            updated_ns: now_ns(),
        };
        write_file(&self.file, &saved)
    }

    /// Persists `pos` (a block boundary this cursor has passed, e.g. a [`CursorBlock::next`])
    /// with `hash`, the hex hash of the block that ends there, without moving the reading
    /// position: for consumers that read ahead of what they have finished.
    pub fn commit_at(&self, pos: CursorPos, hash: &str) -> Result<(), StoreError> {
        let saved = SavedCursor {
            pos,
            hash: hash.to_string(),
            updated_ns: now_ns(),
        };
        decode_hash(&self.file, hash)?;
        write_file(&self.file, &saved)
    }

    /// Reads the next committed block, or a skipped range; `None` when caught up.
    pub fn read_next(&mut self) -> Result<Option<CursorItem>, StoreError> {
        self.advance(true)
    }

    /// Waits until the writer commits more (in-process watch), or [`POLL_INTERVAL`] (other
    /// processes), at most `timeout`. Returns at once if the watch is closed.
    pub fn wait(&self, timeout: Duration) {
        match &self.watch {
            Some(w) => {
                let seen = w.end();
                // Only sleep if everything committed has been read (a commit may have come
                // between the last read and this call).
                match seen {
                    Some(e) if e.segment == self.pos.segment && self.pos.offset < e.offset => {}
                    // The writer moved to a later segment: the next read follows it.
                    Some(e) if e.segment > self.pos.segment => {
                        w.wait_change(seen, timeout.min(Duration::from_millis(10)));
                    }
                    _ => w.wait_change(seen, timeout),
                }
            }
            None => std::thread::sleep(timeout.min(POLL_INTERVAL)),
        }
    }

    /// Moves the reading position to `pos` (in memory; [`Cursor::commit`] persists it);
    /// `hash` is the hex hash of the block ending there if known.
    pub fn seek(&mut self, pos: CursorPos, hash: Option<&str>) {
        self.pos = pos;
        self.last_hash = hash
            .and_then(|h| decode_hash(&self.file, h).ok())
            .unwrap_or(GENESIS_HASH);
        self.reader = None;
    }

    /// The hex hash of the last block read (64 zeros if none since open or seek).
    pub fn last_hash(&self) -> String {
        hex::encode(self.last_hash)
    }

    /// The blocks between the cursor and the end of the store, from their headers only.
    pub fn backlog(&self) -> Result<Backlog, StoreError> {
        backlog(&self.store, self.pos)
    }

    /// The core walk: hands out the block at `pos` (with its body if `body`) and moves past
    /// it, or steps over what cannot be read.
    fn advance(&mut self, body: bool) -> Result<Option<CursorItem>, StoreError> {
        loop {
            if self.reader.is_none() {
                match self.enter_segment()? {
                    Enter::Ready => {}
                    Enter::Skipped(s) => return Ok(Some(CursorItem::Skipped(s))),
                    Enter::Nothing => return Ok(None),
                }
            }
            if self.pos.offset < SEGMENT_HEADER_LEN {
                self.pos.offset = SEGMENT_HEADER_LEN;
            }
            let limit = self.limit_for(self.pos.segment);
            let reader = self.reader.as_ref().expect("entered above");
            let path = self.current_path();
            let io = |source| StoreError::Io {
                path: path.clone(),
                source,
            };
            if limit.is_some_and(|l| self.pos.offset >= l) {
                return Ok(None);
            }
            match reader.step(self.pos.offset).map_err(io)? {
                Step::Block {
                    offset,
                    header,
                    head_len,
                    frame_len,
                } => {
                    if limit.is_some_and(|l| offset + frame_len > l) {
                        return Ok(None);
                    }
                    let next = CursorPos {
                        segment: self.pos.segment,
                        offset: offset + frame_len,
                    };
                    let at = self.pos;
                    if !body {
                        let hash = reader.read_hash(offset, frame_len).map_err(io)?;
                        self.pos = next;
                        self.last_hash = hash;
                        return Ok(Some(CursorItem::Block(Box::new(header_block(
                            at, next, header, None, hash,
                        )))));
                    }
                    reader
                        .read_frame(offset, frame_len, &mut self.frame)
                        .map_err(io)?;
                    let parts = block::split_frame(&header, head_len, &self.frame);
                    self.pos = next;
                    if !parts.crc_ok {
                        return Ok(Some(CursorItem::Skipped(Skipped {
                            from: at,
                            to: next,
                            reason: "block checksum mismatch".into(),
                        })));
                    }
                    self.last_hash = parts.stored_hash;
                    let body = (
                        Bytes::copy_from_slice(parts.payload),
                        parts.fields.map(Bytes::copy_from_slice),
                    );
                    let hash = parts.stored_hash;
                    return Ok(Some(CursorItem::Block(Box::new(header_block(
                        at,
                        next,
                        header,
                        Some(body),
                        hash,
                    )))));
                }
                Step::Corrupt {
                    offset,
                    next,
                    reason,
                } => {
                    let from = self.pos;
                    self.pos.offset = next;
                    return Ok(Some(CursorItem::Skipped(Skipped {
                        from: CursorPos { offset, ..from },
                        to: self.pos,
                        reason,
                    })));
                }
                Step::Tail { reason, .. } => {
                    // The end of what is there: a write in progress in the last segment, or
                    // damage at the end of a sealed one (then a later segment exists).
                    let from = self.pos;
                    match self.after_end()? {
                        AfterEnd::Grown => {}
                        AfterEnd::Moved(to) => {
                            return Ok(Some(CursorItem::Skipped(Skipped { from, to, reason })));
                        }
                        AfterEnd::Stay => return Ok(None),
                    }
                }
                Step::End => {
                    let from = self.pos;
                    match self.after_end()? {
                        AfterEnd::Grown => {}
                        AfterEnd::Moved(to) if to.segment > from.segment + 1 => {
                            return Ok(Some(CursorItem::Skipped(removed(from, to))));
                        }
                        AfterEnd::Moved(_) => {}
                        AfterEnd::Stay => return Ok(None),
                    }
                }
            }
        }
    }

    /// At the end of the current segment: refreshes its length, and if it really ended and a
    /// later segment exists, moves there (reader closed).
    fn after_end(&mut self) -> Result<AfterEnd, StoreError> {
        let path = self.current_path();
        // The segment may have grown since it was opened.
        let fresh = SegmentReader::open(&path).map_err(StoreError::io(&path))?;
        let grown = fresh.len() > self.reader.as_ref().map_or(0, SegmentReader::len);
        self.reader = Some(fresh);
        if grown {
            return Ok(AfterEnd::Grown);
        }
        self.refresh_segments()?;
        let later = self
            .segments
            .iter()
            .find(|s| s.n > self.pos.segment)
            .cloned();
        let Some(later) = later else {
            return Ok(AfterEnd::Stay);
        };
        // With a watch, a later segment counts only once the writer committed into it (it
        // sealed this one with an fsync before creating it).
        if let Some(w) = &self.watch
            && w.end().is_none_or(|e| e.segment < later.n)
        {
            return Ok(AfterEnd::Stay);
        }
        self.pos = CursorPos {
            segment: later.n,
            offset: SEGMENT_HEADER_LEN,
        };
        self.reader = None;
        Ok(AfterEnd::Moved(self.pos))
    }

    /// Opens the reader for `pos.segment`, or moves to the oldest remaining later segment.
    fn enter_segment(&mut self) -> Result<Enter, StoreError> {
        self.refresh_segments()?;
        if let Some(info) = self.segments.iter().find(|s| s.n == self.pos.segment) {
            match SegmentReader::open(&info.path) {
                Ok(reader) => {
                    self.reader = Some(reader);
                    return Ok(Enter::Ready);
                }
                // Removed by retention since the listing: step over it like any removed one.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.refresh_segments()?,
                Err(e) => return Err(StoreError::io(&info.path)(e)),
            }
        }
        let Some(later) = self
            .segments
            .iter()
            .find(|s| s.n > self.pos.segment)
            .cloned()
        else {
            return Ok(Enter::Nothing);
        };
        let from = self.pos;
        self.pos = CursorPos {
            segment: later.n,
            offset: SEGMENT_HEADER_LEN,
        };
        self.reader = None;
        Ok(Enter::Skipped(removed(from, self.pos)))
    }

    fn refresh_segments(&mut self) -> Result<(), StoreError> {
        self.segments = segment::list_segments(&self.store).map_err(StoreError::io(&self.store))?;
        Ok(())
    }

    fn current_path(&self) -> PathBuf {
        self.segments
            .iter()
            .find(|s| s.n == self.pos.segment)
            .map_or_else(|| self.store.clone(), |s| s.path.clone())
    }

    /// The committed length of segment `n` if a watch limits it (`Some(0)`: nothing yet).
    fn limit_for(&self, n: u64) -> Option<u64> {
        let w = self.watch.as_ref()?;
        match w.end() {
            None => Some(0),
            Some(e) if e.segment == n => Some(e.offset),
            Some(e) if e.segment < n => Some(0),
            Some(_) => None,
        }
    }

    /// Checks that the saved offset still follows the saved hash (see the module invariants).
    fn resume_check(&mut self) -> Result<(), StoreError> {
        if self.last_hash == GENESIS_HASH || self.pos.offset <= SEGMENT_HEADER_LEN {
            return Ok(());
        }
        self.refresh_segments()?;
        let Some(info) = self
            .segments
            .iter()
            .find(|s| s.n == self.pos.segment)
            .cloned()
        else {
            return Ok(()); // removed: reported as skipped on the first read
        };
        let reader = SegmentReader::open(&info.path).map_err(StoreError::io(&info.path))?;
        let io = |source| StoreError::Io {
            path: info.path.clone(),
            source,
        };
        let links = match reader.step(self.pos.offset).map_err(io)? {
            Step::Block { header, .. } => header.prev_hash == self.last_hash,
            Step::End => reader.len() == self.pos.offset && self.hash_ends_at(&reader, &info)?,
            _ => false,
        };
        if links {
            return Ok(());
        }
        // Look for the saved hash in the segment; resume after it, else at the start.
        let mut at = SEGMENT_HEADER_LEN;
        let mut resume = SEGMENT_HEADER_LEN;
        loop {
            match reader.step(at).map_err(io)? {
                Step::Block {
                    offset, frame_len, ..
                } => {
                    if reader.read_hash(offset, frame_len).map_err(io)? == self.last_hash {
                        resume = offset + frame_len;
                        break;
                    }
                    at = offset + frame_len;
                }
                Step::Corrupt { next, .. } => at = next,
                Step::Tail { .. } | Step::End => break,
            }
        }
        tracing::warn!(cursor = %self.name, segment = self.pos.segment, saved_offset = self.pos.offset,
            resume_offset = resume, "Cursor position no longer follows its last block; resuming where it does.");
        self.pos.offset = resume;
        Ok(())
    }

    /// Whether the last block of the segment (ending at its length) has the saved hash.
    fn hash_ends_at(&self, reader: &SegmentReader, info: &SegmentInfo) -> Result<bool, StoreError> {
        let io = |source| StoreError::Io {
            path: info.path.clone(),
            source,
        };
        let mut at = SEGMENT_HEADER_LEN;
        let mut last = None;
        loop {
            match reader.step(at).map_err(io)? {
                Step::Block {
                    offset, frame_len, ..
                } => {
                    last = Some((offset, frame_len));
                    at = offset + frame_len;
                }
                Step::Corrupt { next, .. } => at = next,
                Step::Tail { .. } | Step::End => break,
            }
        }
        Ok(match last {
            Some((offset, len)) => reader.read_hash(offset, len).map_err(io)? == self.last_hash,
            None => false,
        })
    }
}

enum Enter {
    Ready,
    Skipped(Skipped),
    Nothing,
}

enum AfterEnd {
    /// The segment grew: read on.
    Grown,
    /// Moved to a later segment.
    Moved(CursorPos),
    /// Nothing more yet.
    Stay,
}

/// The range of segments `from.segment ..= to.segment - 1` removed before the consumer read
/// them (the part of `from.segment` after `from.offset` included).
fn removed(from: CursorPos, to: CursorPos) -> Skipped {
    let first = if from.offset > SEGMENT_HEADER_LEN && to.segment > from.segment + 1 {
        from.segment + 1
    } else {
        from.segment
    };
    Skipped {
        from,
        to,
        reason: format!(
            "segments {first} to {} were removed before this consumer read them",
            to.segment - 1
        ),
    }
}

pub(crate) fn header_block(
    at: CursorPos,
    next: CursorPos,
    header: block::BlockHeader,
    body: Option<(Bytes, Option<Bytes>)>,
    hash: [u8; HASH_LEN],
) -> CursorBlock {
    let (payload, fields) = body.unwrap_or_default();
    CursorBlock {
        at,
        next,
        agent: header.agent,
        stream_id: header.stream_id,
        host: header.host,
        first_seq: header.first_seq,
        count: header.count,
        min_time_ns: header.min_time_ns,
        max_time_ns: header.max_time_ns,
        inputs: header.inputs,
        payload,
        fields,
        hash: hex::encode(hash),
    }
}

// === saved cursors ===

/// Path of the cursor file of `name`.
pub fn cursor_path(store_dir: &Path, name: &str) -> PathBuf {
    store_dir.join(CURSORS_DIR).join(format!("{name}.cur"))
}

/// Cursor names: 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidBlock(
            "cursor names are 1-128 of A-Z a-z 0-9 . _ - and do not start with a dot",
        ))
    }
}

/// The saved cursor `name`, if it ever committed.
pub fn load_cursor(store_dir: &Path, name: &str) -> Result<Option<SavedCursor>, StoreError> {
    check_name(name)?;
    load_file(&cursor_path(store_dir, name))
}

/// Saves cursor `name` at `pos` (for `forwarders replay`; the consumer must not be running,
/// or its next commit overwrites this).
pub fn save_cursor(store_dir: &Path, name: &str, pos: CursorPos) -> Result<(), StoreError> {
    check_name(name)?;
    let saved = SavedCursor {
        pos,
        hash: hex::encode(GENESIS_HASH),
        updated_ns: now_ns(),
    };
    write_file(&cursor_path(store_dir, name), &saved)
}

/// The first block in store order holding a record observed at or after `since_ns` (the end
/// of the store if none).
pub fn position_since(store_dir: &Path, since_ns: i64) -> Result<CursorPos, StoreError> {
    let mut walk = walker(store_dir, start_of_store(store_dir)?);
    loop {
        match walk.advance(false)? {
            Some(CursorItem::Block(b)) if b.max_time_ns >= since_ns => return Ok(b.at),
            Some(_) => {}
            None => return Ok(walk.pos),
        }
    }
}

/// The blocks after `from` up to the end of the store (headers only).
pub fn backlog(store_dir: &Path, from: CursorPos) -> Result<Backlog, StoreError> {
    let mut walk = walker(store_dir, from);
    let mut out = Backlog::default();
    while let Some(item) = walk.advance(false)? {
        if let CursorItem::Block(b) = item {
            out.blocks += 1;
            out.records += u64::from(b.count);
            out.oldest_ns = Some(
                out.oldest_ns
                    .map_or(b.min_time_ns, |o| o.min(b.min_time_ns)),
            );
        }
    }
    Ok(out)
}

fn bad(path: &Path, reason: &str) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason.to_string()),
    }
}

fn decode_hash(path: &Path, hex_hash: &str) -> Result<[u8; HASH_LEN], StoreError> {
    hex::decode(hex_hash)
        .ok()
        .and_then(|v| <[u8; HASH_LEN]>::try_from(v).ok())
        .ok_or_else(|| bad(path, "cursor hash is not 64 hex digits"))
}

fn encode_line(s: &SavedCursor) -> String {
    let body = format!(
        "logship-cursor 1 segment={} offset={} hash={} updated_ns={}",
        s.pos.segment, s.pos.offset, s.hash, s.updated_ns
    );
    let crc = crc32c::crc32c(body.as_bytes());
    format!("{body} crc={crc:08x}\n")
}

fn parse_line(line: &str) -> Option<SavedCursor> {
    let line = line.strip_suffix('\n')?;
    let (body, crc) = line.rsplit_once(" crc=")?;
    if u32::from_str_radix(crc, 16).ok()? != crc32c::crc32c(body.as_bytes()) {
        return None;
    }
    let mut parts = body.split(' ');
    if parts.next()? != "logship-cursor" || parts.next()? != "1" {
        return None;
    }
    let mut field = |key: &str| {
        parts
            .next()?
            .strip_prefix(key)?
            .strip_prefix('=')
            .map(str::to_string)
    };
    let segment = field("segment")?.parse().ok()?;
    let offset = field("offset")?.parse().ok()?;
    let hash = field("hash")?;
    let updated_ns = field("updated_ns")?.parse().ok()?;
    Some(SavedCursor {
        pos: CursorPos { segment, offset },
        hash,
        updated_ns,
    })
}

fn load_file(path: &Path) -> Result<Option<SavedCursor>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    parse_line(&text)
        .map(Some)
        .ok_or_else(|| bad(path, "cursor file is damaged (checksum or syntax); its consumer sets it aside and starts again from the oldest block at its next start"))
}

/// Moves a damaged cursor file to `<name>.cur.damaged-<ns>` (kept for the operator) so the
/// consumer starts again from the oldest block: it sends or parses again, never skips.
fn set_aside(path: &Path) -> Result<(), StoreError> {
    let aside = path.with_extension(format!("cur.damaged-{}", now_ns()));
    std::fs::rename(path, &aside).map_err(StoreError::io(path))?;
    tracing::error!(cursor = %path.display(), moved_to = %aside.display(),
        "A cursor file is damaged; it was set aside and its consumer starts again from the oldest block.");
    Ok(())
}

fn write_file(path: &Path, saved: &SavedCursor) -> Result<(), StoreError> {
    let dir = path.parent().expect("cursor paths have a directory");
    std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
    let tmp = path.with_extension("cur.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(StoreError::io(&tmp))?;
    f.write_all(encode_line(saved).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(StoreError::io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(StoreError::io(path))?;
    sync_dir(dir)?;
    Ok(())
}

/// Where a consumer that never committed starts: the oldest segment's first block.
fn start_of_store(store_dir: &Path) -> Result<CursorPos, StoreError> {
    let segments = segment::list_segments(store_dir).map_err(StoreError::io(store_dir))?;
    Ok(CursorPos {
        segment: segments.first().map_or(0, |s| s.n),
        offset: SEGMENT_HEADER_LEN,
    })
}

/// A cursor that is never saved, for header walks.
fn walker(store_dir: &Path, pos: CursorPos) -> Cursor {
    Cursor {
        store: store_dir.to_path_buf(),
        name: String::new(),
        file: PathBuf::new(),
        pos,
        last_hash: GENESIS_HASH,
        watch: None,
        segments: Vec::new(),
        reader: None,
        frame: Vec::new(),
    }
}
