//! The read side: streams matching records in store order, from any process, while the writer
//! appends. Segments are skipped with their sidecar when it is valid; blocks are skipped by
//! their header (time range, host, agent, inputs) before any payload is read. With field
//! probes ([`Query::field_probes`]), a sealed segment's field index ([`crate::fieldindex`])
//! skips the segment or the covered blocks that hold none of the probed values; without a
//! usable index every block is read, so the records handed out never depend on the index. In a
//! block that is read, probes on indexed fields are first checked on the block's fields column
//! (sidecar), with the index's rule: rows that cannot hold every probed value are not handed
//! out, and a block none of whose rows can is not decompressed. Without a column every row is
//! handed out. Each payload that must be looked at is decompressed once, with a capped decoder
//! and reused scratch buffers.
//!
//! The last segment may end in a block still being written: it is treated as the end of data,
//! not as damage, so a concurrent search sees a consistent prefix of the store.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use logship_proto::payload;
use logship_proto::v1::RecordList;
use serde_json::{Map, Value};

use crate::block::{self, BlockHeader};
use crate::fieldindex::{Candidates, FieldProbe, INDEXED_FIELDS};
use crate::fields::{Column, SidecarIndex, ValueRef};
use crate::index::SegmentIndex;
use crate::progress::{Progress, Watch};
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentInfo, SegmentReader, Step};
use crate::{CorruptBlock, DEFAULT_MAX_DECOMPRESSED_BYTES, StoreError, event_id};

/// A search. Every filter that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Records observed at or after this time (Unix ns, inclusive).
    pub since_ns: Option<i64>,
    /// Records observed before this time (Unix ns, exclusive).
    pub until_ns: Option<i64>,
    /// Exact host name *claimed* by the agent in its batches (not verified).
    pub host: Option<String>,
    /// Exact input name.
    pub input: Option<String>,
    /// Exact agent identity: the verified certificate name the collector stored the block under.
    /// Records of the collector's own identity ([`crate::COLLECTOR_IDENTITY`]: signed
    /// checkpoints) match only when it is named here; without `agent` they are left out.
    pub agent: Option<String>,
    /// Substring of the raw bytes.
    pub contains: Option<String>,
    /// Stop after this many matches.
    pub limit: Option<usize>,
    /// Hints, all of which a record the caller wants satisfies (as `field = text` on the
    /// record's fields, [`crate::fieldindex`]'s rule): blocks the field index proves hold none
    /// of a probe's value are not read, and records whose sidecar column proves the same are
    /// not handed out. Every other record is (the caller applies its own field filters to it).
    pub field_probes: Vec<FieldProbe>,
}

/// One matching record, borrowed from the block being read.
#[derive(Debug)]
pub struct RecordView<'a> {
    pub event_id: &'a str,
    pub agent: &'a str,
    pub host: &'a str,
    pub stream_id: &'a str,
    pub seq: u64,
    pub input: &'a str,
    pub path: &'a str,
    pub observed_ns: i64,
    pub event_ns: i64,
    pub raw: &'a [u8],
    pub truncated_from: u64,
    /// Input attributes (journald fields, the syslog sender); empty for file lines.
    pub attributes: &'a HashMap<String, String>,
    /// The bytes as read when `raw` is a re-encoding of them (empty: `raw` is original).
    pub original: &'a [u8],
    /// 0 line, 1 gap.
    pub kind: i32,
    /// The agent's time zone, for timestamps without one (from the batch).
    pub agent_tz: &'a str,
    /// Normalized fields; `None` when the block has no fields column or the object is empty.
    pub fields: Option<&'a Map<String, Value>>,
    /// The record's row in its segment's fields sidecar ([`crate::fields`]), when the sidecar
    /// holds a column for its block that checks; `None`: compute the fields.
    pub sidecar: Option<FieldsRow<'a>>,
}

/// A record's row in the precomputed fields column of its block.
#[derive(Debug, Clone, Copy)]
pub struct FieldsRow<'a> {
    /// The block's column.
    pub column: &'a Column,
    /// The record's row in it.
    pub row: usize,
}

