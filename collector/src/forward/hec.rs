//! Splunk HTTP Event Collector events for the `hec` format (POSTed by [`super::http`] to
//! `/services/collector/event`), concatenated JSON objects as Splunk's "Format events for
//! HTTP Event Collector" documents them:
//!
//! ```text
//! {"time":1714521600.123456,"host":"…","source":"<input>","sourcetype":"logship:<dataset>",
//!  "event":"<raw text>","fields":{"event_id":"…","agent":"…","input":"…","seq":"7",
//!  "<ECS name>":"…"}}\n
//! ```
//!
//! - `time` is epoch seconds with microseconds (a JSON number); `sourcetype` is
//!   `logship:<event.dataset>` when the normalizer named a dataset, else `logship`.
//! - `event` is the raw text as a JSON string (U+FFFD for bytes that are not UTF-8; then
//!   `fields.message_base64` holds the exact bytes).
//! - `fields` are indexed fields, which HEC accepts only as strings (or arrays of strings):
//!   the identity (`event_id`, `agent`, `input`, `seq`) and every normalized field; a value
//!   that is not a string is its JSON text.
//! - Invariant: one JSON object per record, one per line; nothing in a record can end it.

use serde_json::{Map, Value};

use super::encode::Encoder;
use super::record::ForwardRecord;

/// The HEC encoder.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Hec;

impl Encoder for Hec {
    fn encode(&self, r: &ForwardRecord<'_>, out: &mut Vec<u8>) {
        let mut fields = Map::new();
        fields.insert("event_id".into(), r.event_id.into());
        fields.insert("agent".into(), r.agent.into());
        fields.insert("input".into(), r.input.into());
        fields.insert("seq".into(), r.seq.to_string().into());
        for (name, value) in r.fields {
            let v = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fields.entry(name.clone()).or_insert(Value::String(v));
        }
        let mut m = Map::new();
        super::json::message(r.raw, &mut m);
        if let Some(exact) = m.remove("message_base64") {
            fields.insert("message_base64".into(), exact);
        }
        let event = m.remove("message").unwrap_or(Value::Null);
        let sourcetype = match r.fields.get("event.dataset").and_then(Value::as_str) {
            Some(d) => format!("logship:{d}"),
            None => "logship".into(),
        };
        // `time` is written by hand: an f64 would round microseconds away.
        out.extend_from_slice(b"{\"time\":");
        let secs = r.time_ns.div_euclid(1_000_000_000);
        let micros = r.time_ns.rem_euclid(1_000_000_000) / 1000;
        out.extend_from_slice(format!("{secs}.{micros:06}").as_bytes());
        let rest = serde_json::json!({
            "host": r.host,
            "source": r.input,
            "sourcetype": sourcetype,
            "event": event,
            "fields": fields,
        });
        let rest = serde_json::to_vec(&rest).expect("a JSON value always serializes");
        out.push(b',');
        out.extend_from_slice(&rest[1..]);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_have_splunks_documented_shape() {
        let mut fields = Map::new();
        fields.insert("event.dataset".into(), json!("sshd"));
        fields.insert("source.port".into(), json!(22));
        let raw = "Accepted \"password\" ] \\ 日本語\n".as_bytes();
        let r = ForwardRecord {
            event_id: "00ff",
            agent: "gw",
            host: "gw",
            input: "auth",
            seq: 7,
            time_ns: 1_714_521_600_123_456_789,
            raw,
            fields: &fields,
        };
        let mut out = Vec::new();
        Hec.encode(&r, &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("{\"time\":1714521600.123456,"), "{text}");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["host"], "gw");
        assert_eq!(v["source"], "auth");
        assert_eq!(v["sourcetype"], "logship:sshd");
        assert_eq!(v["event"].as_str().unwrap().as_bytes(), raw);
        assert_eq!(v["fields"]["event_id"], "00ff");
        assert_eq!(v["fields"]["seq"], "7");
        assert_eq!(v["fields"]["source.port"], "22");
        assert!(
            v["fields"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_string)
        );
    }
}
