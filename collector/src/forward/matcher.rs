//! Which records of a stored block a forwarder takes: the block decoded, each record's fields
//! (the block's inline fields column when it has one, else normalized here), the forwarder's
//! [`Filter`]. One code path for the forwarder thread and for retention's loss count
//! ([`crate::retention::FilteredLoss`]), so a record counted as lost is exactly one the
//! forwarder would have sent.
//!
//! Bounds: decompression is capped (`max_decompressed_bytes`); at most [`MAX_STREAMS`]
//! normalizers are kept (one per agent stream), then they are all dropped and rebuilt.

use std::collections::HashMap;

use logship_normalize::Normalizer;
use logship_proto::payload::decode_payload;
use logship_proto::v1::{Record, RecordList};
use logship_store::CursorBlock;
use serde_json::{Map, Value};

use super::filter::Filter;
use crate::normalize::column::record_fields;

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
}

impl Matcher {
    pub(crate) fn new(filter: Filter, cap: usize) -> Matcher {
        Matcher {
            filter,
            cap,
            normalizers: HashMap::new(),
            scratch: Vec::new(),
        }
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
        if self.normalizers.len() >= MAX_STREAMS {
            self.normalizers.clear();
        }
        let normalizer = self
            .normalizers
            .entry((b.agent.clone(), b.stream_id.clone()))
            .or_default();
        let mut passed_over = 0;
        for (i, r) in list.records.iter().enumerate() {
            let mut fields = match &inline {
                Some(rows) => rows[i].clone(),
                None => record_fields(&list, r, normalizer),
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
