//! OpenVPN server log, native (`YYYY-MM-DD hh:mm:ss PEER MSG`) or syslog-framed (`openvpn[pid]:`).
//!
//! PEER is `IP:port`, `name/IP:port` or `IP:port/name` (name = common name / user). Outcome:
//! `Peer Connection Initiated`, `Authentication succeeded` → success; `TLS Error`, `TLS Auth
//! Error`, `AUTH_FAILED`, `VERIFY ERROR`, `verification failed` → failure.
//!
//! A peer named after a trailing ` from ` (`… failed from [AF_INET]IP:port`) gives the source.
//!
//! A native line is claimed only on OpenVPN's own evidence: a peer prefix, or a message that
//! starts with one of OpenVPN's own phrases ([`OWN_PHRASES`]). A bare `YYYY-MM-DD hh:mm:ss`
//! stamp is not evidence: dpkg, apt and many other logs start the same way.

use crate::fields::Fields;
use crate::time;
use jiff::tz::TimeZone;

/// Native line with its own civil timestamp (agent zone).
pub(crate) fn parse_native(line: &str, tz: &TimeZone) -> Option<Fields> {
    let b = line.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    let msg = line.get(20..)?;
    if !is_own(msg) {
        return None;
    }
    let ts = time::iso(line.get(..19)?, tz)?;
    let mut f = parse_msg(msg);
    f.ts("@timestamp", ts);
    Some(f)
}

/// Message starts that only OpenVPN writes (server start-up, control and data channel, TLS).
const OWN_PHRASES: &[&str] = &[
    "OpenVPN ",
    "Incoming Control Channel",
    "Outgoing Control Channel",
    "Control Channel",
    "Data Channel",
    "Initialization Sequence Completed",
    "MULTI",
    "TLS",
    "VERIFY",
    "AUTH_FAILED",
    "TUN/TAP",
    "UDPv4",
    "UDPv6",
    "TCPv4",
    "TCPv6",
    "TCP/UDP",
    "Listening for incoming TCP connection",
    "IFCONFIG POOL",
    "ifconfig_pool",
    "Diffie-Hellman",
    "DCO ",
    "peer info",
];

/// True when the message after a native stamp is OpenVPN's: a peer prefix or an own phrase.
pub(crate) fn is_own(msg: &str) -> bool {
    let first = msg.split_once(' ').map_or(msg, |(a, _)| a);
    peer(first, &mut Fields::new()) || OWN_PHRASES.iter().any(|p| msg.starts_with(p))
}

pub(crate) fn parse_msg(msg: &str) -> Fields {
    let mut f = Fields::new();
    f.s("observer.product", "OpenVPN")
        .s("observer.vendor", "OpenVPN");
    let (first, rest) = msg.split_once(' ').unwrap_or((msg, ""));
    let body = if peer(first, &mut f) { rest } else { msg };
    // `TLS Error: tls-crypt unwrapping failed from [AF_INET]IP:port` names the peer at the end.
    if !f.has("source.ip")
        && let Some((_, tail)) = body.rsplit_once(" from ")
    {
        peer(tail.split(' ').next().unwrap_or(""), &mut f);
    }
    if let Some(r) = body.strip_prefix('[')
        && let Some((name, _)) = r.split_once("] Peer Connection")
        && name != "UNDEF"
    {
        f.s("user.name", name);
    }
    let fail = [
        "TLS Error",
        "TLS Auth Error",
        "AUTH_FAILED",
        "VERIFY ERROR",
        "verification failed",
    ];
    let ok = ["Peer Connection Initiated", "Authentication succeeded"];
    if fail.iter().any(|p| body.contains(p)) {
        f.event("authentication", "start", "failure")
            .s("event.action", "vpn_auth_failed");
    } else if ok.iter().any(|p| body.contains(p)) {
        f.event("authentication", "start", "success")
            .s("event.action", "vpn_connected");
    } else if body.contains("connection established") {
        f.event("network", "connection", "")
            .s("event.action", "connection_established");
    }
    f
}

/// Peer prefix → source.ip/port (+ user.name); false when `tok` is not a peer.
fn peer(tok: &str, f: &mut Fields) -> bool {
    let (name, addr) = match tok.split_once('/') {
        Some((a, b)) if b.contains(':') && !a.contains(':') => (a, b),
        Some((a, b)) => (b, a),
        None => ("", tok),
    };
    let Some((ip, port)) = addr.rsplit_once(':') else {
        return false;
    };
    let ip = ip
        .trim_start_matches("[AF_INET]")
        .trim_start_matches("[AF_INET6]");
    if ip.parse::<std::net::IpAddr>().is_err() || port.parse::<u16>().is_err() {
        return false;
    }
    f.s("source.ip", ip)
        .n("source.port", port)
        .s("user.name", name);
    true
}
