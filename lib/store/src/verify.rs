//! Full verification of a store: every CRC, every hash recomputed, every chain link (across
//! segments), segment numbering, per-stream seq order, record counts against the payloads, and
//! the sealed segments' sidecars against their data. Every problem is reported; none stops the
//! walk.

use std::collections::HashMap;
use std::path::Path;

use logship_proto::payload;

use crate::block::{self, BlockHeader, GENESIS_HASH, HASH_LEN};
use crate::index::SegmentIndex;
use crate::progress::{Progress, Watch};
use crate::search::parse_fields;
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentInfo, SegmentReader, Step};
use crate::{CorruptBlock, DEFAULT_MAX_DECOMPRESSED_BYTES, StoreError};

/// Result of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Segments walked.
    pub segments: u64,
    /// Blocks whose head could be read.
    pub blocks: u64,
    /// Records in those blocks (from their headers).
    pub records: u64,
    /// Stored hash of the last block (lowercase hex), to compare with a signed off-box head.
    pub chain_head: String,
    /// Every problem found, in store order.
    pub problems: Vec<CorruptBlock>,
    /// An incomplete block at the end of the last segment: a write in progress, or a torn
    /// write the writer cuts on its next open. Not a problem by itself.
    pub incomplete_tail: Option<CorruptBlock>,
    /// The watcher stopped the walk before the end (see [`verify_watched`]); the counts cover
    /// what was walked.
    pub interrupted: bool,
}

/// Walk state carried across segments.
struct Verifier<'w> {
    watch: Watch<'w>,
    progress: Progress,
    report: VerifyReport,
    /// Hashes the next block's `prev_hash` may equal; `None` after unreadable bytes.
    expect_prev: Option<Vec<[u8; HASH_LEN]>>,
    /// (agent, stream_id) -> highest seq seen.
    seqs: HashMap<(String, String), u64>,
    frame: Vec<u8>,
    scratch: Vec<u8>,
}

/// Verifies the whole store in `dir`; see the module documentation for what is checked.
pub fn verify(dir: &Path) -> Result<VerifyReport, StoreError> {
    verify_watched(dir, &mut |_| true)
}

/// [`verify`] that reports its [`Progress`] to `watch` after every block; `watch` returning
/// false stops the walk (`VerifyReport::interrupted`).
pub fn verify_watched(dir: &Path, watch: Watch<'_>) -> Result<VerifyReport, StoreError> {
    let segments = segment::list_segments(dir).map_err(StoreError::io(dir))?;
    let mut v = Verifier {
        watch,
        progress: Progress {
            segments_total: segments.len() as u64,
            ..Progress::default()
        },
        report: VerifyReport::default(),
        expect_prev: Some(vec![GENESIS_HASH]),
        seqs: HashMap::new(),
        frame: Vec::new(),
        scratch: Vec::new(),
    };
    let mut head = GENESIS_HASH;
    for (i, info) in segments.iter().enumerate() {
        if info.n != i as u64 {
            let reason = format!(
                "segment number {} found where {} was expected (segment removed)",
                info.n, i
            );
            v.problem(&info.path, 0, reason);
        }
        let is_last = i + 1 == segments.len();
        if let Err(e) = v.segment(info, is_last, &mut head) {
            v.problem(&info.path, 0, format!("segment read error: {e}"));
        }
        v.report.segments += 1;
        v.progress.segments_done += 1;
        if v.report.interrupted {
            break;
        }
    }
    v.report.chain_head = hex::encode(head);
    Ok(v.report)
}

// === impl VerifyReport ===

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

// === impl Verifier ===

