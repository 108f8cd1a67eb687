//! OpenSMTPD (`smtpd` program), both log formats of `smtp_session.c`:
//! - before 6.4: `smtp-in: New session SID from host H [IP]`, `smtp-in: Accepted message MID on
//!   session SID: from=<…>, to=<…>, …`, `Failed command`, `Closing session`, …;
//! - 6.4 and later: `SID smtp connected address=IP host=H`, `SID smtp authentication user=U
//!   result=ok|permfail|tempfail`, `SID smtp message msgid=M …`, `SID smtp envelope evpid=E
//!   from=<…> to=<…>`, `SID smtp disconnected reason=R`, `SID smtp tls ciphers=…`.
//!
//! The client of a session is remembered per session id and joined onto later lines of it.

use crate::fields::Fields;
use crate::kv::kv;
use crate::parsers::State;

/// True when `msg` is an OpenSMTPD session line (either format).
pub(crate) fn looks(msg: &str) -> bool {
    msg.starts_with("smtp-in: ") || session_line(msg).is_some()
}

/// `SID smtp REST` with a 16-hex-digit session id → (SID, REST).
fn session_line(msg: &str) -> Option<(&str, &str)> {
    let b = msg.as_bytes();
    if b.len() < 22 || b[16] != b' ' || !b[..16].iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    Some((&msg[..16], msg[17..].strip_prefix("smtp ")?))
}

pub(crate) fn parse(msg: &str, st: &mut State) -> Option<Fields> {
    if let Some((sid, rest)) = session_line(msg) {
        return Some(parse_new(sid, rest, st));
    }
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
        if let Some(ip) = f.get_str("source.ip") {
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

/// The 6.4+ format: `EVENT key=value …` after `SID smtp `.
fn parse_new(sid: &str, rest: &str, st: &mut State) -> Fields {
    let mut f = Fields::new();
    f.s("process.name", "smtpd");
    f.event("email", "info", "");
    let (word, kvs) = rest.split_once(' ').unwrap_or((rest, ""));
    match word {
        "connected" => {
            f.s("event.action", "connect");
            for (k, v) in kv(kvs) {
                match k {
                    "address" => {
                        f.ip("source.ip", v);
                    }
                    "host" => {
                        f.s("source.domain", v.trim_matches(['<', '>']));
                    }
                    _ => {}
                }
            }
            if let Some(ip) = f.get_str("source.ip") {
                st.smtpd_client.insert(sid, ip.to_owned());
            }
        }
        "authentication" => {
            let (mut user, mut result) = ("", "");
            for (k, v) in kv(kvs) {
                match k {
                    "user" => user = v,
                    "result" => result = v,
                    _ => {}
                }
            }
            let outcome = match result {
                "ok" => "success",
                "permfail" => "failure",
                _ => "",
            };
            f.event("authentication", "start", outcome)
                .s("event.action", "smtp_auth")
                .s("user.name", user);
            if result == "tempfail" {
                f.s("event.reason", "tempfail");
            }
        }
        "envelope" => {
            f.s("event.action", "accepted");
            for part in kvs.split(' ') {
                if let Some(e) = part.strip_prefix("evpid=") {
                    // The message id is the envelope id's upper 32 bits (evpid_to_msgid).
                    f.s("email.message_id_queue", e.get(..8).unwrap_or(e));
                } else if let Some(a) = part.strip_prefix("from=<") {
                    f.s("email.from.address", a.trim_end_matches('>'));
                } else if let Some(a) = part.strip_prefix("to=<") {
                    f.s("email.to.address", a.trim_end_matches('>'));
                }
            }
        }
        "message" => {
            f.s("event.action", "message");
            if let Some((_, m)) = kv(kvs).find(|(k, _)| *k == "msgid") {
                f.s("email.message_id_queue", m);
            }
        }
        "disconnected" => {
            f.s("event.action", "disconnect");
            if let Some((_, r)) = kv(kvs).find(|(k, _)| *k == "reason") {
                f.s("event.reason", r);
            }
        }
        "tls" => {
            f.s("event.action", "started_tls");
        }
        "failed-command" => {
            f.event("email", "info", "failure")
                .s("event.action", "failed_command");
            if let Some((_, r)) = kv(kvs).find(|(k, _)| *k == "result") {
                f.s("event.reason", r);
            }
        }
        _ => {}
    }
    if !f.has("source.ip")
        && let Some(ip) = st.smtpd_client.get(sid)
    {
        let ip = ip.clone();
        f.s("source.ip", &ip);
    }
    f
}
