//! Turning a received batch into a store block: header checks, then one bounded walk of the
//! payload ([`scan_payload`]: decompressed once into the batch's budget allowance, records
//! counted while read, stopping at `count + 1`) for the block's index facts. Runs on blocking
//! threads, after the batch's cost was reserved from the decode budget.

use logship_proto::payload::PayloadError;
use logship_proto::scan::scan_payload;
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
    /// The batch can never fit the collector's decode budget.
    #[error("{0}")]
    Budget(String),
    /// A second instance of one agent identity (a cloned machine or copied agent folder).
    #[error("{0}")]
    RunningTwice(String),
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
            IngestError::Payload(PayloadError::TooLarge { .. }) | IngestError::Budget(_) => {
                tonic::Status::resource_exhausted(message)
            }
            IngestError::Payload(_) => tonic::Status::invalid_argument(message),
            IngestError::RunningTwice(_) => tonic::Status::failed_precondition(message),
            IngestError::Store(_) => tonic::Status::unavailable(message),
        }
    }
}

/// Checks a batch whose header passed [`check_header`] and builds the store block for it,
/// decompressing into at most `allowance` bytes. Normalization happens after the store commit,
/// off this path (see `crate::normalize`).
pub(super) fn prepare(
    agent: &str,
    batch: Batch,
    allowance: usize,
) -> Result<BlockInput, IngestError> {
    let summary = scan_payload(&batch.payload, allowance, batch.count)?;
    Ok(BlockInput {
        agent: agent.to_string(),
        stream_id: batch.stream_id,
        first_seq: batch.first_seq,
        count: batch.count,
        host: summary.host,
        min_time_ns: summary.min_time_ns,
        max_time_ns: summary.max_time_ns,
        inputs: summary.inputs,
        payload: batch.payload,
        fields: None,
    })
}

/// Checks the batch header against `limits` (before any budget is reserved for it).
pub(super) fn check_header(batch: &Batch, limits: &Limits) -> Result<(), IngestError> {
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
            ..Default::default()
        }
    }

    fn check(agent: &str, b: Batch) -> Result<BlockInput, IngestError> {
        check_header(&b, &LIMITS)?;
        prepare(agent, b, LIMITS.max_decompressed_bytes)
    }

    #[test]
    fn a_good_batch_becomes_a_block() {
        let block = check("agent1", batch(3, b"hello")).unwrap();
        assert_eq!(
            (block.count, block.min_time_ns, block.max_time_ns),
            (3, 1_000, 1_002)
        );
        assert_eq!(block.inputs, ["auth"]);
        assert_eq!(block.agent, "agent1");
    }

    #[test]
    fn bad_batches_are_refused_with_the_right_status() {
        let mut b = batch(2, b"x");
        b.count = 3;
        let e = check("a", b).unwrap_err();
        assert_eq!(e.into_status().code(), tonic::Code::InvalidArgument);
        let mut b = batch(2, b"x");
        b.stream_id = "short".into();
        assert!(check("a", b).is_err());
        let too_many = batch(11, b"x");
        assert!(check("a", too_many).is_err());
        let big = batch(10, &vec![b'a'; 200_000]);
        let e = check("a", big).unwrap_err();
        let status = e.into_status();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("cap"), "{}", status.message());
    }
}
