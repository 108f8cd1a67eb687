//! Syslog framing: strips RFC 3164 file/wire headers and RFC 5424 headers so parsers see the message.
//!
//! ```text
//! [<PRI>]Mmm dd hh:mm:ss [<fac.sev>] [HOST] TAG[PID]: MSG        (BSD, no year, agent zone)
//! [<PRI>]Mmm dd yyyy hh:mm:ss HOST: MSG                          (Cisco, with year, agent zone)
//! @4000000063a1b2c3xxxxxxxx TAG: MSG                             (daemontools TAI64N, UTC)
//! [<PRI>]YYYY-MM-DDThh:mm:ss[.f]±hh:mm HOST TAG[PID]: MSG       (ISO 8601 file format)
//! [<PRI>]YYYY-MM-DD hh:mm:ss[.f]±hhmm  HOST TAG[PID]: MSG       (space-separated ISO with zone;
//!                                                               macOS `log show --style syslog`)
//! <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD...]|- MSG          (RFC 5424)
//! <PRI>PAYLOAD                                                  (PRI, no header: FortiGate)
//! ```
//! A token after the host that is not `name:` or `name[pid]:` leaves `program` empty and belongs to
//! the message (UniFi firewall lines do this).
//!
//! One layer for every syslog-borne parser: a relayed line whose message starts with another
//! header (`<PRI>` or a stamp; up to [`MAX_NEST`] levels) is framed again and the innermost header
//! wins (origin host and time); rsyslog's `message repeated N times: [ MSG ]` is unwrapped so
//! parsers see MSG and `repeat` carries N (→ `event.count`). A space-separated ISO stamp counts only
//! with a zone (`Z`/`±hh[:]mm`): dpkg and OpenVPN write zone-less ones that are not syslog.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::time;

/// A syslog header split off a line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub(crate) ts: Option<Timestamp>,
    pub(crate) host: &'a str,
    pub(crate) program: &'a str,
    pub(crate) pid: &'a str,
    pub(crate) msg: &'a str,
    /// N of an unwrapped `message repeated N times: [ ... ]` (0 when not wrapped).
    pub(crate) repeat: u32,
}

/// Relay headers framed again at most this many times.
const MAX_NEST: usize = 3;

/// Splits a syslog header; `None` when the line does not start like syslog.
pub(crate) fn parse<'a>(line: &'a str, tz: &TimeZone, obs: Timestamp) -> Option<Frame<'a>> {
    let mut fr = one(line, tz, obs)?;
    for _ in 0..MAX_NEST {
        if fr.program.is_empty()
            && starts_like_header(fr.msg)
            && let Some(inner) = one(fr.msg, tz, obs)
        {
            fr = Frame {
                ts: inner.ts.or(fr.ts),
                host: if inner.host.is_empty() {
                    fr.host
                } else {
                    inner.host
                },
                ..inner
            };
        } else {
            break;
        }
    }
    if let Some((n, inner)) = repeated(fr.msg) {
        fr.msg = inner;
        fr.repeat = n;
    }
    Some(fr)
}

/// `<digits>` or a BSD/ISO stamp at the start (cheap test before re-framing a message).
fn starts_like_header(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(b'<') => b.get(1).is_some_and(u8::is_ascii_digit),
        Some(c) if c.is_ascii_digit() => b.len() > 10 && b[4] == b'-' && b[7] == b'-',
        Some(_) => b.len() > 15 && time::month(b).is_some() && b[3] == b' ',
        None => false,
    }
}

/// rsyslog's repeat reduction: `message repeated N times: [ MSG]` → (N, MSG).
fn repeated(msg: &str) -> Option<(u32, &str)> {
    let r = msg.strip_prefix("message repeated ")?;
    let (n, r) = r.split_once(' ')?;
    let n: u32 = n.parse().ok()?;
    let inner = r.strip_prefix("times: [")?.strip_suffix(']')?;
    Some((n, inner.trim_start_matches(' ')))
}

