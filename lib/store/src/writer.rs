//! The single writer: appends blocks to the active segment, rolls segments by size and age,
//! group-commits with [`Store::sync`], and keeps the watermarks and the chain head.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::block::{self, BlockHeader, HASH_LEN};
use crate::checkpoint::{self, COLLECTOR_IDENTITY, Checkpoint, WitnessKey};
use crate::index::SegmentIndex;
use crate::retention::{ChainBase, RetentionRecord};
use crate::segment::{self, SEGMENT_HEADER_LEN, SEGMENTS_DIR};
use crate::{RecoveryReport, StoreConfig, StoreError, recovery};

/// One block to append. `payload` is the agent's compressed RecordList, verbatim.
#[derive(Debug, Clone)]
pub struct BlockInput {
    /// Agent identity (from its client certificate).
    pub agent: String,
    /// The agent's spool stream id.
    pub stream_id: String,
    /// Seq of the first record; record i has seq `first_seq + i`.
    pub first_seq: u64,
    /// Number of records in the payload (at least 1).
    pub count: u32,
    /// Host name from the payload.
    pub host: String,
    /// Lowest observed time of its records, Unix nanoseconds.
    pub min_time_ns: i64,
    /// Highest observed time of its records, Unix nanoseconds.
    pub max_time_ns: i64,
    /// Distinct input names in it (for the index).
    pub inputs: Vec<String>,
    /// The agent's zstd-compressed `RecordList`, stored byte for byte.
    pub payload: Bytes,
    /// Optional normalized-fields column: zstd-compressed JSON lines, one JSON object per
    /// record, in record order (empty object `{}` for a record without fields). None = no fields.
    pub fields: Option<Bytes>,
}

/// Where an appended block landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    /// Segment file holding the block.
    pub segment: PathBuf,
    /// Byte offset of the block in the segment.
    pub offset: u64,
    /// Length of the whole block frame in bytes.
    pub len: u64,
    /// The block's chained hash (lowercase hex), the new chain head.
    pub hash: String,
    /// Highest seq in the block (the new watermark of its stream).
    pub last_seq: u64,
}

/// Counters of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Blocks stored.
    pub blocks: u64,
    /// Records stored.
    pub records: u64,
    /// Bytes of all segment files.
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Hash of the last block (lowercase hex); 64 zeros for an empty store.
    pub chain_head: String,
}

/// The single writer of a store. Owned by one thread; not shared.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    _lock: File,
    /// The store's id (its `store-id` file), named by every checkpoint.
    id: String,
    active: Option<Active>,
    next_n: u64,
    head: [u8; HASH_LEN],
    /// agent -> stream_id -> highest stored seq.
    watermarks: HashMap<String, HashMap<String, u64>>,
    stats: StoreStats,
    /// Where the remaining chain starts (blocks removed by retention and the last one's hash).
    base: ChainBase,
    /// agent -> stream -> highest seq of the blocks removed by retention.
    removed_marks: BTreeMap<String, BTreeMap<String, u64>>,
    buf: Vec<u8>,
    poisoned: bool,
    /// When the last attempt to recover from a poisoned state was made.
    last_heal: Option<std::time::Instant>,
}

/// Least time between two attempts to recover a poisoned store in place.
const HEAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) start_ns: i64,
    pub(crate) len: u64,
    pub(crate) index: SegmentIndex,
    pub(crate) dirty: bool,
    /// Length covered by the last successful fsync: everything past it is unacknowledged.
    pub(crate) synced_len: u64,
}

// === impl Store ===

