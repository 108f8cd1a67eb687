//! Recovery-time scan of one segment file: which records are valid, and whether what is not
//! valid is a torn tail (a crash mid-append) or corruption.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::io::read_exact_at;
use crate::record::{self, FRAME_PREFIX, HEADER_LEN, MIN_BODY, RecordHead};
use crate::state::RecordMeta;

/// What a scan found.
#[derive(Debug)]
pub(crate) enum Scan {
    /// Every byte belongs to the header or a valid record.
    Clean { records: Vec<RecordMeta> },
    /// Bytes from `valid_len` on are a torn write (only reported for the last segment).
    Torn {
        records: Vec<RecordMeta>,
        valid_len: u64,
        reason: String,
    },
    /// The segment is damaged. `known_end_seq` is one past the highest seq any valid record in
    /// it showed (at least the segment's first seq).
    Corrupt { reason: String, known_end_seq: u64 },
}

/// Scans `path`, a segment whose name says it starts at `first_seq`.
pub(crate) fn scan_segment(path: &Path, first_seq: u64, is_last: bool) -> Scan {
    match try_scan(path, first_seq, is_last) {
        Ok(scan) => scan,
        Err(error) => Scan::Corrupt {
            reason: format!("i/o error: {error}"),
            known_end_seq: first_seq,
        },
    }
}

fn try_scan(path: &Path, first_seq: u64, is_last: bool) -> io::Result<Scan> {
    let file = File::open(path)?;
    let mut s = Scanner {
        file_len: file.metadata()?.len(),
        file,
        buf: Vec::new(),
    };
    if let Some(bad) = s.header()? {
        return Ok(s.verdict(bad, is_last, Vec::new(), 0, first_seq));
    }
    let (mut pos, mut expected, mut records) = (HEADER_LEN, first_seq, Vec::new());
    loop {
        match s.next(pos)? {
            Next::Eof => return Ok(Scan::Clean { records }),
            Next::Record(head, frame_len) if head.first_seq == expected => {
                expected = head.first_seq + u64::from(head.count);
                records.push(meta(pos, frame_len, head));
                pos += frame_len;
            }
            Next::Record(..) => {
                let bad = Bad {
                    reason: "record seq out of order".into(),
                    torn: false,
                    next: Some(pos),
                };
                return Ok(s.verdict(bad, is_last, records, pos, expected));
            }
            Next::Bad(bad) => return Ok(s.verdict(bad, is_last, records, pos, expected)),
        }
    }
}

fn meta(offset: u64, frame_len: u64, head: RecordHead) -> RecordMeta {
    RecordMeta {
        offset,
        frame_len,
        meta_len: head.meta_len,
        first_seq: head.first_seq,
        count: head.count,
        uncompressed_len: head.uncompressed_len,
        positions: head.positions,
    }
}

/// An invalid frame at some offset.
struct Bad {
    reason: String,
    /// Looks like an interrupted append (the damage reaches the end of the file).
    torn: bool,
    /// Where the next frame would start if the length field is plausible.
    next: Option<u64>,
}

enum Next {
    Eof,
    Record(RecordHead, u64),
    Bad(Bad),
}

struct Scanner {
    file: File,
    file_len: u64,
    buf: Vec<u8>,
}

impl Scanner {
    fn header(&mut self) -> io::Result<Option<Bad>> {
        if self.file_len < HEADER_LEN {
            return Ok(Some(Bad {
                reason: "short segment header".into(),
                torn: true,
                next: None,
            }));
        }
        let mut h = [0u8; HEADER_LEN as usize];
        read_exact_at(&self.file, &mut h, 0)?;
        match record::check_header(&h) {
            Ok(()) => Ok(None),
            // An all-zero file is a header write the crash never completed.
            Err(reason) => Ok(Some(Bad {
                reason,
                torn: self.rest_is_zero(0)?,
                next: None,
            })),
        }
    }

    /// Decides between a torn tail and corruption.
    fn verdict(
        &mut self,
        bad: Bad,
        is_last: bool,
        records: Vec<RecordMeta>,
        pos: u64,
        end: u64,
    ) -> Scan {
        if is_last && bad.torn {
            return Scan::Torn {
                records,
                valid_len: pos,
                reason: bad.reason,
            };
        }
        let salvaged = bad.next.map_or(end, |next| self.salvage(next, end));
        Scan::Corrupt {
            reason: bad.reason,
            known_end_seq: salvaged,
        }
    }

    /// Skips over damaged frames with plausible lengths to learn the highest seq the segment held.
    fn salvage(&mut self, mut pos: u64, mut end: u64) -> u64 {
        loop {
            match self.next(pos) {
                Ok(Next::Record(head, frame_len)) => {
                    end = end.max(head.first_seq.saturating_add(u64::from(head.count)));
                    pos += frame_len;
                }
                Ok(Next::Bad(Bad {
                    next: Some(next), ..
                })) => pos = next,
                _ => return end,
            }
        }
    }

    fn next(&mut self, pos: u64) -> io::Result<Next> {
        let remaining = self.file_len - pos;
        if remaining == 0 {
            return Ok(Next::Eof);
        }
        if remaining < FRAME_PREFIX as u64 {
            return Ok(bad("partial record header", true, None));
        }
        let mut prefix = [0u8; FRAME_PREFIX];
        read_exact_at(&self.file, &mut prefix, pos)?;
        let (len, crc) = record::parse_prefix(&prefix);
        if (len as usize) < MIN_BODY {
            return Ok(bad(
                "record length too small",
                self.rest_is_zero(pos)?,
                None,
            ));
        }
        let frame_len = FRAME_PREFIX as u64 + u64::from(len);
        if frame_len > remaining {
            return Ok(bad("record runs past the end of the file", true, None));
        }
        let at_end = frame_len == remaining;
        self.buf.resize(len as usize, 0);
        read_exact_at(&self.file, &mut self.buf, pos + FRAME_PREFIX as u64)?;
        if crc32c::crc32c(&self.buf) != crc {
            return Ok(bad("record crc mismatch", at_end, Some(pos + frame_len)));
        }
        match record::decode_head(&self.buf) {
            Ok(head) if head.first_seq.checked_add(u64::from(head.count)).is_some() => {
                Ok(Next::Record(head, frame_len))
            }
            Ok(_) => Ok(bad("record seq overflows", false, Some(pos + frame_len))),
            Err(reason) => Ok(bad(&reason, false, Some(pos + frame_len))),
        }
    }

    fn rest_is_zero(&self, mut pos: u64) -> io::Result<bool> {
        let mut chunk = vec![0u8; 64 * 1024];
        while pos < self.file_len {
            let n = chunk.len().min((self.file_len - pos) as usize);
            read_exact_at(&self.file, &mut chunk[..n], pos)?;
            if chunk[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            pos += n as u64;
        }
        Ok(true)
    }
}

fn bad(reason: &str, torn: bool, next: Option<u64>) -> Next {
    Next::Bad(Bad {
        reason: reason.to_string(),
        torn,
        next,
    })
}