/// One header level.
fn one<'a>(line: &'a str, tz: &TimeZone, obs: Timestamp) -> Option<Frame<'a>> {
    let s = strip_pri(line);
    let had_pri = s.len() != line.len();
    if let Some(rest) = s.strip_prefix("1 ")
        && had_pri
    {
        return rfc5424(rest, tz);
    }
    let Some((ts, rest)) = stamp(s, tz, obs) else {
        // `<PRI>` then the payload (FortiGate's own format has no header).
        return had_pri.then_some(Frame {
            ts: None,
            host: "",
            program: "",
            pid: "",
            msg: s.trim_start_matches(' '),
            repeat: 0,
        });
    };
    let rest = skip_facility(rest.trim_start_matches(' '));
    Some(header(ts, rest))
}

fn strip_pri(line: &str) -> &str {
    let b = line.as_bytes();
    if b.first() == Some(&b'<')
        && let Some(e) = b.iter().take(6).position(|c| *c == b'>')
        && e > 1
        && b[1..e].iter().all(u8::is_ascii_digit)
    {
        return &line[e + 1..];
    }
    line
}

/// BSD, ISO or TAI64N stamp at the start of `s`; returns the rest after it.
fn stamp<'a>(s: &'a str, tz: &TimeZone, obs: Timestamp) -> Option<(Option<Timestamp>, &'a str)> {
    let b = s.as_bytes();
    // daemontools/s6/runit `@4000000063a1b2c3xxxxxxxx`: a TAI64N label (2^62 + TAI seconds, then
    // nanoseconds); UTC is taken as TAI − 10 s, as daemontools' own tai64nlocal does.
    if b.first() == Some(&b'@')
        && b.get(25) == Some(&b' ')
        && b[1..25].iter().all(u8::is_ascii_hexdigit)
    {
        let secs = u64::from_str_radix(&s[1..17], 16).ok()?;
        let nanos = u32::from_str_radix(&s[17..25], 16).ok()?;
        let unix = i64::try_from(secs.checked_sub(1u64 << 62)?).ok()? - 10;
        let ts = Timestamp::new(unix, i32::try_from(nanos).ok()?).ok();
        return Some((ts, &s[25..]));
    }
    if b.len() >= 15
        && let Some(mon) = time::month(b)
        && b[3] == b' '
    {
        let mut i = 4;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        let ds = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let day: i8 = s.get(ds..i)?.parse().ok()?;
        // Cisco `logging timestamp` with a year: `Oct 20 2019 15:15:15`.
        if b.get(i) == Some(&b' ')
            && b.get(i + 5) == Some(&b' ')
            && b.get(i + 1..i + 5)
                .is_some_and(|y| y.iter().all(u8::is_ascii_digit))
        {
            let year: i16 = s.get(i + 1..i + 5)?.parse().ok()?;
            let t = time::hms(b.get(i + 6..i + 14)?)?;
            let dt = jiff::civil::DateTime::new(year, mon, day, t.0, t.1, t.2, t.3).ok()?;
            return Some((time::civil(dt, tz), s.get(i + 14..)?));
        }
        let t = time::hms(b.get(i + 1..i + 9)?)?;
        if b.get(i) != Some(&b' ') {
            return None;
        }
        return Some((time::bsd(mon, day, t, tz, obs), s.get(i + 9..)?));
    }
    if b.len() >= 19 && b[0].is_ascii_digit() && b[4] == b'-' && b[10] == b'T' {
        let end = memchr::memchr(b' ', b)?;
        return Some((time::iso(&s[..end], tz), &s[end..]));
    }
    if b.len() >= 20 && b[0].is_ascii_digit() && b[4] == b'-' && b[10] == b' ' && b[13] == b':' {
        let end = 11 + memchr::memchr(b' ', &b[11..])?;
        let st = &s[..end];
        if !st.as_bytes().get(19..).is_some_and(has_zone) {
            return None;
        }
        return Some((Some(time::iso(st, tz)?), &s[end..]));
    }
    None
}

