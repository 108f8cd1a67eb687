//! ArcSight Common Event Format (CEF) 0 over the same syslog transports, one record per frame:
//!
//! ```text
//! frame := MSG-LEN SP "<PRI>1 TIMESTAMP HOSTNAME logship - - - " CEF
//! CEF   := "CEF:0|logship|logship-collector|VERSION|SIGNATURE|NAME|SEVERITY|" extension
//! extension := key=value (SP key=value)*
//! ```
//!
//! Escaping (CEF Implementation Standard): in header fields `\` and `|` are escaped with a
//! backslash; in extension values `\` and `=` are, and a newline or carriage return becomes
//! `\n` / `\r`. Header fields are also kept free of `=`, control characters and `\` altogether
//! (replaced by `_`): they come from parser names and codes, and common CEF readers split the
//! header on those. The syslog HOSTNAME never holds `:` so no host name can look like a `CEF:`
//! start. So no record can end its frame, forge a header field or add an extension key.
//!
//! Mapping of the ECS fields of the six source kinds (authentication, firewall, proxy/web, VPN,
//! mail, Windows) to CEF keys: see [`MAPPING`]. Always present: `externalId` (the stable
//! event_id), `deviceExternalId` (agent identity), `dvchost` (host), `cs1`/`cs1Label=input`,
//! `cn1`/`cn1Label=seq`, `rt` (event time, ms since the epoch), `msg` (the raw text; invalid
//! UTF-8 replaced by U+FFFD: CEF is text, the exact bytes travel in the syslog format).

use std::io::Write;

use serde_json::Value;

use super::encode::Encoder;
use super::record::ForwardRecord;

/// ECS field → CEF extension key.
pub(crate) const MAPPING: &[(&str, &str)] = &[
    // authentication (sshd, pam, sudo, su, windows.security) and VPN
    ("user.name", "suser"),
    ("user.id", "suid"),
    ("user.domain", "sntdom"),
    ("user.target.name", "duser"),
    ("user.target.domain", "dntdom"),
    ("event.action", "act"),
    ("event.outcome", "outcome"),
    ("event.reason", "reason"),
    ("event.count", "cnt"),
    ("event.dataset", "cat"),
    // firewall (netfilter, fortigate, cisco.asa) and VPN (openvpn)
    ("source.ip", "src"),
    ("source.port", "spt"),
    ("source.domain", "shost"),
    ("destination.ip", "dst"),
    ("destination.port", "dpt"),
    ("network.transport", "proto"),
    ("observer.ingress.interface.name", "deviceInboundInterface"),
    ("observer.egress.interface.name", "deviceOutboundInterface"),
    // proxy and web (squid, web.access)
    ("url.original", "request"),
    ("url.domain", "dhost"),
    ("http.request.method", "requestMethod"),
    ("http.request.referrer", "requestContext"),
    ("user_agent.original", "requestClientApplication"),
    ("http.response.bytes", "out"),
    // processes (auditd, windows, sshd)
    ("process.name", "sproc"),
    ("process.pid", "spid"),
    ("process.executable", "filePath"),
    // mail (postfix, opensmtpd)
    ("email.from.address", "cs2"),
    ("email.to.address", "cs3"),
];

/// Labels of the custom string fields used by [`MAPPING`].
const LABELS: &[(&str, &str)] = &[("cs2", "emailFrom"), ("cs3", "emailTo")];

/// The CEF encoder.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Cef;

