//! Windows Security / Sysmon events from rendered event XML (one `<Event>` per line, `wevtutil`
//! / `EvtRender` (single-quoted attributes) or python-evtx spelling) and from JSON exports (Mordor/HELK flat objects, winlogbeat `winlog.*`).
//!
//! Both encodings are reduced to a [`WinRecord`] (provider, id, time, computer, data pairs), then
//! mapped by event id. Events of other ids are still claimed with `event.code` and host fields.

use serde_json::{Map, Value};

use crate::fields::Fields;
use crate::time;

/// The encoding-independent part of one event.
#[derive(Debug, Default)]
pub(crate) struct WinRecord {
    provider: String,
    id: u32,
    time: String,
    computer: String,
    data: Vec<(String, String)>,
}

// === impl WinRecord ===

impl WinRecord {
    fn get(&self, k: &str) -> &str {
        self.data
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    }
}

pub(crate) fn sysmon(r: &WinRecord) -> bool {
    r.provider.contains("Sysmon")
}

pub(crate) fn from_xml(line: &str) -> Option<WinRecord> {
    let mut r = WinRecord {
        provider: attr(line, "<Provider ", "Name")?.to_owned(),
        ..WinRecord::default()
    };
    let id = text(line, "<EventID")?;
    r.id = id.trim().parse().ok()?;
    r.time = attr(line, "<TimeCreated ", "SystemTime")
        .unwrap_or("")
        .to_owned();
    r.computer = text(line, "<Computer").map(unescape).unwrap_or_default();
    let mut rest = line;
    while let Some(i) = rest.find("<Data") {
        rest = &rest[i + 5..];
        let tag_end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..tag_end];
        let name = attr(tag, "", "Name").unwrap_or("").to_owned();
        let val = if tag.ends_with('/') {
            ""
        } else {
            rest[tag_end..].trim_start_matches('>')
        };
        let val = &val[..val.find('<').unwrap_or(val.len())];
        r.data.push((name, unescape(val)));
    }
    if let Some(i) = line.find("<UserData>") {
        user_data(&line[i + 10..], &mut r);
    }
    Some(r)
}

/// The `Subject:` block of a rendered event message (`\tAccount Name:\twardog` lines) as the
/// event's own `Subject*` data names.
fn message_subject(msg: &str) -> Vec<(String, String)> {
    let Some((_, block)) = msg.split_once("Subject:") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in block.split(['\r', '\n']).filter(|l| !l.is_empty()) {
        let Some((k, v)) = line.trim().split_once(':') else {
            break;
        };
        let name = match k.trim() {
            "Security ID" => "SubjectUserSid",
            "Account Name" => "SubjectUserName",
            "Domain Name" => "SubjectDomainName",
            "Logon ID" => "SubjectLogonId",
            _ => break,
        };
        out.push((name.to_owned(), v.trim().to_owned()));
    }
    out
}

/// Leaf elements `<Name>value</Name>` inside `<UserData>` (e.g. 1102 LogFileCleared).
fn user_data(mut s: &str, r: &mut WinRecord) {
    while let Some(o) = s.find('<') {
        s = &s[o + 1..];
        let Some(c) = s.find('>') else { return };
        let tag = &s[..c];
        s = &s[c + 1..];
        if tag.starts_with('/') || tag.ends_with('/') || s.starts_with('<') {
            continue;
        }
        let name = tag.split(' ').next().unwrap_or("");
        let end = s.find('<').unwrap_or(s.len());
        r.data.push((name.to_owned(), unescape(&s[..end])));
    }
}

/// Value of attribute `name` in the first element starting with `elem`. Values may be quoted
/// with `"` (python-evtx, the `evtx` crate) or `'` (`EvtRender` on Windows, `wevtutil`).
fn attr<'a>(s: &'a str, elem: &str, name: &str) -> Option<&'a str> {
    let start = s.find(elem)?;
    let s = &s[start..];
    let s = &s[..s.find('>').unwrap_or(s.len())];
    let key = format!("{name}=");
    let mut from = 0;
    while let Some(at) = s[from..].find(&key).map(|i| i + from) {
        from = at + key.len();
        // `Name=` must not match the end of `EventSourceName=`.
        if at > 0 && !s.as_bytes()[at - 1].is_ascii_whitespace() {
            continue;
        }
        let quote = *s.as_bytes().get(from)?;
        if quote != b'"' && quote != b'\'' {
            continue;
        }
        let value = &s[from + 1..];
        let end = value.find(char::from(quote))?;
        return Some(&value[..end]);
    }
    None
}

