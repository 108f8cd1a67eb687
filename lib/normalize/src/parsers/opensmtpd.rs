//! OpenSMTPD (`smtpd` program, `smtp-in: ` messages, the format of OpenSMTPD before 6.4 that
//! `smtp_session.c` writes with `log_info("smtp-in: ...")`). The client of a session
//! (`New session SID from host H [IP]`) is remembered per session id and joined onto later lines of
//! the same session (`Accepted message MID on session SID: from=<…>, to=<…>, …`).

use crate::fields::Fields;
use crate::parsers::State;

/// True when `msg` is an OpenSMTPD session line.
pub(crate) fn looks(msg: &str) -> bool {
    msg.starts_with("smtp-in: ")
}

pub(crate) fn parse(msg: &str, st: &mut State) -> Option<Fields> {
    let r = msg.strip_prefix("smtp-in: ")?;
    let mut f = Fields::new();
    f.s("process.name", "smtpd");
    f.event("email", "info", "");
    let session = if let Some(r) = r.strip_prefix("New session ") {
        let (sid, rest) = r.split_once(" from host ")?;
        f.s("event.action", "new_session");
        let (host, ip) = match rest.split_once(" [") {
            Some((h, ip)) => (h, ip.trim_end_matches(']')),
            None => (rest, ""),
        };
        f.s("source.domain", host);
        f.ip("source.ip", ip);
        if let Some(ip) = f.0.get("source.ip").and_then(|v| v.as_str()) {
            st.smtpd_client.insert(sid, ip.to_owned());
        }
        sid
    } else if let Some(r) = r.strip_prefix("Accepted message ") {
        let (mid, rest) = r.split_once(" on session ")?;
        let (sid, body) = rest.split_once(": ")?;
        f.s("event.action", "accepted");
        f.s("email.message_id_queue", mid);
        for part in body.split(", ") {
            if let Some(a) = part.strip_prefix("from=<") {
                f.s("email.from.address", a.trim_end_matches('>'));
            } else if let Some(a) = part.strip_prefix("to=<") {
                f.s("email.to.address", a.trim_end_matches('>'));
            }
        }
        sid
    } else if let Some(r) = r.strip_prefix("Failed command on session ") {
        let (sid, rest) = r.split_once(": ").unwrap_or((r, ""));
        f.event("email", "info", "failure")
            .s("event.action", "failed_command");
        if let Some((_, reply)) = rest.rsplit_once(" => ") {
            f.s("event.reason", reply);
        }
        sid
    } else if let Some(sid) = r.strip_prefix("Closing session ") {
        f.s("event.action", "close_session");
        sid
    } else if let Some(sid) = r.strip_prefix("Received disconnect from session ") {
        f.s("event.action", "disconnect");
        sid
    } else if let Some(r) = r.strip_prefix("Disconnecting session ") {
        let (sid, why) = r.split_once(": ").unwrap_or((r, ""));
        f.s("event.action", "disconnect").s("event.reason", why);
        sid
    } else if let Some(r) = r.strip_prefix("Started TLS on session ") {
        f.s("event.action", "started_tls");
        r.split_once(": ").map_or(r, |x| x.0)
    } else {
        ""
    };
    let sid = session.trim();
    if !sid.is_empty()
        && !f.has("source.ip")
        && let Some(ip) = st.smtpd_client.get(sid)
    {
        let ip = ip.clone();
        f.s("source.ip", &ip);
    }
    Some(f)
}
