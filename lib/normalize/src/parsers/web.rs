//! Squid native `access.log` and nginx/Apache common/combined access logs.
//!
//! ```text
//! squid: EPOCH.MS ELAPSED CLIENT RESULT/STATUS BYTES METHOD URL USER HIER/PEER TYPE
//! web:   CLIENT IDENT USER [dd/Mon/yyyy:hh:mm:ss ±zzzz] "METHOD URL PROTO" STATUS BYTES ["REF" "UA"]
//! squid `logformat combined`: the web line followed by ` RESULT:HIERARCHY` (`%Ss:%Sh`)
//! ```
//!
//! A web line ending in a squid `RESULT:HIERARCHY` code pair (`TCP_MISS:HIER_DIRECT`) is squid's
//! `combined` format: dataset `squid` with `event.action` ← RESULT; the access-log parser declines
//! it, so exactly one parser claims it.
//!
//! Proxy requests name their destination: an absolute URI (`GET http://host[:port]/…`, squid and
//! nginx/Apache as forward proxies) or a `CONNECT host:port` authority. Both give `url.domain`
//! (`url.scheme`, `url.port` when written); an origin-form path (`GET /x`) gives neither.
//!
//! One squid request gives the same fields in either squid format (checked on lines of one real
//! squid run written both ways): squid's size `%<st` is the whole reply, headers included, so it
//! is `http.response.bytes` in both (a web server's combined size stays
//! `http.response.body.bytes`); a transaction that ended before any request (`NONE_NONE/000`,
//! `"- error:transaction-end-before-headers NONE/0.0" 0`) keeps its pseudo-URL in `url.original`
//! and has no method and no status code (squid writes 0: no reply was sent). Squid escapes no
//! quote in `combined` and drops the URL's whitespace, so its request is read by its spaces and
//! its user agent runs to the quote before the code pair: a client's quotes cannot end a field
//! early, plant a status or hide the line. A `407` is a proxy
//! refusing a request for want of credentials (RFC 9110 §15.5.8), so it is `event.type` denied
//! in every format.

use std::borrow::Cow;

use crate::fields::Fields;
use crate::needle::{Needle, needle};
use crate::time;

/// The end of a common/combined line's stamp and the request's opening quote.
static STAMP_END: Needle = needle!("] \"");

pub(crate) fn parse_squid(line: &str) -> Option<Fields> {
    let mut t = line.split_ascii_whitespace();
    let ts = time::epoch(t.next()?)?;
    let _elapsed: u64 = t.next()?.parse().ok()?;
    let client = t.next()?;
    let (result, status) = t.next()?.split_once('/')?;
    let bytes = t.next()?;
    let method = t.next()?;
    let url = t.next()?;
    let user = t.next().unwrap_or("-");
    let peer = t.next().unwrap_or("-");
    if !result.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        || status.parse::<u16>().is_err()
    {
        return None;
    }
    let mut f = Fields::new();
    f.ts("@timestamp", ts);
    f.ip("source.ip", client)
        .s("user.name", user)
        .s("url.original", url);
    f.s("http.request.method", method);
    status_code(&mut f, status);
    url_parts(method, url, &mut f);
    f.n("http.response.bytes", bytes).s("event.action", result);
    f.s("observer.vendor", "Squid")
        .s("observer.product", "Squid");
    if let Some((_, p)) = peer.split_once('/') {
        f.ip("destination.ip", p);
    }
    outcome(&mut f, status, result.contains("DENIED"));
    Some(f)
}

/// `http.response.status_code`, unless 0 (squid's "no reply was sent").
fn status_code(f: &mut Fields, status: &str) {
    if status.parse::<u16>().is_ok_and(|c| c != 0) {
        f.n("http.response.status_code", status);
    }
}

fn outcome(f: &mut Fields, status: &str, denied: bool) {
    let code: u16 = status.parse().unwrap_or(0);
    let typ = if denied || code == 407 {
        "denied"
    } else {
        "access"
    };
    let out = match code {
        100..=399 => "success",
        400..=599 => "failure",
        _ => "",
    };
    f.event("web", typ, out);
}

