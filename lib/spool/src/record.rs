//! Segment header and record framing (see the crate doc for the layout).

use crate::{NewBatch, Position, SpoolError};

pub(crate) const MAGIC: [u8; 8] = *b"LSSPOOL\0";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: u64 = 16;
/// `len u32 | crc32c u32` before each body.
pub(crate) const FRAME_PREFIX: usize = 8;
/// first_seq + count + uncompressed_len + npos.
pub(crate) const MIN_BODY: usize = 8 + 4 + 8 + 4;

/// The segment header bytes.
pub(crate) fn header_bytes() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Checks a segment header; the error is a reason for the quarantine report.
pub(crate) fn check_header(h: &[u8; HEADER_LEN as usize]) -> Result<(), String> {
    if h[..8] != MAGIC {
        return Err("bad segment magic".into());
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("unsupported segment version {version}"));
    }
    Ok(())
}

/// A record framed outside the spool lock; [`Frame::seal`] patches in the seq and CRC under it.
pub(crate) struct Frame {
    pub(crate) buf: Vec<u8>,
    /// crc32c of the body after `first_seq`.
    rest_crc: u32,
    /// Body bytes before the payload.
    pub(crate) meta_len: u32,
    pub(crate) count: u32,
    pub(crate) uncompressed_len: u64,
    pub(crate) positions: Vec<Position>,
}

impl Frame {
    /// Frames a batch, copying its payload once. Fails if the body exceeds the u32 length field.
    pub(crate) fn encode(batch: &NewBatch) -> Result<Frame, SpoolError> {
        let pos_len: usize = batch
            .positions
            .iter()
            .map(|p| 16 + p.key.len() + p.path.len())
            .sum();
        let meta_len = MIN_BODY + pos_len;
        let body_len = meta_len + batch.payload.len();
        let too_large = || SpoolError::BatchTooLarge {
            frame_bytes: (FRAME_PREFIX + body_len) as u64,
            limit: u64::from(u32::MAX),
        };
        let body_len_u32 = u32::try_from(body_len).map_err(|_| too_large())?;
        let npos = u32::try_from(batch.positions.len()).map_err(|_| too_large())?;
        let mut buf = Vec::with_capacity(FRAME_PREFIX + body_len);
        buf.extend_from_slice(&body_len_u32.to_le_bytes());
        buf.extend_from_slice(&[0u8; 4 + 8]); // crc and first_seq, sealed later
        buf.extend_from_slice(&batch.count.to_le_bytes());
        buf.extend_from_slice(&batch.uncompressed_len.to_le_bytes());
        buf.extend_from_slice(&npos.to_le_bytes());
        for p in &batch.positions {
            put_str(&mut buf, &p.key).map_err(|_| too_large())?;
            put_str(&mut buf, &p.path).map_err(|_| too_large())?;
            buf.extend_from_slice(&p.offset.to_le_bytes());
        }
        debug_assert_eq!(buf.len(), FRAME_PREFIX + meta_len);
        buf.extend_from_slice(&batch.payload);
        let rest_crc = crc32c::crc32c(&buf[FRAME_PREFIX + 8..]);
        Ok(Frame {
            buf,
            rest_crc,
            meta_len: meta_len as u32,
            count: batch.count,
            uncompressed_len: batch.uncompressed_len,
            positions: batch.positions.clone(),
        })
    }

    /// Total framed length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Writes `first_seq` and the body CRC into the frame.
    pub(crate) fn seal(&mut self, first_seq: u64) {
        let seq = first_seq.to_le_bytes();
        let rest_len = self.buf.len() - FRAME_PREFIX - 8;
        let crc = crc32c::crc32c_combine(crc32c::crc32c(&seq), self.rest_crc, rest_len);
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.buf[8..16].copy_from_slice(&seq);
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) -> Result<(), std::num::TryFromIntError> {
    buf.extend_from_slice(&u32::try_from(s.len())?.to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

/// The decoded part of a record body before its payload.
#[derive(Debug)]
pub(crate) struct RecordHead {
    pub(crate) first_seq: u64,
    pub(crate) count: u32,
    pub(crate) uncompressed_len: u64,
    pub(crate) positions: Vec<Position>,
    /// Body bytes before the payload.
    pub(crate) meta_len: u32,
}

/// Splits a frame prefix into (body length, stored crc).
pub(crate) fn parse_prefix(p: &[u8; FRAME_PREFIX]) -> (u32, u32) {
    let len = u32::from_le_bytes(p[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(p[4..].try_into().expect("4 bytes"));
    (len, crc)
}

/// Decodes the head of a body (which may be the whole body or just its first bytes).
pub(crate) fn decode_head(body: &[u8]) -> Result<RecordHead, String> {
    let mut r = Reader { buf: body, at: 0 };
    let first_seq = r.u64()?;
    let count = r.u32()?;
    let uncompressed_len = r.u64()?;
    let npos = r.u32()?;
    let mut positions = Vec::with_capacity((npos as usize).min(1024));
    for _ in 0..npos {
        let key = r.string()?;
        let path = r.string()?;
        let offset = r.u64()?;
        positions.push(Position { key, path, offset });
    }
    let meta_len = u32::try_from(r.at).map_err(|_| "record head too long".to_string())?;
    Ok(RecordHead {
        first_seq,
        count,
        uncompressed_len,
        positions,
        meta_len,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| "record body truncated".to_string())?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "position is not utf-8".to_string())
    }
}
