//! Joining continuation lines into one record (stack traces, multi-line SQL statements).
//!
//! Invariants:
//! - A record is the lines from one start line up to (not including) the next one, joined by
//!   "\n" in the text and by the file encoding's "\n" in the original bytes.
//! - A record holds at most `max_bytes` bytes of the file (its lines and the newlines between
//!   them). Whole lines are kept while they fit; the lines after that are read and skipped up to
//!   the end of the record, and the record says so with `truncated_from` = its whole length
//!   (the length of the lines as read from the file, joined). The first line always fits
//!   (config validation keeps `max_bytes >= max_line_bytes`).
//! - A buffered record owns no read position: the caller persists the position after a record's
//!   last line only when it emits the record, so a crash while a record is buffered re-reads
//!   it from its first line (nothing lost, nothing duplicated).

use std::time::{Duration, Instant};

use regex::Regex;

/// How a line is recognised as the first line of a record.
#[derive(Clone, Debug)]
pub enum Boundary {
    /// A line matching the pattern starts a record; other lines continue the current one.
    Start(Regex),
    /// A line matching the pattern continues the current record; other lines start one.
    Continue(Regex),
}

/// The `multiline` settings of one file input.
#[derive(Clone, Debug)]
pub struct Multiline {
    /// Start or continuation pattern (matched against the decoded text of each line).
    pub boundary: Boundary,
    /// Most bytes of the file one record holds.
    pub max_bytes: usize,
    /// A record is emitted once no line was added to it for this long.
    pub timeout: Duration,
}

/// A record being assembled.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Lines joined by "\n".
    pub(crate) text: String,
    /// The lines' bytes joined by the encoding's "\n".
    pub(crate) original: Vec<u8>,
    /// Some line's text differs from its bytes.
    pub(crate) differs: bool,
    /// Length of the whole record in the file's bytes (lines and newlines), kept or not.
    pub(crate) full_len: u64,
    /// Lines were left out (past `max_bytes`) or cut (past `max_line_bytes`).
    pub(crate) cut: bool,
    /// Lines were left out past `max_bytes`.
    pub(crate) overflowed: bool,
    /// File offset just past the record's last line.
    pub(crate) offset_after: u64,
    /// When the last line was added.
    pub(crate) last_line_at: Instant,
}

/// One line as the multiline stage sees it.
pub(crate) struct Line<'a> {
    pub(crate) text: &'a str,
    pub(crate) raw: &'a [u8],
    pub(crate) differs: bool,
    /// Original length when the line was cut at `max_line_bytes`, else 0.
    pub(crate) truncated_from: u64,
    pub(crate) offset_after: u64,
}

// === impl Multiline ===

impl Multiline {
    /// True when `text` begins a new record.
    pub(crate) fn starts_record(&self, text: &str) -> bool {
        match &self.boundary {
            Boundary::Start(re) => re.is_match(text),
            Boundary::Continue(re) => !re.is_match(text),
        }
    }
}

// === impl Pending ===

impl Pending {
    /// A record whose first line is `line`.
    pub(crate) fn start(line: &Line<'_>, now: Instant) -> Pending {
        Pending {
            text: line.text.to_owned(),
            original: line.raw.to_vec(),
            differs: line.differs,
            full_len: line_len(line),
            cut: line.truncated_from > 0,
            overflowed: false,
            offset_after: line.offset_after,
            last_line_at: now,
        }
    }

    /// Adds a continuation line: kept if the record stays within `max_bytes`, else skipped
    /// and counted in the record's length.
    pub(crate) fn push(&mut self, line: &Line<'_>, newline: &[u8], max_bytes: usize, now: Instant) {
        self.full_len += newline.len() as u64 + line_len(line);
        self.offset_after = line.offset_after;
        self.last_line_at = now;
        let fits = self.original.len() + newline.len() + line.raw.len() <= max_bytes;
        if self.overflowed || !fits {
            self.overflowed = true;
            self.cut = true;
            return;
        }
        self.text.push('\n');
        self.text.push_str(line.text);
        self.original.extend_from_slice(newline);
        self.original.extend_from_slice(line.raw);
        self.differs |= line.differs || newline != b"\n";
        self.cut |= line.truncated_from > 0;
    }