/// `RESULT` of a trailing squid `RESULT:HIERARCHY` pair (`TCP_DENIED:HIER_NONE`).
fn squid_trailer(line: &str) -> Option<&str> {
    let last = line.trim_end().rsplit(' ').next()?;
    let (ss, sh) = last.split_once(':')?;
    let code = |c: &str| {
        c.len() >= 4
            && c.bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
    };
    (code(ss) && code(sh) && (ss.contains('_') || sh.contains('_'))).then_some(ss)
}

/// A common/combined access line: squid's `logformat combined` when it ends in squid's
/// `RESULT:HIERARCHY` pair (dataset `squid`, see the module doc), else an ordinary access log
/// line (`web.access`); `squid` and `access` say which of the two the caller wants tried. The
/// trailing pair decides, so a line is only ever claimed by one of them.
pub(crate) fn parse_clf(line: &str, squid: bool, access: bool) -> Option<(&'static str, Fields)> {
    // Both forms need the stamp's `] "` (see [`stamp_end`]): one SIMD scan turns away the
    // syslog lines that reach this test (every line no other whole-line format took).
    if !STAMP_END.is_in(line) {
        return None;
    }
    match squid_trailer(line) {
        Some(result) if squid => {
            let mut f = self::access(line, Some(result))?;
            f.s("event.action", result)
                .s("observer.vendor", "Squid")
                .s("observer.product", "Squid");
            Some(("squid", f))
        }
        None if access => self::access(line, None).map(|f| ("web.access", f)),
        _ => None,
    }
}

/// A common/combined line; `squid` is the `%Ss` of squid's `combined` form, whose size is the
/// whole reply and whose quoted fields are not escaped (see [`squid_request`]).
fn access(line: &str, squid: Option<&str>) -> Option<Fields> {
    let (client, rest) = line.split_once(' ')?;
    let open = rest.find('[')?;
    // "IDENT USER " (or just "USER " in some variants) before the stamp.
    let user = rest[..open].trim_end().rsplit(' ').next().unwrap_or("-");
    let rest = &rest[open + 1..];
    let (stamp, rest) = stamp_end(rest)?;
    let ts = time::clf(stamp)?;
    let (request, rest) = match squid {
        Some(_) => squid_request(rest).map(|(r, rest)| (Cow::Borrowed(r), rest))?,
        None => quoted(rest)?,
    };
    let mut t = rest.split_ascii_whitespace();
    let status = t.next()?;
    status.parse::<u16>().ok()?;
    let bytes = t.next().unwrap_or("-");
    let mut f = Fields::new();
    f.ts("@timestamp", ts);
    if f.ip("source.ip", client).has("source.ip") {
    } else {
        f.s("source.domain", client);
    }
    let size = match squid {
        Some(_) => "http.response.bytes",
        None => "http.response.body.bytes",
    };
    f.s("user.name", user).n(size, bytes);
    status_code(&mut f, status);
    request_fields(&request, &mut f);
    let tail = rest.trim_start().split_once(' ').map(|x| x.1).unwrap_or("");
    let tail = tail.trim_start().split_once(' ').map(|x| x.1).unwrap_or("");
    if let Some(r) = tail.strip_prefix('"') {
        match squid {
            // `REF" "UA" SS:SH`: squid does not escape quotes, so the referrer ends at the first
            // `" "` and the user agent runs to the last quote before the code pair.
            Some(_) => {
                let body = r.trim_end().rsplit_once(' ').map_or("", |x| x.0);
                if let Some((referrer, ua)) = body.split_once("\" \"") {
                    f.s("http.request.referrer", referrer);
                    f.s("user_agent.original", ua.strip_suffix('"').unwrap_or(ua));
                }
            }
            None => {
                if let Some((referrer, after)) = quoted(r) {
                    f.s("http.request.referrer", &referrer);
                    if let Some(ua) = after.trim_start().strip_prefix('"').and_then(quoted) {
                        f.s("user_agent.original", &ua.0);
                    }
                }
            }
        }
    }
    outcome(&mut f, status, squid.is_some_and(|r| r.contains("DENIED")));
    Some(f)
}

