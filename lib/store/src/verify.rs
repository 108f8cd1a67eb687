//! Full verification of a store: every CRC, every hash recomputed, every chain link (across
//! segments), segment numbering, per-stream seq order, record counts against the payloads, and
//! the sealed segments' sidecars against their data, and quarantined tails. Every problem is
//! reported; none stops the walk. Seq ranges that the agent declared lost in an explicit gap
//! record are reported apart, as recorded gaps, not as removed blocks.
//!
//! With a [`Witness`] (signed checkpoints kept off the box, and the public key), each
//! checkpoint's signature is checked and the chain head recomputed at its block count must equal
//! the one it states: this is what catches whole blocks cut from the end of the store and a
//! store rewritten with a recomputed chain, which the data alone cannot show.

use std::collections::HashMap;
use std::path::Path;

use logship_proto::payload;
use logship_proto::v1::{Record, RecordKind};

use crate::block::{self, BlockHeader, GENESIS_HASH, HASH_LEN};
use crate::checkpoint::{FoundCheckpoint, PublicKey};
use crate::index::SegmentIndex;
use crate::progress::{Progress, Watch};
use crate::search::parse_fields;
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentInfo, SegmentReader, Step};
use crate::{CorruptBlock, DEFAULT_MAX_DECOMPRESSED_BYTES, StoreError, quarantine};

/// True when the union of `ranges` covers every seq in `first..=last`.
fn covered(ranges: &[(u64, u64)], first: u64, last: u64) -> bool {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut next = first;
    for (a, b) in sorted {
        if a > next {
            break;
        }
        if b >= next {
            next = b.saturating_add(1);
        }
        if next > last {
            return true;
        }
    }
    false
}

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
    /// Seq ranges missing from a stream that the agent itself declared lost in an explicit
    /// gap record (spool damage on the agent): explained loss, not tampering, so not problems.
    pub recorded_gaps: Vec<CorruptBlock>,
    /// The watcher stopped the walk before the end (see [`verify_watched`]); the counts cover
    /// what was walked.
    pub interrupted: bool,
    /// One result per checkpoint given with a [`Witness`], in input order.
    pub checkpoints: Vec<CheckpointResult>,
    /// Blocks removed by retention before the oldest remaining one, as the latest retention
    /// record states (0 when nothing was removed). Block numbers (checkpoints) count them.
    pub removed_blocks: u64,
    /// Segments removed by retention (the oldest remaining segment's number).
    pub removed_segments: u64,
}

/// Signed checkpoints (as kept off the box) and the key they must be signed with.
#[derive(Debug, Clone)]
pub struct Witness {
    /// The collector's witness public key.
    pub key: PublicKey,
    /// Checkpoint texts to hold the store against (see [`crate::find_checkpoints`]).
    pub checkpoints: Vec<FoundCheckpoint>,
}

/// What one checkpoint proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointResult {
    /// Line of the checkpoint file it was found on.
    pub line: u64,
    /// Blocks it covers (None when its signature did not check out).
    pub blocks: Option<u64>,
    /// Set when every block it covers was removed by retention: it can no longer be checked,
    /// which is not a problem.
    pub removed: bool,
    /// When it was signed, Unix ns (None when its signature did not check out).
    pub time_ns: Option<i64>,
    /// None: the store holds those blocks unchanged. Some: what is wrong (also a problem).
    pub failure: Option<String>,
}

/// A seq range missing between two blocks of one stream.
struct Missing {
    key: (String, String),
    first: u64,
    last: u64,
    segment: std::path::PathBuf,
    offset: u64,
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
    /// Seq ranges missing from a stream, labelled once every gap record has been seen.
    missing: Vec<Missing>,
    /// (agent, stream_id) -> seq ranges the agent declared lost in gap records.
    declared: HashMap<(String, String), Vec<(u64, u64)>>,
    frame: Vec<u8>,
    scratch: Vec<u8>,
    /// Block counts some checkpoint covers -> the chain head recomputed there, once walked.
    heads_at: HashMap<u64, Option<[u8; HASH_LEN]>>,
    /// Blocks removed by retention before the first remaining one (absolute numbering base).
    base: u64,
}

/// Verifies the whole store in `dir`; see the module documentation for what is checked.
pub fn verify(dir: &Path) -> Result<VerifyReport, StoreError> {
    verify_watched(dir, &mut |_| true)
}

