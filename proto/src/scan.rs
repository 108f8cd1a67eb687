//! Checking a batch payload without materializing it: [`scan_payload`] decompresses into one
//! buffer of at most the allowed size and walks the `RecordList` field by field, keeping only
//! the facts a store block needs (record count, time range, inputs, claimed host).
//!
//! Invariants:
//! - Memory is bounded by the allowance given by the caller (the decompressed buffer, allocated
//!   once at that size; the one-shot zstd decoder needs no window buffer) and at most [`MAX_INPUTS`] input names. A payload that would decompress
//!   past the allowance fails with [`PayloadError::TooLarge`].
//! - Records are counted while they are read: the walk stops with
//!   [`PayloadError::CountMismatch`] at record `count + 1`, never after decoding them all.
//! - Every record is checked as prost's `Record::decode` checks it, without building it
//!   ([`record_facts`]: no allocation, copy or reference count per record; the walk reads
//!   slices of the one buffer), so a scanned payload also decodes
//!   with [`crate::payload::decode_payload`]; it must refer to an existing source.

use std::collections::BTreeSet;

use bytes::Buf;
use prost::Message;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

use crate::payload::PayloadError;
use crate::v1::Source;

/// Distinct input names accepted in one batch.
pub const MAX_INPUTS: usize = 1024;

/// What a scanned payload holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records in the payload (equal to the expected count).
    pub records: u32,
    /// Earliest observed time (Unix ns), with omitted times resolved.
    pub min_time_ns: i64,
    /// Latest observed time (Unix ns).
    pub max_time_ns: i64,
    /// The host name the payload claims (`RecordList.host`).
    pub host: String,
    /// Distinct input names of the source table, sorted.
    pub inputs: Vec<String>,
}

/// Running state of the walk.
struct Walk {
    expected: u32,
    records: u32,
    min: i64,
    max: i64,
    /// A record with time 0 came before any record with its own time: it takes the list's time.
    leading_zero: bool,
    list_time: i64,
    max_source: Option<u32>,
    sources: u64,
    host: String,
    inputs: BTreeSet<String>,
}

/// Decompresses `payload` into at most `allowance` bytes and checks it holds exactly
/// `expected` well-formed records.
pub fn scan_payload(
    payload: &[u8],
    allowance: usize,
    expected: u32,
) -> Result<Summary, PayloadError> {
    let bytes = decompress_once(payload, allowance)?;
    let mut walk = Walk {
        expected,
        records: 0,
        min: i64::MAX,
        max: i64::MIN,
        leading_zero: false,
        list_time: 0,
        max_source: None,
        sources: 0,
        host: String::new(),
        inputs: BTreeSet::new(),
    };
    walk.run(&bytes)?;
    walk.finish()
}

/// One-shot decompression into a buffer of exactly `allowance` bytes of capacity.
fn decompress_once(payload: &[u8], allowance: usize) -> Result<Vec<u8>, PayloadError> {
    // zstd reads zero bytes as zero frames; a payload is one frame (the full decoder agrees).
    if payload.is_empty() {
        let empty = std::io::Error::new(std::io::ErrorKind::InvalidData, "empty payload");
        return Err(PayloadError::Zstd(empty));
    }
    let mut out = Vec::with_capacity(allowance);
    let mut ctx = zstd::bulk::Decompressor::new().map_err(PayloadError::Zstd)?;
    match ctx.decompress_to_buffer(payload, &mut out) {
        Ok(_) => Ok(out),
        // zstd's name for ZSTD_error_dstSize_tooSmall.
        Err(e) if e.to_string().contains("too small") => {
            Err(PayloadError::TooLarge { cap: allowance })
        }
        Err(e) => Err(PayloadError::Zstd(e)),
    }
}

// === impl Walk ===

