//! Block framing: the header codec, the chained hash and the two CRCs of one stored block.
//!
//! The byte layout is drawn in the crate documentation; this module is the only code that
//! knows it. Decoding never panics on arbitrary bytes: every length is checked against the
//! slice before it is used.

use sha2::{Digest, Sha256};

/// Magic number opening every block frame (`"LSB1"` little-endian).
pub(crate) const BLOCK_MAGIC: [u8; 4] = *b"LSB1";
/// Bytes before the header: magic + header length.
pub(crate) const PREFIX_LEN: usize = 8;
/// Upper bound on an encoded header (strings and inputs are small).
pub(crate) const MAX_HEADER_LEN: usize = 64 * 1024;
/// Upper bound on payload + fields of one block; a larger length is treated as corruption.
pub(crate) const MAX_BODY_LEN: u64 = 1 << 30;
/// Length of a SHA-256 hash.
pub(crate) const HASH_LEN: usize = 32;
/// The `prev_hash` of the very first block of a store.
pub(crate) const GENESIS_HASH: [u8; HASH_LEN] = [0; HASH_LEN];
/// Bytes after the body: hash + frame CRC.
const TRAILER_LEN: usize = HASH_LEN + 4;
/// Flag bit: the block carries a normalized-fields column.
const FLAG_HAS_FIELDS: u8 = 1;

/// Decoded block header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockHeader {
    pub(crate) agent: String,
    pub(crate) stream_id: String,
    pub(crate) first_seq: u64,
    pub(crate) count: u32,
    pub(crate) host: String,
    pub(crate) min_time_ns: i64,
    pub(crate) max_time_ns: i64,
    pub(crate) inputs: Vec<String>,
    pub(crate) payload_len: u64,
    /// `None` when the block has no fields column.
    pub(crate) fields_len: Option<u64>,
    pub(crate) prev_hash: [u8; HASH_LEN],
}

/// Why a header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    #[error("block header is cut short")]
    Short,
    #[error("block header has a bad magic number")]
    Magic,
    #[error("block header length {0} is out of range")]
    Length(u32),
    #[error("block header checksum mismatch")]
    Crc,
    #[error("block header field is malformed: {0}")]
    Malformed(&'static str),
}

// === impl BlockHeader ===

impl BlockHeader {
    /// Encodes the header fields (the `header` part of the frame, without prefix or CRC).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), &'static str> {
        let flags = if self.fields_len.is_some() {
            FLAG_HAS_FIELDS
        } else {
            0
        };
        out.push(flags);
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.min_time_ns.to_le_bytes());
        out.extend_from_slice(&self.max_time_ns.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.extend_from_slice(&self.fields_len.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.prev_hash);
        put_str(out, &self.agent)?;
        put_str(out, &self.stream_id)?;
        put_str(out, &self.host)?;
        let n = u16::try_from(self.inputs.len()).map_err(|_| "too many inputs")?;
        out.extend_from_slice(&n.to_le_bytes());
        for input in &self.inputs {
            put_str(out, input)?;
        }
        Ok(())
    }

    /// Decodes the header fields from exactly the `header` bytes of a frame.
    pub(crate) fn decode(bytes: &[u8]) -> Result<BlockHeader, HeaderError> {
        let mut cur = Cursor { bytes };
        let flags = cur.u8()?;
        let first_seq = cur.u64()?;
        let count = u32::from_le_bytes(cur.array()?);
        let min_time_ns = cur.u64()? as i64;
        let max_time_ns = cur.u64()? as i64;
        let payload_len = cur.u64()?;
        let fields_len = cur.u64()?;
        let prev_hash = cur.array()?;
        let agent = cur.string()?;
        let stream_id = cur.string()?;
        let host = cur.string()?;
        let n = u16::from_le_bytes(cur.array()?);
        let inputs = (0..n)
            .map(|_| cur.string())
            .collect::<Result<Vec<_>, _>>()?;
        if !cur.bytes.is_empty() {
            return Err(HeaderError::Malformed("trailing bytes"));
        }
        if payload_len.saturating_add(fields_len) > MAX_BODY_LEN {
            return Err(HeaderError::Malformed("body length"));
        }
        let fields_len = (flags & FLAG_HAS_FIELDS != 0).then_some(fields_len);
        Ok(BlockHeader {
            agent,
            stream_id,
            first_seq,
            count,
            host,
            min_time_ns,
            max_time_ns,
            inputs,
            payload_len,
            fields_len,
            prev_hash,
        })
    }

    /// Highest seq covered by the block.
    pub(crate) fn last_seq(&self) -> u64 {
        self.first_seq
            .saturating_add(u64::from(self.count).saturating_sub(1))
    }

    /// Payload + fields length.
    pub(crate) fn body_len(&self) -> u64 {
        self.payload_len + self.fields_len.unwrap_or(0)
    }
}