/// `[.frac]` then `Z` or `±hh[:mm]` after `hh:mm:ss`.
fn has_zone(tail: &[u8]) -> bool {
    let mut i = 0;
    if tail.first() == Some(&b'.') {
        i = 1;
        while tail.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    match tail.get(i) {
        Some(b'Z' | b'z') => i + 1 == tail.len(),
        Some(b'+' | b'-') => {
            time::parse_offset(std::str::from_utf8(&tail[i..]).unwrap_or("")).is_some()
        }
        _ => false,
    }
}

/// FreeBSD `-v` adds `<facility.severity>` after the stamp.
fn skip_facility(s: &str) -> &str {
    if s.starts_with('<')
        && let Some(e) = s.find("> ")
        && e < 24
    {
        return &s[e + 2..];
    }
    s
}

fn header(ts: Option<Timestamp>, rest: &str) -> Frame<'_> {
    let (first, after) = split_tok(rest);
    if let Some((program, pid)) = tag(first) {
        return Frame {
            ts,
            host: "",
            program,
            pid,
            msg: after,
            repeat: 0,
        };
    }
    let (second, after2) = split_tok(after);
    if let Some((program, pid)) = tag(second) {
        return Frame {
            ts,
            host: first,
            program,
            pid,
            msg: after2,
            repeat: 0,
        };
    }
    // Some relays repeat the host ("host host prog[pid]: msg").
    let (third, after3) = split_tok(after2);
    match tag(third) {
        Some((program, pid)) if second == first => Frame {
            ts,
            host: first,
            program,
            pid,
            msg: after3,
            repeat: 0,
        },
        _ => Frame {
            ts,
            host: first,
            program: "",
            pid: "",
            msg: after,
            repeat: 0,
        },
    }
}

fn split_tok(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(' ');
    match memchr::memchr(b' ', s.as_bytes()) {
        Some(e) => (&s[..e], s[e + 1..].trim_start_matches(' ')),
        None => (s, ""),
    }
}

/// `name:`, `name[pid]:` or `[name]:` → (name, pid).
fn tag(tok: &str) -> Option<(&str, &str)> {
    if let Some(inner) = tok.strip_prefix('[').and_then(|x| x.strip_suffix(']'))
        && inner
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_')
        && !inner.is_empty()
    {
        return Some((inner, ""));
    }
    let t = tok.strip_suffix(':')?;
    if t.is_empty() {
        return None;
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return Some((inner, ""));
    }
    if let Some(open) = t.find('[')
        && let Some(pid) = t[open + 1..].strip_suffix(']')
    {
        return Some((&t[..open], pid));
    }
    if t.contains(['[', ']', '=']) {
        return None;
    }
    Some((t, ""))
}

fn rfc5424<'a>(rest: &'a str, tz: &TimeZone) -> Option<Frame<'a>> {
    let mut it = rest.splitn(5, ' ');
    let ts = it.next()?;
    let host = it.next()?;
    let app = it.next()?;
    let pid = it.next()?;
    let tail = it.next().unwrap_or("");
    let (_msgid, tail) = split_tok(tail);
    let msg = skip_sd(tail);
    let nil = |s: &'a str| if s == "-" { "" } else { s };
    Some(Frame {
        ts: time::iso(ts, tz),
        host: nil(host),
        program: nil(app),
        pid: nil(pid),
        msg: msg.strip_prefix('\u{feff}').unwrap_or(msg),
        repeat: 0,
    })
}