impl Walk {
    fn run(&mut self, mut buf: &[u8]) -> Result<(), PayloadError> {
        while buf.has_remaining() {
            let (tag, wire) = decode_key(&mut buf)?;
            match (tag, wire) {
                (1, WireType::LengthDelimited) => {
                    let host = length_delimited_slice(&mut buf)?;
                    self.host = String::from_utf8(host.to_vec())
                        .map_err(|_| PayloadError::Malformed("host is not UTF-8"))?;
                }
                (2, WireType::LengthDelimited) => {
                    let source = Source::decode(length_delimited_slice(&mut buf)?)?;
                    self.sources += 1;
                    if !self.inputs.contains(&source.input) {
                        if self.inputs.len() == MAX_INPUTS {
                            return Err(PayloadError::TooManyInputs { max: MAX_INPUTS });
                        }
                        self.inputs.insert(source.input);
                    }
                }
                (3, WireType::LengthDelimited) => {
                    let record = length_delimited_slice(&mut buf)?;
                    let (source, observed) = record_facts(record)?;
                    self.record(source, observed)?;
                }
                (4, WireType::LengthDelimited) => {
                    let tz = length_delimited_slice(&mut buf)?;
                    std::str::from_utf8(tz)
                        .map_err(|_| PayloadError::Malformed("agent time zone is not UTF-8"))?;
                }
                (5, WireType::Varint) => self.list_time = decode_varint(&mut buf)? as i64,
                // A known field with another wire type: prost refuses it, so must the walk, or
                // the store would keep a batch its readers cannot decode.
                (1..=5, _) => {
                    return Err(PayloadError::Malformed(
                        "a record list field has the wrong wire type",
                    ));
                }
                _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
            }
        }
        Ok(())
    }

    fn record(&mut self, source: u32, observed_unix_nanos: i64) -> Result<(), PayloadError> {
        self.records += 1;
        if self.records > self.expected {
            return Err(PayloadError::CountMismatch {
                expected: self.expected,
                found: "more".into(),
            });
        }
        if observed_unix_nanos == 0 {
            self.leading_zero |= self.min == i64::MAX;
        } else {
            self.min = self.min.min(observed_unix_nanos);
            self.max = self.max.max(observed_unix_nanos);
        }
        self.max_source = self.max_source.max(Some(source));
        Ok(())
    }

    fn finish(mut self) -> Result<Summary, PayloadError> {
        if self.records != self.expected {
            return Err(PayloadError::CountMismatch {
                expected: self.expected,
                found: self.records.to_string(),
            });
        }
        if let Some(source) = self.max_source
            && u64::from(source) >= self.sources
        {
            return Err(PayloadError::UnknownSource { index: source });
        }
        if self.leading_zero || self.min == i64::MAX {
            self.min = self.min.min(self.list_time);
            self.max = self.max.max(self.list_time);
        }
        Ok(Summary {
            records: self.records,
            min_time_ns: self.min,
            max_time_ns: self.max,
            host: self.host,
            inputs: self.inputs.into_iter().collect(),
        })
    }
}

