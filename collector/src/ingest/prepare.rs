//! Turning a received batch into a store block: validation, capped decompression, decoding,
//! and the block's index facts (time range, inputs). Runs on blocking threads.

use std::collections::BTreeSet;

use logship_proto::payload::{PayloadError, decode_payload};
use logship_proto::v1::Batch;
use logship_store::BlockInput;

/// Bounds applied to every batch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cap on a batch once decompressed.
    pub max_decompressed_bytes: usize,
    /// Cap on records per batch.
    pub max_batch_records: u32,
    /// Batches waiting for the store per connection.
    pub max_in_flight: usize,
}

/// Why a batch was refused. Each maps to one gRPC status code.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The batch header is inconsistent or out of bounds.
    #[error("invalid batch: {0}")]
    Invalid(String),
    /// The payload could not be decompressed or decoded, or is too large once decompressed.
    #[error("invalid batch payload: {0}")]
    Payload(#[from] PayloadError),
    /// The store refused or failed.
    #[error("store unavailable: {0}")]
    Store(String),
}

// === impl IngestError ===

impl IngestError {
    /// The one place where ingest errors become gRPC statuses.
    pub fn into_status(self) -> tonic::Status {
        let message = self.to_string();
        match self {
            IngestError::Invalid(_) => tonic::Status::invalid_argument(message),
            IngestError::Payload(PayloadError::TooLarge { .. }) => {
                tonic::Status::resource_exhausted(message)
            }
            IngestError::Payload(_) => tonic::Status::invalid_argument(message),
            IngestError::Store(_) => tonic::Status::unavailable(message),
        }
    }
}

/// Per-connection state carried between batches.
#[derive(Default)]
pub(super) struct ConnState {
    scratch: Vec<u8>,
}

/// Checks a batch and builds the store block for it. Normalization happens after the store
/// commit, off this path (see `crate::normalize`).
pub(super) fn prepare(
    agent: &str,
    batch: Batch,
    limits: &Limits,
    state: &mut ConnState,
) -> Result<BlockInput, IngestError> {
    check_header(&batch, limits)?;
    let list = decode_payload(
        &batch.payload,
        limits.max_decompressed_bytes,
        &mut state.scratch,
    )?;
    if list.records.len() != batch.count as usize {
        return Err(IngestError::Invalid(format!(
            "batch says {} records but its payload holds {}",
            batch.count,
            list.records.len()
        )));
    }
    let (mut min_time_ns, mut max_time_ns) = (i64::MAX, i64::MIN);
    for r in &list.records {
        min_time_ns = min_time_ns.min(r.observed_unix_nanos);
        max_time_ns = max_time_ns.max(r.observed_unix_nanos);
        if r.source as usize >= list.sources.len() {
            return Err(IngestError::Invalid(format!(
                "record refers to unknown source {}",
                r.source
            )));
        }
    }
    // The index lists the batch's inputs (a batch's source table is small).
    let inputs: BTreeSet<&str> = list.sources.iter().map(|s| s.input.as_str()).collect();
    let block = BlockInput {
        agent: agent.to_string(),
        stream_id: batch.stream_id,
        first_seq: batch.first_seq,
        count: batch.count,
        host: list.host.clone(),
        min_time_ns,
        max_time_ns,
        inputs: inputs.into_iter().map(str::to_string).collect(),
        payload: batch.payload,
        fields: None,
    };
    Ok(block)
}

fn check_header(batch: &Batch, limits: &Limits) -> Result<(), IngestError> {
    let id_ok = batch.stream_id.len() == 32
        && batch
            .stream_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !id_ok {
        return Err(IngestError::Invalid(
            "stream_id must be 32 lowercase hex characters".into(),
        ));
    }
    if batch.first_seq == 0 {
        return Err(IngestError::Invalid("first_seq must be at least 1".into()));
    }
    if batch.count == 0 || batch.count > limits.max_batch_records {
        return Err(IngestError::Invalid(format!(
            "count {} is outside 1..={}",
            batch.count, limits.max_batch_records
        )));
    }
    if batch
        .first_seq
        .checked_add(u64::from(batch.count))
        .is_none()
    {
        return Err(IngestError::Invalid("sequence numbers overflow".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use logship_proto::v1::{Record, RecordList, Source};
    use prost::Message;

    use super::*;

    const LIMITS: Limits = Limits {
        max_decompressed_bytes: 1 << 20,
        max_batch_records: 10,
        max_in_flight: 4,
    };

    fn batch(records: usize, raw: &[u8]) -> Batch {
        let list = RecordList {
            host: "h".into(),
            sources: vec![Source {
                input: "auth".into(),
                path: "/var/log/auth.log".into(),
            }],
            records: (0..records)
                .map(|i| Record {
                    raw: bytes::Bytes::copy_from_slice(raw),
                    observed_unix_nanos: 1_000 + i as i64,
                    ..Default::default()
                })
                .collect(),
            agent_tz: "UTC".into(),
            observed_unix_nanos: 0,
        };
        let payload = logship_proto::payload::compress(&list.encode_to_vec(), 1).unwrap();
        Batch {
            stream_id: "0123456789abcdef0123456789abcdef".into(),
            first_seq: 1,
            count: records as u32,
            payload: payload.into(),
            uncompressed_len: 0,
        }
    }

    #[test]
    fn a_good_batch_becomes_a_block() {
        let mut state = ConnState::default();
        let block = prepare("agent1", batch(3, b"hello"), &LIMITS, &mut state).unwrap();
        assert_eq!(
            (block.count, block.min_time_ns, block.max_time_ns),
            (3, 1_000, 1_002)
        );
        assert_eq!(block.inputs, ["auth"]);
        assert_eq!(block.agent, "agent1");
    }

    #[test]
    fn bad_batches_are_refused_with_the_right_status() {
        let mut state = ConnState::default();
        let mut b = batch(2, b"x");
        b.count = 3;
        let e = prepare("a", b, &LIMITS, &mut state).unwrap_err();
        assert_eq!(e.into_status().code(), tonic::Code::InvalidArgument);
        let mut b = batch(2, b"x");
        b.stream_id = "short".into();
        assert!(prepare("a", b, &LIMITS, &mut state).is_err());
        let too_many = batch(11, b"x");
        assert!(prepare("a", too_many, &LIMITS, &mut state).is_err());
        let big = batch(10, &vec![b'a'; 200_000]);
        let e = prepare("a", big, &LIMITS, &mut state).unwrap_err();
        let status = e.into_status();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("cap"), "{}", status.message());
    }
}
