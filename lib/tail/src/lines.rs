//! Line framing over positional reads: splits chunks at '\n' (or the UTF-16 code unit 0x000A, see
//! `framing.rs`) with memchr, cuts long lines, flushes a last line without newline. Lines are slices of the caller's buffers (no per-line allocation).
//!
//! ```text
//! file:   ... | line | line | partial ........................ |
//!                           ^offset (committed)      read_end ^
//! normal mode:    next read starts at `offset` (the partial is re-read, it is ≤ max_line_bytes)
//! long-line mode: the partial is longer than max_line_bytes; next read starts at `scan`
//!                 (= last unit already examined, never a terminator); when the newline is found the
//!                 first max_line_bytes are re-read from `offset` into the line buffer
//! ```

use crate::platform::FileExt;
use std::fs::File;
use std::io;

use crate::SinkClosed;
use crate::framing::Framing;

/// Why reading a file stopped early.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The sink is closed.
    Sink,
    /// The file was truncated or rewritten from the start.
    Truncated,
    /// An I/O error; the read is retried on the next pass.
    Io(io::Error),
}

/// Receives one line: raw bytes, `truncated_from`, `offset_after`.
pub(crate) type Emit<'a> = dyn FnMut(&[u8], u64, u64) -> Result<(), SinkClosed> + 'a;

/// Where and how long lines are: the terminator, and the length past which a line is cut
/// (rounded down to whole code units).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cut {
    pub(crate) framing: Framing,
    pub(crate) max: usize,
}

/// Read position of one file.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LineState {
    /// Offset just past the last emitted line (the committed position).
    pub(crate) offset: u64,
    /// Long-line mode only: next read position (> offset); equals `offset` otherwise.
    pub(crate) scan: u64,
    /// End of the bytes examined so far.
    pub(crate) read_end: u64,
}

// === impl ReadError ===

