//! Timestamp parsing shared by parsers: BSD syslog (no year, no zone), ISO 8601, epoch, Apache CLF.
//!
//! Year-less stamps take the year of the observed (arrival) time in the agent's zone, and the previous
//! year when that would put the record more than one day after arrival.

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// Remembers the last parsed agent zone so a stream does not look it up per line.
#[derive(Debug, Default)]
pub(crate) struct TzCache {
    last: Option<(String, TimeZone)>,
}

// === impl TzCache ===

impl TzCache {
    /// The zone named `name` (borrowed: no reference count touched per record).
    pub(crate) fn get(&mut self, name: &str) -> &TimeZone {
        if !matches!(&self.last, Some((n, _)) if n == name) {
            self.last = Some((name.to_owned(), parse_zone(name)));
        }
        &self
            .last
            .get_or_insert_with(|| (name.to_owned(), parse_zone(name)))
            .1
    }
}

/// "UTC", "", "+09:00", "-0700" or an IANA name; anything unknown is UTC.
pub(crate) fn parse_zone(name: &str) -> TimeZone {
    let n = name.trim();
    if n.is_empty() || n.eq_ignore_ascii_case("utc") || n == "Z" {
        return TimeZone::UTC;
    }
    if let Some(off) = parse_offset(n) {
        return TimeZone::fixed(off);
    }
    TimeZone::get(n).unwrap_or(TimeZone::UTC)
}

/// "+09:00", "+0900", "-07", "Z".
pub(crate) fn parse_offset(s: &str) -> Option<Offset> {
    let b = s.as_bytes();
    if s == "Z" || s == "z" {
        return Some(Offset::UTC);
    }
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: Vec<u8> = b[1..].iter().copied().filter(|c| *c != b':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let h = i32::from(digits[0] - b'0') * 10 + i32::from(digits[1] - b'0');
    let m = if digits.len() == 4 {
        i32::from(digits[2] - b'0') * 10 + i32::from(digits[3] - b'0')
    } else {
        0
    };
    Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

pub(crate) fn observed(nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn month(s: &[u8]) -> Option<i8> {
    const M: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let s = s.get(..3)?;
    M.iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .map(|i| i as i8 + 1)
}

/// "hh:mm:ss[.frac]" → (h, m, s, nanos).
pub(crate) fn hms(s: &[u8]) -> Option<(i8, i8, i8, i32)> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let h = two(&s[0..2])?;
    let m = two(&s[3..5])?;
    let sec = two(&s[6..8])?;
    let mut nanos = 0i32;
    if s.len() > 9 && s[8] == b'.' {
        let frac = &s[9..s.len().min(18)];
        if !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for (i, d) in frac.iter().enumerate() {
            nanos += i32::from(d - b'0') * 10i32.pow(8 - i as u32);
        }
    }
    Some((h, m, sec, nanos))
}

fn two(s: &[u8]) -> Option<i8> {
    if s.len() == 2 && s[0].is_ascii_digit() && s[1].is_ascii_digit() {
        Some(((s[0] - b'0') * 10 + (s[1] - b'0')) as i8)
    } else {
        None
    }
}

/// A civil time in `tz` → instant.
pub(crate) fn civil(dt: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_ambiguous_zoned(dt)
        .compatible()
        .ok()
        .map(|z| z.timestamp())
}

/// BSD syslog stamp without a year, in the agent zone.
pub(crate) fn bsd(
    mon: i8,
    day: i8,
    t: (i8, i8, i8, i32),
    tz: &TimeZone,
    obs: Timestamp,
) -> Option<Timestamp> {
    let year = obs.to_zoned(tz.clone()).year();
    let at = |y: i16| -> Option<Timestamp> {
        let dt = DateTime::new(y, mon, day, t.0, t.1, t.2, t.3).ok()?;
        civil(dt, tz)
    };
    let ts = at(year);
    match ts {
        Some(ts) if ts.duration_since(obs) > SignedDuration::from_hours(24) => at(year - 1),
        None => at(year - 1),
        some => some,
    }
}

/// ISO 8601 / RFC 3339, 'T' or ' ' separator, optional fraction and zone (`Z`, `±hh[:]mm`);
/// without a zone it is read in `tz`.
pub(crate) fn iso(s: &str, tz: &TimeZone) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let mut end = 19;
    if b.get(19) == Some(&b'.') {
        end = 20;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    let zone = s.get(end..)?;
    let y: i16 = s.get(0..4)?.parse().ok()?;
    let mo = two(&b[5..7])?;
    let d = two(&b[8..10])?;
    let (h, m, sec, ns) = hms(&b[11..end])?;
    let dt = DateTime::new(y, mo, d, h, m, sec, ns).ok()?;
    if zone.is_empty() {
        return civil(dt, tz);
    }
    civil(dt, &TimeZone::fixed(parse_offset(zone)?))
}

/// FortiOS `eventtime`: epoch in s, ms, µs or ns (by digit count).
pub(crate) fn epoch_auto(s: &str) -> Option<Timestamp> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: i64 = s.parse().ok()?;
    let ns = match s.len() {
        0..=10 => i128::from(v) * 1_000_000_000,
        11..=13 => i128::from(v) * 1_000_000,
        14..=16 => i128::from(v) * 1_000,
        _ => i128::from(v),
    };
    Timestamp::from_nanosecond(ns).ok()
}

/// "1157689312.049" seconds since the epoch.
pub(crate) fn epoch(s: &str) -> Option<Timestamp> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i32;
    for (i, d) in frac.bytes().take(9).enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        nanos += i32::from(d - b'0') * 10i32.pow(8 - i as u32);
    }
    Timestamp::new(secs, nanos).ok()
}