/// What a search looked at.
#[derive(Debug, Clone, Default)]
pub struct SearchStats {
    /// Blocks whose header matched and whose body was read.
    pub blocks_scanned: u64,
    /// Blocks skipped by a segment index or by their header.
    pub blocks_skipped: u64,
    /// Of `blocks_skipped`, those skipped because a field index ruled out every probe value.
    pub blocks_skipped_by_field_index: u64,
    /// Of `blocks_scanned`, those whose fields column (sidecar) showed that no record holds
    /// every probed value: their payload was not decompressed.
    pub blocks_rejected_by_fields: u64,
    /// Records emitted.
    pub records_matched: u64,
    /// Bytes read from field index files.
    pub field_index_bytes: u64,
    /// Time spent reading segment and field indexes (deciding which blocks to read).
    pub index_time: std::time::Duration,
    /// Time spent reading and checking block frames from the segments.
    pub frame_time: std::time::Duration,
    /// Time spent reading and decoding fields columns from the sidecars.
    pub column_time: std::time::Duration,
    /// Time spent decompressing and decoding payloads.
    pub payload_time: std::time::Duration,
    /// Time spent in the caller's `emit` (filtering and printing records).
    pub emit_time: std::time::Duration,
    /// Damaged blocks skipped.
    pub corrupt: Vec<CorruptBlock>,
    /// The watcher stopped the walk before the end (see [`search_watched`]).
    pub interrupted: bool,
}

/// Reused buffers and the state of one search.
struct Searcher<'q, 'e, 'w> {
    query: &'q Query,
    emit: &'e mut dyn FnMut(&RecordView<'_>) -> bool,
    cap: usize,
    frame: Vec<u8>,
    scratch: Vec<u8>,
    fields_scratch: Vec<u8>,
    /// The fields sidecar of the segment being read (opened at its first matching record).
    sidecar: Option<Option<SidecarIndex>>,
    stats: SearchStats,
    watch: Watch<'w>,
    progress: Progress,
}