/// The `source` and `observed_unix_nanos` of one encoded `Record`, checked as prost's
/// `Record::decode` checks it (wire types, lengths, varints, UTF-8 attribute keys and values,
/// unknown fields skipped) without building it: no allocation, no copy of `raw`, no map.
/// Accepts exactly what `Record::decode` accepts (tested against it below).
fn record_facts(mut buf: &[u8]) -> Result<(u32, i64), PayloadError> {
    let (mut source, mut observed) = (0u32, 0i64);
    while buf.has_remaining() {
        let (tag, wire) = decode_key(&mut buf)?;
        match (tag, wire) {
            // uint32: prost keeps the low 32 bits of the varint.
            (1, WireType::Varint) => source = decode_varint(&mut buf)? as u32,
            (2, WireType::Varint) => observed = decode_varint(&mut buf)? as i64,
            (4..=6, WireType::Varint) => {
                decode_varint(&mut buf)?;
            }
            (3 | 8, WireType::LengthDelimited) => {
                length_delimited_slice(&mut buf)?;
            }
            (7, WireType::LengthDelimited) => attribute(length_delimited_slice(&mut buf)?)?,
            (1..=8, _) => {
                return Err(PayloadError::Malformed(
                    "a record field has the wrong wire type",
                ));
            }
            _ => skip_field(wire, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok((source, observed))
}

/// One `attributes` map entry: `key` (1) and `value` (2) UTF-8 strings, others skipped.
fn attribute(mut entry: &[u8]) -> Result<(), PayloadError> {
    while entry.has_remaining() {
        let (tag, wire) = decode_key(&mut entry)?;
        match (tag, wire) {
            (1 | 2, WireType::LengthDelimited) => {
                let text = length_delimited_slice(&mut entry)?;
                // Most attributes (addresses, names, numbers) are ASCII: a plain byte check
                // is cheaper than UTF-8 validation on such short strings.
                if !text.is_ascii() {
                    std::str::from_utf8(text)
                        .map_err(|_| PayloadError::Malformed("an attribute is not UTF-8"))?;
                }
            }
            (1 | 2, _) => {
                return Err(PayloadError::Malformed(
                    "an attribute field has the wrong wire type",
                ));
            }
            _ => skip_field(wire, tag, &mut entry, DecodeContext::default())?,
        }
    }
    Ok(())
}

/// The next length-delimited field's bytes within `buf`.
fn length_delimited_slice<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], PayloadError> {
    let len = decode_varint(buf)?;
    if len > buf.len() as u64 {
        return Err(PayloadError::Malformed(
            "field length past the end of the payload",
        ));
    }
    let (field, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(field)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_known_field_with_another_wire_type_is_refused_like_the_full_decoder_does() {
        // Found by the batch_decode fuzz target: field 5 (a varint) sent as 32-bit, and
        // field 4 (a string) that is not UTF-8, were skipped by the walk but refused by prost.
        for body in [&[0x2d, 0, 0x2d, 0x2d, 0x2d][..], &[0x22, 1, 0xff][..]] {
            let framed = crate::payload::compress(body, 1).unwrap();
            let mut scratch = Vec::new();
            assert!(crate::payload::decode_payload(&framed, 1 << 20, &mut scratch).is_err());
            assert!(
                super::scan_payload(&framed, 1 << 20, 0).is_err(),
                "{body:?}"
            );
        }
    }

    #[test]
    fn an_empty_payload_is_refused_like_the_full_decoder_does() {
        // Found by the batch_decode fuzz target: zero bytes scanned as zero records.
        assert!(super::scan_payload(b"", 1 << 20, 0).is_err());
        let mut scratch = Vec::new();
        assert!(crate::payload::decode_payload(b"", 1 << 20, &mut scratch).is_err());
    }

    use super::*;
    use crate::payload::compress;
    use crate::v1::{Record, RecordList};
    use bytes::Bytes;

    fn list(times: &[i64], list_time: i64) -> RecordList {
        RecordList {
            host: "dc01".into(),
            sources: vec![
                Source {
                    input: "auth".into(),
                    path: "/a".into(),
                },
                Source {
                    input: "app".into(),
                    path: "/b".into(),
                },
            ],
            records: times
                .iter()
                .map(|&t| Record {
                    raw: Bytes::from_static(b"line"),
                    observed_unix_nanos: t,
                    source: u32::from(t % 2 == 0),
                    ..Default::default()
                })
                .collect(),
            agent_tz: "UTC".into(),
            observed_unix_nanos: list_time,
        }
    }

    fn packed(l: &RecordList) -> Vec<u8> {
        compress(&l.encode_to_vec(), 1).unwrap()
    }

    /// Valid encoded records with every field, attributes and an unknown field.
    fn sample_records() -> Vec<Vec<u8>> {
        let mut full = Record {
            source: 3,
            observed_unix_nanos: -5,
            raw: Bytes::from_static(b"<13>raw"),
            truncated_from: 70_000,
            kind: 1,
            event_unix_nanos: 1_700_000_000_000_000_000,
            original: Bytes::from_static(b"\x82\xa0"),
            ..Default::default()
        };
        full.attributes
            .insert("sender".into(), "192.0.2.1:514".into());
        full.attributes.insert("transport".into(), "udp".into());
        let mut with_unknown = full.encode_to_vec();
        with_unknown.extend_from_slice(&[0x48, 0x07, 0x52, 0x02, b'h', b'i']);
        vec![
            full.encode_to_vec(),
            Record::default().encode_to_vec(),
            with_unknown,
            // A map entry with an unknown field and a missing value; a uint32 past 32 bits.
            vec![
                0x3a, 0x05, 0x0a, 0x01, b'k', 0x18, 0x01, 0x08, 0x80, 0x80, 0x80, 0x80, 0x10,
            ],
        ]
    }

    #[test]
    fn the_record_walk_accepts_exactly_what_prost_accepts() {
        // Mutations of valid records (byte changes, cuts, insertions), checked against prost.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut accepted, mut refused) = (0, 0);
        for base in sample_records() {
            for _ in 0..20_000 {
                let mut m = base.clone();
                for _ in 0..1 + next() % 3 {
                    let at = (next() as usize) % (m.len() + 1);
                    match next() % 4 {
                        0 if at < m.len() => m[at] = next() as u8,
                        1 if at < m.len() => m[at] ^= 0x80 | (1 << (next() % 7)),
                        2 => m.truncate(at),
                        _ => m.insert(at, next() as u8),
                    }
                }
                let ours = record_facts(&m);
                match Record::decode(&m[..]) {
                    Ok(r) => {
                        accepted += 1;
                        let (source, observed) = ours.unwrap_or_else(|e| panic!("{m:?}: {e}"));
                        assert_eq!(
                            (source, observed),
                            (r.source, r.observed_unix_nanos),
                            "{m:?}"
                        );
                    }
                    Err(_) => {
                        refused += 1;
                        assert!(ours.is_err(), "{m:?} accepted, prost refuses it");
                    }
                }
            }
            let r = Record::decode(&base[..]).unwrap();
            assert_eq!(
                record_facts(&base).unwrap(),
                (r.source, r.observed_unix_nanos)
            );
        }
        assert!(accepted > 1000 && refused > 1000, "{accepted} {refused}");
    }

    #[test]
    fn summary_matches_the_decoded_list() {
        let l = list(&[0, 0, 250, 0, 120], 100);
        let s = scan_payload(&packed(&l), 1 << 20, 5).unwrap();
        assert_eq!((s.records, s.min_time_ns, s.max_time_ns), (5, 100, 250));
        assert_eq!(s.host, "dc01");
        assert_eq!(s.inputs, ["app", "auth"]);
        let s = scan_payload(&packed(&list(&[300, 0], 100)), 1 << 20, 2).unwrap();
        assert_eq!((s.min_time_ns, s.max_time_ns), (300, 300));
    }

    #[test]
    fn the_walk_stops_at_the_first_record_past_the_count() {
        // 4 MiB of empty records (2 bytes each): a count lie is refused at record count + 1.
        let empty = [0x1a_u8, 0x00];
        let encoded: Vec<u8> = empty.repeat(2 << 20);
        let payload = compress(&encoded, 1).unwrap();
        let err = scan_payload(&payload, 8 << 20, 10).unwrap_err();
        assert!(
            matches!(err, PayloadError::CountMismatch { expected: 10, ref found } if found == "more"),
            "{err}"
        );
        let err = scan_payload(&packed(&list(&[1, 2], 0)), 1 << 20, 3).unwrap_err();
        assert!(matches!(
            err,
            PayloadError::CountMismatch { expected: 3, .. }
        ));
    }

    #[test]
    fn the_allowance_bounds_the_decompressed_size() {
        let l = list(&[1, 2, 3], 0);
        let encoded_len = l.encode_to_vec().len();
        assert!(scan_payload(&packed(&l), encoded_len, 3).is_ok());
        let err = scan_payload(&packed(&l), encoded_len - 1, 3).unwrap_err();
        assert!(matches!(err, PayloadError::TooLarge { cap } if cap == encoded_len - 1));
    }

    #[test]
    fn bad_sources_and_garbage_are_errors() {
        let mut l = list(&[1], 0);
        l.records[0].source = 2;
        let err = scan_payload(&packed(&l), 1 << 20, 1).unwrap_err();
        assert!(matches!(err, PayloadError::UnknownSource { index: 2 }));
        assert!(scan_payload(b"not zstd", 1024, 1).is_err());
        let truncated = compress(&[0x1a, 0x05, 1, 2], 1).unwrap();
        assert!(scan_payload(&truncated, 1024, 1).is_err());
    }
}