/// Parses the 8-byte frame prefix; returns the header length.
pub(crate) fn parse_prefix(prefix: &[u8]) -> Result<usize, HeaderError> {
    if prefix.len() < PREFIX_LEN {
        return Err(HeaderError::Short);
    }
    if prefix[..4] != BLOCK_MAGIC {
        return Err(HeaderError::Magic);
    }
    let len = u32::from_le_bytes(prefix[4..8].try_into().expect("slice is 4 bytes"));
    let len_usize = len as usize;
    if len_usize == 0 || len_usize > MAX_HEADER_LEN {
        return Err(HeaderError::Length(len));
    }
    Ok(len_usize)
}

/// Checks the header CRC of `head` = prefix + header + crc (exactly) and decodes the header.
pub(crate) fn decode_head(head: &[u8]) -> Result<BlockHeader, HeaderError> {
    let header_len = parse_prefix(head)?;
    let crc_at = PREFIX_LEN + header_len;
    if head.len() != crc_at + 4 {
        return Err(HeaderError::Short);
    }
    let stored = u32::from_le_bytes(head[crc_at..].try_into().expect("slice is 4 bytes"));
    if crc32c::crc32c(&head[..crc_at]) != stored {
        return Err(HeaderError::Crc);
    }
    BlockHeader::decode(&head[PREFIX_LEN..crc_at])
}

/// Length of the head (prefix + header + header CRC) for a header of `header_len` bytes.
pub(crate) fn head_len(header_len: usize) -> usize {
    PREFIX_LEN + header_len + 4
}

/// Total frame length for a head of `head_len` bytes and a body of `body_len` bytes.
pub(crate) fn frame_len(head_len: usize, body_len: u64) -> u64 {
    head_len as u64 + body_len + TRAILER_LEN as u64
}

/// The chained block hash: SHA-256(prev_hash ‖ header ‖ payload ‖ fields).
pub(crate) fn block_hash(prev: &[u8; HASH_LEN], header: &[u8], body: &[u8]) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(header);
    h.update(body);
    h.finalize().into()
}

/// Builds a whole frame into `out` (cleared first); returns the block hash.
pub(crate) fn build_frame(
    header: &BlockHeader,
    payload: &[u8],
    fields: &[u8],
    out: &mut Vec<u8>,
) -> Result<[u8; HASH_LEN], &'static str> {
    out.clear();
    out.extend_from_slice(&BLOCK_MAGIC);
    out.extend_from_slice(&[0; 4]);
    header.encode(out)?;
    let header_len = out.len() - PREFIX_LEN;
    if header_len > MAX_HEADER_LEN {
        return Err("header too large");
    }
    out[4..8].copy_from_slice(&(header_len as u32).to_le_bytes());
    let crc = crc32c::crc32c(out);
    out.extend_from_slice(&crc.to_le_bytes());
    let body_start = out.len();
    out.extend_from_slice(payload);
    out.extend_from_slice(fields);
    let hash = {
        let mut h = Sha256::new();
        h.update(header.prev_hash);
        h.update(&out[PREFIX_LEN..PREFIX_LEN + header_len]);
        h.update(&out[body_start..]);
        <[u8; HASH_LEN]>::from(h.finalize())
    };
    out.extend_from_slice(&hash);
    let crc = crc32c::crc32c(out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(hash)
}

