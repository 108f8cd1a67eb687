//! Pulse Secure / Ivanti Connect Secure (PCS/ICS) syslog, "Standard" format:
//!
//! ```text
//! … PulseSecure: - - - YYYY-MM-DD hh:mm:ss - NODE - [CLIENT-IP] [ZONE::]USER[@DOMAIN](REALM)[ROLES][SESSION] - MESSAGE
//! ```
//!
//! The appliance sends it as RFC 5424 with the app name `PulseSecure:` (`<134>1 TS HOST
//! PulseSecure: - - - …`), and relays often put a BSD header in front of that without the `<PRI>`
//! (`Mmm dd hh:mm:ss NODE 1 TS HOST PulseSecure: - - - …`); both are accepted, the RFC 5424 stamp
//! (with its offset) gives `@timestamp`.
//!
//! Fields on every line: `host.name`/`observer.name` ← NODE, `source.ip` ← the bracketed client
//! address, `user.name` (the `ZONE::` network prefix dropped, `@DOMAIN` → `user.domain`; the
//! appliance's own `System()` lines carry no user), `pulse_secure.realm`. Messages:
//! - `Primary|Secondary authentication successful`, `Agent login succeeded`, `Login succeeded`,
//!   `Session created for user` → authentication success;
//! - `Primary|Secondary authentication failed`, `Login failed[ …]. Reason: R` → failure,
//!   `event.reason` ← R;
//! - `VPN Tunneling: Session started … with IPv4 address A` → session start,
//!   `pulse_secure.assigned_ip` ← A; `… Session ended …` → session end (with the address);
//!   `VPN Tunneling: User with IP A connected …` → the assigned address;
//! - `Logout from IP`, `Session timed out for`, `Session:[…] for user:[U] … deleted` → session end;
//! - `WebRequest completed, METHOD to URL from IP result=N` → web access (`url.original`,
//!   `http.request.method`, `http.response.status_code`).
//!
//! Other messages of a Pulse line keep the common fields only.
//!
//! The identity ends at `(REALM)[…]… - `, not at the first ` - `: the user name is typed by the
//! client. A line with two such boundaries (a name imitating the header) names nobody and is a
//! failure if it holds a failure phrase (see `ambiguous`).

use jiff::tz::TimeZone;

use crate::fields::Fields;
use crate::needle::{Needle, needle};
use crate::time;

const APP: &str = "PulseSecure: ";
static APP_NEEDLE: Needle = needle!("PulseSecure: ");

/// The Pulse payload (`YYYY-MM-DD … - MESSAGE`) of a framed message, and the RFC 5424 stamp in
/// front of it when a relay's BSD header hid the RFC 5424 header (`1 TS HOST PulseSecure: …`).
pub(crate) fn find<'a>(program: &str, msg: &'a str) -> Option<(&'a str, &'a str)> {
    if program == "PulseSecure:" || program == "PulseSecure" {
        return Some(("", msg));
    }
    let at = APP_NEEDLE.find(msg)?;
    let before = &msg[..at];
    let mut t = before.split_ascii_whitespace();
    // Only the RFC 5424 remainder `1 TS HOST ` may precede the app name.
    let (Some("1"), Some(ts), Some(_host), None) = (t.next(), t.next(), t.next(), t.next()) else {
        return None;
    };
    let rest = msg[at + APP.len()..].trim_start_matches("- - - ");
    Some((ts, rest))
}

pub(crate) fn parse(stamp: &str, payload: &str, tz: &TimeZone) -> Option<Fields> {
    let p = payload.trim_start_matches("- - - ");
    // `YYYY-MM-DD hh:mm:ss - NODE - [IP] WHO - MESSAGE`
    let b = p.as_bytes();
    if b.len() < 22 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    let rest = p.get(19..)?.strip_prefix(" - ")?;
    let (node, rest) = rest.split_once(" - [")?;
    let (ip, rest) = rest.split_once("] ")?;
    let mut f = Fields::new();
    let bounds = who_ends(rest);
    let Some(&end) = bounds.first() else {
        // `System()[]` and other appliance lines have the shape; a line without it is not Pulse's.
        return None;
    };
    let (who, text) = (&rest[..end], &rest[end + 3..]);
    if let Some(ts) = time::iso(stamp, tz) {
        f.ts("@timestamp", ts);
    }
    f.s("host.name", node).s("observer.name", node);
    f.s("observer.vendor", "Pulse Secure")
        .s("observer.product", "Connect Secure")
        .s("observer.type", "vpn");
    f.ip("source.ip", ip);
    if bounds.len() > 1 {
        ambiguous(rest, &mut f);
        return Some(f);
    }
    identity(who, &mut f);
    message(text.trim_end(), &mut f);
    Some(f)
}

