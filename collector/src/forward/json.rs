//! Newline-delimited JSON, one object per record, for the `json` format (POSTed by
//! [`super::http`]):
//!
//! ```text
//! {"event_id":"…","@timestamp":"2024-05-01T00:00:00.123456789Z","agent":"…","host":"…",
//!  "input":"…","seq":7,"message":"<raw text>","fields":{"<ECS name>":…}}\n
//! ```
//!
//! - `message` is the raw record as a JSON string: every byte of valid UTF-8 text survives
//!   JSON escaping (newlines, quotes, `\`, control characters are escaped, not dropped). A
//!   record that is not valid UTF-8 has `message` with U+FFFD for the bad bytes plus
//!   `message_base64` holding the exact bytes.
//! - `fields` are the normalized fields, ECS names as keys, values as the normalizer made them.
//! - Invariant: each record is exactly one line (serde_json never emits a raw newline), so no
//!   record can end its line, start another or add a key.

use base64::Engine;
use serde_json::{Map, Value};

use super::encode::Encoder;
use super::record::ForwardRecord;

/// The ndjson encoder.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Json;

impl Encoder for Json {
    fn encode(&self, r: &ForwardRecord<'_>, out: &mut Vec<u8>) {
        let mut o = Map::new();
        o.insert("event_id".into(), r.event_id.into());
        o.insert("@timestamp".into(), timestamp(r.time_ns).into());
        o.insert("agent".into(), r.agent.into());
        o.insert("host".into(), r.host.into());
        o.insert("input".into(), r.input.into());
        o.insert("seq".into(), r.seq.into());
        message(r.raw, &mut o);
        o.insert("fields".into(), Value::Object(r.fields.clone()));
        serde_json::to_writer(&mut *out, &o).expect("a JSON value always serializes");
        out.push(b'\n');
    }
}

/// `message` (and `message_base64` when the raw bytes are not UTF-8).
pub(super) fn message(raw: &[u8], o: &mut Map<String, Value>) {
    match std::str::from_utf8(raw) {
        Ok(text) => {
            o.insert("message".into(), text.into());
        }
        Err(_) => {
            o.insert(
                "message".into(),
                String::from_utf8_lossy(raw).into_owned().into(),
            );
            o.insert(
                "message_base64".into(),
                base64::engine::general_purpose::STANDARD.encode(raw).into(),
            );
        }
    }
}

/// RFC 3339 UTC with nanoseconds.
fn timestamp(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map_or_else(|_| "1970-01-01T00:00:00Z".into(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_record_is_one_line_and_the_raw_text_round_trips() {
        let mut fields = Map::new();
        fields.insert("user.name".into(), json!("root"));
        fields.insert("source.port".into(), json!(22));
        let raw = "evil\n{\"event_id\":\"forged\"} ] = \\ 日本語\r\n\u{0}".as_bytes();
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
        Json.encode(&r, &mut out);
        Json.encode(&r, &mut out);
        let lines: Vec<&[u8]> = out.split(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 3, "two lines and the empty tail");
        let v: Value = serde_json::from_slice(lines[0]).unwrap();
        assert_eq!(v["event_id"], "00ff");
        assert_eq!(v["@timestamp"], "2024-05-01T00:00:00.123456789Z");
        assert_eq!(v["message"].as_str().unwrap().as_bytes(), raw);
        assert_eq!(v["fields"]["source.port"], 22);
        assert!(v.get("message_base64").is_none());

        let bad = [b'a', 0xff, b'\n'];
        let r = ForwardRecord { raw: &bad, ..r };
        let mut out = Vec::new();
        Json.encode(&r, &mut out);
        let v: Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
        let exact = base64::engine::general_purpose::STANDARD
            .decode(v["message_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(exact, bad);
    }
}
