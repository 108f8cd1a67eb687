//! How a file's bytes are cut into lines: at the byte 0x0A, or at the UTF-16 code unit 0x000A
//! (little or big endian), and the byte-order mark that decides it.
//!
//! Invariants:
//! - A byte-order mark at offset 0 wins over the configured framing: `FF FE` is UTF-16LE,
//!   `FE FF` UTF-16BE, `EF BB BF` UTF-8 (byte framing). The mark is skipped: the first line
//!   starts after it, so no line ever holds BOM bytes.
//! - UTF-16 terminators are only looked for at even offsets from the start of the file (a BOM
//!   is two bytes, so that is also even from the start of the text); a line never ends inside a
//!   code unit, and a line cut at `max_line_bytes` is cut at a code-unit boundary.
//! - A line that starts at an odd offset (`StartAt::End` at an odd size, or an idle flush after
//!   a torn write that ended inside a code unit) begins with half a unit: that one line decodes
//!   with a replacement character, and the next line is aligned again.
//! - The mark is read from the file's first bytes, which its identity key fingerprints, so a
//!   file keeps its framing for as long as it keeps its key (also across restarts).

/// Where lines end, chosen per input (`TailConfig::framing`) and per file by its BOM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// At each byte 0x0A ("\r\n" also ends a line). Right for UTF-8, ASCII, ISO-8859-x,
    /// windows-125x, Shift_JIS and EUC-JP, whose multi-byte characters never contain 0x0A.
    #[default]
    Bytes,
    /// At each little-endian code unit 0x000A (`0A 00`), at even offsets.
    Utf16Le,
    /// At each big-endian code unit 0x000A (`00 0A`), at even offsets.
    Utf16Be,
}

/// A byte-order mark found at the start of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bom {
    /// `EF BB BF`.
    Utf8,
    /// `FF FE`.
    Utf16Le,
    /// `FE FF`.
    Utf16Be,
}

/// What the first bytes of a file say about its framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// Decided: the framing, and the mark (if any) the first line starts after.
    Known(Framing, Option<Bom>),
    /// The bytes so far are the beginning of a mark: wait for more (or for the idle flush).
    NeedMore,
}

// === impl Framing ===

impl Framing {
    /// Bytes of one terminator unit (and of one code unit).
    pub(crate) fn unit(self) -> usize {
        match self {
            Framing::Bytes => 1,
            Framing::Utf16Le | Framing::Utf16Be => 2,
        }
    }

    /// `n` rounded down to a whole number of code units.
    pub(crate) fn floor(self, n: u64) -> u64 {
        n - n % self.unit() as u64
    }

    /// The terminators in `chunk` (the file's bytes from absolute offset `start`): for each, its
    /// index in `chunk` and whether the unit before it (inside `chunk`) is a carriage return.
    pub(crate) fn terminators(
        self,
        chunk: &[u8],
        start: u64,
    ) -> impl Iterator<Item = (usize, bool)> + '_ {
        // The byte 0x0A sits at the unit's start (LE) or at its second byte (BE).
        let (nl_at, nl, cr) = match self {
            Framing::Bytes | Framing::Utf16Le => (0, [b'\n', 0], [b'\r', 0]),
            Framing::Utf16Be => (1, [0, b'\n'], [0, b'\r']),
        };
        let unit = self.unit();
        memchr::memchr_iter(b'\n', chunk).filter_map(move |j| {
            if unit == 1 {
                return Some((j, j > 0 && chunk[j - 1] == b'\r'));
            }
            let i = j.checked_sub(nl_at)?;
            let aligned = (start + i as u64).is_multiple_of(2);
            if !aligned || chunk.get(i..i + 2)? != nl {
                return None;
            }
            Some((i, i >= 2 && chunk[i - 2..i] == cr))
        })
    }
}

/// Decides the framing of a file from its first bytes (`prefix`, at most 3). `configured` is
/// the input's framing; `final_look` forces a decision (the file has been idle: a short file
/// that looks like the start of a mark is then read as it is).
pub(crate) fn sniff(prefix: &[u8], configured: Framing, final_look: bool) -> Sniffed {
    const MARKS: [(&[u8], Framing, Bom); 3] = [
        (&[0xEF, 0xBB, 0xBF], Framing::Bytes, Bom::Utf8),
        (&[0xFF, 0xFE], Framing::Utf16Le, Bom::Utf16Le),
        (&[0xFE, 0xFF], Framing::Utf16Be, Bom::Utf16Be),
    ];
    for (mark, framing, bom) in MARKS {
        if prefix.starts_with(mark) {
            return Sniffed::Known(framing, Some(bom));
        }
        if !final_look && prefix.len() < mark.len() && mark.starts_with(prefix) {
            return Sniffed::NeedMore;
        }
    }
    Sniffed::Known(configured, None)
}

// === impl Bom ===

impl Bom {
    /// Length of the mark in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            Bom::Utf8 => 3,
            Bom::Utf16Le | Bom::Utf16Be => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_win_over_the_configured_framing_and_partial_marks_wait() {
        let k = |f, b| Sniffed::Known(f, b);
        assert_eq!(
            sniff(b"\xFF\xFEa\x00", Framing::Bytes, false),
            k(Framing::Utf16Le, Some(Bom::Utf16Le))
        );
        assert_eq!(
            sniff(b"\xFE\xFF\x00", Framing::Utf16Le, false),
            k(Framing::Utf16Be, Some(Bom::Utf16Be))
        );
        assert_eq!(
            sniff(b"\xEF\xBB\xBFa", Framing::Utf16Le, false),
            k(Framing::Bytes, Some(Bom::Utf8))
        );
        assert_eq!(
            sniff(b"a\x00b", Framing::Utf16Le, false),
            k(Framing::Utf16Le, None)
        );
        for partial in [&b""[..], b"\xEF", b"\xEF\xBB", b"\xFF", b"\xFE"] {
            assert_eq!(sniff(partial, Framing::Bytes, false), Sniffed::NeedMore);
            assert_eq!(
                sniff(partial, Framing::Bytes, true),
                k(Framing::Bytes, None)
            );
        }
        assert_eq!(
            sniff(b"\xEFx", Framing::Bytes, false),
            k(Framing::Bytes, None)
        );
    }

    #[test]
    fn utf16_terminators_only_at_even_offsets_with_carriage_returns() {
        // "a\r\n" "\n" in UTF-16LE, then U+0A00 (`00 0A`, whose 0x0A is at an odd
        // offset) and a last "\n".
        let le = b"a\x00\r\x00\n\x00\n\x00\x00\n\x0a\x00";
        let got: Vec<_> = Framing::Utf16Le.terminators(le, 0).collect();
        assert_eq!(got, vec![(4, true), (6, false), (10, false)]);
        // The same bytes read from an odd absolute offset hold no aligned terminator but one.
        let got: Vec<_> = Framing::Utf16Le.terminators(&le[1..], 1).collect();
        assert_eq!(got, vec![(3, true), (5, false), (9, false)]);
        let be = b"\x00a\x00\r\x00\n\x0a\x00\x00\n";
        let got: Vec<_> = Framing::Utf16Be.terminators(be, 0).collect();
        assert_eq!(got, vec![(4, true), (8, false)]);
        // A half terminator at the end of a chunk is not one yet.
        assert_eq!(Framing::Utf16Le.terminators(b"a\x00\n", 0).count(), 0);
        assert_eq!(Framing::Utf16Be.terminators(b"\x00", 0).count(), 0);
    }
}