/// Ends of `(REALM)[ROLES][…]` followed by ` - `: where the identity stops and the message
/// starts. The user name is typed by the client and may contain ` - ` or a whole fake
/// `(R)[] - Agent login succeeded`, so the boundary is this shape, not the first ` - `.
fn who_ends(s: &str) -> Vec<usize> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    for close in memchr::memchr_iter(b')', b) {
        let mut i = close + 1;
        let mut groups = 0;
        while b.get(i) == Some(&b'[') {
            match memchr::memchr(b']', &b[i..]) {
                Some(e) => {
                    i += e + 1;
                    groups += 1;
                }
                None => break,
            }
        }
        if groups > 0 && b[i..].starts_with(b" - ") {
            out.push(i);
        }
    }
    out
}

/// More than one identity boundary: a client-typed name imitates the header. Nobody is named;
/// a failure phrase anywhere still makes it a failed login, so a planted success cannot hide one.
fn ambiguous(rest: &str, f: &mut Fields) {
    let failed = ["authentication failed", "Login failed"]
        .iter()
        .any(|p| rest.contains(p));
    f.event(
        "authentication",
        "info",
        if failed { "failure" } else { "" },
    );
    f.s(
        "event.reason",
        "ambiguous Pulse line: a client-supplied name repeats the identity markers",
    );
}

/// `[ZONE::]USER[@DOMAIN](REALM)[ROLES][SESSION]`.
fn identity(who: &str, f: &mut Fields) {
    let Some((user, rest)) = who.split_once('(') else {
        return;
    };
    let user = user.rsplit_once("::").map_or(user, |x| x.1);
    let realm = rest.split_once(')').map_or("", |x| x.0);
    if user == "System" && realm.is_empty() {
        return;
    }
    match user.rsplit_once('@') {
        Some((u, d)) if !u.is_empty() => {
            f.s("user.name", u).s("user.domain", d);
        }
        _ => {
            f.s("user.name", user);
        }
    }
    f.s("pulse_secure.realm", realm);
}

fn message(text: &str, f: &mut Fields) {
    let starts = |p: &str| text.starts_with(p);
    if starts("Primary authentication successful")
        || starts("Secondary authentication successful")
        || starts("Agent login succeeded")
        || starts("Login succeeded")
    {
        f.event("authentication", "start", "success");
        f.s("event.action", "vpn_login");
    } else if starts("Session created for user") {
        f.event("session", "start", "success");
        f.s("event.action", "vpn_session_start");
    } else if starts("Primary authentication failed")
        || starts("Secondary authentication failed")
        || starts("Login failed")
    {
        f.event("authentication", "start", "failure");
        f.s("event.action", "vpn_login");
        f.s(
            "event.reason",
            text.rsplit_once("Reason: ").map_or("", |x| x.1),
        );
    } else if let Some(r) = text.strip_prefix("VPN Tunneling: ") {
        tunnel(r, f);
    } else if starts("Logout from ")
        || starts("Session timed out for ")
        || (starts("Session:[") && text.contains("] deleted"))
    {
        f.event("session", "end", "");
        f.s("event.action", "vpn_session_end");
        if starts("Session timed out") {
            f.s("event.reason", "idle timeout");
        }
    } else if let Some(r) = text.strip_prefix("WebRequest completed, ") {
        web(r, f);
    }
}

fn tunnel(r: &str, f: &mut Fields) {
    let addr = r
        .split_once("with IPv4 address ")
        .or_else(|| r.split_once("User with IP "))
        .map(|(_, a)| a.split([',', ' ']).next().unwrap_or(""))
        .unwrap_or("");
    f.ip("pulse_secure.assigned_ip", addr);
    if r.starts_with("Session started") {
        f.event("session", "start", "success");
        f.s("event.action", "vpn_session_start");
    } else if r.starts_with("Session ended") {
        f.event("session", "end", "");
        f.s("event.action", "vpn_session_end");
    } else if r.starts_with("User with IP ") {
        f.event("network", "connection", "");
        f.s("event.action", "vpn_tunnel_up");
    }
}

/// `GET to https://host:443/path from 81.2.69.144 result=200 sent=60 received=4 in 1 seconds`.
fn web(r: &str, f: &mut Fields) {
    let Some((method, rest)) = r.split_once(" to ") else {
        return;
    };
    let Some((url, rest)) = rest.split_once(" from ") else {
        return;
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return;
    }
    f.s("http.request.method", method).s("url.original", url);
    let code = rest
        .split_once("result=")
        .and_then(|(_, c)| c.split(' ').next())
        .unwrap_or("");
    f.n("http.response.status_code", code);
    f.event("web", "access", "");
}