/// Squid's `"%rm %ru HTTP/%rv"` (the opening quote consumed) and the rest after its closing
/// quote. Squid removes whitespace from the URL it logs and escapes no quote in it (a client's
/// `GET http://h/a" 200 …` is logged as `a"200…`), so the request is `METHOD URL VERSION"`, read
/// by its spaces: a quote in the URL cannot end it or plant a status.
fn squid_request(s: &str) -> Option<(&str, &str)> {
    let m = s.find(' ')?;
    let u = m + 1 + s[m + 1..].find(' ')?;
    let q = u + 1 + s[u + 1..].find('"')?;
    Some((&s[..q], &s[q + 1..]))
}

fn request_fields(req: &str, f: &mut Fields) {
    let mut p = req.splitn(3, ' ');
    let (Some(m), Some(url)) = (p.next(), p.next()) else {
        return;
    };
    // squid writes `-` for the method of a transaction that never sent one.
    if m != "-" && (!m.bytes().all(|b| b.is_ascii_uppercase()) || m.is_empty()) {
        return;
    }
    f.s("http.request.method", m).s("url.original", url);
    url_parts(m, url, f);
    if let Some(v) = p.next().and_then(|v| v.strip_prefix("HTTP/")) {
        f.s("http.version", v);
    }
}

/// `rest` split around its first `] "` (the end of the stamp and the request's opening quote),
/// found by the `]`s rather than a substring search.
fn stamp_end(rest: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(i) = rest[from..].find(']') {
        let at = from + i;
        if rest.as_bytes()[at + 1..].starts_with(b" \"") {
            return Some((&rest[..at], &rest[at + 3..]));
        }
        from = at + 1;
    }
    None
}

/// Text up to the next unescaped '"' (the opening quote already consumed); `\"` kept as `"`.
/// A backslash hides the byte after it from the search: `\"` does not end the text.
fn quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    loop {
        // Past the end (a trailing backslash skipped it) there is no closing quote.
        let at = i + memchr::memchr2(b'\\', b'"', b.get(i..)?)?;
        if b[at] == b'\\' {
            escaped = true;
            i = at + 2;
            continue;
        }
        let text = &s[..at];
        let text = if escaped {
            Cow::Owned(text.replace("\\\"", "\""))
        } else {
            Cow::Borrowed(text)
        };
        return Some((text, &s[at + 1..]));
    }
}

/// `url.domain`/`url.port`/`url.scheme` of a proxy request's target (see the module doc).
fn url_parts(method: &str, url: &str, f: &mut Fields) {
    let (scheme, authority) = match url.split_once("://") {
        Some((sch, rest)) if !sch.is_empty() && sch.bytes().all(|b| b.is_ascii_alphabetic()) => {
            (sch, rest.split(['/', '?', '#']).next().unwrap_or(""))
        }
        Some(_) => return,
        None if method == "CONNECT" => ("", url),
        None => return,
    };
    let authority = authority.rsplit_once('@').map_or(authority, |x| x.1);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':').unwrap_or("")),
            None => return,
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, ""),
        },
    };
    let port_ok = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    // A CONNECT target is `host:port`; anything else (squid's `error:method-not-allowed`) is not.
    if host.is_empty()
        || (scheme.is_empty() && !port_ok)
        || (!port.is_empty() && !port_ok)
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return;
    }
    f.s("url.domain", &host.to_ascii_lowercase())
        .s("url.scheme", scheme)
        .n("url.port", port);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `quoted` as it was written before it searched with `memchr2` (byte by byte).
    fn quoted_bytewise(s: &str) -> Option<(Cow<'_, str>, &str)> {
        let b = s.as_bytes();
        let (mut i, mut escaped) = (0, false);
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                b'"' => {
                    let text = &s[..i];
                    let text = if escaped {
                        Cow::Owned(text.replace("\\\"", "\""))
                    } else {
                        Cow::Borrowed(text)
                    };
                    return Some((text, &s[i + 1..]));
                }
                _ => i += 1,
            }
        }
        None
    }

    #[test]
    fn quoted_ends_where_the_bytewise_scan_ends() {
        for s in [
            "",
            "\"",
            "GET / HTTP/1.1\" 200 5",
            "a\\\"b\" rest",
            "a\\\\\" rest",
            "trailing backslash\\",
            "trailing backslash then quote\\\"",
            "no quote at all",
            "ünï\\ç\"ödé\" x",
            "\\\\\\\"\" x",
        ] {
            assert_eq!(quoted(s), quoted_bytewise(s), "{s:?}");
        }
    }
}
