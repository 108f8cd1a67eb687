//! SoftEther VPN Server logs (English message table), in the server's own files and as it sends
//! them over syslog:
//!
//! ```text
//! YYYY-MM-DD hh:mm:ss.fff [[HUB "NAME"] ]MESSAGE                  server_log/, security_log/HUB/
//! YYYY-MM-DD,hh:mm:ss.fff,SRC_SESSION,DST_SESSION,SRC_MAC,…       packet_log/HUB/ (CSV)
//! [HOST/VPN[/HUB]] (YYYY-MM-DD hh:mm:ss.fff) <KIND_LOG>: MESSAGE  syslog (`SyslogEnable`), no
//!                                                                 `<PRI>`; a relay's header may
//!                                                                 stand in front, but
//!                                                                 no tag (SoftEther
//!                                                                 sends none)
//! ```
//!
//! `@timestamp` ← the server's own stamp (zone-less: the agent's zone); `host.name` ← HOST of the
//! syslog form; `softether.hub` ← HUB. Messages (the user name is the one the client sent, so the
//! server-written parts around it are read from the ends the client cannot reach):
//! - `The connection "CID" (IP address: A, Host name: H, Port number: P, …) is attempting to
//!   connect to the Virtual Hub. … the user name is "U".` → authentication attempt (no outcome),
//!   `source.ip`/`source.port`, `user.name`; a line holding the user-name phrase twice names nobody;
//! - `Connection "CID": User authentication failed. The user name that has been provided was "U",
//!   from A.` → failure; `Connection "CID": Successfully authenticated as user "U".` → success;
//! - `Connection "CID": The new session "SID" has been created. (IP address: A, Port number: P, …)`
//!   → session start; `Session "SID": The session has been terminated. …` → session end;
//! - SecureNAT's DHCP lines (`… allocated, for host "SID" … the new IP address A.`, `The DHCP entry
//!   N has been created. …, IP address: A, …`) → `softether.assigned_ip`;
//! - server log: a client connected / its connection created / disconnected (`source.ip`/`port`),
//!   `Connection "CID" terminated by the cause "R"` → `event.reason`, administration-mode logins
//!   (`successfully logged in using administration mode`, `was unable to log in …` → outcome);
//! - packet log rows → network fields (`source.*`, `destination.*`, `softether.session`).
//!
//! The connection id (`CID-N`) and session name (`SID-…`) carry the client address and the user
//! from the line that names them to the later lines of the same stream (bounded [`State`] maps).
//! A file line is claimed only when its message starts like one of SoftEther's own messages
//! ([`OWN`]); other lines of the server log (start-up banner, configuration notes) stay
//! `unparsed`. Every syslog-form line is claimed: its `[HOST/VPN] (stamp) <KIND_LOG>: ` header is
//! SoftEther's alone.

use jiff::tz::TimeZone;

use crate::fields::Fields;
use crate::parsers::State;
use crate::time;

/// Message starts that only SoftEther VPN Server writes (file-form evidence).
const OWN: &[&str] = &[
    "Connection \"CID-",
    "The connection \"CID-",
    "Session \"SID-",
    "SecureNAT",
    "For the client (IP address: ",
    "The connection with the client (IP address ",
    "On the TCP Listener (Port ",
    "TCP Listener (port ",
    "SSL communication for connection \"",
    "Administration mode [RPC-",
    "The Virtual Hub is now ",
    "Virtual Hub \"",
    "The MAC address of Virtual Hub ",
    "The SoftEther VPN Server ",
    "SoftEther VPN Server ",
    "IPsec Module: ",
    "Starting the automatically saving background task.",
    "The Server Engine ",
    "All TCP listeners ",
    "Stopping all Virtual Hubs.",
    "All Virtual Hubs have been stopped.",
    "Shutting down the Cedar communication module.",
    "The Cedar communication module ",
];

/// Facts of one client connection (`CID-N`) or session (`SID-…`) carried to its later lines.
#[derive(Debug, Default, Clone)]
pub(crate) struct Peer {
    ip: String,
    port: String,
    user: String,
}

