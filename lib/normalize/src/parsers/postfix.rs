//! Postfix (`postfix/*` programs). Envelope sender (`QID: from=<…>`) is remembered per queue id
//! and joined onto later `QID: to=<…>` lines of the same stream; `client=` likewise gives source.ip.
//! SMTP AUTH: `warning: host[ip]: SASL … authentication failed…, sasl_username=U` → authentication
//! failure; `QID: client=host[ip], sasl_method=M, sasl_username=U` → authentication success, both
//! with `user.name`.

use crate::fields::Fields;
use crate::parsers::State;

pub(crate) fn parse(program: &str, msg: &str, st: &mut State) -> Fields {
    let mut f = Fields::new();
    f.s("process.name", program);
    f.event("email", "info", "");
    if let Some(r) = msg.strip_prefix("NOQUEUE: reject: ") {
        reject(r, &mut f);
    } else if let Some((qid, body)) = queue_id(msg) {
        f.s("email.message_id_queue", qid);
        queued(qid, body, st, &mut f);
    } else if let Some(r) = msg.strip_prefix("connect from ") {
        f.s("event.action", "connect");
        client(r, &mut f);
    } else if let Some(r) = msg.strip_prefix("disconnect from ") {
        f.s("event.action", "disconnect");
        client(r, &mut f);
    } else if let Some(r) = msg.strip_prefix("warning: ")
        && let Some((c, rest)) = r.split_once(": ")
        && rest.contains("authentication failed")
    {
        f.event("authentication", "info", "failure")
            .s("event.action", "sasl_auth_failure");
        client(c, &mut f);
        sasl_user(rest, &mut f);
    } else if let Some(r) = msg.strip_prefix("lost connection after ")
        && let Some((_, c)) = r.split_once(" from ")
    {
        f.s("event.action", "lost_connection");
        client(c, &mut f);
    }
    f
}

/// `sasl_username=U` → user.name; true when present.
fn sasl_user(s: &str, f: &mut Fields) -> bool {
    let Some((_, r)) = s.split_once("sasl_username=") else {
        return false;
    };
    f.s("user.name", r.split([',', ' ']).next().unwrap_or(""));
    f.has("user.name")
}

/// `host[ip]` → source.domain / source.ip.
fn client(s: &str, f: &mut Fields) {
    let s = s.split([' ', ',', ';']).next().unwrap_or("");
    if let Some(open) = s.find('[')
        && let Some(ip) = s[open + 1..]
            .strip_suffix(']')
            .or_else(|| s[open + 1..].split(']').next())
    {
        f.ip("source.ip", ip);
        let host = &s[..open];
        if host != "unknown" {
            f.s("source.domain", host);
        }
    }
}

fn reject(r: &str, f: &mut Fields) {
    f.event("email", "denied", "failure")
        .s("event.action", "reject");
    if let Some((_, c)) = r.split_once(" from ") {
        client(c, f);
    }
    envelope(r, f);
}

/// `from=<a>` / `to=<b>` anywhere in the message (empty `<>` = null sender, skipped).
fn envelope(r: &str, f: &mut Fields) {
    for (key, field) in [
        ("from=<", "email.from.address"),
        ("to=<", "email.to.address"),
    ] {
        let mut i = 0;
        while let Some(p) = r[i..].find(key) {
            let at = i + p;
            let boundary = at == 0 || matches!(r.as_bytes()[at - 1], b' ' | b',');
            if boundary && let Some(e) = r[at + key.len()..].find('>') {
                f.s(field, &r[at + key.len()..at + key.len() + e]);
                break;
            }
            i = at + key.len();
        }
    }
}

fn queue_id(msg: &str) -> Option<(&str, &str)> {
    let (qid, body) = msg.split_once(": ")?;
    // Short ids are upper-case hex; long ids (enable_long_queue_ids) are ≥ 12 alphanumerics.
    let hex = qid.len() >= 6
        && qid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    let long = qid.len() >= 12 && qid.len() <= 20 && qid.bytes().all(|b| b.is_ascii_alphanumeric());
    let ok = hex || (long && qid.bytes().any(|b| b.is_ascii_digit()));
    ok.then_some((qid, body))
}

fn queued(qid: &str, body: &str, st: &mut State, f: &mut Fields) {
    if let Some(c) = body.strip_prefix("client=") {
        client(c, f);
        // `client=…, sasl_method=LOGIN, sasl_username=alice`: the client authenticated (SMTP AUTH).
        if sasl_user(c, f) {
            f.event("authentication", "start", "success")
                .s("event.action", "sasl_login");
        }
        if let Some(ip) = f.get_str("source.ip") {
            st.postfix_client.insert(qid, ip.to_owned());
        }
        return;
    }
    envelope(body, f);
    if body.starts_with("from=<") {
        if let Some(from) = f.get_str("email.from.address") {
            st.postfix_from.insert(qid, from.to_owned());
        }
        return;
    }
    if !body.starts_with("to=<") {
        return;
    }
    if let Some(from) = st.postfix_from.get(qid) {
        f.s("email.from.address", &from.clone());
    }
    if let Some(ip) = st.postfix_client.get(qid) {
        f.ip("source.ip", &ip.clone());
    }
    let status = body.split(", ").find_map(|p| p.strip_prefix("status="));
    let status = status.map(|s| s.split(' ').next().unwrap_or(""));
    f.s("event.action", status.unwrap_or("delivery"));
    match status {
        Some("sent") => {
            f.event("email", "info", "success");
        }
        Some("bounced") => {
            f.event("email", "info", "failure");
        }
        _ => {}
    }
}
