//! `key=value` scanner for FortiGate, netfilter, auditd and OpenSMTPD bodies: values may be double-
//! or single-quoted (a backslash escapes the next byte, so `\"` does not end a value; the value is
//! returned as written, escapes included, without allocating); unquoted values end at the next
//! space.

/// Iterator over `(key, value)` pairs; tokens without '=' are skipped.
pub(crate) struct Kv<'a> {
    s: &'a str,
    /// Whether the value last returned was quoted.
    pub(crate) last_quoted: bool,
}

pub(crate) fn kv(s: &str) -> Kv<'_> {
    Kv {
        s,
        last_quoted: false,
    }
}

impl<'a> Iterator for Kv<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.s = self.s.trim_start_matches(' ');
            if self.s.is_empty() {
                return None;
            }
            let b = self.s.as_bytes();
            let tok_end = memchr::memchr2(b' ', b'=', b).unwrap_or(b.len());
            if tok_end == b.len() || b[tok_end] == b' ' {
                self.s = &self.s[tok_end..];
                continue;
            }
            let key = &self.s[..tok_end];
            let rest = &self.s[tok_end + 1..];
            let rb = rest.as_bytes();
            let (val, next) = match rb.first() {
                Some(q @ (b'"' | b'\'')) => match closing(*q, &rb[1..]) {
                    Some(e) => (&rest[1..1 + e], &rest[e + 2..]),
                    None => (&rest[1..], ""),
                },
                _ => {
                    let e = memchr::memchr(b' ', rb).unwrap_or(rb.len());
                    (&rest[..e], &rest[e..])
                }
            };
            self.s = next;
            self.last_quoted = matches!(rb.first(), Some(b'"' | b'\''));
            return Some((key, val));
        }
    }
}

/// Offset of the quote `q` that closes a value, skipping backslash-escaped bytes.
fn closing(q: u8, b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(e) = memchr::memchr2(q, b'\\', &b[i..]) {
        let at = i + e;
        if b[at] == q {
            return Some(at);
        }
        i = at + 2;
        if i >= b.len() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_and_bare() {
        let v: Vec<_> = super::kv(r#"a=1 b="x y" junk c='q' d= e"#).collect();
        assert_eq!(v, [("a", "1"), ("b", "x y"), ("c", "q"), ("d", "")]);
    }

    #[test]
    fn escaped_quotes_and_backslashes() {
        // FortiGate escapes quotes in values; beats' utm test line has `filename="sample\\test.xls"`.
        let v: Vec<_> =
            super::kv(r#"msg="User \"bob\" denied" filename="sample\\test.xls" x=1"#).collect();
        assert_eq!(
            v,
            [
                ("msg", r#"User \"bob\" denied"#),
                ("filename", r"sample\\test.xls"),
                ("x", "1")
            ]
        );
        let v: Vec<_> = super::kv(r#"a="tail\"#).collect();
        assert_eq!(v, [("a", r"tail\")]);
    }
}