impl From<SinkClosed> for ReadError {
    fn from(_: SinkClosed) -> Self {
        ReadError::Sink
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

// === impl LineState ===

impl LineState {
    /// A position at `offset` with nothing pending.
    pub(crate) fn at(offset: u64) -> LineState {
        LineState {
            offset,
            scan: offset,
            read_end: offset,
        }
    }

    /// Where the next chunk read starts.
    pub(crate) fn read_start(&self) -> u64 {
        self.scan.max(self.offset)
    }

    /// Emits every complete line of `chunk`, which holds the file's bytes from `start`
    /// (`start == self.read_start()`), at `cut.framing`'s terminators. `line_buf` holds at
    /// least `cut.max` bytes.
    pub(crate) fn split(
        &mut self,
        chunk: &[u8],
        start: u64,
        cut: Cut,
        file: &File,
        line_buf: &mut [u8],
        emit: &mut Emit<'_>,
    ) -> Result<(), ReadError> {
        debug_assert_eq!(start, self.read_start(), "chunks are read at read_start");
        let framing = cut.framing;
        let unit = framing.unit() as u64;
        let max = framing.floor(cut.max as u64);
        for (i, cr_before) in framing.terminators(chunk, start) {
            let nl = start + i as u64;
            let mut len = nl - self.offset;
            if len > 0 && cr_before {
                len -= unit;
            }
            let take = len.min(max) as usize;
            let truncated_from = if len > max { len } else { 0 };
            match self.offset.checked_sub(start) {
                Some(at) => {
                    let at = at as usize;
                    emit(&chunk[at..at + take], truncated_from, nl + unit)?;
                }
                None => {
                    file.read_exact_at(&mut line_buf[..take], self.offset)?;
                    emit(&line_buf[..take], truncated_from, nl + unit)?;
                }
            }
            self.offset = nl + unit;
        }
        let end = start + chunk.len() as u64;
        self.read_end = end;
        // Long-line mode resumes at the last whole unit examined (never a terminator), so a
        // terminator split across two reads is still seen whole.
        self.scan = if end - self.offset > max {
            framing.floor(end) - unit
        } else {
            self.offset
        };
        Ok(())
    }

    /// Emits the bytes after the last newline, up to `size`, as a line (cut at `cut.max`).
    /// Returns whether a line was emitted.
    pub(crate) fn flush_partial(
        &mut self,
        size: u64,
        cut: Cut,
        file: &File,
        line_buf: &mut [u8],
        emit: &mut Emit<'_>,
    ) -> Result<bool, ReadError> {
        if size <= self.offset {
            return Ok(false);
        }
        let len = size - self.offset;
        let max = cut.framing.floor(cut.max as u64);
        let take = len.min(max) as usize;
        file.read_exact_at(&mut line_buf[..take], self.offset)?;
        let truncated_from = if len > max { len } else { 0 };
        emit(&line_buf[..take], truncated_from, size)?;
        *self = LineState::at(size);
        Ok(true)
    }

    /// True when bytes after the last newline are pending.
    pub(crate) fn has_partial(&self) -> bool {
        self.read_end > self.offset
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    type Line = (Vec<u8>, u64, u64);

    /// Feeds the file through `split` with a tiny chunk size to exercise chunk boundaries.
    fn split_all(content: &[u8], chunk_len: usize, max: usize) -> (Vec<Line>, LineState) {
        split_framed(content, chunk_len, max, Framing::Bytes)
    }

    fn split_framed(
        content: &[u8],
        chunk_len: usize,
        max: usize,
        framing: Framing,
    ) -> (Vec<Line>, LineState) {
        let mut tmp = tempfile::NamedTempFile::new().expect("temp file");
        tmp.write_all(content).expect("write");
        let file = tmp.as_file();
        let mut state = LineState::default();
        let mut out = Vec::new();
        let mut line_buf = vec![0; max];
        let mut chunk = vec![0; chunk_len];
        loop {
            let start = state.read_start();
            let n = file.read_at(&mut chunk, start).expect("read");
            if n == 0 || start + n as u64 <= state.read_end {
                break;
            }
            let mut emit = |raw: &[u8], t: u64, o: u64| -> Result<(), SinkClosed> {
                out.push((raw.to_vec(), t, o));
                Ok(())
            };
            state
                .split(
                    &chunk[..n],
                    start,
                    Cut { framing, max },
                    file,
                    &mut line_buf,
                    &mut emit,
                )
                .expect("split");
        }
        (out, state)
    }

    #[test]
    fn splits_lines_strips_crlf_and_keeps_raw_bytes() {
        let (lines, state) = split_all(b"a\r\n\nb\xff\xfe\nrest", 64, 16);
        let got: Vec<_> = lines.iter().map(|l| (l.0.as_slice(), l.1, l.2)).collect();
        assert_eq!(
            got,
            vec![
                (&b"a"[..], 0, 3),
                (&b""[..], 0, 4),
                (&b"b\xff\xfe"[..], 0, 8)
            ]
        );
        assert_eq!(state.offset, 8);
        assert!(state.has_partial());
    }

    #[test]
    fn long_lines_are_cut_across_small_chunks() {
        let long = vec![b'x'; 50];
        let mut content = long.clone();
        content.extend_from_slice(b"\r\nshort\n");
        content.extend_from_slice(&[b'y'; 11]);
        content.push(b'\n');
        let (lines, state) = split_all(&content, 14, 10);
        assert_eq!(lines[0], (vec![b'x'; 10], 50, 52));
        assert_eq!(lines[1], (b"short".to_vec(), 0, 58));
        assert_eq!(lines[2], (vec![b'y'; 10], 11, 70));
        assert_eq!(lines.len(), 3);
        assert_eq!(state.offset, 70);
        assert!(!state.has_partial());
    }

    fn utf16le(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn utf16be(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_be_bytes).collect()
    }

    #[test]
    fn utf16_lines_split_at_code_units_across_every_chunk_size() {
        // 「ン」 is U+30F3 and 「\u{0A0A}」 holds 0x0A bytes that are not line ends.
        let text = "ログイン失敗\r\n\n\u{0A0A}\u{0A00}x\r\nlast\npartial";
        for (framing, bytes) in [
            (Framing::Utf16Le, utf16le(text)),
            (Framing::Utf16Be, utf16be(text)),
        ] {
            let encode = |s: &str| match framing {
                Framing::Utf16Le => utf16le(s),
                _ => utf16be(s),
            };
            // A chunk holds a maximal line plus its terminator (as `chunk_bytes` ensures).
            for chunk_len in 21..=bytes.len() {
                let (lines, state) = split_framed(&bytes, chunk_len, 16, framing);
                let raws: Vec<_> = lines.iter().map(|l| l.0.clone()).collect();
                let want: Vec<Vec<u8>> = ["ログイン失敗", "", "\u{0A0A}\u{0A00}x", "last"]
                    .iter()
                    .map(|s| encode(s))
                    .collect();
                assert_eq!(raws, want, "{framing:?} chunk {chunk_len}");
                let ends: Vec<u64> = lines.iter().map(|l| l.2).collect();
                assert_eq!(ends, vec![16, 18, 28, 38], "{framing:?} chunk {chunk_len}");
                assert_eq!(state.offset, 38);
                assert!(state.has_partial());
            }
        }
    }

    #[test]
    fn long_utf16_lines_are_cut_at_a_code_unit_even_when_a_terminator_straddles_reads() {
        let mut content = utf16le(&"あ".repeat(30));
        content.extend(utf16le("\nok\n"));
        // Odd max and odd chunk sizes: cut at 10 bytes (5 units), terminators across reads.
        for chunk_len in [15, 17, 21, 33] {
            let (lines, state) = split_framed(&content, chunk_len, 11, Framing::Utf16Le);
            assert_eq!(
                lines[0],
                (utf16le(&"あ".repeat(5)), 60, 62),
                "chunk {chunk_len}"
            );
            assert_eq!(lines[1], (utf16le("ok"), 0, 68), "chunk {chunk_len}");
            assert_eq!(lines.len(), 2);
            assert_eq!(state.offset, 68);
        }
    }
}
