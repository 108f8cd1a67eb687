//! Decoding one line of a file into UTF-8 text with `encoding_rs`.
//!
//! Invariants:
//! - A line that already is its own UTF-8 text (valid UTF-8 in a UTF-8 input, pure ASCII in an
//!   ASCII-compatible encoding) is returned as is, without copying: the common case costs one
//!   validation pass.
//! - Every malformed sequence becomes one U+FFFD in the text and is counted; the caller keeps
//!   the original bytes whenever the text differs from them, so nothing is re-encoded away.
//! - A line cut at `max_line_bytes` may end inside a character: that incomplete tail is left
//!   out of the text and not counted as an error (the record says it was cut).

use encoding_rs::{DecoderResult, Encoding, UTF_8, UTF_16BE, UTF_16LE};
use logship_tail::{Bom, Framing};

/// Text of one line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded<'a> {
    /// The line as UTF-8.
    pub(crate) text: &'a str,
    /// The text's bytes differ from the line's bytes (keep the original).
    pub(crate) differs: bool,
    /// Malformed sequences replaced with U+FFFD.
    pub(crate) errors: u64,
}

/// Decodes `raw` (one line without its terminator) from `encoding`. `cut`: the line was cut at
/// `max_line_bytes`. `buf` is reused for lines that need decoding.
pub(crate) fn decode_line<'a>(
    encoding: &'static Encoding,
    raw: &'a [u8],
    cut: bool,
    buf: &'a mut String,
) -> Decoded<'a> {
    // UTF-8 input: valid UTF-8 is its own text. Other ASCII-compatible encodings: pure ASCII is.
    let own_text = encoding == UTF_8
        || (encoding.is_ascii_compatible() && Encoding::ascii_valid_up_to(raw) == raw.len());
    // simdutf8 (SIMD validation) instead of std's: checking every line was 6 % of the agent's
    // CPU on the benchmark's file with std::str::from_utf8.
    let as_is = own_text
        .then(|| simdutf8::basic::from_utf8(raw).ok())
        .flatten();
    if let Some(text) = as_is {
        return Decoded {
            text,
            differs: false,
            errors: 0,
        };
    }
    buf.clear();
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut src = raw;
    let mut errors = 0;
    loop {
        let room = decoder
            .max_utf8_buffer_length_without_replacement(src.len())
            .unwrap_or(src.len().saturating_mul(3));
        buf.reserve(room);
        let (result, read) = decoder.decode_to_string_without_replacement(src, buf, !cut);
        src = &src[read..];
        match result {
            DecoderResult::InputEmpty => break,
            DecoderResult::OutputFull => {}
            DecoderResult::Malformed(_, _) => {
                errors += 1;
                buf.push(char::REPLACEMENT_CHARACTER);
            }
        }
    }
    Decoded {
        differs: buf.as_bytes() != raw,
        text: buf.as_str(),
        errors,
    }
}

/// The encoding a byte-order mark announces (it wins over the configured one).
pub(crate) fn encoding_of_bom(bom: Bom) -> &'static Encoding {
    match bom {
        Bom::Utf8 => UTF_8,
        Bom::Utf16Le => UTF_16LE,
        Bom::Utf16Be => UTF_16BE,
    }
}

/// How the tailer must cut lines for `encoding`.
pub(crate) fn framing_of(encoding: &'static Encoding) -> Framing {
    if encoding == UTF_16LE {
        Framing::Utf16Le
    } else if encoding == UTF_16BE {
        Framing::Utf16Be
    } else {
        Framing::Bytes
    }
}

/// "\n" in `encoding`: what joins the original bytes of a multiline record's lines.
pub(crate) fn newline_in(encoding: &'static Encoding) -> &'static [u8] {
    match framing_of(encoding) {
        Framing::Bytes => b"\n",
        Framing::Utf16Le => b"\n\0",
        Framing::Utf16Be => b"\0\n",
    }
}

/// The encoding named by a WHATWG label (`utf-8`, `shift_jis`, `euc-jp`, `utf-16le`...), for
/// config validation: `None` for unknown labels and for the "replacement" encoding, which
/// decodes everything to one U+FFFD.
pub(crate) fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes()).filter(|e| *e != encoding_rs::REPLACEMENT)
}