/// Skips RFC 5424 structured data (`-` or `[id k="v"]...`), honouring `\]` and quotes.
fn skip_sd(s: &str) -> &str {
    if let Some(r) = s.strip_prefix('-') {
        return r.trim_start_matches(' ');
    }
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    s.get(i.min(s.len())..)
        .unwrap_or("")
        .trim_start_matches(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(l: &str) -> Frame<'_> {
        parse(l, &TimeZone::UTC, "2025-06-01T00:00:00Z".parse().unwrap()).unwrap()
    }

    #[test]
    fn tai64n_and_cisco_year_stamps() {
        let f = p("@400000004c91b044077a9e94 imap-login: Info: Login: user=<a>");
        assert_eq!((f.program, f.msg), ("imap-login", "Info: Login: user=<a>"));
        assert_eq!(f.ts.unwrap().to_string(), "2010-09-16T05:50:50.1254765Z");
        // Labels before 1970 or past i64 seconds are no stamp at all (no panic, no frame).
        let obs = "2025-06-01T00:00:00Z".parse().unwrap();
        for l in [
            "@000000000000000000000000 x: y",
            "@ffffffffffffffffffffffff x: y",
        ] {
            assert!(parse(l, &TimeZone::UTC, obs).is_none(), "{l}");
        }
        let f = p("Oct 20 2019 15:15:15 dev01: %ASA-5-106100: x");
        assert_eq!(
            (f.program, f.ts.unwrap().to_string().as_str()),
            ("dev01", "2019-10-20T15:15:15Z")
        );
    }

    #[test]
    fn bsd_iso_and_5424() {
        let f = p("Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal");
        assert_eq!(
            (f.host, f.program, f.pid, f.msg),
            ("sd-126005", "sshd", "16378", "Invalid user pascal")
        );
        let f = p("Mar  3 00:17:22 [sshd]: User root from 211.188.220.49");
        assert_eq!((f.host, f.program), ("", "sshd"));
        let f = p("Apr  2 17:51:27 <4.3> pancake sshd[55624]: error: PAM");
        assert_eq!(
            (f.host, f.program, f.msg),
            ("pancake", "sshd", "error: PAM")
        );
        let f = p(
            "<35>1 2022-01-19T15:14:32+00:00 OPN audit 24409 - [meta sequenceId=\"4\"] /index.php: x",
        );
        assert_eq!(
            (f.host, f.program, f.msg),
            ("OPN", "audit", "/index.php: x")
        );
        let f = p("Jun 13 23:29:15 UDMP [WAN_LOCAL-D-1] DESCR=\"x\" IN=eth8");
        assert_eq!(
            (f.host, f.program, f.msg),
            ("UDMP", "", "[WAN_LOCAL-D-1] DESCR=\"x\" IN=eth8")
        );
        assert_eq!(
            time::fmt(f.ts.unwrap()),
            "2025-06-13T23:29:15Z".replace("2025", "2024")
        );
    }

    #[test]
    fn pri_without_header_is_payload() {
        let f = p("<189>date=2020-04-23 time=01:16:08 devname=\"fw1\" logid=\"0000000013\"");
        assert_eq!((f.host, f.program), ("", ""));
        assert!(f.msg.starts_with("date=2020-04-23"));
        assert!(f.ts.is_none());
        assert!(parse("date=2020-04-23 x", &TimeZone::UTC, Timestamp::UNIX_EPOCH).is_none());
    }

    #[test]
    fn iso_with_space_needs_a_zone() {
        let f = p("2020-03-24 08:38:42.344447-0700  localhost sshd[2519]: Failed password");
        assert_eq!(
            (f.host, f.program, f.pid, f.msg),
            ("localhost", "sshd", "2519", "Failed password")
        );
        assert_eq!(time::fmt(f.ts.unwrap()), "2020-03-24T15:38:42.344447Z");
        let f = p("2020-03-24 08:38:42+02:00 h cron[1]: x");
        assert_eq!(time::fmt(f.ts.unwrap()), "2020-03-24T06:38:42Z");
        // dpkg / OpenVPN native stamps have no zone: not syslog.
        assert!(
            parse(
                "2025-06-24 14:36:25 startup archives unpack",
                &TimeZone::UTC,
                Timestamp::UNIX_EPOCH
            )
            .is_none()
        );
    }

    #[test]
    fn repeated_and_nested() {
        let f = p("Feb 12 14:10:21 h sshd[1]: message repeated 2 times: [ Failed password x]");
        assert_eq!((f.repeat, f.msg), (2, "Failed password x"));
        let f = p("Feb 12 14:10:21 h sshd[1]: message repeated x times: [ y]");
        assert_eq!(f.repeat, 0);
        let f = p("<13>Mar  1 10:00:00 relay <38>Feb 12 14:10:21 origin sshd[7]: hi");
        assert_eq!(
            (f.host, f.program, f.pid, f.msg),
            ("origin", "sshd", "7", "hi")
        );
        assert_eq!(time::fmt(f.ts.unwrap()), "2025-02-12T14:10:21Z");
        let f = p("<13>Mar  1 10:00:00 relay <189>date=2020-04-23 time=01:16:08");
        assert_eq!(
            (f.host, f.program, f.msg),
            ("relay", "", "date=2020-04-23 time=01:16:08")
        );
        assert_eq!(time::fmt(f.ts.unwrap()), "2025-03-01T10:00:00Z");
        // Depth is bounded: a long chain of headers stops after MAX_NEST re-framings.
        let deep = "<1>".repeat(50) + "x";
        assert!(p(&deep).msg.starts_with('<'));
    }
}
