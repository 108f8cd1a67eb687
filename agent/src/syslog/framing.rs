//! Splitting a TCP/TLS byte stream into syslog messages (RFC 6587).
//!
//! The framing is chosen once per connection from its first byte: a digit means octet
//! counting (`MSG-LEN SP MSG`, what `logger --octet-count` and rsyslog's RFC 5425 forwarding
//! send), anything else means newline-terminated messages ("non-transparent framing").
//!
//! Invariants:
//! - A message's bytes are kept verbatim; only framing is removed: the length prefix, or the
//!   terminating `\n` with a `\r` and NUL bytes right before it.
//! - Memory per connection is bounded by `max` plus the reader's buffer: a message longer than
//!   `max` is read through and cut, never buffered whole; its record carries the original
//!   length (`truncated_from`).
//! - A malformed length prefix is an error ([`FrameError::BadLength`]): the caller closes that
//!   connection and logs why. Except on a connection's first message: a digit there may start a
//!   newline-framed message (no `<PRI>`, e.g. `2026-11-29 ...`), so the connection falls back
//!   to newline framing, with the bytes already read kept at the start of that message. A connection that ends inside a message yields the bytes it had,
//!   flagged with the length they should have had (octet counting) so nothing is lost silently.
//! - Empty lines (newline framing) are not messages.

use memchr::memchr;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

/// Longest accepted length prefix (digits): 999,999,999 bytes.
const MAX_LEN_DIGITS: usize = 9;

/// How a connection frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `\n` after each message.
    Newline,
    /// `LEN SP` before each message.
    OctetCounted,
}

/// Why a connection's stream cannot be read on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Reading the socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An octet-counting length prefix is not `DIGITS SP`.
    #[error("malformed octet-counting length: {0}")]
    BadLength(String),
}