/// Apache/nginx "17/May/2015:10:05:03 +0000" (also Proxmox firewall logs).
pub(crate) fn clf(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let d = two(&b[0..2])?;
    let mo = month(&b[3..6])?;
    let y: i16 = s.get(7..11)?.parse().ok()?;
    let (h, m, sec, _) = hms(&b[12..20])?;
    let off = parse_offset(s.get(20..)?.trim())?;
    civil(
        DateTime::new(y, mo, d, h, m, sec, 0).ok()?,
        &TimeZone::fixed(off),
    )
}

#[cfg(test)]
pub(crate) fn fmt(ts: Timestamp) -> String {
    ts.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsd_year_rolls_back_when_in_future() {
        let obs: Timestamp = "2025-01-01T00:30:00Z".parse().unwrap();
        let ts = bsd(12, 31, (23, 59, 0, 0), &TimeZone::UTC, obs).unwrap();
        assert_eq!(fmt(ts), "2024-12-31T23:59:00Z");
        let ts = bsd(1, 1, (0, 10, 0, 0), &TimeZone::UTC, obs).unwrap();
        assert_eq!(fmt(ts), "2025-01-01T00:10:00Z");
    }

    #[test]
    fn zones_and_spellings() {
        let tokyo = parse_zone("+09:00");
        let obs: Timestamp = "2025-06-01T00:00:00Z".parse().unwrap();
        let ts = bsd(5, 31, (9, 0, 0, 0), &tokyo, obs).unwrap();
        assert_eq!(fmt(ts), "2025-05-31T00:00:00Z");
        let ts = iso("2016-07-08 18:12:51.681641+00:00", &TimeZone::UTC).unwrap();
        assert_eq!(fmt(ts), "2016-07-08T18:12:51.681641Z");
        let ts = iso("2020-03-24 08:38:42.344447-0700", &tokyo).unwrap();
        assert_eq!(fmt(ts), "2020-03-24T15:38:42.344447Z");
        let ts = iso("2022-01-19T15:14:32Z", &tokyo).unwrap();
        assert_eq!(fmt(ts), "2022-01-19T15:14:32Z");
        assert_eq!(
            fmt(epoch_auto("1587230049761513222").unwrap()),
            "2020-04-18T17:14:09.761513222Z"
        );
        let ts = iso("2024-12-15 14:10:00", &tokyo).unwrap();
        assert_eq!(fmt(ts), "2024-12-15T05:10:00Z");
        assert_eq!(
            fmt(epoch("1157689312.049").unwrap()),
            "2006-09-08T04:21:52.049Z"
        );
        assert_eq!(
            fmt(clf("17/May/2015:10:05:03 +0200").unwrap()),
            "2015-05-17T08:05:03Z"
        );
    }
}
