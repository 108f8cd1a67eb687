//! Times and ages on the command line: RFC 3339 (`2026-11-25T10:00:00Z`), `now`, or an age
//! (`90s`, `15m`, `1h`, `7d`, `2w`). An age in `--since`/`--until` means that long ago, with or
//! without a leading `-` (`1h` and `-1h` are the same time).

use anyhow::{Context, Result, bail};

/// Nanoseconds in one unit of an age.
fn unit_ns(unit: &str, text: &str) -> Result<i64> {
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("bad unit in {text:?}: use s, m, h, d or w"),
    };
    Ok(secs * 1_000_000_000)
}

/// Parses an age like `10m` into nanoseconds.
pub fn parse_age(text: &str) -> Result<i64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: i64 = num
        .parse()
        .with_context(|| format!("bad age {text:?}: expected a number and a unit, like 10m"))?;
    n.checked_mul(unit_ns(unit, text)?)
        .with_context(|| format!("age {text:?} is too large"))
}

/// Parses RFC 3339, `now`, or an age (`-1h`, `1h`) into Unix nanoseconds.
pub fn parse_time(text: &str, now: jiff::Timestamp) -> Result<i64> {
    let now_ns = now.as_nanosecond() as i64;
    if text == "now" {
        return Ok(now_ns);
    }
    let age = text.strip_prefix('-').unwrap_or(text);
    if age.starts_with(|c: char| c.is_ascii_digit()) && !age.contains(['-', ':']) {
        return Ok(now_ns - parse_age(age).with_context(|| format!("bad time {text:?}"))?);
    }
    let t: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("{text:?} is neither RFC 3339 nor an age like 1h"))?;
    Ok(t.as_nanosecond() as i64)
}

/// RFC 3339 text of a Unix-nanosecond time.
pub fn format_ns(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ns.to_string())
}

/// "3m 20s"-style rendering of a non-negative age in nanoseconds (two largest units).
pub fn human_age(ns: i64) -> String {
    let s = ns.max(0) / 1_000_000_000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ages_and_absolute_times() {
        let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let hour = 3_600_000_000_000i64;
        let now_ns = now.as_nanosecond() as i64;
        assert_eq!(parse_time("-1h", now).unwrap(), now_ns - hour);
        assert_eq!(
            parse_time("1h", now).unwrap(),
            now_ns - hour,
            "1h works like -1h"
        );
        assert_eq!(parse_time("-2d", now).unwrap(), now_ns - 48 * hour);
        assert_eq!(
            parse_time("2026-11-25T11:00:00Z", now).unwrap(),
            now_ns - hour
        );
        assert!(parse_time("-1y", now).is_err());
        assert!(parse_time("yesterday", now).is_err());
        assert_eq!(parse_age("10m").unwrap(), 600_000_000_000);
        assert!(parse_age("m").is_err() && parse_age("10").is_err());
        assert_eq!(human_age(200_000_000_000), "3m 20s");
    }
}
