//! `key=value` scanner for FortiGate, netfilter and auditd bodies: values may be double- or
//! single-quoted; unquoted values end at the next space.

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
                Some(q @ (b'"' | b'\'')) => match memchr::memchr(*q, &rb[1..]) {
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

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_and_bare() {
        let v: Vec<_> = super::kv(r#"a=1 b="x y" junk c='q' d= e"#).collect();
        assert_eq!(v, [("a", "1"), ("b", "x y"), ("c", "q"), ("d", "")]);
    }
}
