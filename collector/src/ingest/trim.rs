//! Trimming a batch that straddles the store's watermark down to its new records (rare: only when
//! an agent re-sends a batch whose beginning is already stored).

use logship_proto::payload::{compress, decode_payload};
use logship_store::BlockInput;
use prost::Message;

/// Cap used when re-reading a block that already passed ingest checks.
const TRIM_CAP: usize = 1 << 30;

/// Drops the first `skip` records of `block`, re-encoding its payload and fields column.
pub(crate) fn trim_block(mut block: BlockInput, skip: u64) -> Result<BlockInput, String> {
    let mut scratch = Vec::new();
    let mut list =
        decode_payload(&block.payload, TRIM_CAP, &mut scratch).map_err(|e| e.to_string())?;
    let skip = usize::try_from(skip).map_err(|e| e.to_string())?;
    list.records.drain(..skip.min(list.records.len()));
    let encoded = list.encode_to_vec();
    block.payload = compress(&encoded, 1).map_err(|e| e.to_string())?.into();
    block.first_seq += skip as u64;
    block.count = u32::try_from(list.records.len()).map_err(|e| e.to_string())?;
    if let Some(fields) = block.fields.take() {
        let mut text = Vec::new();
        logship_proto::payload::decompress_capped(&fields, TRIM_CAP, &mut text)
            .map_err(|e| e.to_string())?;
        let kept: Vec<&[u8]> = text.split(|b| *b == b'\n').skip(skip).collect();
        let joined = kept.join(&b'\n');
        block.fields = Some(compress(&joined, 1).map_err(|e| e.to_string())?.into());
    }
    Ok(block)
}