impl Encoder for Cef {
    fn encode(&self, r: &ForwardRecord<'_>, out: &mut Vec<u8>) {
        let f = r.fields;
        let text = |name: &str| f.get(name).map(value_text);
        let dataset = text("event.dataset").unwrap_or_else(|| "unparsed".into());
        let signature = text("event.code").unwrap_or_else(|| dataset.clone());
        let name = text("event.action").unwrap_or_else(|| dataset.clone());
        let severity = match (
            f.get("log.syslog.severity.code").and_then(Value::as_u64),
            text("event.outcome").as_deref(),
        ) {
            // syslog 0 (emergency) .. 7 (debug) onto CEF 10 .. 0
            (Some(s), _) if s <= 7 => 10 - (s * 10 / 7),
            (_, Some("failure")) => 5,
            _ => 3,
        };
        let mut msg = Vec::with_capacity(r.raw.len() + 512);
        write!(msg, "<13>1 {} ", super::syslog::timestamp(r.time_ns))
            .expect("writing to a Vec never fails");
        let host: String = r
            .host
            .chars()
            .map(|c| if c == ':' { '_' } else { c })
            .collect();
        super::syslog::header_token(&mut msg, &host, 255);
        msg.extend_from_slice(b" logship - - - CEF:0|logship|logship-collector|");
        for (i, field) in [
            env!("CARGO_PKG_VERSION").to_string(),
            signature,
            name,
            severity.to_string(),
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                msg.push(b'|');
            }
            header(&mut msg, field);
        }
        msg.push(b'|');
        let mut first = true;
        let mut ext = |key: &str, value: &str| {
            if !first {
                msg.push(b' ');
            }
            first = false;
            msg.extend_from_slice(key.as_bytes());
            msg.push(b'=');
            extension(&mut msg, value);
        };
        ext("externalId", r.event_id);
        ext("deviceExternalId", r.agent);
        ext("dvchost", r.host);
        ext("cs1", r.input);
        ext("cs1Label", "input");
        ext("cn1", &r.seq.to_string());
        ext("cn1Label", "seq");
        ext("rt", &(r.time_ns.div_euclid(1_000_000)).to_string());
        for (ecs, key) in MAPPING {
            if let Some(v) = f.get(*ecs) {
                ext(key, &value_text(v));
                if let Some((_, label)) = LABELS.iter().find(|(k, _)| k == key) {
                    ext(&format!("{key}Label"), label);
                }
            }
        }
        ext("msg", &String::from_utf8_lossy(r.raw));
        write!(out, "{} ", msg.len()).expect("writing to a Vec never fails");
        out.extend_from_slice(&msg);
    }
}

/// A field value as CEF text: strings bare, arrays joined with commas, the rest as JSON.
pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(","),
        v => v.to_string(),
    }
}

/// A header field: `|` escaped; `\`, `=` and control characters replaced by `_`.
fn header(out: &mut Vec<u8>, value: &str) {
    for c in value.chars() {
        match c {
            '|' => out.extend_from_slice(b"\\|"),
            '\\' | '=' => out.push(b'_'),
            c if c.is_control() => out.push(b'_'),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    if value.is_empty() {
        out.push(b'-');
    }
}

/// An extension value: `\` and `=` escaped, CR and LF as `\r` and `\n`.
fn extension(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'=' => out.extend_from_slice(b"\\="),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    #[test]
    fn values_are_escaped_and_the_header_cannot_be_forged() {
        let mut fields = Map::new();
        fields.insert("user.name".into(), json!("a=b\\c"));
        fields.insert("event.action".into(), json!("x|y=z\\"));
        fields.insert("source.ip".into(), json!("10.0.0.1"));
        let r = ForwardRecord {
            event_id: "ab",
            agent: "gw",
            host: "CEF:9|evil",
            input: "auth",
            seq: 3,
            time_ns: 1_714_521_600_123_456_789,
            raw: b"line one\nsuser=root | CEF:0|x|y|z|1|n|10| act=deny",
            fields: &fields,
        };
        let mut out = Vec::new();
        Cef.encode(&r, &mut out);
        let text = String::from_utf8(out).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(!msg.contains('\n'));
        // The first "CEF:" is ours: nothing before the header can start one.
        assert_eq!(
            msg.find("CEF:"),
            msg.find("CEF:0|logship|logship-collector|"),
            "{msg}"
        );
        assert!(msg.contains("|unparsed|x\\|y_z_|3|externalId=ab "), "{msg}");
        assert!(msg.contains(" suser=a\\=b\\\\c "), "{msg}");
        assert!(msg.contains(" src=10.0.0.1 "), "{msg}");
        assert!(msg.contains(" rt=1714521600123 "), "{msg}");
        assert!(
            msg.ends_with(" msg=line one\\nsuser\\=root | CEF:0|x|y|z|1|n|10| act\\=deny"),
            "{msg}"
        );
        assert!(msg.contains(" CEF_9|evil logship "), "{msg}");
    }
}