    /// Bytes held in memory.
    pub(crate) fn held(&self) -> usize {
        self.text.len() + self.original.len()
    }

    /// `truncated_from` of the record: its whole length when anything was left out.
    pub(crate) fn truncated_from(&self) -> u64 {
        if self.cut { self.full_len } else { 0 }
    }

    /// The original bytes, when the text differs from them.
    pub(crate) fn original(&self) -> Option<&[u8]> {
        (self.differs && self.text.as_bytes() != self.original).then_some(&self.original[..])
    }
}

/// Length of a line in the file (before any cut), without its terminator.
fn line_len(line: &Line<'_>) -> u64 {
    if line.truncated_from > 0 {
        line.truncated_from
    } else {
        line.raw.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, offset_after: u64) -> Line<'a> {
        Line {
            text,
            raw: text.as_bytes(),
            differs: false,
            truncated_from: 0,
            offset_after,
        }
    }

    #[test]
    fn start_and_continue_patterns() {
        let start = Multiline {
            boundary: Boundary::Start(Regex::new(r"^\d{4}-\d{2}-\d{2} ").unwrap()),
            max_bytes: 100,
            timeout: Duration::from_secs(1),
        };
        assert!(start.starts_record("2026-11-29 12:00:00 ERROR x"));
        assert!(!start.starts_record("\tat com.example.Main.run(Main.java:10)"));
        assert!(!start.starts_record("Caused by: java.io.IOException"));
        let cont = Multiline {
            boundary: Boundary::Continue(Regex::new(r"^\s").unwrap()),
            ..start
        };
        assert!(cont.starts_record("java.lang.IllegalStateException: boom"));
        assert!(!cont.starts_record("    at Foo.bar(Foo.java:1)"));
    }

    #[test]
    fn lines_past_max_bytes_are_skipped_and_counted_in_the_length() {
        let now = Instant::now();
        let mut p = Pending::start(&line("head", 5), now);
        p.push(&line("12345", 11), b"\n", 12, now);
        assert_eq!((p.text.as_str(), p.truncated_from()), ("head\n12345", 0));
        // "head\n12345\nx" is exactly 12 bytes: it fits.
        p.push(&line("x", 13), b"\n", 12, now);
        assert_eq!((p.text.as_str(), p.truncated_from()), ("head\n12345\nx", 0));
        p.push(&line("yy", 16), b"\n", 12, now);
        assert_eq!(p.text, "head\n12345\nx");
        // Once a line was skipped, later (shorter) lines are skipped too: no holes.
        p.push(&line("", 17), b"\n", 12, now);
        assert_eq!(p.text, "head\n12345\nx");
        assert_eq!(p.truncated_from(), 16);
        assert_eq!(p.offset_after, 17);
        assert!(p.original().is_none());
    }

    #[test]
    fn original_is_kept_when_a_line_was_reencoded_and_joined_with_the_file_newline() {
        let now = Instant::now();
        let first = Line {
            text: "ロ",
            raw: b"\x83\x8D",
            differs: true,
            truncated_from: 0,
            offset_after: 3,
        };
        let mut p = Pending::start(&first, now);
        p.push(&line("\tat x", 9), b"\n", 100, now);
        assert_eq!(p.text, "ロ\n\tat x");
        assert_eq!(p.original(), Some(&b"\x83\x8D\n\tat x"[..]));
        let cut = Line {
            truncated_from: 500,
            ..line("long", 600)
        };
        p.push(&cut, b"\n", 100, now);
        assert_eq!(p.truncated_from(), 2 + 1 + 5 + 1 + 500);
    }
}