/// A line in the server's own file form: `YYYY-MM-DD hh:mm:ss.fff MESSAGE` or a packet-log row.
pub(crate) fn parse_file(line: &str, tz: &TimeZone, st: &mut State) -> Option<Fields> {
    let b = line.as_bytes();
    if b.len() < 25 || b[4] != b'-' || b[7] != b'-' || b[19] != b'.' || b[23] != b' ' {
        if b.len() > 25 && b[10] == b',' && b[19] == b'.' && b[23] == b',' {
            let ts = time::iso(&format!("{} {}", &line[..10], &line[11..23]), tz)?;
            let mut f = packet(&line[24..])?;
            f.ts("@timestamp", ts);
            return Some(f);
        }
        return None;
    }
    if b[10] != b' ' {
        return None;
    }
    let (hub, msg) = hub_prefix(&line[24..]);
    if hub.is_empty() && !OWN.iter().any(|p| msg.starts_with(p)) {
        return None;
    }
    let ts = time::iso(&line[..23], tz)?;
    let mut f = Fields::new();
    f.ts("@timestamp", ts);
    common(&mut f, hub);
    message(msg, hub, st, &mut f);
    Some(f)
}

/// `[HUB "NAME"] MESSAGE` → (NAME, MESSAGE); no prefix → ("", line).
fn hub_prefix(s: &str) -> (&str, &str) {
    s.strip_prefix("[HUB \"")
        .and_then(|r| r.split_once("\"] "))
        .unwrap_or(("", s))
}

/// The start of the syslog form (`[HOST/VPN…] (`) in a line or message: at its start, or after a
/// relay header of at most four words (`Mmm dd hh:mm:ss HOST`, `YYYY-MM-DDThh:mm:ss HOST`).
pub(crate) fn find(s: &str) -> Option<&str> {
    let at = memchr::memchr(b'[', s.as_bytes())?;
    if s[..at].split_ascii_whitespace().count() > 4 {
        return None;
    }
    let r = &s[at..];
    header(r)?;
    Some(r)
}

/// The syslog form's header, split.
struct Header<'a> {
    host: &'a str,
    hub: &'a str,
    stamp: &'a str,
    kind: &'a str,
    msg: &'a str,
}

/// `[HOST/VPN[/HUB]] (STAMP) <KIND_LOG>: MESSAGE`.
fn header(s: &str) -> Option<Header<'_>> {
    let r = s.strip_prefix('[')?;
    let close = memchr::memchr(b']', r.as_bytes())?;
    let (tag, rest) = (&r[..close], r[close..].strip_prefix("] (")?);
    let (host, hub) = match tag.split_once("/VPN") {
        Some((h, "")) => (h, ""),
        Some((h, r)) => (h, r.strip_prefix('/')?),
        None => return None,
    };
    if host.is_empty() || host.contains(' ') {
        return None;
    }
    let (stamp, rest) = rest.split_once(") <")?;
    let (kind, msg) = rest.split_once(">: ")?;
    if !kind.ends_with("_LOG") || !kind.bytes().all(|c| c.is_ascii_uppercase() || c == b'_') {
        return None;
    }
    Some(Header {
        host,
        hub,
        stamp,
        kind,
        msg,
    })
}

/// A line or message in the syslog form (from [`find`]).
pub(crate) fn parse_syslog(s: &str, tz: &TimeZone, st: &mut State) -> Option<Fields> {
    let h = header(s)?;
    let mut f = if h.kind == "PACKET_LOG" {
        packet(h.msg).unwrap_or_else(|| {
            let mut f = Fields::new();
            common(&mut f, "");
            f
        })
    } else {
        let mut f = Fields::new();
        common(&mut f, "");
        message(h.msg, h.hub, st, &mut f);
        f
    };
    if let Some(ts) = time::iso(h.stamp, tz) {
        f.ts("@timestamp", ts);
    }
    f.s("host.name", h.host).s("observer.name", h.host);
    f.s("softether.hub", h.hub);
    Some(f)
}

fn common(f: &mut Fields, hub: &str) {
    f.s("observer.vendor", "SoftEther")
        .s("observer.product", "SoftEther VPN Server")
        .s("observer.type", "vpn")
        .s("softether.hub", hub);
}

/// The text between `"` after `prefix` and the next `"`.
fn quoted<'a>(s: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    s.strip_prefix(prefix)?.split_once('"')
}

/// Value after `key` up to the next `,` or `)`.
fn after<'a>(s: &'a str, key: &str) -> &'a str {
    s.split_once(key)
        .map(|(_, r)| r.split([',', ')']).next().unwrap_or(""))
        .unwrap_or("")
}

fn key(hub: &str, id: &str) -> String {
    format!("{hub}|{id}")
}

