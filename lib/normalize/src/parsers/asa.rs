//! Cisco ASA / Firepower Threat Defense `%ASA-SEV-ID: text` / `%FTD-SEV-ID: text` messages (bare
//! or after syslog framing).
//!
//! Per message id where the generic reading would be wrong:
//! - 302013/302015 (and 302020 ICMP) `Built inbound|outbound …`: for `outbound` the initiator is the
//!   `to` side (ICMP: `laddr`), so source and destination are swapped; `network.direction`;
//! - 106100 `access-list NAME permitted|denied PROTO IF/HOST(PORT) -> IF/HOST(PORT)`; 106023
//!   `… by access-group "NAME"` → `rule.name`;
//! - AnyConnect / WebVPN / IPsec sessions (113039, 716001, 716002, 722022, 722023, 722051,
//!   113019): `Group <G> User <U> IP <IP>` or `Group = G, Username = U, IP = IP` → `user.name`,
//!   `source.ip`, session start/end; 722051's assigned address → `cisco.asa.assigned_ip`;
//! - AAA (113004/113005/113015, 611101/611102, 605004/605005): outcome, `user = U`, `user IP = IP`,
//!   `IP address: IP`.
//!
//! Otherwise addresses are taken generically: the first `[iface:]IP[/port]` after ` from `/` src `/
//! ` for `/` SRC ` is the source, the next after ` to `/` dst `/` DEST ` the destination. Messages
//! that deny or drop set `event.action=deny`, `Built`/`permitted` ones `allow`.

use crate::fields::Fields;
use crate::needle::{Needle, needle};

static ASA: Needle = needle!("%ASA-");
static FTD: Needle = needle!("%FTD-");

pub(crate) fn find(msg: &str) -> Option<&str> {
    let at = ASA.find(msg).or_else(|| FTD.find(msg))?;
    Some(&msg[at..])
}

pub(crate) fn parse(msg: &str) -> Option<Fields> {
    let (product, rest) = match msg.strip_prefix("%ASA-") {
        Some(r) => ("ASA", r),
        None => ("FTD", msg.strip_prefix("%FTD-")?),
    };
    let (sev, rest) = rest.split_once('-')?;
    let id_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let id = &rest[..id_end];
    if sev.len() != 1 || id.len() != 6 {
        return None;
    }
    let text = rest[id_end..].trim_start_matches(':').trim_start();
    let mut f = Fields::new();
    f.s("observer.vendor", "Cisco")
        .s("observer.product", product);
    f.s("event.code", id).n("log.syslog.severity.code", sev);
    let special = match id {
        "302013" | "302015" | "302020" => built(text, &mut f),
        "106100" => acl_106100(text, &mut f),
        "113039" | "716001" | "716002" | "722022" | "722023" | "722051" | "113019" => {
            vpn_session(id, text, &mut f)
        }
        _ => false,
    };
    if !special {
        addresses(text, &mut f);
        user(text, &mut f);
    }
    if let Some((_, r)) = text.split_once("by access-group \"")
        && let Some((name, _)) = r.split_once('"')
    {
        f.s("rule.name", name);
    }
    aaa(text, &mut f);
    classify(id, text, &mut f);
    Some(f)
}

/// `Built inbound|outbound TCP|UDP connection N for IF:IP/P (…) to IF:IP/P (…)` and
/// `Built inbound|outbound ICMP connection for faddr IP/0 gaddr IP/0 laddr IP/0`.
fn built(text: &str, f: &mut Fields) -> bool {
    let Some(r) = text.strip_prefix("Built ") else {
        return false;
    };
    let (dir, r) = r.split_once(' ').unwrap_or(("", r));
    let outbound = match dir {
        "inbound" => false,
        "outbound" => true,
        _ => return false,
    };
    let proto = r.split(' ').next().unwrap_or("").to_ascii_lowercase();
    let tok_after = |k: &str| -> Option<(&str, &str)> {
        let i = text.find(k)?;
        endpoint(text[i + k.len()..].split(' ').next()?)
    };
    let (a, b) = if proto == "icmp" {
        (tok_after(" faddr "), tok_after(" laddr "))
    } else {
        (tok_after(" for "), tok_after(" to "))
    };
    let (Some(a), Some(b)) = (a, b) else {
        return false;
    };
    let (src, dst) = if outbound { (b, a) } else { (a, b) };
    f.s("source.ip", src.0).s("destination.ip", dst.0);
    if proto != "icmp" {
        f.n("source.port", src.1).n("destination.port", dst.1);
    }
    f.s("network.transport", &proto);
    f.s(
        "network.direction",
        if outbound { "outbound" } else { "inbound" },
    );
    true
}

