//! Which records of a stored block a forwarder takes: the block decoded, each record's fields
//! (the block's inline fields column when it has one, else the column the collector's
//! normalizer wrote to the segment's fields sidecar, read through the store's [`BlockColumns`];
//! only a block neither covers — the normalizer lags, or the sidecar is missing or damaged — is
//! normalized here), the forwarder's [`Filter`]. One code path for the forwarder thread and for retention's loss count
//! ([`crate::retention::FilteredLoss`]), so a record counted as lost is exactly one the
//! forwarder would have sent.
//!
//! Bounds: decompression is capped (`max_decompressed_bytes`); at most [`MAX_STREAMS`]
//! normalizers are kept (one per agent stream), then they are all dropped and rebuilt.
//!
//! Same fields either way: the sidecar column holds what [`record_fields`] gives, written with
//! `push_map` and read back with [`row_map`] (equal by that module's invariant). One difference is
//! inherent to stateful parsers: a block normalized here after blocks read from the sidecar lacks
//! the correlation state (e.g. sshd's `Connection from` address) those blocks would have given
//! this matcher's normalizer; the sidecar's rows have it, made by the normalizer that saw the
//! whole stream.

use std::collections::HashMap;

use logship_normalize::Normalizer;
use logship_proto::payload::decode_payload;
use logship_proto::v1::{Record, RecordList};
use logship_store::CursorBlock;
use logship_store::fields::BlockColumns;
use serde_json::{Map, Value};

use super::filter::Filter;
use crate::normalize::column::{record_fields, row_map};

/// Normalizers kept per matcher (one per agent stream).
const MAX_STREAMS: usize = 4096;

/// One record a forwarder takes.
pub(crate) struct Taken<'a> {
    pub(crate) list: &'a RecordList,
    pub(crate) record: &'a Record,
    pub(crate) seq: u64,
    pub(crate) input: &'a str,
    pub(crate) fields: &'a Map<String, Value>,
}

/// A forwarder's filter with what deciding on a record needs.
pub(crate) struct Matcher {
    filter: Filter,
    cap: usize,
    normalizers: HashMap<(String, String), Normalizer>,
    scratch: Vec<u8>,
    /// The store's fields sidecars, when set ([`Matcher::with_sidecars`]).
    columns: Option<BlockColumns>,
}

impl Matcher {
    pub(crate) fn new(filter: Filter, cap: usize) -> Matcher {
        Matcher {
            filter,
            cap,
            normalizers: HashMap::new(),
            scratch: Vec::new(),
            columns: None,
        }
    }

    /// Reads each block's fields from the sidecars of the store at `store_dir` when they cover
    /// it, instead of normalizing again.
    pub(crate) fn with_sidecars(mut self, store_dir: &std::path::Path) -> Matcher {
        self.columns = Some(BlockColumns::new(store_dir));
        self
    }

    /// Whether the filter takes every record (so nothing needs decoding to count them).
    pub(crate) fn takes_all(&self) -> bool {
        self.filter.takes_all()
    }

    /// How many records of `b` the filter passes; decides without normalizing when the filter
    /// looks at no field (only agents and inputs). Err: the payload cannot be decoded.
    pub(crate) fn count(&mut self, b: &CursorBlock) -> Result<u64, String> {
        if self.filter.needs_fields() {
            let mut n = 0;
            self.each(b, |_| n += 1)?;
            return Ok(n);
        }
        if self.filter.skips_agent(&b.agent) {
            return Ok(0);
        }
        let list =
            decode_payload(&b.payload, self.cap, &mut self.scratch).map_err(|e| e.to_string())?;
        let none = Map::new();
        let passed = list
            .records
            .iter()
            .filter(|r| {
                self.filter
                    .matches(&b.agent, input_of(&list, r.source), &none)
            })
            .count();
        Ok(passed as u64)
    }