fn message(m: &str, hub: &str, st: &mut State, f: &mut Fields) {
    if let Some((cid, rest)) = quoted(m, "The connection \"") {
        attempt(cid, rest, hub, st, f);
    } else if let Some((cid, rest)) = quoted(m, "Connection \"") {
        connection(cid, rest, hub, st, f);
    } else if let Some((sid, rest)) = quoted(m, "Session \"") {
        session(sid, rest, hub, st, f);
    } else if let Some(r) = m.strip_prefix("SecureNAT: The DHCP entry ") {
        f.ip("softether.assigned_ip", after(r, ", IP address: "));
        f.event("network", "allowed", "");
        f.s("event.action", "vpn_address_assigned");
    } else if let Some(r) = m.strip_prefix("For the client (IP address: ") {
        // `A, host name: "H", port number: P), connection "CID" has been created.`
        let ip = r.split(',').next().unwrap_or("");
        let port = after(r, "port number: ");
        let cid = r
            .rsplit_once("connection \"")
            .and_then(|x| x.1.split_once('"'))
            .map_or("", |x| x.0);
        f.ip("source.ip", ip).n("source.port", port);
        f.s("softether.connection", cid);
        f.event("network", "connection", "");
        f.s("event.action", "vpn_connection_created");
        if !cid.is_empty() {
            let p = Peer {
                ip: ip.to_owned(),
                port: port.to_owned(),
                user: String::new(),
            };
            st.softether.insert(key(hub, cid), p);
        }
    } else if let Some(r) = m.strip_prefix("On the TCP Listener (Port ") {
        let (lport, r) = r.split_once(')').unwrap_or(("", r));
        f.n("destination.port", lport);
        f.ip("source.ip", after(r, "(IP address "));
        f.n("source.port", after(r, "Port number "));
        f.event("network", "connection", "");
        f.s("event.action", "vpn_client_connected");
    } else if let Some(r) = m.strip_prefix("The connection with the client (IP address ") {
        f.ip("source.ip", r.split(',').next().unwrap_or(""));
        f.n("source.port", after(r, "Port number "));
        f.event("network", "end", "");
        f.s("event.action", "vpn_client_disconnected");
    }
}

/// `(IP address: A, Host name: H, Port number: P, Client name: "…", …) is attempting to connect to
/// the Virtual Hub. The auth type provided is "T" and the user name is "U".`
fn attempt(cid: &str, rest: &str, hub: &str, st: &mut State, f: &mut Fields) {
    let Some(r) = rest.strip_prefix(" (IP address: ") else {
        return;
    };
    if !rest.contains(") is attempting to connect to the Virtual Hub.") {
        return;
    }
    let ip = r.split(',').next().unwrap_or("");
    let port = after(r, ", Port number: ");
    f.ip("source.ip", ip).n("source.port", port);
    f.s("softether.connection", cid);
    f.event("authentication", "start", "");
    f.s("event.action", "vpn_login_attempt");
    const USER: &str = " and the user name is \"";
    let user = match memchr::memmem::find_iter(r.as_bytes(), USER.as_bytes()).count() {
        1 => r
            .rsplit_once(USER)
            .and_then(|(_, u)| u.strip_suffix("\"."))
            .unwrap_or(""),
        _ => {
            f.s(
                "event.reason",
                "ambiguous SoftEther line: a client-supplied name repeats the user-name phrase",
            );
            ""
        }
    };
    f.s("user.name", user);
    let p = Peer {
        ip: ip.to_owned(),
        port: port.to_owned(),
        user: user.to_owned(),
    };
    st.softether.insert(key(hub, cid), p);
}