/// [`verify`] that reports its [`Progress`] to `watch` after every block; `watch` returning
/// false stops the walk (`VerifyReport::interrupted`).
pub fn verify_watched(dir: &Path, watch: Watch<'_>) -> Result<VerifyReport, StoreError> {
    verify_with_witness(dir, None, watch)
}

/// [`verify_watched`] that also holds the store against signed checkpoints: each must carry a
/// valid signature by `witness.key`, name this store, and equal the chain head recomputed after
/// its block count. A failing checkpoint is a problem.
pub fn verify_with_witness(
    dir: &Path,
    witness: Option<&Witness>,
    watch: Watch<'_>,
) -> Result<VerifyReport, StoreError> {
    let opened: Vec<_> = witness.map_or_else(Vec::new, |w| {
        w.checkpoints
            .iter()
            .map(|f| (f.line, w.key.open(&f.text)))
            .collect()
    });
    let heads_at = opened
        .iter()
        .filter_map(|(_, cp)| cp.as_ref().ok().map(|cp| (cp.blocks, None)))
        .collect();
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
        missing: Vec::new(),
        declared: HashMap::new(),
        frame: Vec::new(),
        scratch: Vec::new(),
        heads_at,
        base: 0,
    };
    v.heads_at.insert(0, Some(GENESIS_HASH));
    let mut head = GENESIS_HASH;
    // Retention: the latest retention record states where the remaining chain starts. Missing
    // segments it does not account for keep the numbering from 0, so they are reported.
    let mut first_n = 0;
    match crate::retention::chain_base(&segments) {
        Ok(None) => {}
        Ok(Some((base, _))) => {
            let hash = crate::retention::base_hash(&base);
            first_n = segments[0].n;
            v.base = base.blocks;
            v.report.removed_blocks = base.blocks;
            v.report.removed_segments = first_n;
            v.expect_prev = hash.map(|h| vec![h]);
            if let Some(h) = hash {
                head = h;
                v.heads_at.insert(base.blocks, Some(h));
            }
        }
        Err(reason) => v.problem(&segments[0].path, 0, reason),
    }
    for (i, info) in segments.iter().enumerate() {
        if info.n != first_n + i as u64 {
            let reason = format!(
                "segment number {} found where {} was expected (segment removed)",
                info.n,
                first_n + i as u64
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
    v.label_missing();
    v.quarantine(dir)?;
    let id = crate::checkpoint::store_id(dir);
    for (line, opened) in opened {
        let result = v.checkpoint(dir, id.as_deref(), line, opened);
        v.report.checkpoints.push(result);
    }
    Ok(v.report)
}

/// The seq range `first..=last` an agent gap record declares lost, from its text
/// (`"... spool records FIRST..=LAST lost ..."`, written by the agent's gap reporter).
pub(crate) fn declared_lost_range(raw: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(raw).ok()?;
    let rest = &text[text.find("spool records ")? + "spool records ".len()..];
    let (first, rest) = rest.split_once("..=")?;
    let last = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((first.parse().ok()?, last.parse().ok()?))
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
    /// Holds the walked store against one opened checkpoint.
    fn checkpoint(
        &mut self,
        dir: &Path,
        store_id: Option<&str>,
        line: u64,
        opened: Result<crate::Checkpoint, crate::CheckpointError>,
    ) -> CheckpointResult {
        let cp = match opened {
            Ok(cp) => cp,
            Err(e) => {
                let failure = format!("checkpoint on line {line}: {e}");
                self.problem(dir, 0, failure.clone());
                return CheckpointResult {
                    line,
                    blocks: None,
                    removed: false,
                    time_ns: None,
                    failure: Some(failure),
                };
            }
        };
        let walked = self.base + self.report.blocks;
        let removed = store_id == Some(cp.store.as_str()) && cp.blocks < self.base;
        let failure = if removed {
            None
        } else if store_id != Some(cp.store.as_str()) {
            Some(format!(
                "checkpoint on line {line} is of store {}, this store is {}",
                cp.store,
                store_id.unwrap_or("(no store-id file)")
            ))
        } else if self.report.interrupted && cp.blocks > walked {
            Some(format!(
                "checkpoint on line {line} was not reached (interrupted)"
            ))
        } else {
            match self.heads_at.get(&cp.blocks).copied().flatten() {
                None => Some(format!(
                    "checkpoint on line {line} covers {} blocks but the store holds only \
                     {walked} (blocks cut from the end)",
                    cp.blocks
                )),
                Some(h) if hex::encode(h) != cp.head => Some(format!(
                    "checkpoint on line {line}: the chain head after block {} is {}, the signed \
                     checkpoint says {} (blocks changed, or the store rewritten with a \
                     recomputed chain)",
                    cp.blocks,
                    hex::encode(h),
                    cp.head
                )),
                Some(_) => None,
            }
        };
        if let Some(f) = &failure {
            self.problem(dir, 0, f.clone());
        }
        CheckpointResult {
            line,
            blocks: Some(cp.blocks),
            removed,
            time_ns: Some(cp.time_ns),
            failure,
        }
    }

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
                Step::Tail {
                    offset,
                    reason,
                    torn,
                } => {
                    let at = CorruptBlock {
                        segment: info.path.clone(),
                        offset,
                        reason,
                    };
                    self.tail(at, is_last, torn);
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
        if let Some(slot) = self.heads_at.get_mut(&(self.base + self.report.blocks)) {
            // The recomputed hash: content that no longer matches its stored hash must not
            // pass a checkpoint.
            *slot = Some(computed);
        }
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

    /// Bytes at the end of a segment that hold no complete block: an incomplete write at the
    /// end of the last segment is expected while a writer runs; anything else is damage.
    fn tail(&mut self, at: CorruptBlock, is_last: bool, torn: bool) {
        let reason = match (is_last, torn) {
            (true, true) => {
                self.report.incomplete_tail = Some(at);
                return;
            }
            (false, true) => format!("sealed segment truncated: {}", at.reason),
            (_, false) => format!("segment ends in damaged bytes: {}", at.reason),
        };
        self.problem(&at.segment, at.offset, reason);
    }

    fn check_seq(&mut self, seg: &Path, offset: u64, header: &BlockHeader) {
        let key = (header.agent.clone(), header.stream_id.clone());
        let last = self.seqs.get(&key).copied();
        let reason = match last {
            Some(last) if header.first_seq <= last => Some(format!(
                "seq {} of stream {}/{} is not above {last} (reordered or duplicated)",
                header.first_seq, header.agent, header.stream_id
            )),
            Some(last) if header.first_seq > last + 1 => {
                self.missing.push(Missing {
                    key: key.clone(),
                    first: last + 1,
                    last: header.first_seq - 1,
                    segment: seg.to_path_buf(),
                    offset,
                });
                None
            }
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
            Ok(list) => self.note_gap_records(header, &list.records),
            Err(e) => self.problem(seg, offset, format!("payload: {e}")),
        }
        if let Some(column) = fields
            && let Err(e) = parse_fields(column, header.count, cap, &mut self.scratch)
        {
            self.problem(seg, offset, format!("fields column: {e}"));
        }
    }

    /// Remembers the seq ranges that the agent's gap records in this block declare lost.
    fn note_gap_records(&mut self, header: &BlockHeader, records: &[Record]) {
        let gaps = records
            .iter()
            .filter(|r| r.kind == RecordKind::Gap as i32)
            .filter_map(|r| declared_lost_range(&r.raw));
        for range in gaps {
            let key = (header.agent.clone(), header.stream_id.clone());
            self.declared.entry(key).or_default().push(range);
        }
    }

    /// Reports every missing seq range: as a recorded gap when gap records of the same
    /// stream declare all of it lost, as a problem otherwise.
    fn label_missing(&mut self) {
        for m in std::mem::take(&mut self.missing) {
            let declared = self.declared.get(&m.key).map_or(&[][..], Vec::as_slice);
            let explained = covered(declared, m.first, m.last);
            let (agent, stream) = &m.key;
            let at = |reason| CorruptBlock {
                segment: m.segment.clone(),
                offset: m.offset,
                reason,
            };
            if explained {
                let reason = format!(
                    "seqs {}..{} of stream {agent}/{stream} are missing: gap recorded by the agent",
                    m.first, m.last
                );
                self.report.recorded_gaps.push(at(reason));
            } else {
                let reason = format!(
                    "seqs {}..{} of stream {agent}/{stream} are missing (block removed)",
                    m.first, m.last
                );
                self.report.problems.push(at(reason));
            }
        }
    }

    /// Every quarantined tail is a problem until an operator has dealt with it.
    fn quarantine(&mut self, dir: &Path) -> Result<(), StoreError> {
        for q in quarantine::quarantined(dir).map_err(StoreError::io(dir))? {
            let reason = format!(
                "{} bytes of damaged blocks were moved out of the end of segment {} \
                 (from offset {}) when the store was opened; kept in {}",
                q.bytes,
                q.segment,
                q.offset,
                q.file.display()
            );
            self.problem(&q.file, q.offset, reason);
        }
        Ok(())
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