    /// Calls `take` with every record of `b` the filter passes, in order; returns how many
    /// it passed over. Err: the block's payload cannot be decoded (none of it is taken).
    pub(crate) fn each(
        &mut self,
        b: &CursorBlock,
        mut take: impl FnMut(Taken<'_>),
    ) -> Result<u64, String> {
        if self.filter.skips_agent(&b.agent) {
            return Ok(u64::from(b.count));
        }
        let list =
            decode_payload(&b.payload, self.cap, &mut self.scratch).map_err(|e| e.to_string())?;
        let inline = b
            .fields
            .as_ref()
            .and_then(|f| inline_rows(f, list.records.len(), self.cap));
        let sidecar = match (&inline, &mut self.columns) {
            (None, Some(columns)) => columns.column(b, self.cap),
            _ => None,
        };
        if self.normalizers.len() >= MAX_STREAMS {
            self.normalizers.clear();
        }
        let normalizer = self
            .normalizers
            .entry((b.agent.clone(), b.stream_id.clone()))
            .or_default();
        let mut passed_over = 0;
        for (i, r) in list.records.iter().enumerate() {
            let mut fields = match (&inline, &sidecar) {
                (Some(rows), _) => rows[i].clone(),
                (None, Some(column)) => row_map(column, i),
                (None, None) => record_fields(&list, r, normalizer),
            };
            if r.kind != 1 {
                fields.insert("agent.name".into(), Value::String(b.agent.clone()));
            }
            let input = input_of(&list, r.source);
            if !self.filter.matches(&b.agent, input, &fields) {
                passed_over += 1;
                continue;
            }
            take(Taken {
                list: &list,
                record: r,
                seq: b.first_seq + i as u64,
                input,
                fields: &fields,
            });
        }
        Ok(passed_over)
    }
}

fn input_of(list: &RecordList, source: u32) -> &str {
    list.sources
        .get(source as usize)
        .map_or("", |s| s.input.as_str())
}

/// The rows of an inline fields column, if it decodes to exactly `n` objects.
fn inline_rows(column: &[u8], n: usize, cap: usize) -> Option<Vec<Map<String, Value>>> {
    let mut text = Vec::new();
    logship_proto::payload::decompress_capped(column, cap, &mut text).ok()?;
    let rows: Vec<Map<String, Value>> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()
        .ok()?;
    (rows.len() == n).then_some(rows)
}

#[cfg(test)]
mod tests {
    use logship_proto::v1::{Record, RecordList, Source};
    use logship_store::fields::{ColumnBuilder, FieldsWriter, TAG_LEN};
    use logship_store::{BlockInput, Cursor, CursorItem, Store, StoreConfig};
    use prost::Message;

    use super::*;
    use crate::normalize::column::push_map;

    const STREAM: &str = "0123456789abcdef0123456789abcdef";
    const PER_BLOCK: u64 = 50;

    /// sshd lines (connections and failed passwords), a cron line the sshd filter drops, and
    /// every tenth record a gap record.
    fn list(first: u64) -> RecordList {
        let records = (first..first + PER_BLOCK)
            .map(|i| {
                let raw = match i % 3 {
                    0 => format!("Feb 12 14:10:21 gw sshd[{i}]: Connection from 10.0.{}.{} port 4022 on 10.0.0.1 port 22", i / 256, i % 256),
                    1 => format!("Feb 12 14:10:22 gw sshd[{}]: Failed password for u{i} from 10.0.0.9 port 4022 ssh2", i - 1),
                    _ => format!("Feb 12 14:10:23 gw cron[{i}]: (root) CMD (true)"),
                };
                Record {
                    raw: raw.into_bytes().into(),
                    observed_unix_nanos: 1,
                    kind: i32::from(i % 10 == 9),
                    ..Default::default()
                }
            })
            .collect();
        RecordList {
            host: "h".into(),
            sources: vec![Source {
                input: "auth".into(),
                path: "/var/log/auth.log".into(),
            }],
            records,
            agent_tz: "UTC".into(),
            observed_unix_nanos: 1,
        }
    }

    fn tag(hash: &str) -> [u8; TAG_LEN] {
        let mut t = [0u8; TAG_LEN];
        for (i, b) in t.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap();
        }
        t
    }