fn text<'a>(s: &'a str, elem: &str) -> Option<&'a str> {
    let i = s.find(elem)?;
    let s = &s[i..];
    let s = &s[s.find('>')? + 1..];
    Some(&s[..s.find('<')?])
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#13;", "\r")
        .replace("&#10;", "\n")
        .replace("&#9;", "\t")
        .replace("&amp;", "&")
}

pub(crate) fn from_json(line: &str) -> Option<WinRecord> {
    let v: Map<String, Value> = serde_json::from_str(line).ok()?;
    let w = v.get("winlog").and_then(Value::as_object);
    let pick = |m: &Map<String, Value>, keys: &[&str]| -> String {
        keys.iter()
            .find_map(|k| m.get(*k).and_then(as_text))
            .unwrap_or_default()
    };
    let root = w.unwrap_or(&v);
    let mut r = WinRecord {
        provider: pick(
            root,
            &[
                "SourceName",
                "ProviderName",
                "Provider_Name",
                "provider_name",
            ],
        ),
        id: pick(root, &["EventID", "EventId", "event_id"])
            .parse()
            .ok()?,
        time: pick(&v, &["@timestamp", "TimeCreated", "UtcTime"]),
        computer: pick(root, &["Hostname", "Computer", "computer_name"]),
        data: Vec::new(),
    };
    if r.provider.is_empty() {
        r.provider = pick(&v, &["Channel"]);
    }
    let data = root
        .get("event_data")
        .or_else(|| v.get("EventData"))
        .and_then(Value::as_object);
    for m in [Some(&v), data].into_iter().flatten() {
        for (k, val) in m {
            if let Some(t) = as_text(val) {
                r.data.push((k.clone(), t));
            }
        }
    }
    // 1102's payload is `UserData`, which some exporters (OTRF/Mordor JSON) keep only in the
    // rendered `Message`: read its `Subject:` block when the structured fields are absent.
    if r.id == 1102 && !r.data.iter().any(|(k, _)| k == "SubjectUserName") {
        let msg = pick(&v, &["Message", "message"]);
        r.data.extend(message_subject(&msg));
    }
    Some(r)
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Maps a record to ECS fields.
pub(crate) fn fields(r: &WinRecord) -> Fields {
    let mut f = Fields::new();
    f.s("event.code", &r.id.to_string())
        .s("host.name", &r.computer);
    f.s("event.provider", &r.provider);
    if let Some(ts) = time::iso(&r.time, &jiff::tz::TimeZone::UTC) {
        f.ts("@timestamp", ts);
    }
    if sysmon(r) {
        super::windows_map::sysmon(r.id, &|k| r.get(k), &mut f);
    } else {
        super::windows_map::security(r.id, &|k| r.get(k), &mut f);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_in_either_quotes_and_not_inside_longer_names() {
        let evtrender = "<Event xmlns='x'><System><Provider Name='Microsoft-Windows-Security-Auditing' \
                         Guid='{5}'/><EventID>4625</EventID></System></Event>";
        assert_eq!(
            attr(evtrender, "<Provider ", "Name"),
            Some("Microsoft-Windows-Security-Auditing")
        );
        let python = "<Provider Name=\"A\" Guid=\"{5}\"></Provider>";
        assert_eq!(attr(python, "<Provider ", "Name"), Some("A"));
        let classic = "<Provider EventSourceName='Security' Name='B'/>";
        assert_eq!(attr(classic, "<Provider ", "Name"), Some("B"));
        assert_eq!(attr("<Provider Name=B/>", "<Provider ", "Name"), None);
        assert_eq!(attr("<Provider Name='B/>", "<Provider ", "Name"), None);
        let r = from_xml(evtrender).expect("claimed");
        assert_eq!(
            (r.provider.as_str(), r.id),
            ("Microsoft-Windows-Security-Auditing", 4625)
        );
    }
}
