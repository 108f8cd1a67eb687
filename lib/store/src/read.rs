//! Reading one block back by its [`BlockRef`], for consumers that follow the writer (the
//! collector's normalizer catching up after a burst).

use crate::block;
use crate::segment::{SegmentReader, Step};
use crate::{BlockRef, StoreError};

/// The compressed payload of the block `at` refers to, checked against its CRC.
pub fn read_block_payload(at: &BlockRef) -> Result<bytes::Bytes, StoreError> {
    let io = |source| StoreError::Io {
        path: at.segment.clone(),
        source,
    };
    let reader = SegmentReader::open(&at.segment).map_err(io)?;
    let Step::Block {
        offset,
        header,
        head_len,
        frame_len,
    } = reader.step(at.offset).map_err(io)?
    else {
        return Err(StoreError::InvalidBlock("no complete block at that offset"));
    };
    if offset != at.offset || header.last_seq() != at.last_seq {
        return Err(StoreError::InvalidBlock(
            "the block at that offset is another one",
        ));
    }
    let mut frame = Vec::new();
    reader
        .read_frame(offset, frame_len, &mut frame)
        .map_err(io)?;
    let parts = block::split_frame(&header, head_len, &frame);
    if !parts.crc_ok {
        return Err(StoreError::InvalidBlock("block checksum mismatch"));
    }
    Ok(bytes::Bytes::copy_from_slice(parts.payload))
}