/// Whether to keep going.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Streams matching records in store order (per segment in time order) to `emit`; `emit`
/// returns false to stop. Corrupt blocks are skipped and reported in [`SearchStats`].
pub fn search(
    dir: &Path,
    query: &Query,
    emit: &mut dyn FnMut(&RecordView<'_>) -> bool,
) -> Result<SearchStats, StoreError> {
    search_with_cap(dir, query, DEFAULT_MAX_DECOMPRESSED_BYTES, emit)
}

/// [`search`] with an explicit cap on decompressed payload and fields sizes.
pub fn search_with_cap(
    dir: &Path,
    query: &Query,
    max_decompressed_bytes: usize,
    emit: &mut dyn FnMut(&RecordView<'_>) -> bool,
) -> Result<SearchStats, StoreError> {
    search_watched(dir, query, max_decompressed_bytes, emit, &mut |_| true)
}

/// [`search_with_cap`] that reports its [`Progress`] to `watch` after every block; `watch`
/// returning false stops the search (`SearchStats::interrupted`).
pub fn search_watched(
    dir: &Path,
    query: &Query,
    max_decompressed_bytes: usize,
    emit: &mut dyn FnMut(&RecordView<'_>) -> bool,
    watch: Watch<'_>,
) -> Result<SearchStats, StoreError> {
    let segments = segment::list_segments(dir).map_err(StoreError::io(dir))?;
    let mut s = Searcher {
        query,
        emit,
        cap: max_decompressed_bytes,
        frame: Vec::new(),
        scratch: Vec::new(),
        fields_scratch: Vec::new(),
        sidecar: None,
        stats: SearchStats::default(),
        watch,
        progress: Progress {
            segments_total: segments.len() as u64,
            ..Progress::default()
        },
    };
    if query.limit == Some(0) {
        return Ok(s.stats);
    }
    for (i, info) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let flow = s.segment(info, is_last);
        s.progress.segments_done += 1;
        if flow == Flow::Stop {
            break;
        }
    }
    Ok(s.stats)
}

// === impl Searcher ===

impl Searcher<'_, '_, '_> {
    fn segment(&mut self, info: &SegmentInfo, is_last: bool) -> Flow {
        match self.try_segment(info, is_last) {
            Ok(flow) => flow,
            // Removed by retention since the listing: nothing to search, nothing wrong.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Flow::Continue,
            Err(e) => {
                // Unreadable segment (or cut by a recovering writer): report, keep going.
                self.report(&info.path, 0, format!("segment read error: {e}"));
                Flow::Continue
            }
        }
    }

    fn try_segment(&mut self, info: &SegmentInfo, is_last: bool) -> std::io::Result<Flow> {
        let reader = SegmentReader::open(&info.path)?;
        self.sidecar = None;
        let mut field_index = None;
        if !is_last {
            let started = Instant::now();
            let sidecar = segment::sidecar_path(&info.path);
            let index = SegmentIndex::read(&sidecar, reader.len());
            if !self.query.field_probes.is_empty() {
                field_index = Candidates::read(
                    &info.path,
                    reader.len(),
                    &self.query.field_probes,
                    &mut self.stats.field_index_bytes,
                );
            }
            self.stats.index_time += started.elapsed();
            if let Some(index) = index
                && (!index.may_match(self.query)
                    || field_index
                        .as_ref()
                        .is_some_and(|f| f.rules_out_all(index.blocks)))
            {
                if index.may_match(self.query) {
                    self.stats.blocks_skipped_by_field_index += index.blocks;
                }
                self.stats.blocks_skipped += index.blocks;
                self.progress.blocks += index.blocks;
                return Ok(self.watched());
            }
        }
        // A last segment shorter than its header is being created right now.
        if let Err(reason) = reader.check_header()?
            && !(is_last && reader.len() < SEGMENT_HEADER_LEN)
        {
            self.report(&info.path, 0, reason);
        }
        let mut pos = SEGMENT_HEADER_LEN;
        loop {
            match reader.step(pos)? {
                Step::Block {
                    offset,
                    header,
                    head_len,
                    frame_len,
                } => {
                    pos = offset + frame_len;
                    self.progress
                        .block(header.count, header.min_time_ns, header.max_time_ns);
                    if !block_may_match(&header, self.query) {
                        self.stats.blocks_skipped += 1;
                    } else if field_index
                        .as_ref()
                        .is_some_and(|f| !f.block_may_match(offset))
                    {
                        self.stats.blocks_skipped += 1;
                        self.stats.blocks_skipped_by_field_index += 1;
                    } else {
                        let started = Instant::now();
                        reader.read_frame(offset, frame_len, &mut self.frame)?;
                        self.stats.frame_time += started.elapsed();
                        if self.block(info, offset, &header, head_len) == Flow::Stop {
                            return Ok(Flow::Stop);
                        }
                    }
                    if self.watched() == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                }
                Step::Corrupt {
                    offset,
                    next,
                    reason,
                } => {
                    self.report(&info.path, offset, reason);
                    pos = next;
                }
                Step::Tail { offset, reason, .. } => {
                    if !is_last {
                        self.report(&info.path, offset, reason);
                    }
                    return Ok(Flow::Continue);
                }
                Step::End => return Ok(Flow::Continue),
            }
        }
    }

    /// Reports progress; `Stop` (and `interrupted`) when the watcher says so.
    fn watched(&mut self) -> Flow {
        if (self.watch)(&self.progress) {
            Flow::Continue
        } else {
            self.stats.interrupted = true;
            Flow::Stop
        }
    }

    /// Emits the matching records of the block in `self.frame`.
    fn block(
        &mut self,
        info: &SegmentInfo,
        offset: u64,
        header: &BlockHeader,
        head_len: usize,
    ) -> Flow {
        let frame = std::mem::take(&mut self.frame);
        let flow = self.block_inner(info, offset, header, head_len, &frame);
        self.frame = frame;
        flow
    }

    fn block_inner(
        &mut self,
        info: &SegmentInfo,
        offset: u64,
        header: &BlockHeader,
        head_len: usize,
        frame: &[u8],
    ) -> Flow {
        let started = Instant::now();
        let parts = block::split_frame(header, head_len, frame);
        if !parts.crc_ok {
            self.report(&info.path, offset, "block checksum mismatch".into());
            return Flow::Continue;
        }
        self.stats.frame_time += started.elapsed();
        self.stats.blocks_scanned += 1;
        // The block's sidecar column, read when the first record needs it; with probes on
        // indexed fields (and no inline column, whose fields would win), read first: it says
        // which rows may match before the payload is decompressed.
        let mut sidecar: Option<Option<Column>> = None;
        let mut may: Option<Vec<bool>> = None;
        let probes: Vec<&FieldProbe> = self
            .query
            .field_probes
            .iter()
            .filter(|p| INDEXED_FIELDS.contains(&p.field.as_str()))
            .collect();
        if !probes.is_empty() && parts.fields.is_none() {
            let column = sidecar.insert(self.column(info, offset, header, &parts.stored_hash));
            if let Some(column) = column {
                let rows = rows_may_match(column, &probes);
                if !rows.contains(&true) {
                    self.stats.blocks_rejected_by_fields += 1;
                    return Flow::Continue;
                }
                may = Some(rows);
            }
        }
        let started = Instant::now();
        let list = self.decode(parts.payload, header.count, &info.path, offset);
        self.stats.payload_time += started.elapsed();
        let Some(list) = list else {
            return Flow::Continue;
        };
        let mut fields: Option<Vec<Map<String, Value>>> = None;
        for i in 0..list.records.len() {
            if may.as_ref().is_some_and(|m| !m[i]) || !self.record_matches(&list, i) {
                continue;
            }
            let fields = fields.get_or_insert_with(|| match parts.fields {
                Some(column) => self.parse_fields(column, header.count, &info.path, offset),
                None => Vec::new(),
            });
            let record_fields = fields.get(i).filter(|m| !m.is_empty());
            if sidecar.is_none() {
                sidecar = Some(self.column(info, offset, header, &parts.stored_hash));
            }
            let column = sidecar.as_ref().and_then(Option::as_ref);
            let row = column.map(|column| FieldsRow { column, row: i });
            if self.emit_record(header, &list, i, record_fields, row) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// The sidecar column of the block at `offset`, if the segment's sidecar has one that
    /// checks.
    fn column(
        &mut self,
        info: &SegmentInfo,
        offset: u64,
        header: &BlockHeader,
        stored_hash: &[u8; 32],
    ) -> Option<Column> {
        let started = Instant::now();
        let cap = self.cap;
        let tag = crate::fields::block_tag(stored_hash);
        let column = self
            .sidecar
            .get_or_insert_with(|| SidecarIndex::open(&info.path))
            .as_mut()
            .and_then(|s| s.column(offset, &tag, header.count, cap));
        self.stats.column_time += started.elapsed();
        column
    }

    /// Decodes a payload, reporting it when it is damaged or its record count is wrong.
    fn decode(
        &mut self,
        payload: &[u8],
        count: u32,
        seg: &Path,
        offset: u64,
    ) -> Option<RecordList> {
        let reason = match payload::decode_payload(payload, self.cap, &mut self.scratch) {
            Ok(list) if list.records.len() == count as usize => return Some(list),
            Ok(list) => format!(
                "payload has {} records, header says {count}",
                list.records.len()
            ),
            Err(e) => format!("payload: {e}"),
        };
        self.report(seg, offset, reason);
        None
    }

    /// Emits record `i` of `list`; `Stop` when `emit` declined or the limit is reached.
    fn emit_record(
        &mut self,
        header: &BlockHeader,
        list: &RecordList,
        i: usize,
        fields: Option<&Map<String, Value>>,
        sidecar: Option<FieldsRow<'_>>,
    ) -> Flow {
        let rec = &list.records[i];
        let (input, path) = source_of(list, rec.source);
        let seq = header.first_seq + i as u64;
        let id = event_id(&header.agent, &header.stream_id, seq);
        let view = RecordView {
            event_id: &id,
            agent: &header.agent,
            host: &header.host,
            stream_id: &header.stream_id,
            seq,
            input,
            path,
            observed_ns: rec.observed_unix_nanos,
            event_ns: rec.event_unix_nanos,
            raw: &rec.raw,
            truncated_from: rec.truncated_from,
            attributes: &rec.attributes,
            original: &rec.original,
            kind: rec.kind,
            agent_tz: &list.agent_tz,
            fields,
            sidecar,
        };
        self.stats.records_matched += 1;
        let started = Instant::now();
        let more = (self.emit)(&view);
        self.stats.emit_time += started.elapsed();
        let limit = self.query.limit.map_or(u64::MAX, |l| l as u64);
        if more && self.stats.records_matched < limit {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }

    fn record_matches(&self, list: &RecordList, i: usize) -> bool {
        let rec = &list.records[i];
        let q = self.query;
        let t = rec.observed_unix_nanos;
        q.since_ns.is_none_or(|s| t >= s)
            && q.until_ns.is_none_or(|u| t < u)
            && q.input
                .as_ref()
                .is_none_or(|want| source_of(list, rec.source).0 == want)
            && q.contains
                .as_ref()
                .is_none_or(|needle| memchr::memmem::find(&rec.raw, needle.as_bytes()).is_some())
    }

    /// Parses a fields column; on any damage reports it and returns no fields.
    fn parse_fields(
        &mut self,
        column: &[u8],
        count: u32,
        seg: &Path,
        offset: u64,
    ) -> Vec<Map<String, Value>> {
        match parse_fields(column, count, self.cap, &mut self.fields_scratch) {
            Ok(maps) => maps,
            Err(reason) => {
                self.report(seg, offset, format!("fields column: {reason}"));
                Vec::new()
            }
        }
    }

    fn report(&mut self, segment: &Path, offset: u64, reason: String) {
        tracing::warn!(segment = %segment.display(), offset, %reason, "Skipped a damaged block.");
        self.stats.corrupt.push(CorruptBlock {
            segment: segment.to_path_buf(),
            offset,
            reason,
        });
    }
}

/// Decompresses (capped) and parses a fields column into one map per record.
pub(crate) fn parse_fields(
    column: &[u8],
    count: u32,
    cap: usize,
    scratch: &mut Vec<u8>,
) -> Result<Vec<Map<String, Value>>, String> {
    payload::decompress_capped(column, cap, scratch).map_err(|e| e.to_string())?;
    let text = scratch.strip_suffix(b"\n").unwrap_or(scratch);
    let maps = text
        .split(|&b| b == b'\n')
        .map(|line| serde_json::from_slice::<Map<String, Value>>(line).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if maps.len() != count as usize {
        return Err(format!("{} lines for {count} records", maps.len()));
    }
    Ok(maps)
}

/// Per row of `column`: may the record hold every probed value? The index's semantics
/// ([`crate::fieldindex`]): a row is ruled out only when, for some probe, its field is absent,
/// or is text (or a list of texts) none of which is the probe's exact value; a number, a bool
/// or a JSON value may equal it by a comparison the index does not model, so it may match.
fn rows_may_match(column: &Column, probes: &[&FieldProbe]) -> Vec<bool> {
    let keys: Vec<Option<u32>> = probes.iter().map(|p| column.key_id(&p.field)).collect();
    (0..column.len())
        .map(|row| {
            probes
                .iter()
                .zip(&keys)
                .all(|(p, key)| match key.and_then(|k| column.get(row, k)) {
                    None => false,
                    Some(ValueRef::Str(s)) => s == p.value,
                    Some(ValueRef::Strs(list)) => list.iter().any(|s| s == p.value),
                    Some(_) => true,
                })
        })
        .collect()
}

fn source_of(list: &RecordList, source: u32) -> (&str, &str) {
    list.sources
        .get(source as usize)
        .map_or(("", ""), |s| (s.input.as_str(), s.path.as_str()))
}

fn block_may_match(header: &BlockHeader, q: &Query) -> bool {
    q.since_ns.is_none_or(|s| header.max_time_ns >= s)
        && q.until_ns.is_none_or(|u| header.min_time_ns < u)
        && q.host.as_ref().is_none_or(|h| &header.host == h)
        && match &q.agent {
            Some(a) => &header.agent == a,
            // The collector's own records (checkpoints) only when asked for by name.
            None => !header.agent.starts_with('@'),
        }
        && q.input
            .as_ref()
            .is_none_or(|i| header.inputs.iter().any(|x| x == i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::ColumnBuilder;

    fn probe(field: &str, value: &str) -> FieldProbe {
        FieldProbe {
            field: field.into(),
            value: value.into(),
        }
    }

    #[test]
    fn a_row_is_ruled_out_only_when_a_probed_field_is_absent_or_other_text() {
        let mut b = ColumnBuilder::new();
        b.str("user.name", "alice"); // 0: alice
        b.str("event.outcome", "failure");
        b.end_row();
        b.str("user.name", "Alice"); // 1: case differs
        b.str("event.outcome", "failure");
        b.end_row();
        b.strs("user.name", ["bob", "alice"].into_iter()); // 2: a list holding alice
        b.end_row();
        b.u64("user.name", 7); // 3: a number may equal a text by value
        b.end_row();
        b.json("user.name", "{\"a\":1}"); // 4: JSON: not modelled, may match
        b.end_row();
        b.end_row(); // 5: no fields
        let mut bytes = Vec::new();
        b.finish(&mut bytes);
        let c = Column::decode(bytes, 6).unwrap();
        let alice = probe("user.name", "alice");
        let failure = probe("event.outcome", "failure");
        assert_eq!(
            rows_may_match(&c, &[&alice]),
            [true, false, true, true, true, false]
        );
        assert_eq!(
            rows_may_match(&c, &[&alice, &failure]),
            [true, false, false, false, false, false]
        );
        let nobody = probe("user.name", "nobody");
        assert_eq!(
            rows_may_match(&c, &[&nobody]),
            [false, false, false, true, true, false]
        );
        let absent = probe("url.domain", "example.com");
        assert_eq!(rows_may_match(&c, &[&absent]), [false; 6]);
        assert_eq!(rows_may_match(&c, &[]), [true; 6]);
    }
}