    /// Every record's fields through one matcher, per block.
    fn walk(m: &mut Matcher, blocks: &[CursorBlock]) -> Vec<Vec<Map<String, Value>>> {
        blocks
            .iter()
            .map(|b| {
                let mut rows = Vec::new();
                m.each(b, |t| rows.push(t.fields.clone())).unwrap();
                rows
            })
            .collect()
    }

    /// Blocks 0 and 2 have sidecar columns (marked, so their use shows), block 1 has none (the
    /// normalizer lags), block 3's entry is damaged on disk: the marked blocks come from the
    /// sidecar, the others are normalized here, and apart from the mark every record's fields
    /// equal those of a matcher that normalizes everything.
    #[test]
    fn fields_come_from_the_sidecar_where_it_covers_the_block_else_from_the_parsers() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        let config = StoreConfig {
            dir: store_dir.clone(),
            ..StoreConfig::default()
        };
        let (mut store, _) = Store::open(config).unwrap();
        for b in 0..4u64 {
            let first_seq = 1 + b * PER_BLOCK;
            let payload = logship_proto::payload::compress(&list(first_seq).encode_to_vec(), 1)
                .unwrap()
                .into();
            store
                .append(BlockInput {
                    agent: "a".into(),
                    stream_id: STREAM.into(),
                    first_seq,
                    count: PER_BLOCK as u32,
                    host: "h".into(),
                    min_time_ns: 1,
                    max_time_ns: 1,
                    inputs: vec!["auth".into()],
                    payload,
                    fields: None,
                })
                .unwrap();
        }
        store.sync().unwrap();
        let mut cursor = Cursor::open(&store_dir, "test", None).unwrap();
        let mut blocks = Vec::new();
        while let Some(item) = cursor.read_next().unwrap() {
            if let CursorItem::Block(b) = item {
                blocks.push(*b);
            }
        }
        assert_eq!(blocks.len(), 4);

        // The sidecar as the normalizer writes it (one normalizer for the stream), plus a mark.
        let mut normalizer = Normalizer::new();
        let mut writer = FieldsWriter::new(&store_dir);
        let (mut builder, mut column) = (ColumnBuilder::new(), Vec::new());
        for (i, b) in blocks.iter().enumerate() {
            let l = list(b.first_seq);
            builder.clear();
            for r in &l.records {
                if r.kind != 1 {
                    let mut f = record_fields(&l, r, &mut normalizer);
                    f.insert("test.from_sidecar".into(), Value::from(i as u64));
                    push_map(&mut builder, &f);
                }
                builder.end_row();
            }
            builder.finish(&mut column);
            if i != 1 {
                let t = tag(&b.hash);
                writer
                    .append(b.at.segment, b.at.offset, &t, b.count, &column)
                    .unwrap();
            }
        }
        writer.sync().unwrap();
        drop(writer);
        // Damage block 3's entry (the last one in the file): its body CRC fails.
        let fld = std::fs::read_dir(store_dir.join("segments"))
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "fld"))
            .expect("a sidecar");
        let mut bytes = std::fs::read(&fld).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&fld, bytes).unwrap();

        let sshd = || Filter::of_datasets(&["sshd"]);
        let mut with = Matcher::new(sshd(), 1 << 24).with_sidecars(&store_dir);
        let got = walk(&mut with, &blocks);
        let mut without = Matcher::new(sshd(), 1 << 24);
        let want = walk(&mut without, &blocks);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(!g.is_empty(), "block {i} passed no record");
            assert_eq!(g.len(), w.len(), "block {i}");
            for (g, w) in g.iter().zip(w) {
                let mut g = g.clone();
                let mark = g.remove("test.from_sidecar");
                assert_eq!(mark.is_some(), i == 0 || i == 2, "block {i}: {g:?}");
                assert_eq!(&g, w, "block {i}");
            }
        }
        // The sidecar's rows are real fields, not just the mark.
        assert!(got[2].iter().any(|f| {
            f.get("event.outcome").and_then(Value::as_str) == Some("failure")
                && f.get("source.ip").and_then(Value::as_str) == Some("10.0.0.9")
        }));
    }
}