/// `access-list NAME permitted|denied|est-allowed PROTO IF/HOST(PORT) -> IF/HOST(PORT) hit-cnt …`.
fn acl_106100(text: &str, f: &mut Fields) -> bool {
    let Some(r) = text.strip_prefix("access-list ") else {
        return false;
    };
    let mut t = r.split(' ');
    let (Some(name), Some(verdict), Some(proto), Some(src), Some("->"), Some(dst)) =
        (t.next(), t.next(), t.next(), t.next(), t.next(), t.next())
    else {
        return false;
    };
    f.s("rule.name", name);
    f.s("network.transport", &proto.to_ascii_lowercase());
    for (tok, side) in [(src, "source"), (dst, "destination")] {
        let host_port = tok.split_once('/').map_or(tok, |(_, h)| h);
        let (host, port) = host_port
            .strip_suffix(')')
            .and_then(|x| x.split_once('('))
            .unwrap_or((host_port, ""));
        let (ip_k, dom_k, port_k) = if side == "source" {
            ("source.ip", "source.domain", "source.port")
        } else {
            ("destination.ip", "destination.domain", "destination.port")
        };
        if host.parse::<std::net::IpAddr>().is_ok() {
            f.s(ip_k, host);
        } else {
            f.s(dom_k, host);
        }
        f.n(port_k, port);
    }
    if verdict == "denied" {
        f.event("network", "denied", "").s("event.action", "deny");
    } else {
        f.event("network", "allowed", "").s("event.action", "allow");
    }
    true
}

/// `Group <G> User <U> IP <IP> …` (angle brackets optional) or
/// `Group = G, Username = U, IP = IP, …`.
fn vpn_session(id: &str, text: &str, f: &mut Fields) -> bool {
    let clean = |s: &str| {
        s.trim_start_matches('<')
            .trim_end_matches(['>', ','])
            .to_owned()
    };
    let (user, ip) = if let Some(r) = text.strip_prefix("Group = ") {
        let get = |k: &str| {
            r.split(", ")
                .find_map(|kv| kv.strip_prefix(k))
                .map(|v| v.to_owned())
        };
        (get("Username = "), get("IP = "))
    } else if text.starts_with("Group ") {
        let toks: Vec<&str> = text.split(' ').collect();
        let after = |k: &str| {
            toks.iter()
                .position(|t| *t == k)
                .and_then(|i| toks.get(i + 1))
                .map(|v| clean(v))
        };
        (after("User"), after("IP"))
    } else {
        return false;
    };
    let (Some(user), Some(ip)) = (user, ip) else {
        return false;
    };
    f.s("user.name", &user).ip("source.ip", &ip);
    match id {
        "716002" | "722023" | "113019" => {
            f.event("session", "end", "");
            f.s("event.action", "vpn_session_end");
        }
        _ => {
            f.event("session", "start", "success");
            f.s("event.action", "vpn_session_start");
        }
    }
    if id == "722051"
        && let Some((_, r)) = text.split_once("IPv4 Address <")
        && let Some((a, _)) = r.split_once('>')
    {
        f.ip("cisco.asa.assigned_ip", a);
    }
    f.s(
        "event.reason",
        text.rsplit_once("Reason: ").map_or("", |x| x.1),
    );
    true
}

