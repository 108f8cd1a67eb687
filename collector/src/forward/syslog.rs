//! RFC 5424 syslog messages with RFC 5425 / RFC 6587 octet-counting framing:
//!
//! ```text
//! frame := MSG-LEN SP SYSLOG-MSG
//! SYSLOG-MSG := <PRI>1 SP TIMESTAMP SP HOSTNAME SP "logship" SP "-" SP MSGID SP SD SP MSG
//! SD := [logship@32473 event_id="…" agent="…" host="…" input="…" seq="…"]
//!       [fields@32473 NAME="VALUE" …]        (only when the record has fields)
//! MSG := the raw record, byte for byte (no BOM)
//! ```
//!
//! - PRI: `log.syslog.facility.code` and `log.syslog.severity.code` when the parser found them,
//!   else user.notice (13). TIMESTAMP: the event time (else observed), UTC, microseconds.
//!   HOSTNAME and MSGID (the input) are reduced to printable ASCII without spaces ("-" if
//!   empty), as the header grammar demands; the exact values are in the SD.
//! - SD-PARAM values escape `"`, `\` and `]` with a backslash (RFC 5424 §6.3.3); names are the
//!   ECS names when they are valid SD-NAMEs (1-32 printable ASCII, no `=`, space, `]`, `"`);
//!   fields whose names are not go into one `_json` param holding them as a JSON object.
//!   Non-string values are their JSON text.
//! - 32473 is the private enterprise number IANA reserves for documentation (RFC 5612); the SD
//!   IDs are stable so a SIEM parser can key on them.
//! - Invariant: the frame length counts every byte, so a record may hold newlines, NULs,
//!   `]`, quotes or invalid UTF-8 and still cannot end its frame, start another record, or add
//!   a field.

use std::io::Write;

use serde_json::Value;

use super::encode::Encoder;
use super::record::ForwardRecord;

/// SD-ID of the record's identity element.
pub(crate) const SD_ID: &str = "logship@32473";
/// SD-ID of the normalized fields element.
pub(crate) const SD_FIELDS: &str = "fields@32473";
/// Default PRI: facility user (1), severity notice (5).
const DEFAULT_PRI: u64 = 13;

/// The RFC 5424 encoder.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Syslog;

impl Encoder for Syslog {
    fn encode(&self, r: &ForwardRecord<'_>, out: &mut Vec<u8>) {
        let mut msg = Vec::with_capacity(r.raw.len() + 256);
        let pri = pri(r);
        write!(msg, "<{pri}>1 {} ", timestamp(r.time_ns)).expect("writing to a Vec never fails");
        header_token(&mut msg, r.host, 255);
        msg.extend_from_slice(b" logship - ");
        header_token(&mut msg, r.input, 32);
        msg.extend_from_slice(b" [");
        msg.extend_from_slice(SD_ID.as_bytes());
        param(&mut msg, "event_id", r.event_id);
        param(&mut msg, "agent", r.agent);
        param(&mut msg, "host", r.host);
        param(&mut msg, "input", r.input);
        param(&mut msg, "seq", &r.seq.to_string());
        msg.push(b']');
        if !r.fields.is_empty() {
            msg.extend_from_slice(b"[");
            msg.extend_from_slice(SD_FIELDS.as_bytes());
            let mut odd = serde_json::Map::new();
            for (name, value) in r.fields {
                if !sd_name(name) {
                    odd.insert(name.clone(), value.clone());
                    continue;
                }
                match value {
                    Value::String(s) => param(&mut msg, name, s),
                    v => param(&mut msg, name, &v.to_string()),
                }
            }
            if !odd.is_empty() {
                param(&mut msg, "_json", &Value::Object(odd).to_string());
            }
            msg.push(b']');
        }
        msg.push(b' ');
        msg.extend_from_slice(r.raw);
        write!(out, "{} ", msg.len()).expect("writing to a Vec never fails");
        out.extend_from_slice(&msg);
    }
}

fn pri(r: &ForwardRecord<'_>) -> u64 {
    let code = |name: &str| r.fields.get(name).and_then(Value::as_u64);
    match (
        code("log.syslog.facility.code"),
        code("log.syslog.severity.code"),
    ) {
        (Some(f), Some(s)) if f <= 23 && s <= 7 => f * 8 + s,
        (None, Some(s)) if s <= 7 => 8 + s,
        _ => DEFAULT_PRI,
    }
}

pub(super) fn timestamp(ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        Err(_) => "-".to_string(),
    }
}

/// A header field: printable ASCII (33-126) only, at most `max` bytes, "-" when empty.
pub(super) fn header_token(out: &mut Vec<u8>, value: &str, max: usize) {
    let start = out.len();
    out.extend(
        value
            .bytes()
            .map(|b| if (33..=126).contains(&b) { b } else { b'_' })
            .take(max),
    );
    if out.len() == start {
        out.push(b'-');
    }
}

/// Whether `name` is a valid SD-NAME (PARAM-NAME).
fn sd_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
}

/// ` name="value"` with `"`, `\` and `]` escaped.
fn param(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for &b in value.as_bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    /// Splits one octet-counted frame: (message, rest).
    fn frame(buf: &[u8]) -> (&[u8], &[u8]) {
        let sp = buf.iter().position(|b| *b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
        buf[sp + 1..].split_at(len)
    }

    #[test]
    fn hostile_raw_text_stays_inside_its_frame_and_its_msg() {
        let mut fields = Map::new();
        fields.insert("user.name".into(), json!("ro\"ot]\\"));
        fields.insert("source.port".into(), json!(22));
        fields.insert(
            "a.very.long.field.name.beyond.thirty.two".into(),
            json!("x"),
        );
        let raw = "evil\n12 <13>1 forged] x=\"y\" \\ 日本語\r\n".as_bytes();
        let r = ForwardRecord {
            event_id: "00ff",
            agent: "gw",
            host: "gw host",
            input: "auth",
            seq: 7,
            time_ns: 1_714_521_600_123_456_789,
            raw,
            fields: &fields,
        };
        let mut out = Vec::new();
        Syslog.encode(&r, &mut out);
        Syslog.encode(&r, &mut out);
        let (first, rest) = frame(&out);
        let (second, rest) = frame(rest);
        assert!(rest.is_empty());
        assert_eq!(first, second);
        let text = String::from_utf8(first.to_vec()).unwrap();
        assert!(text.starts_with("<13>1 2024-05-01T00:00:00.123456Z gw_host logship - auth [logship@32473 event_id=\"00ff\" agent=\"gw\" host=\"gw host\" input=\"auth\" seq=\"7\"][fields@32473 "), "{text}");
        assert!(text.contains(r#"user.name="ro\"ot\]\\""#), "{text}");
        assert!(text.contains(r#"source.port="22""#), "{text}");
        assert!(
            text.contains(r#"_json="{\"a.very.long.field.name.beyond.thirty.two\":\"x\"}""#),
            "{text}"
        );
        assert!(first.ends_with(raw));
    }
}