/// `Connection "CID": …` and `Connection "CID" …` (server log).
fn connection(cid: &str, rest: &str, hub: &str, st: &mut State, f: &mut Fields) {
    f.s("softether.connection", cid);
    let known = st
        .softether
        .get(&key(hub, cid))
        .cloned()
        .unwrap_or_default();
    let from_state = |f: &mut Fields| {
        f.ip("source.ip", &known.ip).n("source.port", &known.port);
    };
    if let Some(r) = rest
        .strip_prefix(": User authentication failed. The user name that has been provided was \"")
    {
        // The address is the server's, at the end; the name between is the client's, verbatim.
        let (user, ip) = r.rsplit_once("\", from ").unwrap_or(("", ""));
        let ip = ip.strip_suffix('.').unwrap_or(ip);
        f.s("user.name", user).ip("source.ip", ip);
        if known.ip == ip {
            f.n("source.port", &known.port);
        }
        f.event("authentication", "start", "failure");
        f.s("event.action", "vpn_login");
        f.s("event.reason", "User authentication failed");
    } else if let Some(r) = rest.strip_prefix(": Successfully authenticated as user \"") {
        f.s("user.name", r.strip_suffix("\".").unwrap_or(""));
        from_state(f);
        f.event("authentication", "start", "success");
        f.s("event.action", "vpn_login");
    } else if let Some(r) = rest.strip_prefix(": The new session \"") {
        let Some((sid, r)) = r.split_once('"') else {
            return;
        };
        let ip = after(r, "(IP address: ");
        let port = after(r, ", Port number: ");
        f.ip("source.ip", ip).n("source.port", port);
        f.s("softether.session", sid).s("user.name", &known.user);
        f.event("session", "start", "success");
        f.s("event.action", "vpn_session_start");
        let p = Peer {
            ip: ip.to_owned(),
            port: port.to_owned(),
            user: known.user.clone(),
        };
        st.softether.insert(key(hub, sid), p);
    } else if let Some(r) = rest.strip_prefix(" terminated by the cause \"") {
        from_state(f);
        f.s(
            "event.reason",
            r.rsplit_once("\" (code ").map_or("", |x| x.0),
        );
        f.event("network", "end", "");
        f.s("event.action", "vpn_connection_terminated");
    } else if rest == " successfully logged in using administration mode." {
        from_state(f);
        f.event("authentication", "start", "success");
        f.s("event.action", "vpn_admin_login");
    } else if let Some(r) = rest.strip_prefix(" was unable to log in using administration mode. ") {
        from_state(f);
        f.event("authentication", "start", "failure");
        f.s("event.action", "vpn_admin_login");
        f.s(
            "event.reason",
            r.rsplit_once(" (Error code ").map_or(r, |x| x.0),
        );
    } else {
        from_state(f);
    }
}

/// `Session "SID": …`.
fn session(sid: &str, rest: &str, hub: &str, st: &mut State, f: &mut Fields) {
    if let Some(r) = rest.strip_prefix(": The DHCP server of host \"") {
        // `… allocated, for host "SID-X" on another session "MAC", the new IP address A.`
        let (a, b) = r
            .split_once(", for host \"")
            .and_then(|(_, r)| r.split_once("\" on another session \""))
            .unwrap_or(("", ""));
        let b = b.split('"').next().unwrap_or("");
        let client = if a.starts_with("SID-") { a } else { b };
        let addr = r
            .rsplit_once("the new IP address ")
            .map_or("", |x| x.1.trim_end_matches('.'));
        f.s("softether.session", client);
        f.ip("softether.assigned_ip", addr);
        if let Some(p) = st.softether.get(&key(hub, client)) {
            f.s("user.name", &p.user).ip("source.ip", &p.ip);
        }
        f.event("network", "allowed", "");
        f.s("event.action", "vpn_address_assigned");
        return;
    }
    f.s("softether.session", sid);
    if let Some(p) = st.softether.get(&key(hub, sid)) {
        f.s("user.name", &p.user).ip("source.ip", &p.ip);
    }
    if rest.starts_with(": The session has been terminated.") {
        f.event("session", "end", "");
        f.s("event.action", "vpn_session_end");
    }
}

/// A packet-log row after its date and time: `SRC_SESSION,DST_SESSION,SRC_MAC,DST_MAC,0xTYPE,SIZE,
/// PROTO,DETAIL,SRC_IP,SRC_PORT,DST_IP,DST_PORT,…` (ports as `name(N)` or `N`).
fn packet(row: &str) -> Option<Fields> {
    let c: Vec<&str> = row.splitn(13, ',').collect();
    if c.len() < 13 || !c[4].starts_with("0x") || !mac_or_dash(c[2]) || !mac_or_dash(c[3]) {
        return None;
    }
    let mut f = Fields::new();
    common(&mut f, "");
    f.s("softether.session", c[0]);
    f.ip("source.ip", c[8]).n("source.port", port(c[9]));
    f.ip("destination.ip", c[10])
        .n("destination.port", port(c[11]));
    f.event("network", "info", "");
    f.s("event.action", "vpn_packet");
    Some(f)
}

fn mac_or_dash(s: &str) -> bool {
    s == "-" || (s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `bootpc(68)` → `68`; `443` → `443`.
fn port(s: &str) -> &str {
    s.split_once('(')
        .map_or(s, |(_, r)| r.strip_suffix(')').unwrap_or(""))
}
