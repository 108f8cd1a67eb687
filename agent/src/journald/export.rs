//! A bounded reader of the Journal Export Format, the stream `journalctl -o export` writes.
//!
//! ```text
//! entry  = { field } "\n"                 (entries are separated by one empty line)
//! field  = NAME "=" VALUE "\n"            (text value, no newline inside)
//!        | NAME "\n" le64(len) BYTES "\n" (binary value: any bytes, exact length)
//! ```
//!
//! Invariants:
//! - Memory is bounded whatever the stream holds: only the fields the caller keeps
//!   ([`Keep`]) are stored, each at most its cap (the rest is read and thrown away), a field
//!   name is at most [`MAX_NAME`] bytes, and a repeated field keeps its first value only.
//! - A kept value longer than its cap is cut to the cap and flagged: [`Field::len`] is the
//!   length the journal holds, so the cut is never silent.
//! - Binary values are kept byte for byte (no UTF-8 conversion here).
//! - A stream that ends inside an entry, or that breaks the format, is an error, never a
//!   partial entry: the caller resumes after the last whole entry's cursor.

use std::io::{self, BufRead};

/// Longest field name accepted (journald allows 64; a longer one means a broken stream).
pub const MAX_NAME: usize = 256;

/// What a caller keeps of each field: `Some(cap)` keeps the first `cap` bytes of the value.
pub type Keep = Box<dyn Fn(&str) -> Option<usize> + Send>;

/// One field kept from an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field name, e.g. `MESSAGE`.
    pub name: String,
    /// The value, cut to its cap.
    pub value: Vec<u8>,
    /// The value's length in the journal (greater than `value.len()` when cut).
    pub len: u64,
}

/// One journal entry: the kept fields in stream order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Kept fields, each name at most once.
    pub fields: Vec<Field>,
}