impl Store {
    /// Opens or creates the store. Takes an exclusive lock file (a second writer process fails
    /// with [`StoreError::Locked`]). Recovers: cuts a torn tail of the last segment back to the
    /// last complete block (logged), rebuilds the watermarks and the chain head.
    pub fn open(config: StoreConfig) -> Result<(Store, RecoveryReport), StoreError> {
        let dir = config.dir.clone();
        let segments_dir = dir.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&segments_dir).map_err(StoreError::io(&segments_dir))?;
        let lock = take_lock(&dir)?;
        sync_dir(&dir)?;
        let id = checkpoint::ensure_store_id(&dir)?;
        let rec = recovery::recover(&dir)?;
        let mut stats = rec.stats;
        stats.chain_head = hex::encode(rec.head);
        tracing::info!(
            dir = %dir.display(),
            segments = stats.segments,
            blocks = stats.blocks,
            truncated_tail_bytes = rec.report.truncated_tail_bytes,
            corrupt = rec.report.corrupt.len(),
            "Opened store."
        );
        let store = Store {
            config,
            _lock: lock,
            id,
            active: rec.active,
            next_n: rec.next_n,
            head: rec.head,
            watermarks: rec.watermarks,
            stats,
            base: rec.base,
            removed_marks: rec.removed_marks,
            buf: Vec::new(),
            poisoned: false,
            last_heal: None,
        };
        Ok((store, rec.report))
    }

    /// Highest stored seq for (agent, stream_id), or 0.
    pub fn watermark(&self, agent: &str, stream_id: &str) -> u64 {
        self.watermarks
            .get(agent)
            .and_then(|s| s.get(stream_id))
            .copied()
            .unwrap_or(0)
    }

    /// Appends one block (no fsync). Fails with [`StoreError::SeqNotAboveWatermark`] unless
    /// `first_seq` is above the stream's watermark, and refuses the collector's own identity
    /// ([`COLLECTOR_IDENTITY`]): only [`Store::append_checkpoint`] writes under it.
    pub fn append(&mut self, block: BlockInput) -> Result<BlockRef, StoreError> {
        if block.agent.starts_with('@') {
            return Err(StoreError::InvalidBlock(
                "agent names starting with @ are reserved for the collector",
            ));
        }
        self.append_block(block)
    }

    /// Signs a checkpoint of the chain as it stands (every block appended so far, including
    /// ones not yet synced) and appends it as a record of the collector's own (no fsync: the
    /// caller commits it with [`Store::sync`] like any block). Returns where it landed, what
    /// it states and its text.
    pub fn append_checkpoint(
        &mut self,
        key: &WitnessKey,
        host: &str,
        reason: &str,
    ) -> Result<(BlockRef, Checkpoint, String), StoreError> {
        if self.poisoned {
            self.heal()?;
        }
        let cp = Checkpoint {
            v: 1,
            store: self.id.clone(),
            blocks: self.chain_len(),
            head: hex::encode(self.head),
            time_ns: now_ns(),
            key: key.public_key().id(),
            reason: reason.to_string(),
        };
        let text = key.sign(&cp);
        let stream = checkpoint::checkpoint_stream(&self.id);
        let seq = self.watermark(COLLECTOR_IDENTITY, &stream) + 1;
        let block = checkpoint::record_block(
            &text,
            &stream,
            host,
            cp.time_ns,
            seq,
            checkpoint::CHECKPOINT_INPUT,
        );
        let at = self.append_block(block)?;
        Ok((at, cp, text))
    }

    /// Blocks in the whole chain since the first ever written, including those retention
    /// removed (what a checkpoint's `blocks` counts).
    pub fn chain_len(&self) -> u64 {
        self.base.blocks + self.stats.blocks
    }

    /// Records in the whole chain since the first block, including those retention removed.
    pub fn chain_records(&self) -> u64 {
        self.base.records + self.stats.records
    }

    /// The chain base and the watermarks of what retention removed so far.
    pub(crate) fn retention_base(&self) -> (ChainBase, BTreeMap<String, BTreeMap<String, u64>>) {
        (self.base.clone(), self.removed_marks.clone())
    }

    /// Accounts the first `deleted` segments a retention round named (its record is already
    /// appended); the chain base moves to the end of the last one deleted.
    pub(crate) fn note_removed(&mut self, record: &RetentionRecord, deleted: usize) {
        let gone = &record.removed[..deleted.min(record.removed.len())];
        for r in gone {
            self.stats.blocks = self.stats.blocks.saturating_sub(r.blocks);
            self.stats.records = self.stats.records.saturating_sub(r.records);
            self.stats.bytes = self.stats.bytes.saturating_sub(r.bytes);
            self.stats.segments = self.stats.segments.saturating_sub(1);
        }
        if let Some(last) = gone.last() {
            self.base = ChainBase {
                blocks: last.blocks_through,
                last_hash: last.last_hash.clone(),
                records: last.records_through,
            };
        }
        self.removed_marks = record.watermarks.clone();
    }

    /// The store's id (named by its checkpoints).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn append_block(&mut self, block: BlockInput) -> Result<BlockRef, StoreError> {
        if self.poisoned {
            self.heal()?;
        }
        let header = self.header_for(&block)?;
        let fields = block.fields.as_deref().unwrap_or_default();
        let hash = block::build_frame(&header, &block.payload, fields, &mut self.buf)
            .map_err(StoreError::InvalidBlock)?;
        let frame_len = self.buf.len() as u64;
        if self.should_roll(frame_len) {
            self.roll()?;
        }
        let active = self.active.as_mut().expect("roll leaves an active segment");
        let offset = active.len;
        if let Err(e) = active.file.write_all_at(&self.buf, offset) {
            // Keep the file a sequence of whole blocks; if even that fails, stop writing.
            if active.file.set_len(offset).is_err() {
                self.poisoned = true;
            }
            return Err(StoreError::Io {
                path: active.path.clone(),
                source: e,
            });
        }
        active.len += frame_len;
        active.dirty = true;
        active.index.add(&header, &hash);
        self.head = hash;
        self.stats.blocks += 1;
        self.stats.records += u64::from(header.count);
        self.stats.bytes += frame_len;
        self.stats.chain_head = hex::encode(hash);
        let last_seq = header.last_seq();
        let streams = self.watermarks.entry(header.agent).or_default();
        streams.insert(header.stream_id, last_seq);
        let segment = active.path.clone();
        Ok(BlockRef {
            segment,
            offset,
            len: frame_len,
            hash: hex::encode(hash),
            last_seq,
        })
    }

    /// fsyncs everything appended so far (group commit). Acks may be sent after this returns
    /// Ok. After a failure the store is poisoned and must be reopened.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        let Some(active) = self.active.as_mut().filter(|a| a.dirty) else {
            return Ok(());
        };
        if let Err(e) = active.file.sync_data() {
            self.poisoned = true;
            return Err(StoreError::Io {
                path: active.path.clone(),
                source: e,
            });
        }
        active.dirty = false;
        active.synced_len = active.len;
        Ok(())
    }

    /// Recovers a poisoned store in place (at most once per [`HEAL_INTERVAL`]): drops the
    /// open segment and rebuilds the state from disk exactly as [`Store::open`] does, keeping
    /// the lock. Nothing appended since the last successful [`Store::sync`] was acknowledged,
    /// so whatever recovery cuts or quarantines of it the agents resend. A full disk thus
    /// stops appends only until space returns, never until a restart.
    fn heal(&mut self) -> Result<(), StoreError> {
        if self.last_heal.is_some_and(|t| t.elapsed() < HEAL_INTERVAL) {
            return Err(StoreError::Poisoned);
        }
        self.last_heal = Some(std::time::Instant::now());
        if let Some(active) = &self.active {
            // After a failed fsync the page cache may hold bytes the disk never got; cut back
            // to what the last good fsync covered instead of trusting what reads back.
            let path = &active.path;
            active
                .file
                .set_len(active.synced_len)
                .and_then(|()| active.file.sync_all())
                .map_err(StoreError::io(path))?;
        }
        self.active = None;
        let rec = recovery::recover(&self.config.dir)?;
        self.active = rec.active;
        self.next_n = rec.next_n;
        self.head = rec.head;
        self.watermarks = rec.watermarks;
        self.stats = rec.stats;
        self.stats.chain_head = hex::encode(rec.head);
        self.base = rec.base;
        self.removed_marks = rec.removed_marks;
        self.poisoned = false;
        tracing::warn!(
            dir = %self.config.dir.display(),
            truncated_tail_bytes = rec.report.truncated_tail_bytes,
            quarantined = rec.report.quarantined.len(),
            "Store recovered in place after a failed write or fsync."
        );
        Ok(())
    }

    /// The end of what the last successful [`Store::sync`] covered (active segment number
    /// and length), for [`crate::CommitWatch`]; `None` before the first segment exists.
    pub fn committed(&self) -> Option<crate::CursorPos> {
        let active = self.active.as_ref()?;
        let (_, n) = segment::parse_name(&active.path)?;
        Some(crate::CursorPos {
            segment: n,
            offset: active.synced_len,
        })
    }

    /// Counters and chain head.
    pub fn stats(&self) -> StoreStats {
        self.stats.clone()
    }

    /// Root directory of the store.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    fn header_for(&self, block: &BlockInput) -> Result<BlockHeader, StoreError> {
        if block.count == 0 {
            return Err(StoreError::InvalidBlock("count is zero"));
        }
        if block
            .first_seq
            .checked_add(u64::from(block.count))
            .is_none()
        {
            return Err(StoreError::InvalidBlock("seq range overflows"));
        }
        let watermark = self.watermark(&block.agent, &block.stream_id);
        if block.first_seq <= watermark {
            return Err(StoreError::SeqNotAboveWatermark {
                agent: block.agent.clone(),
                stream_id: block.stream_id.clone(),
                first_seq: block.first_seq,
                watermark,
            });
        }
        let body = block.payload.len() as u64 + block.fields.as_ref().map_or(0, |f| f.len() as u64);
        if body > block::MAX_BODY_LEN {
            return Err(StoreError::InvalidBlock("payload and fields exceed 1 GiB"));
        }
        Ok(BlockHeader {
            agent: block.agent.clone(),
            stream_id: block.stream_id.clone(),
            first_seq: block.first_seq,
            count: block.count,
            host: block.host.clone(),
            min_time_ns: block.min_time_ns,
            max_time_ns: block.max_time_ns,
            inputs: block.inputs.clone(),
            payload_len: block.payload.len() as u64,
            fields_len: block.fields.as_ref().map(|f| f.len() as u64),
            prev_hash: self.head,
        })
    }

    fn should_roll(&self, frame_len: u64) -> bool {
        let Some(active) = &self.active else {
            return true;
        };
        if active.index.blocks == 0 {
            return false;
        }
        let age_ns = now_ns().saturating_sub(active.start_ns);
        let max_age_ns = i64::try_from(self.config.segment_max_age_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000);
        active.len + frame_len > self.config.segment_max_bytes || age_ns >= max_age_ns
    }

    /// Seals the active segment (fsync + sidecar) and starts segment `next_n`.
    fn roll(&mut self) -> Result<(), StoreError> {
        if let Some(active) = self.active.as_mut() {
            if let Err(e) = seal(active) {
                self.poisoned = true;
                return Err(e);
            }
            self.active = None;
        }
        let start_ns = now_ns();
        let path = segment::segment_path(&self.config.dir, self.next_n, start_ns);
        let file = create_segment(&self.config.dir, &path)?;
        tracing::info!(segment = %path.display(), "Started a new segment.");
        self.active = Some(Active {
            file,
            path,
            start_ns,
            len: SEGMENT_HEADER_LEN,
            index: SegmentIndex::default(),
            dirty: false,
            synced_len: SEGMENT_HEADER_LEN,
        });
        self.next_n += 1;
        self.stats.segments += 1;
        self.stats.bytes += SEGMENT_HEADER_LEN;
        Ok(())
    }
}