#[cfg(test)]
mod tests {
    use encoding_rs::{EUC_JP, SHIFT_JIS};

    use super::*;

    fn decode(encoding: &'static Encoding, raw: &[u8], cut: bool) -> (String, bool, u64) {
        let mut buf = String::new();
        let d = decode_line(encoding, raw, cut, &mut buf);
        (d.text.to_owned(), d.differs, d.errors)
    }

    #[test]
    fn japanese_in_every_supported_encoding_decodes_and_keeps_its_original() {
        let text = "2026-11-29 ログイン失敗 user=山田";
        for encoding in [SHIFT_JIS, EUC_JP, UTF_16LE, UTF_16BE] {
            let (bytes, _, unmappable) = encoding.encode(text);
            let bytes = if encoding == UTF_16LE {
                text.encode_utf16().flat_map(u16::to_le_bytes).collect()
            } else if encoding == UTF_16BE {
                text.encode_utf16().flat_map(u16::to_be_bytes).collect()
            } else {
                bytes.into_owned()
            };
            assert!(!unmappable);
            assert_eq!(
                decode(encoding, &bytes, false),
                (text.to_owned(), true, 0),
                "{}",
                encoding.name()
            );
        }
        // ASCII-only lines of an ASCII-compatible encoding are kept as they are.
        assert_eq!(
            decode(SHIFT_JIS, b"plain ascii", false),
            ("plain ascii".into(), false, 0)
        );
        assert_eq!(
            decode(UTF_8, "ログ".as_bytes(), false),
            ("ログ".into(), false, 0)
        );
    }

    #[test]
    fn invalid_sequences_are_replaced_and_counted_but_a_cut_tail_is_not_an_error() {
        // Latin-1 "café", a lone continuation byte, and a truncated 3-byte sequence.
        let (text, differs, errors) = decode(UTF_8, b"caf\xe9 \x80 end \xe3\x83", false);
        assert_eq!(text, "caf\u{FFFD} \u{FFFD} end \u{FFFD}");
        assert!(differs);
        assert_eq!(errors, 3);
        // Shift_JIS: 0x81 followed by a byte that is not a trail byte.
        let (text, _, errors) = decode(SHIFT_JIS, b"\x83\x8D\x81\x0Dx", false);
        assert_eq!((text.as_str(), errors), ("ロ\u{FFFD}\rx", 1));
        // A line cut inside a character: the incomplete tail is dropped silently.
        assert_eq!(decode(UTF_8, b"ab\xe3\x83", true), ("ab".into(), true, 0));
        assert_eq!(
            decode(SHIFT_JIS, b"\x83\x8D\x83", true),
            ("ロ".into(), true, 0)
        );
        // UTF-16 with an odd byte at the end (a torn write) or a lone surrogate.
        let (text, _, errors) = decode(UTF_16LE, b"a\x00b", false);
        assert_eq!((text.as_str(), errors), ("a\u{FFFD}", 1));
        let (text, _, errors) = decode(UTF_16LE, b"\x00\xD8a\x00", false);
        assert_eq!((text.as_str(), errors), ("\u{FFFD}a", 1));
    }

    #[test]
    fn labels_boms_and_framing() {
        assert_eq!(encoding_for_label("Shift_JIS"), Some(SHIFT_JIS));
        assert_eq!(encoding_for_label("euc-jp"), Some(EUC_JP));
        assert_eq!(encoding_for_label("utf-16le"), Some(UTF_16LE));
        assert_eq!(encoding_for_label("klingon"), None);
        assert_eq!(encoding_for_label("iso-2022-kr"), None);
        assert_eq!(framing_of(UTF_16BE), Framing::Utf16Be);
        assert_eq!(framing_of(SHIFT_JIS), Framing::Bytes);
        assert_eq!(encoding_of_bom(Bom::Utf16Le), UTF_16LE);
        assert_eq!(newline_in(UTF_16LE), b"\n\0");
    }
}