/// A complete frame read from disk, split into its parts.
#[derive(Debug)]
pub(crate) struct FrameParts<'a> {
    pub(crate) header_bytes: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) fields: Option<&'a [u8]>,
    pub(crate) stored_hash: [u8; HASH_LEN],
    pub(crate) crc_ok: bool,
}

/// Splits a complete frame (head of `head_len` bytes, already decoded into `header`).
///
/// The caller guarantees `frame.len() == frame_len(head_len, header.body_len())`.
pub(crate) fn split_frame<'a>(
    header: &BlockHeader,
    head_len: usize,
    frame: &'a [u8],
) -> FrameParts<'a> {
    debug_assert_eq!(frame.len() as u64, frame_len(head_len, header.body_len()));
    let header_len = head_len - PREFIX_LEN - 4;
    let body_start = head_len;
    let payload_end = body_start + header.payload_len as usize;
    let hash_at = frame.len() - TRAILER_LEN;
    let crc_at = hash_at + HASH_LEN;
    let stored_crc = u32::from_le_bytes(frame[crc_at..].try_into().expect("slice is 4 bytes"));
    FrameParts {
        header_bytes: &frame[PREFIX_LEN..PREFIX_LEN + header_len],
        payload: &frame[body_start..payload_end],
        fields: header.fields_len.map(|_| &frame[payload_end..hash_at]),
        stored_hash: frame[hash_at..crc_at]
            .try_into()
            .expect("slice is 32 bytes"),
        crc_ok: crc32c::crc32c(&frame[..crc_at]) == stored_crc,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), &'static str> {
    let n = u16::try_from(s.len()).map_err(|_| "string longer than 65535 bytes")?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        if self.bytes.len() < n {
            return Err(HeaderError::Malformed("field past end of header"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HeaderError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    fn u8(&mut self) -> Result<u8, HeaderError> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, HeaderError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, HeaderError> {
        let n = u16::from_le_bytes(self.array()?) as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| HeaderError::Malformed("string not utf-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BlockHeader {
        BlockHeader {
            agent: "a".into(),
            stream_id: "s".into(),
            first_seq: 7,
            count: 3,
            host: "h".into(),
            min_time_ns: -5,
            max_time_ns: 9,
            inputs: vec!["in1".into(), "in2".into()],
            payload_len: 4,
            fields_len: Some(2),
            prev_hash: [9; 32],
        }
    }

    #[test]
    fn frame_round_trip() {
        let header = sample();
        let mut frame = Vec::new();
        let hash = build_frame(&header, b"pay!", b"{}", &mut frame).unwrap();
        let header_len = parse_prefix(&frame).unwrap();
        let head = &frame[..head_len(header_len)];
        assert_eq!(decode_head(head).unwrap(), header);
        assert_eq!(frame.len() as u64, frame_len(head.len(), header.body_len()));
        let parts = split_frame(&header, head.len(), &frame);
        assert!(parts.crc_ok);
        assert_eq!(parts.payload, b"pay!");
        assert_eq!(parts.fields, Some(&b"{}"[..]));
        assert_eq!(parts.stored_hash, hash);
        assert_eq!(
            block_hash(&header.prev_hash, parts.header_bytes, b"pay!{}"),
            hash
        );
    }

    #[test]
    fn every_flipped_header_byte_is_caught() {
        let header = sample();
        let mut frame = Vec::new();
        build_frame(&header, b"pay!", b"{}", &mut frame).unwrap();
        let n = head_len(parse_prefix(&frame).unwrap());
        for i in 0..n {
            let mut bad = frame[..n].to_vec();
            bad[i] ^= 0x40;
            assert!(decode_head(&bad).is_err(), "flip at {i} not caught");
        }
    }
}