/// Reads messages from one connection.
pub struct FrameReader<R> {
    reader: R,
    framing: Option<Framing>,
    max: usize,
    /// Messages returned so far.
    frames: u64,
    /// Bytes of the length prefix being read (at most [`MAX_LEN_DIGITS`] + 1).
    prefix: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> FrameReader<R> {
    /// A reader cutting messages at `max` bytes.
    pub fn new(reader: R, max: usize) -> Self {
        FrameReader {
            reader,
            framing: None,
            max,
            frames: 0,
            prefix: Vec::new(),
        }
    }

    /// The framing found so far (None before the first byte).
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Reads the next message into `out` (cleared first). Returns `Some(truncated_from)` (0 when
    /// whole, else the message's full length) or `None` at the end of the stream.
    pub async fn next(&mut self, out: &mut Vec<u8>) -> Result<Option<u64>, FrameError> {
        out.clear();
        let framing = match self.framing {
            Some(f) => f,
            None => {
                let buf = self.reader.fill_buf().await?;
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                let f = if first.is_ascii_digit() {
                    Framing::OctetCounted
                } else {
                    Framing::Newline
                };
                self.framing = Some(f);
                f
            }
        };
        let next = match framing {
            Framing::Newline => self.next_line(out, 0, false).await,
            Framing::OctetCounted => match self.next_counted(out).await {
                Err(FrameError::BadLength(_)) if self.frames == 0 => {
                    // The connection's first "length" was not one: a newline-framed sender
                    // whose first message starts with a digit. Read it, and the rest, as lines.
                    self.framing = Some(Framing::Newline);
                    let mut prefix = std::mem::take(&mut self.prefix);
                    let ended = prefix.last() == Some(&b'\n');
                    if ended {
                        prefix.pop();
                    }
                    out.clear();
                    out.extend_from_slice(&prefix[..prefix.len().min(self.max)]);
                    self.next_line(out, prefix.len() as u64, ended).await
                }
                other => other,
            },
        };
        if let Ok(Some(_)) = next {
            self.frames += 1;
        }
        next
    }

    /// The next line; `out` may already hold its first `total` bytes (`ended`: all of it).
    async fn next_line(
        &mut self,
        out: &mut Vec<u8>,
        mut total: u64,
        mut ended: bool,
    ) -> Result<Option<u64>, FrameError> {
        loop {
            while !ended {
                let buf = self.reader.fill_buf().await?;
                if buf.is_empty() {
                    break;
                }
                let (chunk, used, found) = match memchr(b'\n', buf) {
                    Some(i) => (&buf[..i], i + 1, true),
                    None => (buf, buf.len(), false),
                };
                let room = self.max.saturating_sub(out.len());
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                total += chunk.len() as u64;
                self.reader.consume(used);
                if found {
                    ended = true;
                    break;
                }
            }
            if !ended && total == 0 {
                return Ok(None);
            }
            // The terminator's companions: "\r\n" and trailing NULs are framing, not message.
            while matches!(out.last(), Some(b'\r' | 0)) && total as usize == out.len() {
                out.pop();
                total -= 1;
            }
            if total == 0 {
                if ended {
                    ended = false;
                    continue;
                }
                return Ok(None);
            }
            let truncated_from = if total > out.len() as u64 { total } else { 0 };
            return Ok(Some(truncated_from));
        }
    }

    /// Bytes of the connection read but not yet taken as messages.
    fn buffered(&self) -> &[u8]
    where
        R: BufferedBytes,
    {
        self.reader.buffered_bytes()
    }

    async fn next_counted(&mut self, out: &mut Vec<u8>) -> Result<Option<u64>, FrameError> {
        let Some(len) = self.read_length().await? else {
            return Ok(None);
        };
        let mut left = len;
        while left > 0 {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                // Cut short by the sender: keep what came, flagged with the length announced.
                return Ok(Some(len));
            }
            let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let room = self.max.saturating_sub(out.len());
            out.extend_from_slice(&buf[..take.min(room)]);
            self.reader.consume(take);
            left -= take as u64;
        }
        Ok(Some(if len > out.len() as u64 { len } else { 0 }))
    }

    /// `DIGITS SP`, after any `\r`/`\n` between frames; None at a clean end of stream.
    async fn read_length(&mut self) -> Result<Option<u64>, FrameError> {
        let mut digits = String::new();
        self.prefix.clear();
        loop {
            let buf = self.reader.fill_buf().await?;
            let Some(&b) = buf.first() else {
                if digits.is_empty() {
                    return Ok(None);
                }
                return Err(FrameError::BadLength(format!(
                    "stream ended inside length {digits:?}"
                )));
            };
            self.reader.consume(1);
            self.prefix.push(b);
            match b {
                b'\n' | b'\r' if digits.is_empty() => {}
                b'0'..=b'9' if digits.len() < MAX_LEN_DIGITS => digits.push(char::from(b)),
                b' ' if !digits.is_empty() => {
                    let len: u64 = digits.parse().expect("only digits were pushed");
                    if len == 0 {
                        return Err(FrameError::BadLength("length 0".into()));
                    }
                    return Ok(Some(len));
                }
                _ => {
                    return Err(FrameError::BadLength(format!(
                        "byte {:?} after {digits:?}",
                        char::from(b)
                    )));
                }
            }
        }
    }
}

/// A reader whose buffered bytes can be looked at without reading (tokio's `BufReader`).
pub trait BufferedBytes {
    /// The bytes read from the stream and not consumed yet.
    fn buffered_bytes(&self) -> &[u8];
}

impl<S: AsyncRead> BufferedBytes for BufReader<S> {
    fn buffered_bytes(&self) -> &[u8] {
        self.buffer()
    }
}

impl<R: AsyncBufRead + BufferedBytes + Unpin> FrameReader<R> {
    /// The next message if it lies whole in the bytes already read, handed to `take` (never
    /// cut: `truncated_from` 0), without reading from the connection. False when the buffer
    /// holds no complete message or one this fast path leaves to [`FrameReader::next`] (the
    /// connection's first message, one longer than `max`, a length prefix it would refuse):
    /// nothing of it is consumed then, so `next` returns exactly what it would have.
    pub fn next_buffered(&mut self, take: impl FnOnce(&[u8])) -> bool {
        if self.frames == 0 {
            return false;
        }
        let (skip, start, end) = match self.framing {
            Some(Framing::Newline) => match next_line_in(self.buffered(), self.max) {
                Some(found) => found,
                None => return false,
            },
            Some(Framing::OctetCounted) => match next_counted_in(self.buffered(), self.max) {
                Some(found) => found,
                None => return false,
            },
            None => return false,
        };
        take(&self.buffered()[start..end]);
        std::pin::Pin::new(&mut self.reader).consume(skip);
        self.frames += 1;
        true
    }
}

/// A complete, non-empty line of at most `max` bytes in `buf`, after any empty lines:
/// (bytes to consume, message start, message end), the terminator's `\r` and NULs left out as
/// [`FrameReader::next`] does.
fn next_line_in(buf: &[u8], max: usize) -> Option<(usize, usize, usize)> {
    let mut start = 0;
    loop {
        let i = start + memchr(b'\n', &buf[start..])?;
        if i - start > max {
            return None;
        }
        let mut end = i;
        while end > start && matches!(buf[end - 1], b'\r' | 0) {
            end -= 1;
        }
        if end > start {
            return Some((i + 1, start, end));
        }
        start = i + 1;
    }
}

/// A complete octet-counted frame of at most `max` bytes in `buf` (`\r`/`\n` before its
/// length skipped, as [`FrameReader::next`] does): (bytes to consume, start, end).
fn next_counted_in(buf: &[u8], max: usize) -> Option<(usize, usize, usize)> {
    let mut at = 0;
    while matches!(buf.get(at), Some(b'\r' | b'\n')) {
        at += 1;
    }
    let digits = buf[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_LEN_DIGITS || buf.get(at + digits) != Some(&b' ') {
        return None;
    }
    let len: usize = std::str::from_utf8(&buf[at..at + digits])
        .ok()?
        .parse()
        .ok()?;
    let start = at + digits + 1;
    if len == 0 || len > max || buf.len() - start < len {
        return None;
    }
    Some((start + len, start, start + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> (Vec<(Vec<u8>, u64)>, Option<String>) {
        // A tiny read buffer exercises messages split across reads.
        let reader = tokio::io::BufReader::with_capacity(3, input);
        let mut r = FrameReader::new(reader, max);
        let mut out = Vec::new();
        let mut got = Vec::new();
        loop {
            match r.next(&mut out).await {
                Ok(Some(t)) => got.push((out.clone(), t)),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
    }

    fn msgs(v: &[(Vec<u8>, u64)]) -> Vec<(String, u64)> {
        v.iter()
            .map(|(m, t)| (String::from_utf8_lossy(m).into_owned(), *t))
            .collect()
    }

    /// Messages as a connection loop reads them: whole buffered messages first, then `next`.
    async fn all_fast(
        input: &[u8],
        max: usize,
        capacity: usize,
    ) -> (Vec<(Vec<u8>, u64)>, Option<String>) {
        let reader = tokio::io::BufReader::with_capacity(capacity, input);
        let mut r = FrameReader::new(reader, max);
        let mut out = Vec::new();
        let mut got = Vec::new();
        loop {
            while r.next_buffered(|m| got.push((m.to_vec(), 0))) {}
            match r.next(&mut out).await {
                Ok(Some(t)) => got.push((out.clone(), t)),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
    }

    #[tokio::test]
    async fn the_buffered_fast_path_reads_exactly_what_next_reads() {
        let inputs: [&[u8]; 10] = [
            b"<13>a b\n\n<14>c\r\n<15>d\0\n <16>last",
            b"9 <13>a\nb c10 <14>123456\n7 <15>xyz",
            b"9 <13>a\nb c\r\n10 <14>123456\n\n7 <15>xyz",
            b"<13>0123456789\n<13>ok\n<13>0123456\r\r\n<1>\r\n",
            b"14 <13>01234567896 <13>ok",
            b"5 <13>a12x <13>b",
            b"5 <13>a0 x",
            b"5 <13>a1234567890 <13>b",
            b"2026-11-29 app started\n<13>next\n\r\n\0\n<13>x\n",
            b"20 <13>short",
        ];
        for input in inputs {
            for max in [8, 100] {
                let plain = all(input, max).await;
                for capacity in [3, 7, 16, 4096] {
                    assert_eq!(
                        all_fast(input, max, capacity).await,
                        plain,
                        "{:?} max {max} capacity {capacity}",
                        String::from_utf8_lossy(input)
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn newline_framing_trims_only_the_terminator() {
        let (got, err) = all(b"<13>a b\n\n<14>c\r\n<15>d\0\n <16>last", 100).await;
        assert_eq!(err, None);
        assert_eq!(
            msgs(&got),
            [
                ("<13>a b".into(), 0),
                ("<14>c".into(), 0),
                ("<15>d".into(), 0),
                (" <16>last".into(), 0)
            ]
        );
    }

    #[tokio::test]
    async fn octet_counting_keeps_newlines_inside_messages() {
        let (got, err) = all(b"9 <13>a\nb c10 <14>123456\n7 <15>xyz", 100).await;
        assert_eq!(err, None);
        assert_eq!(
            msgs(&got),
            [
                ("<13>a\nb c".into(), 0),
                ("<14>123456".into(), 0),
                ("<15>xyz".into(), 0)
            ]
        );
    }

    #[tokio::test]
    async fn long_messages_are_cut_and_flagged_in_both_framings() {
        let (got, _) = all(b"<13>0123456789\n<13>ok\n", 8).await;
        assert_eq!(msgs(&got), [("<13>0123".into(), 14), ("<13>ok".into(), 0)]);
        let (got, _) = all(b"14 <13>01234567896 <13>ok", 8).await;
        assert_eq!(msgs(&got), [("<13>0123".into(), 14), ("<13>ok".into(), 0)]);
    }

    #[tokio::test]
    async fn a_bad_length_is_an_error_after_the_good_frames() {
        let (got, err) = all(b"5 <13>a12x <13>b", 100).await;
        assert_eq!(msgs(&got), [("<13>a".into(), 0)]);
        assert!(err.unwrap().contains("malformed"));
        let (_, err) = all(b"3 <1>1234567890 x", 100).await;
        assert!(err.unwrap().contains("malformed"), "too many digits");
        let (_, err) = all(b"3 <1>0 x", 100).await;
        assert!(err.unwrap().contains("length 0"));
    }

    #[tokio::test]
    async fn a_first_message_starting_with_a_digit_falls_back_to_newline_framing() {
        let (got, err) = all(b"2026-11-29 app started\n<13>next\n", 100).await;
        assert_eq!(err, None);
        assert_eq!(
            msgs(&got),
            [("2026-11-29 app started".into(), 0), ("<13>next".into(), 0)]
        );
        let (got, err) = all(b"42\n7\r\n", 100).await;
        assert_eq!(err, None);
        assert_eq!(msgs(&got), [("42".into(), 0), ("7".into(), 0)]);
        let (got, _) = all(b"123456x", 4).await;
        assert_eq!(msgs(&got), [("1234".into(), 7)]);
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_keeps_what_came_and_says_so() {
        let (got, err) = all(b"20 <13>short", 100).await;
        assert_eq!(err, None);
        assert_eq!(msgs(&got), [("<13>short".into(), 20)]);
    }
}