/// AAA and management-login messages: `user = U : user IP = IP`, `IP address: IP, Uname: U`.
fn aaa(text: &str, f: &mut Fields) {
    if let Some((_, r)) = text.split_once(" : user = ") {
        f.s("user.name", r.split(" : ").next().unwrap_or("").trim());
    }
    if let Some((_, r)) = text.split_once("user IP = ") {
        f.ip("source.ip", r.split([' ', ',']).next().unwrap_or(""));
    }
    if let Some((_, r)) = text.split_once("IP address: ")
        && !f.has("source.ip")
    {
        f.ip("source.ip", r.split([' ', ',']).next().unwrap_or(""));
    }
}

/// `[iface:]IP[/port]` → (ip, port).
fn endpoint(tok: &str) -> Option<(&str, &str)> {
    let tok = tok.trim_end_matches([',', ';', ')', ':']);
    let (addr, port) = tok.split_once('/').unwrap_or((tok, ""));
    let port = port.split('(').next().unwrap_or(port);
    let ip = if addr.parse::<std::net::IpAddr>().is_ok() {
        addr
    } else {
        let (_, a) = addr.split_once(':')?;
        a.parse::<std::net::IpAddr>().ok()?;
        a
    };
    Some((ip, port))
}

fn after<'a>(text: &'a str, keys: &[&str]) -> Option<(&'a str, &'a str, &'a str)> {
    let mut best: Option<(usize, usize)> = None;
    for k in keys {
        if let Some(i) = text.find(k)
            && best.is_none_or(|(b, _)| i < b)
        {
            best = Some((i, k.len()));
        }
    }
    let (i, l) = best?;
    let rest = &text[i + l..];
    let tok = rest.split(' ').next().unwrap_or("");
    let (ip, port) = endpoint(tok)?;
    Some((ip, port, rest))
}

fn addresses(text: &str, f: &mut Fields) {
    // 313004: `Denied ICMP type=0, from laddr IP on interface …`.
    let owned;
    let text = if text.contains("from laddr ") {
        owned = text.replace("from laddr ", "from ");
        owned.as_str()
    } else {
        text
    };
    let src = after(text, &[" from ", " src ", " for ", " SRC ", "from "]);
    let Some((ip, port, rest)) = src else { return };
    f.s("source.ip", ip).n("source.port", port);
    if let Some((dip, dport, _)) = after(rest, &[" to ", " dst ", " DEST "]) {
        f.s("destination.ip", dip).n("destination.port", dport);
    }
}

fn user(text: &str, f: &mut Fields) {
    let grab = |k: &str, end: &[char]| -> Option<String> {
        let i = text.find(k)?;
        let r = &text[i + k.len()..];
        let e = r.find(end).unwrap_or(r.len());
        Some(r[..e].to_owned())
    };
    let u = grab("user \"", &['"'])
        .or_else(|| grab("User '", &['\'']))
        .or_else(|| grab("User = ", &[':', ',', ' ']))
        .or_else(|| grab("Uname: ", &[' ', ',']));
    if let Some(u) = u {
        f.s("user.name", u.trim());
    }
}

fn classify(id: &str, text: &str, f: &mut Fields) {
    let lower = text.to_ascii_lowercase();
    match id {
        "605004" | "113005" | "113006" | "113015" | "611102" => {
            f.event("authentication", "start", "failure");
        }
        "605005" | "113004" | "113012" | "611101" => {
            f.event("authentication", "start", "success");
        }
        _ => {}
    }
    let deny = lower.starts_with("deny")
        || lower.starts_with("denied")
        || lower.contains(" denied")
        || lower.contains("drop");
    if deny && !f.has("event.category") {
        f.event("network", "denied", "").s("event.action", "deny");
    } else if (lower.starts_with("built") || lower.contains("permitted"))
        && !f.has("event.category")
    {
        f.event("network", "connection", "")
            .s("event.action", "allow");
    } else if lower.starts_with("teardown") && !f.has("event.category") {
        f.event("network", "end", "");
    }
}