/// Why the stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the pipe failed.
    #[error("reading the journal export stream: {0}")]
    Io(#[from] io::Error),
    /// The stream ended inside an entry.
    #[error("the journal export stream ended inside an entry")]
    Truncated,
    /// A field name that is empty, too long or not followed by `=` or a newline.
    #[error("malformed journal export stream: {0}")]
    Malformed(&'static str),
}

/// Reads entries from an export stream.
pub struct ExportReader<R> {
    inner: R,
    keep: Keep,
    name: Vec<u8>,
}

// === impl Entry ===

impl Entry {
    /// The kept field `name`.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The kept field `name` as text (lossy for non-UTF-8 values).
    pub fn text(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.get(name).map(|f| String::from_utf8_lossy(&f.value))
    }
}

// === impl ExportReader ===

impl<R: BufRead> ExportReader<R> {
    /// A reader keeping the fields `keep` selects.
    pub fn new(inner: R, keep: Keep) -> Self {
        ExportReader {
            inner,
            keep,
            name: Vec::with_capacity(64),
        }
    }

    /// The next entry; `Ok(None)` at a clean end of stream (between entries).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ExportError> {
        let mut entry = Entry::default();
        let mut started = false;
        loop {
            self.name.clear();
            let Some(end) = self.read_name()? else {
                return if started {
                    Err(ExportError::Truncated)
                } else {
                    Ok(None)
                };
            };
            if self.name.is_empty() {
                if end != b'\n' {
                    return Err(ExportError::Malformed("empty field name"));
                }
                if started {
                    return Ok(Some(entry));
                }
                continue; // blank lines between entries
            }
            started = true;
            let name = std::str::from_utf8(&self.name)
                .map_err(|_| ExportError::Malformed("field name is not UTF-8"))?
                .to_owned();
            let seen = entry.fields.iter().any(|f| f.name == name);
            let cap = (self.keep)(&name).filter(|_| !seen);
            let field = if end == b'=' {
                self.text_value(cap)?
            } else {
                self.binary_value(cap)?
            };
            if let Some((value, len)) = field {
                entry.fields.push(Field { name, value, len });
            }
        }
    }

    /// Reads a field name into `self.name` up to `=` or `\n` (returned); `None` at end of
    /// stream before any byte.
    fn read_name(&mut self) -> Result<Option<u8>, ExportError> {
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return if self.name.is_empty() {
                    Ok(None)
                } else {
                    Err(ExportError::Truncated)
                };
            }
            let stop = buf.iter().position(|&b| b == b'=' || b == b'\n');
            let take = stop.unwrap_or(buf.len());
            if self.name.len() + take > MAX_NAME {
                return Err(ExportError::Malformed("field name longer than 256 bytes"));
            }
            self.name.extend_from_slice(&buf[..take]);
            match stop {
                Some(i) => {
                    let end = buf[i];
                    self.inner.consume(i + 1);
                    return Ok(Some(end));
                }
                None => self.inner.consume(take),
            }
        }
    }

    /// A text value up to the newline: kept (cut to `cap`) or skipped.
    fn text_value(&mut self, cap: Option<usize>) -> Result<Option<(Vec<u8>, u64)>, ExportError> {
        let mut value = Vec::new();
        let mut len = 0u64;
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(ExportError::Truncated);
            }
            let nl = memchr::memchr(b'\n', buf);
            let take = nl.unwrap_or(buf.len());
            if let Some(cap) = cap {
                let room = cap.saturating_sub(value.len()).min(take);
                value.extend_from_slice(&buf[..room]);
            }
            len += take as u64;
            match nl {
                Some(i) => {
                    self.inner.consume(i + 1);
                    return Ok(cap.map(|_| (value, len)));
                }
                None => self.inner.consume(take),
            }
        }
    }

    /// A binary value: le64 length, the bytes, a newline.
    fn binary_value(&mut self, cap: Option<usize>) -> Result<Option<(Vec<u8>, u64)>, ExportError> {
        let mut size = [0u8; 8];
        self.read_exact(&mut size)?;
        let len = u64::from_le_bytes(size);
        let keep = cap.map_or(0, |c| len.min(c as u64) as usize);
        let mut value = vec![0u8; keep];
        self.read_exact(&mut value)?;
        self.skip(len - keep as u64)?;
        let mut nl = [0u8; 1];
        self.read_exact(&mut nl)?;
        if nl[0] != b'\n' {
            return Err(ExportError::Malformed(
                "binary field not followed by a newline",
            ));
        }
        Ok(cap.map(|_| (value, len)))
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), ExportError> {
        self.inner.read_exact(out).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ExportError::Truncated,
            _ => ExportError::Io(e),
        })
    }

    fn skip(&mut self, mut n: u64) -> Result<(), ExportError> {
        while n > 0 {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(ExportError::Truncated);
            }
            let take = (buf.len() as u64).min(n) as usize;
            self.inner.consume(take);
            n -= take as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep_some(name: &str) -> Option<usize> {
        match name {
            "MESSAGE" => Some(8),
            "__CURSOR" | "_PID" => Some(64),
            _ => None,
        }
    }

    fn binary(name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = format!("{name}\n").into_bytes();
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
        out
    }

    fn read_all(stream: &[u8]) -> (Vec<Entry>, Option<ExportError>) {
        // A tiny buffer makes every boundary fall inside a read.
        let mut r = ExportReader::new(io::BufReader::with_capacity(3, stream), Box::new(keep_some));
        let mut out = Vec::new();
        loop {
            match r.next_entry() {
                Ok(Some(e)) => out.push(e),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn text_entries_keep_only_wanted_fields() {
        let s = b"__CURSOR=c1\n_PID=7\nOTHER=x\nMESSAGE=hello\n\n__CURSOR=c2\nMESSAGE=bye\n\n";
        let (entries, err) = read_all(s);
        assert!(err.is_none());
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].text("__CURSOR").as_deref(), Some("c1"));
        assert_eq!(entries[0].text("_PID").as_deref(), Some("7"));
        assert!(entries[0].get("OTHER").is_none());
        assert_eq!(entries[0].text("MESSAGE").as_deref(), Some("hello"));
        assert_eq!(entries[1].text("MESSAGE").as_deref(), Some("bye"));
    }

    #[test]
    fn binary_message_is_kept_byte_for_byte() {
        let value = b"a\nb\0\xff";
        let mut s = b"__CURSOR=c1\n".to_vec();
        s.extend(binary("MESSAGE", value));
        s.extend(binary("IGNORED", &[0u8; 1000]));
        s.extend_from_slice(b"\n");
        let (entries, err) = read_all(&s);
        assert!(err.is_none(), "{err:?}");
        let m = entries[0].get("MESSAGE").expect("message kept");
        assert_eq!(m.value, value);
        assert_eq!(m.len, value.len() as u64);
    }

    #[test]
    fn oversize_fields_are_cut_and_flagged() {
        let mut s = b"MESSAGE=0123456789abcdef\n\n".to_vec();
        s.extend(binary("MESSAGE", b"0123456789\n"));
        s.extend_from_slice(b"__CURSOR=c\n\n");
        let (entries, err) = read_all(&s);
        assert!(err.is_none(), "{err:?}");
        let text = entries[0].get("MESSAGE").expect("kept");
        assert_eq!((text.value.as_slice(), text.len), (&b"01234567"[..], 16));
        let bin = entries[1].get("MESSAGE").expect("kept");
        assert_eq!((bin.value.as_slice(), bin.len), (&b"01234567"[..], 11));
        assert_eq!(entries[1].text("__CURSOR").as_deref(), Some("c"));
    }

    #[test]
    fn a_repeated_field_keeps_its_first_value() {
        let (entries, _) = read_all(b"MESSAGE=one\nMESSAGE=two\n\n");
        assert_eq!(entries[0].fields.len(), 1);
        assert_eq!(entries[0].text("MESSAGE").as_deref(), Some("one"));
    }

    #[test]
    fn truncated_streams_are_errors_not_entries() {
        let mut bin = b"__CURSOR=c\n".to_vec();
        bin.extend(binary("MESSAGE", b"hello"));
        let cases: Vec<Vec<u8>> = vec![
            b"MESSAGE=hel".to_vec(),
            b"MESSAGE=hello\n".to_vec(),
            b"MESS".to_vec(),
            bin[..bin.len() - 3].to_vec(),
            b"MESSAGE\n\x05\x00".to_vec(),
        ];
        for case in cases {
            let (entries, err) = read_all(&case);
            assert!(entries.is_empty(), "{case:?}");
            assert!(
                matches!(err, Some(ExportError::Truncated)),
                "{case:?}: {err:?}"
            );
        }
    }

    #[test]
    fn broken_streams_are_errors() {
        let long = format!("{}=x\n\n", "A".repeat(MAX_NAME + 1));
        let mut bad_bin = binary("MESSAGE", b"x");
        *bad_bin.last_mut().expect("not empty") = b'!';
        for case in [long.as_bytes(), b"=x\n\n", &bad_bin] {
            let (_, err) = read_all(case);
            assert!(matches!(err, Some(ExportError::Malformed(_))), "{err:?}");
        }
    }

    #[test]
    fn a_huge_binary_length_is_skipped_without_allocating_it() {
        let mut s = b"MESSAGE\n".to_vec();
        s.extend_from_slice(&u64::MAX.to_le_bytes());
        s.extend_from_slice(b"short");
        let (_, err) = read_all(&s);
        assert!(matches!(err, Some(ExportError::Truncated)), "{err:?}");
    }

    fn encode(entries: &[Vec<(String, Vec<u8>)>]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in entries {
            for (name, value) in e {
                if value.contains(&b'\n') || value.first() == Some(&0) {
                    out.extend(binary(name, value));
                } else {
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'=');
                    out.extend_from_slice(value);
                    out.push(b'\n');
                }
            }
            out.push(b'\n');
        }
        out
    }

    proptest::proptest! {
        /// Any entries, written either way, read back as the kept fields cut to their caps.
        #[test]
        fn round_trip(entries in proptest::collection::vec(
            proptest::collection::vec(
                (proptest::sample::select(vec!["MESSAGE", "__CURSOR", "_PID", "OTHER"]),
                 proptest::collection::vec(proptest::num::u8::ANY, 0..40)),
                1..6),
            0..5)) {
            let entries: Vec<Vec<(String, Vec<u8>)>> = entries
                .into_iter()
                .map(|e| e.into_iter().map(|(n, v)| (n.to_string(), v)).collect())
                .collect();
            let (got, err) = read_all(&encode(&entries));
            proptest::prop_assert!(err.is_none(), "{:?}", err);
            proptest::prop_assert_eq!(got.len(), entries.len());
            for (g, e) in got.iter().zip(&entries) {
                let mut want: Vec<Field> = Vec::new();
                for (name, value) in e {
                    let Some(cap) = keep_some(name) else { continue };
                    if want.iter().any(|f| &f.name == name) {
                        continue;
                    }
                    want.push(Field {
                        name: name.clone(),
                        value: value[..value.len().min(cap)].to_vec(),
                        len: value.len() as u64,
                    });
                }
                proptest::prop_assert_eq!(&g.fields, &want);
            }
        }

        /// Arbitrary bytes: an error or entries, never a panic, and nothing over its cap.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let (got, _) = read_all(&bytes);
            for e in got {
                for f in e.fields {
                    proptest::prop_assert!(f.value.len() <= keep_some(&f.name).unwrap_or(0));
                }
            }
        }
    }

    #[test]
    fn blank_lines_between_entries_and_clean_end() {
        let (entries, err) = read_all(b"\n\nMESSAGE=a\n\n\nMESSAGE=b\n\n");
        assert!(err.is_none());
        assert_eq!(entries.len(), 2);
    }
}
