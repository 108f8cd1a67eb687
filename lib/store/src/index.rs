//! Per-segment index sidecar: what a sealed segment contains, so readers can skip it and the
//! writer can rebuild watermarks without reading every block.
//!
//! ```text
//! <segment>.idx := crc32c(json) as 8 lowercase hex digits | "\n" | json(SegmentIndex)
//! ```
//!
//! A sidecar is trusted only when its CRC matches and its `segment_len` equals the segment
//! file's length; otherwise it is stale or damaged and is rebuilt (writer) or ignored (readers).
//! It is written tmp → fsync → rename, so a crash leaves either the old state or the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::CorruptBlock;
use crate::block::{BlockHeader, HASH_LEN};
use crate::search::Query;
use crate::segment::{SEGMENT_HEADER_LEN, SegmentReader, Step};

/// Summary of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentIndex {
    pub(crate) segment_len: u64,
    pub(crate) blocks: u64,
    pub(crate) records: u64,
    pub(crate) min_time_ns: Option<i64>,
    pub(crate) max_time_ns: Option<i64>,
    pub(crate) hosts: BTreeSet<String>,
    pub(crate) inputs: BTreeSet<String>,
    pub(crate) agents: BTreeSet<String>,
    /// agent -> stream_id -> highest seq stored in this segment.
    pub(crate) streams: BTreeMap<String, BTreeMap<String, u64>>,
    pub(crate) first_hash: Option<String>,
    pub(crate) last_hash: Option<String>,
}

// === impl SegmentIndex ===

impl SegmentIndex {
    /// Accounts one block (appended at the end of the segment).
    pub(crate) fn add(&mut self, header: &BlockHeader, hash: &[u8; HASH_LEN]) {
        self.blocks += 1;
        self.records += u64::from(header.count);
        self.min_time_ns = Some(
            self.min_time_ns
                .map_or(header.min_time_ns, |t| t.min(header.min_time_ns)),
        );
        self.max_time_ns = Some(
            self.max_time_ns
                .map_or(header.max_time_ns, |t| t.max(header.max_time_ns)),
        );
        self.hosts.insert(header.host.clone());
        self.agents.insert(header.agent.clone());
        self.inputs.extend(header.inputs.iter().cloned());
        let seq = self
            .streams
            .entry(header.agent.clone())
            .or_default()
            .entry(header.stream_id.clone())
            .or_default();
        *seq = (*seq).max(header.last_seq());
        let hex = hex::encode(hash);
        if self.first_hash.is_none() {
            self.first_hash = Some(hex.clone());
        }
        self.last_hash = Some(hex);
    }

    /// False when no record of this segment can match `query`.
    pub(crate) fn may_match(&self, query: &Query) -> bool {
        let (Some(min), Some(max)) = (self.min_time_ns, self.max_time_ns) else {
            return false;
        };
        query.since_ns.is_none_or(|since| max >= since)
            && query.until_ns.is_none_or(|until| min < until)
            && query.host.as_ref().is_none_or(|h| self.hosts.contains(h))
            && query.input.as_ref().is_none_or(|i| self.inputs.contains(i))
            && query.agent.as_ref().is_none_or(|a| self.agents.contains(a))
    }

    /// Reads a sidecar; `None` when missing, damaged or stale for a segment of `segment_len`.
    pub(crate) fn read(path: &Path, segment_len: u64) -> Option<SegmentIndex> {
        let index = SegmentIndex::read_unchecked(path)?;
        (index.segment_len == segment_len).then_some(index)
    }

    /// Reads a sidecar whose CRC checks out, without comparing it to its segment.
    pub(crate) fn read_unchecked(path: &Path) -> Option<SegmentIndex> {
        let text = std::fs::read(path).ok()?;
        let nl = memchr::memchr(b'\n', &text)?;
        let crc = u32::from_str_radix(std::str::from_utf8(&text[..nl]).ok()?, 16).ok()?;
        let json = &text[nl + 1..];
        if crc32c::crc32c(json) != crc {
            return None;
        }
        serde_json::from_slice(json).ok()
    }

    /// Writes the sidecar atomically (tmp, fsync, rename, fsync directory).
    pub(crate) fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("idx.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{:08x}\n", crc32c::crc32c(&json)).as_bytes())?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    }

    /// Rebuilds the index of a sealed segment from its block heads (bodies are not read).
    pub(crate) fn scan(path: &Path) -> std::io::Result<(SegmentIndex, Vec<CorruptBlock>)> {
        let reader = SegmentReader::open(path)?;
        let mut index = SegmentIndex {
            segment_len: reader.len(),
            ..Default::default()
        };
        let mut corrupt = Vec::new();
        let mut report = |offset, reason| {
            corrupt.push(CorruptBlock {
                segment: path.to_path_buf(),
                offset,
                reason,
            })
        };
        if let Err(reason) = reader.check_header()? {
            report(0, reason);
        }
        let mut pos = SEGMENT_HEADER_LEN;
        loop {
            match reader.step(pos)? {
                Step::Block {
                    offset,
                    header,
                    frame_len,
                    ..
                } => {
                    index.add(&header, &reader.read_hash(offset, frame_len)?);
                    pos = offset + frame_len;
                }
                Step::Corrupt {
                    offset,
                    next,
                    reason,
                } => {
                    report(offset, reason);
                    pos = next;
                }
                Step::Tail { offset, reason, .. } => {
                    report(offset, reason);
                    break;
                }
                Step::End => break,
            }
        }
        Ok((index, corrupt))
    }
}