/// Seals a segment: fsync, then its index sidecar.
fn seal(active: &mut Active) -> Result<(), StoreError> {
    if active.dirty {
        active
            .file
            .sync_data()
            .map_err(StoreError::io(&active.path))?;
        active.dirty = false;
        active.synced_len = active.len;
    }
    active.index.segment_len = active.len;
    let sidecar = segment::sidecar_path(&active.path);
    if let Err(error) = active.index.write(&sidecar) {
        // Not fatal: the next open rebuilds it, readers scan the segment meanwhile.
        tracing::warn!(sidecar = %sidecar.display(), %error, "Could not write a segment index.");
    }
    Ok(())
}

/// Creates a segment file with its header, fsyncing the file and its directory entries.
fn create_segment(dir: &Path, path: &Path) -> Result<File, StoreError> {
    let day_dir = path.parent().expect("segment paths have a date directory");
    let new_day = !day_dir.try_exists().map_err(StoreError::io(day_dir))?;
    std::fs::create_dir_all(day_dir).map_err(StoreError::io(day_dir))?;
    if new_day {
        sync_dir(&dir.join(SEGMENTS_DIR))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(StoreError::io(path))?;
    let written = file
        .write_all_at(&segment::segment_header(), 0)
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        // A disk that is full now may have room later: leave no half-made segment `n` behind,
        // or the next attempt would create a second file with the same number.
        drop(file);
        if let Err(error) = std::fs::remove_file(path) {
            tracing::warn!(%error, path = %path.display(), "Could not remove a half-made segment.");
        }
        return Err(StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        });
    }
    sync_dir(day_dir)?;
    Ok(file)
}

fn take_lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StoreError::io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io { path, source: e }),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
