//! Microsoft Exchange message tracking log (Exchange 2013–2019 `MSGTRK*.LOG`), one CSV record per
//! line in the documented column order: `date-time, client-ip, client-hostname, server-ip,
//! server-hostname, source-context, connector-id, source, event-id, internal-message-id,
//! message-id, network-message-id, recipient-address, recipient-status, total-bytes,
//! recipient-count, related-recipient-address, reference, message-subject, sender-address,
//! return-path, message-info, directionality, tenant-id, original-client-ip, original-server-ip,
//! custom-data, transport-traffic-type, log-id, schema-version`. Fields may be double-quoted
//! (`""` escapes a quote); the `#Fields:` header lines of the file are not records.
//!
//! Claimed only when the line starts with a `YYYY-MM-DDThh:mm:ss.fffZ,` stamp, has at least 29
//! columns, an upper-case `source` and `event-id` and a `15.` schema version. `event.action` ←
//! event-id (lower case); `FAIL` → failure, `RECEIVE`/`SEND`/`SENDEXTERNAL`/`DELIVER` → success;
//! `email.to.address` keeps Exchange's `;`-separated recipient list as written.

use crate::fields::Fields;
use crate::time;

/// Splits one CSV record; `None` on an unterminated quote.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    out.push(cur);
    Some(out)
}

/// A cheap shape check before splitting.
pub(crate) fn looks(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 30 && b[4] == b'-' && b[10] == b'T' && b[23] == b'Z' && b[24] == b','
}

pub(crate) fn parse(line: &str) -> Option<Fields> {
    if !looks(line) {
        return None;
    }
    let c = split_csv(line)?;
    let upper = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if c.len() < 29 || !upper(&c[7]) || !upper(&c[8]) || !c.last()?.starts_with("15.") {
        return None;
    }
    let ts = time::iso(&c[0], &jiff::tz::TimeZone::UTC)?;
    let mut f = Fields::new();
    f.ts("@timestamp", ts);
    f.s("observer.vendor", "Microsoft")
        .s("observer.product", "Exchange");
    f.ip("source.ip", &c[1]).s("source.domain", &c[2]);
    f.ip("destination.ip", &c[3]).s("destination.domain", &c[4]);
    let outcome = match c[8].as_str() {
        "FAIL" => "failure",
        "RECEIVE" | "SEND" | "SENDEXTERNAL" | "DELIVER" => "success",
        _ => "",
    };
    f.event("email", "info", outcome);
    f.s("event.action", &c[8].to_ascii_lowercase());
    f.s("email.message_id", c[10].trim_matches(['<', '>']));
    f.s("email.to.address", &c[12]);
    f.s("email.subject", &c[18]);
    f.s("email.from.address", c[19].trim_matches(['<', '>']));
    f.s(
        "email.direction",
        match c[22].as_str() {
            "Incoming" => "inbound",
            "Originating" => "outbound",
            _ => "",
        },
    );
    f.s("exchange.source", &c[7]);
    // The Exchange server that logged: the client side when it sends (`SEND*`: the server
    // columns name the next hop) or when the server columns are empty (store driver).
    let local = if c[8].starts_with("SEND") || c[4].is_empty() {
        &c[2]
    } else {
        &c[4]
    };
    f.s("host.name", local);
    Some(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_quotes_and_header_lines() {
        let v = super::split_csv(r#"a,"b, ""c""",,d"#).unwrap();
        assert_eq!(v, ["a", "b, \"c\"", "", "d"]);
        assert!(super::split_csv(r#"a,"b"#).is_none());
        assert!(super::parse("#Fields: date-time,client-ip,client-hostname").is_none());
    }
}