impl Verifier<'_> {
    fn segment(
        &mut self,
        info: &SegmentInfo,
        is_last: bool,
        head: &mut [u8; HASH_LEN],
    ) -> std::io::Result<()> {
        let reader = SegmentReader::open(&info.path)?;
        if let Err(reason) = reader.check_header()? {
            self.problem(&info.path, 0, reason);
        }
        let mut seen = SegmentIndex {
            segment_len: reader.len(),
            ..Default::default()
        };
        let mut pos = SEGMENT_HEADER_LEN;
        loop {
            match reader.step(pos)? {
                Step::Block {
                    offset,
                    header,
                    head_len,
                    frame_len,
                } => {
                    reader.read_frame(offset, frame_len, &mut self.frame)?;
                    let stored = self.block(&info.path, offset, &header, head_len);
                    seen.add(&header, &stored);
                    *head = stored;
                    pos = offset + frame_len;
                    self.progress
                        .block(header.count, header.min_time_ns, header.max_time_ns);
                    if !(self.watch)(&self.progress) {
                        self.report.interrupted = true;
                        return Ok(());
                    }
                }
                Step::Corrupt {
                    offset,
                    next,
                    reason,
                } => {
                    self.problem(&info.path, offset, reason);
                    self.expect_prev = None;
                    pos = next;
                }
                Step::Tail { offset, reason } => {
                    let at = CorruptBlock {
                        segment: info.path.clone(),
                        offset,
                        reason,
                    };
                    self.tail(at, is_last);
                    break;
                }
                Step::End => break,
            }
        }
        if !is_last {
            self.check_sidecar(&info.path, &seen);
        }
        Ok(())
    }

    /// Checks the block in `self.frame`; returns its stored hash.
    fn block(
        &mut self,
        seg: &Path,
        offset: u64,
        header: &BlockHeader,
        head_len: usize,
    ) -> [u8; HASH_LEN] {
        let frame = std::mem::take(&mut self.frame);
        let parts = block::split_frame(header, head_len, &frame);
        let body = &frame[head_len..head_len + header.body_len() as usize];
        let computed = block::block_hash(&header.prev_hash, parts.header_bytes, body);
        self.report.blocks += 1;
        self.report.records += u64::from(header.count);
        if !parts.crc_ok {
            self.problem(
                seg,
                offset,
                "block checksum mismatch (bytes changed)".into(),
            );
        }
        if computed != parts.stored_hash {
            self.problem(seg, offset, "block hash mismatch (contents changed)".into());
        }
        if self
            .expect_prev
            .as_ref()
            .is_some_and(|ok| !ok.contains(&header.prev_hash))
        {
            let reason = "chain broken: prev_hash is not the previous block's hash \
                          (block removed, inserted or reordered)";
            self.problem(seg, offset, reason.into());
        }
        self.expect_prev = Some(if computed == parts.stored_hash {
            vec![computed]
        } else {
            vec![computed, parts.stored_hash]
        });
        self.check_seq(seg, offset, header);
        if parts.crc_ok {
            self.check_content(seg, offset, header, parts.payload, parts.fields);
        }
        let stored = parts.stored_hash;
        self.frame = frame;
        stored
    }

    /// An incomplete last block: expected while a writer runs, damage in a sealed segment.
    fn tail(&mut self, at: CorruptBlock, is_last: bool) {
        if is_last {
            self.report.incomplete_tail = Some(at);
        } else {
            let reason = format!("sealed segment truncated: {}", at.reason);
            self.problem(&at.segment, at.offset, reason);
        }
    }

    fn check_seq(&mut self, seg: &Path, offset: u64, header: &BlockHeader) {
        let key = (header.agent.clone(), header.stream_id.clone());
        let last = self.seqs.get(&key).copied();
        let reason = match last {
            Some(last) if header.first_seq <= last => Some(format!(
                "seq {} of stream {}/{} is not above {last} (reordered or duplicated)",
                header.first_seq, header.agent, header.stream_id
            )),
            Some(last) if header.first_seq > last + 1 => Some(format!(
                "seqs {}..{} of stream {}/{} are missing (block removed)",
                last + 1,
                header.first_seq - 1,
                header.agent,
                header.stream_id
            )),
            _ => None,
        };
        if let Some(reason) = reason {
            self.problem(seg, offset, reason);
        }
        let top = last.unwrap_or(0).max(header.last_seq());
        self.seqs.insert(key, top);
    }

    fn check_content(
        &mut self,
        seg: &Path,
        offset: u64,
        header: &BlockHeader,
        payload: &[u8],
        fields: Option<&[u8]>,
    ) {
        let cap = DEFAULT_MAX_DECOMPRESSED_BYTES;
        match payload::decode_payload(payload, cap, &mut self.scratch) {
            Ok(list) if list.records.len() != header.count as usize => {
                let reason = format!(
                    "payload has {} records, header says {}",
                    list.records.len(),
                    header.count
                );
                self.problem(seg, offset, reason);
            }
            Ok(_) => {}
            Err(e) => self.problem(seg, offset, format!("payload: {e}")),
        }
        if let Some(column) = fields
            && let Err(e) = parse_fields(column, header.count, cap, &mut self.scratch)
        {
            self.problem(seg, offset, format!("fields column: {e}"));
        }
    }

    fn check_sidecar(&mut self, seg: &Path, seen: &SegmentIndex) {
        let Some(stored) = SegmentIndex::read_unchecked(&segment::sidecar_path(seg)) else {
            return; // Missing or unreadable: the writer rebuilds it; not evidence by itself.
        };
        if stored.segment_len != seen.segment_len
            || stored.blocks != seen.blocks
            || stored.last_hash != seen.last_hash
        {
            let reason = format!(
                "segment index disagrees with data: index says {} bytes, {} blocks; found {} bytes, {} blocks",
                stored.segment_len, stored.blocks, seen.segment_len, seen.blocks
            );
            self.problem(seg, 0, reason);
        }
    }

    fn problem(&mut self, segment: &Path, offset: u64, reason: String) {
        self.report.problems.push(CorruptBlock {
            segment: segment.to_path_buf(),
            offset,
            reason,
        });
    }
}
