//! Batch payload codec: a `RecordList` protobuf message, zstd-compressed once by the agent and
//! kept as is by the collector's store ("compress once", DESIGN.md §10).
//!
//! Invariants:
//! - Decompression is always capped: [`decompress_capped`] stops and fails as soon as the
//!   output would exceed the caller's limit, so a hostile payload cannot exhaust memory.
//! - A payload that decodes is a well-formed `RecordList`; anything else is an error the caller
//!   reports, never a panic.

use std::io::Read;

use prost::Message;

use crate::v1::RecordList;

/// Errors decoding a batch payload.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The payload decompresses to more than the allowed number of bytes.
    #[error("payload decompresses past the cap of {cap} bytes")]
    TooLarge {
        /// The cap that was exceeded.
        cap: usize,
    },
    /// The payload is not a valid zstd frame.
    #[error("payload is not valid zstd: {0}")]
    Zstd(#[source] std::io::Error),
    /// The decompressed bytes are not a `RecordList`.
    #[error("payload is not a valid record list: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The payload holds another number of records than the batch header says.
    #[error("batch says {expected} records but its payload holds {found}")]
    CountMismatch {
        /// The header's count.
        expected: u32,
        /// What was found ("more" when the walk stopped at record `expected + 1`).
        found: String,
    },
    /// A record refers to a source the payload's source table does not have.
    #[error("record refers to unknown source {index}")]
    UnknownSource {
        /// The source index.
        index: u32,
    },
    /// The record list is malformed in a way the protobuf decoder does not name.
    #[error("payload is not a valid record list: {0}")]
    Malformed(&'static str),
    /// The source table names more distinct inputs than allowed.
    #[error("payload names more than {max} inputs")]
    TooManyInputs {
        /// The limit.
        max: usize,
    },
}

/// Decompresses a zstd payload into `out`, failing once more than `cap` bytes would be produced.
///
/// `out` is cleared first; its capacity is reused across calls.
pub fn decompress_capped(
    payload: &[u8],
    cap: usize,
    out: &mut Vec<u8>,
) -> Result<(), PayloadError> {
    out.clear();
    // The streaming decoder is the only zstd reader allowed: `take` bounds what it can emit.
    #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
    let decoder = zstd::stream::read::Decoder::with_buffer(payload).map_err(PayloadError::Zstd)?;
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut limited = decoder.take(limit);
    limited.read_to_end(out).map_err(PayloadError::Zstd)?;
    if out.len() > cap {
        return Err(PayloadError::TooLarge { cap });
    }
    Ok(())
}

/// Decompresses (capped) and decodes a payload into a `RecordList`.
pub fn decode_payload(
    payload: &[u8],
    cap: usize,
    scratch: &mut Vec<u8>,
) -> Result<RecordList, PayloadError> {
    decompress_capped(payload, cap, scratch)?;
    let mut list = RecordList::decode(bytes::Bytes::copy_from_slice(scratch))?;
    resolve_observed_times(&mut list);
    Ok(list)
}

/// Replaces every record's observed time of 0 ("same as the record before") by the time it
/// stands for, so consumers always see absolute times.
pub fn resolve_observed_times(list: &mut RecordList) {
    let mut current = list.observed_unix_nanos;
    for r in &mut list.records {
        if r.observed_unix_nanos == 0 {
            r.observed_unix_nanos = current;
        } else {
            current = r.observed_unix_nanos;
        }
    }
}

/// Compresses an encoded `RecordList` with zstd at `level`.
pub fn compress(encoded: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(encoded, level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Record, Source};

    fn sample() -> RecordList {
        RecordList {
            host: "h".into(),
            sources: vec![Source {
                input: "in".into(),
                path: "/var/log/x".into(),
            }],
            records: vec![Record {
                raw: bytes::Bytes::from_static(b"hello"),
                ..Default::default()
            }],
            agent_tz: "UTC".into(),
            observed_unix_nanos: 0,
        }
    }

    #[test]
    fn round_trip() {
        let encoded = sample().encode_to_vec();
        let compressed = compress(&encoded, 1).unwrap();
        let mut scratch = Vec::new();
        let decoded = decode_payload(&compressed, 1 << 20, &mut scratch).unwrap();
        assert_eq!(decoded, sample());
    }

    #[test]
    fn cap_is_enforced_after_decompression() {
        let big = vec![b'a'; 10 << 20];
        let compressed = compress(&big, 1).unwrap();
        assert!(compressed.len() < 1 << 16, "a bomb compresses well");
        let mut scratch = Vec::new();
        let err = decompress_capped(&compressed, 1 << 20, &mut scratch).unwrap_err();
        assert!(matches!(err, PayloadError::TooLarge { cap } if cap == 1 << 20));
        assert!(scratch.len() <= (1 << 20) + 1);
    }

    #[test]
    fn omitted_observed_times_are_resolved() {
        let mut list = sample();
        list.observed_unix_nanos = 100;
        let rec = |t| Record {
            observed_unix_nanos: t,
            ..Default::default()
        };
        list.records = vec![rec(0), rec(0), rec(250), rec(0)];
        let compressed = compress(&list.encode_to_vec(), 1).unwrap();
        let mut scratch = Vec::new();
        let decoded = decode_payload(&compressed, 1 << 20, &mut scratch).unwrap();
        let times: Vec<_> = decoded
            .records
            .iter()
            .map(|r| r.observed_unix_nanos)
            .collect();
        assert_eq!(times, [100, 100, 250, 250]);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut scratch = Vec::new();
        assert!(decode_payload(b"not zstd", 1024, &mut scratch).is_err());
    }
}
