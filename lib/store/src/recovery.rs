//! Recovery at open: sealed segments are summarised from their sidecars (rebuilt when missing
//! or stale); the last segment is read block by block with CRCs checked and cut back after its
//! last checksummed block, so a torn write is never half kept. A torn write (a block that is
//! not all there) is cut; damaged complete blocks after the last good one are moved to the
//! quarantine folder first (they may hold acknowledged records) and reported.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::block::{self, GENESIS_HASH, HASH_LEN};
use crate::index::SegmentIndex;
use crate::quarantine::{self, QuarantinedTail};
use crate::retention::{self, ChainBase};
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentInfo, SegmentReader, Step};
use crate::writer::{Active, StoreStats};
use crate::{CorruptBlock, RecoveryReport, StoreError};

/// State rebuilt from disk.
pub(crate) struct Recovered {
    pub(crate) active: Option<Active>,
    pub(crate) next_n: u64,
    pub(crate) head: [u8; HASH_LEN],
    pub(crate) watermarks: HashMap<String, HashMap<String, u64>>,
    pub(crate) stats: StoreStats,
    pub(crate) report: RecoveryReport,
    /// Where the remaining chain starts (retention).
    pub(crate) base: ChainBase,
    /// Watermarks of the blocks retention removed.
    pub(crate) removed_marks: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Rebuilds the writer state of the store in `dir`.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, StoreError> {
    let segments = segment::list_segments(dir).map_err(StoreError::io(dir))?;
    let mut rec = Recovered {
        active: None,
        next_n: segments.last().map_or(0, |s| s.n + 1),
        head: GENESIS_HASH,
        watermarks: HashMap::new(),
        stats: StoreStats::default(),
        report: RecoveryReport::default(),
        base: retention::genesis_base(),
        removed_marks: BTreeMap::new(),
    };
    match retention::chain_base(&segments) {
        Ok(None) => {}
        Ok(Some((base, record))) => {
            for (agent, streams) in &record.watermarks {
                let marks = rec.watermarks.entry(agent.clone()).or_default();
                for (stream, &seq) in streams {
                    let mark = marks.entry(stream.clone()).or_default();
                    *mark = (*mark).max(seq);
                }
            }
            rec.head = retention::base_hash(&base).unwrap_or(GENESIS_HASH);
            rec.base = base;
            rec.removed_marks = record.watermarks;
        }
        Err(reason) => {
            tracing::error!(dir = %dir.display(), %reason, "Segments are missing from the store.");
        }
    }
    let Some((last, sealed)) = segments.split_last() else {
        return Ok(rec);
    };
    for info in sealed {
        let index = sealed_index(info, &mut rec.report)?;
        rec.absorb(&index);
    }
    match recover_last(dir, last, &mut rec.report)? {
        Some(active) => {
            rec.absorb(&active.index);
            rec.active = Some(active);
        }
        // The last segment has a damaged header: keep it as sealed, start a new one on append.
        None => {
            let index = sealed_index(last, &mut rec.report)?;
            rec.absorb(&index);
        }
    }
    rec.report.segments = rec.stats.segments;
    rec.report.blocks = rec.stats.blocks;
    Ok(rec)
}

// === impl Recovered ===

impl Recovered {
    fn absorb(&mut self, index: &SegmentIndex) {
        self.stats.segments += 1;
        self.stats.blocks += index.blocks;
        self.stats.records += index.records;
        self.stats.bytes += index.segment_len;
        for (agent, streams) in &index.streams {
            let marks = self.watermarks.entry(agent.clone()).or_default();
            for (stream, &seq) in streams {
                let mark = marks.entry(stream.clone()).or_default();
                *mark = (*mark).max(seq);
            }
        }
        if let Some(last) = index.last_hash.as_deref() {
            let mut head = [0u8; HASH_LEN];
            if hex::decode_to_slice(last, &mut head).is_ok() {
                self.head = head;
            }
        }
    }
}

/// The sidecar of a sealed segment, rebuilt (and rewritten) when missing or stale.
fn sealed_index(
    info: &SegmentInfo,
    report: &mut RecoveryReport,
) -> Result<SegmentIndex, StoreError> {
    let len = std::fs::metadata(&info.path)
        .map_err(StoreError::io(&info.path))?
        .len();
    let sidecar = segment::sidecar_path(&info.path);
    if let Some(index) = SegmentIndex::read(&sidecar, len) {
        return Ok(index);
    }
    tracing::warn!(segment = %info.path.display(), "Rebuilding a missing or stale segment index.");
    let (index, corrupt) = SegmentIndex::scan(&info.path).map_err(StoreError::io(&info.path))?;
    report.corrupt.extend(corrupt);
    if let Err(error) = index.write(&sidecar) {
        tracing::warn!(sidecar = %sidecar.display(), %error, "Could not write a segment index.");
    }
    Ok(index)
}

/// Recovers the last segment: checks every block and cuts the file after the last checksummed
/// block. What follows that block is either a torn write (cut) or damage: complete frames
/// whose checksum fails, or bytes with no valid head, which are moved to the quarantine folder
/// first and reported, never silently dropped. `None` when its segment header is damaged (it
/// must not be appended to).
fn recover_last(
    dir: &Path,
    info: &SegmentInfo,
    report: &mut RecoveryReport,
) -> Result<Option<Active>, StoreError> {
    let path = &info.path;
    let io = StoreError::io(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(StoreError::io(path))?.len();
    if len < SEGMENT_HEADER_LEN {
        // Crashed while creating it: write the header again.
        file.set_len(0).map_err(StoreError::io(path))?;
        file.write_all_at(&segment::segment_header(), 0)
            .map_err(StoreError::io(path))?;
        file.sync_all().map_err(StoreError::io(path))?;
        report.truncated_tail_bytes += len;
        let index = SegmentIndex {
            segment_len: SEGMENT_HEADER_LEN,
            ..Default::default()
        };
        return Ok(Some(active(file, info, index)));
    }
    let reader = SegmentReader::open(path).map_err(StoreError::io(path))?;
    if let Err(reason) = reader.check_header().map_err(StoreError::io(path))? {
        report.corrupt.push(CorruptBlock {
            segment: path.clone(),
            offset: 0,
            reason,
        });
        return Ok(None);
    }
    let scan = scan_checked(&reader, path).map_err(StoreError::io(path))?;
    let mut index = scan.index;
    let cut_at = index.segment_len;
    report
        .corrupt
        .extend(scan.corrupt.into_iter().filter(|c| c.offset < cut_at));
    if cut_at < len {
        let damaged = cut_at < scan.torn_from && !all_zero(&reader, path, cut_at, scan.torn_from)?;
        if damaged {
            quarantine_tail(dir, path, cut_at, len, report)?;
        } else {
            tracing::warn!(
                segment = %path.display(),
                offset = cut_at,
                bytes = len - cut_at,
                "Cut an incomplete block (a torn write) off the last segment."
            );
            report.truncated_tail_bytes += len - cut_at;
        }
        file.set_len(cut_at).map_err(StoreError::io(path))?;
        file.sync_all().map_err(StoreError::io(path))?;
    }
    index.segment_len = cut_at;
    Ok(Some(active(file, info, index)))
}

/// What a checked walk over the last segment found.
struct Scan {
    /// Covers the blocks up to and including the last checksummed one; its `segment_len` is
    /// where that block ends.
    index: SegmentIndex,
    /// Damaged blocks and regions, in file order.
    corrupt: Vec<CorruptBlock>,
    /// Where an incomplete block starts (a torn write), or the file length when there is none.
    torn_from: u64,
}

/// Reads every block with its CRC.
fn scan_checked(reader: &SegmentReader, path: &Path) -> std::io::Result<Scan> {
    let mut index = SegmentIndex::default();
    let mut pending = Vec::new(); // blocks after the last good one, added once a good one follows
    let mut corrupt = Vec::new();
    let mut good_end = SEGMENT_HEADER_LEN;
    let mut torn_from = reader.len();
    let mut buf = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    loop {
        match reader.step(pos)? {
            Step::Block {
                offset,
                header,
                head_len,
                frame_len,
            } => {
                reader.read_frame(offset, frame_len, &mut buf)?;
                let parts = block::split_frame(&header, head_len, &buf);
                pos = offset + frame_len;
                let hash = parts.stored_hash;
                if parts.crc_ok {
                    for (h, hash) in pending.drain(..) {
                        index.add(&h, &hash);
                    }
                    index.add(&header, &hash);
                    good_end = pos;
                } else {
                    let reason = "block checksum mismatch".to_string();
                    corrupt.push(CorruptBlock {
                        segment: path.to_path_buf(),
                        offset,
                        reason,
                    });
                    pending.push((header, hash));
                }
            }
            Step::Corrupt {
                offset,
                next,
                reason,
            } => {
                corrupt.push(CorruptBlock {
                    segment: path.to_path_buf(),
                    offset,
                    reason,
                });
                pos = next;
            }
            Step::Tail {
                offset,
                reason,
                torn,
            } => {
                if torn {
                    torn_from = offset;
                } else {
                    corrupt.push(CorruptBlock {
                        segment: path.to_path_buf(),
                        offset,
                        reason,
                    });
                }
                break;
            }
            Step::End => break,
        }
    }
    index.segment_len = good_end;
    Ok(Scan {
        index,
        corrupt,
        torn_from,
    })
}

/// Moves bytes `[from, len)` of the last segment to the quarantine folder and reports them.
fn quarantine_tail(
    dir: &Path,
    path: &Path,
    from: u64,
    len: u64,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let file = quarantine::save_tail(dir, path, from).map_err(StoreError::io(dir))?;
    tracing::error!(
        segment = %path.display(),
        offset = from,
        bytes = len - from,
        quarantine = %file.display(),
        "The last segment ends in damaged blocks; they were moved to quarantine, not deleted."
    );
    report.quarantined.push(QuarantinedTail {
        segment: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        file,
        offset: from,
        bytes: len - from,
    });
    Ok(())
}

/// True when bytes `[from, to)` are all zero (a file extended by a crash, not damage).
fn all_zero(reader: &SegmentReader, path: &Path, from: u64, to: u64) -> Result<bool, StoreError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = from;
    while pos < to {
        let n = (to - pos).min(buf.len() as u64) as usize;
        reader
            .read_at(&mut buf[..n], pos)
            .map_err(StoreError::io(path))?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

fn active(file: std::fs::File, info: &SegmentInfo, index: SegmentIndex) -> Active {
    Active {
        file,
        path: info.path.clone(),
        start_ns: info.start_ns,
        len: index.segment_len,
        synced_len: index.segment_len,
        index,
        dirty: false,
    }
}
