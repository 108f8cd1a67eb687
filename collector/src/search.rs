//! `logship-collector search`: streams matching records from the store as JSON lines.
//!
//! Output per record: `event_id`, `agent`, `host`, `input`, `path`, `observed_time` (RFC 3339),
//! and `raw` when the bytes are UTF-8, else `raw_b64` (standard base64, lossless); plus
//! `truncated_from` for cut lines, `kind: "gap"` for gap records and `fields` when normalized.

use std::io::Write;

use anyhow::{Context, Result, bail};
use base64::Engine;
use logship_normalize::FieldFilter;
use logship_store::{Query, RecordView};
use serde_json::{Map, Value, json};

use crate::cli::SearchArgs;

/// Runs a search and writes its output to `out`. Returns the number of matches.
pub fn run(args: &SearchArgs, out: &mut dyn Write) -> Result<u64> {
    let now = jiff::Timestamp::now();
    let filters = args
        .filters
        .iter()
        .map(|f| FieldFilter::parse(f).with_context(|| format!("--where {f:?}")))
        .collect::<Result<Vec<_>>>()?;
    // With field filters the store cannot count matches for us: apply the limit here.
    let store_limit = if filters.is_empty() { args.limit } else { None };
    let limit = args.limit.unwrap_or(usize::MAX) as u64;
    let mut lookup = crate::normalize::FieldsLookup::new(&args.data_dir);
    let query = Query {
        since_ns: args
            .since
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()?,
        until_ns: args
            .until
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()?,
        host: args.host.clone(),
        input: args.input.clone(),
        agent: args.agent.clone(),
        contains: args.contains.clone(),
        limit: store_limit,
    };
    let dir = crate::serve::store_dir(&args.data_dir);
    if !dir.try_exists()? {
        bail!(
            "{} holds no store (run the collector first)",
            args.data_dir.display()
        );
    }
    let mut matched = 0u64;
    let mut failure = None;
    let mut emit = |r: &RecordView<'_>| {
        // Fields are looked up (or computed) only when they are filtered on or printed.
        let fields = if filters.is_empty() && args.count {
            None
        } else {
            lookup.fields(r)
        };
        if !filters.is_empty()
            && !filters
                .iter()
                .all(|f| f.matches(fields.unwrap_or(&Map::new())))
        {
            return true;
        }
        matched += 1;
        if args.count {
            return matched < limit;
        }
        let line = record_json(r, fields);
        let written = serde_json::to_writer(&mut *out, &line)
            .map_err(anyhow::Error::from)
            .and_then(|()| out.write_all(b"\n").map_err(anyhow::Error::from));
        match written {
            Ok(()) => matched < limit,
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    };
    let stats = logship_store::search(&dir, &query, &mut emit).context("searching the store")?;
    if let Some(e) = failure {
        return Err(e.context("writing search output"));
    }
    for c in &stats.corrupt {
        tracing::error!(segment = %c.segment.display(), offset = c.offset, reason = %c.reason,
            "Skipped a corrupt store block.");
    }
    if args.count {
        writeln!(out, "{matched}")?;
    }
    out.flush()?;
    Ok(matched)
}

fn record_json(r: &RecordView<'_>, fields: Option<&Map<String, Value>>) -> Value {
    let mut m = Map::new();
    m.insert("event_id".into(), json!(r.event_id));
    m.insert("agent".into(), json!(r.agent));
    m.insert("host".into(), json!(r.host));
    m.insert("input".into(), json!(r.input));
    m.insert("path".into(), json!(r.path));
    m.insert("observed_time".into(), json!(format_ns(r.observed_ns)));
    m.insert("seq".into(), json!(r.seq));
    match std::str::from_utf8(r.raw) {
        Ok(text) => m.insert("raw".into(), json!(text)),
        Err(_) => m.insert(
            "raw_b64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(r.raw)),
        ),
    };
    if r.truncated_from > 0 {
        m.insert("truncated_from".into(), json!(r.truncated_from));
    }
    if r.kind == 1 {
        m.insert("kind".into(), json!("gap"));
    }
    if let Some(fields) = fields {
        m.insert("fields".into(), Value::Object(fields.clone()));
    }
    Value::Object(m)
}

/// RFC 3339 text of a Unix-nanosecond time.
pub fn format_ns(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ns.to_string())
}

/// Parses RFC 3339 (`2026-11-25T10:00:00Z`) or a relative time (`-90s`, `-15m`, `-1h`, `-7d`,
/// `now`) into Unix nanoseconds.
pub fn parse_time(text: &str, now: jiff::Timestamp) -> Result<i64> {
    let now_ns = now.as_nanosecond() as i64;
    if text == "now" {
        return Ok(now_ns);
    }
    if let Some(rel) = text.strip_prefix('-') {
        let split = rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len());
        let (num, unit) = rel.split_at(split);
        let n: i64 = num
            .parse()
            .with_context(|| format!("bad relative time {text:?}"))?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => bail!("bad unit in {text:?}: use s, m, h, d or w"),
        };
        return Ok(now_ns - n * secs * 1_000_000_000);
    }
    let t: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("{text:?} is neither RFC 3339 nor a relative time like -1h"))?;
    Ok(t.as_nanosecond() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relative_and_absolute_times() {
        let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let hour = 3_600_000_000_000i64;
        assert_eq!(
            parse_time("-1h", now).unwrap(),
            now.as_nanosecond() as i64 - hour
        );
        assert_eq!(
            parse_time("-2d", now).unwrap(),
            now.as_nanosecond() as i64 - 48 * hour
        );
        assert_eq!(
            parse_time("2026-11-25T11:00:00Z", now).unwrap(),
            now.as_nanosecond() as i64 - hour
        );
        assert!(parse_time("-1y", now).is_err());
        assert!(parse_time("yesterday", now).is_err());
    }
}
