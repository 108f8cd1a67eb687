//! MikroTik RouterOS remote syslog: the message starts with the entry's topics
//! (`firewall,info`, `system,error,critical`, `system,info,account`).
//!
//! Claimed only when that first token is two or more comma-separated RouterOS topics, one of them
//! a severity (`info`, `warning`, `error`, `critical`, `debug`), and the rest is a known shape:
//! - firewall `[PREFIX ]CHAIN: in:IF out:IF, [connection-state:S ][src-mac M, ]proto P[ (…)],
//!   SRC[:PORT]->DST[:PORT][, NAT …], len N` → network event; `event.action` deny/allow from the
//!   log prefix words (as for netfilter), vendor prefix in `netfilter.prefix`;
//! - `login failure for user U from IP via SVC` → authentication failure;
//! - `user U logged in from IP via SVC` → success; `user U logged out from IP via SVC` → end.

use crate::fields::Fields;
use crate::parsers::firewall::prefix_action;

const TOPICS: &[&str] = &[
    "account",
    "bgp",
    "caps",
    "certificate",
    "critical",
    "ddns",
    "debug",
    "dhcp",
    "dns",
    "dot1x",
    "error",
    "event",
    "firewall",
    "hotspot",
    "info",
    "interface",
    "ipsec",
    "l2tp",
    "lte",
    "manager",
    "ntp",
    "ospf",
    "ovpn",
    "packet",
    "ppp",
    "pppoe",
    "pptp",
    "radius",
    "route",
    "script",
    "smb",
    "snmp",
    "sstp",
    "state",
    "system",
    "warning",
    "watchdog",
    "web-proxy",
    "wireguard",
    "wireless",
];
const SEVERITIES: &[&str] = &["info", "warning", "error", "critical", "debug"];

/// Topics token and the rest, when `msg` starts like a RouterOS entry.
pub(crate) fn split(msg: &str) -> Option<(&str, &str)> {
    let (topics, rest) = msg.split_once(' ')?;
    let mut n = 0;
    let mut sev = false;
    for t in topics.split(',') {
        if !TOPICS.contains(&t) {
            return None;
        }
        sev |= SEVERITIES.contains(&t);
        n += 1;
    }
    (n >= 2 && sev).then_some((topics, rest))
}

pub(crate) fn parse(msg: &str) -> Option<Fields> {
    let (topics, rest) = split(msg)?;
    let mut f = if topics.starts_with("firewall") {
        firewall(rest)?
    } else {
        login(rest)?
    };
    f.s("observer.vendor", "MikroTik")
        .s("observer.product", "RouterOS");
    Some(f)
}

fn login(rest: &str) -> Option<Fields> {
    let mut f = Fields::new();
    let tail = if let Some(r) = rest.strip_prefix("login failure for user ") {
        f.event("authentication", "start", "failure")
            .s("event.action", "login");
        r
    } else if let Some(r) = rest.strip_prefix("user ") {
        let (user, how) = r.split_once(' ')?;
        if how.starts_with("logged in from ") {
            f.event("authentication", "start", "success")
                .s("event.action", "login");
        } else if how.starts_with("logged out from ") {
            f.event("session", "end", "").s("event.action", "logout");
        } else {
            return None;
        }
        f.s("user.name", user);
        how.split_once(" from ")?.1
    } else {
        return None;
    };
    // tail: "U from IP via SVC" (failure) or "IP via SVC" (in/out).
    let (who, addr) = match tail.rsplit_once(" from ") {
        Some((u, a)) if !f.has("user.name") => (u, a),
        _ => ("", tail),
    };
    f.s("user.name", who);
    let (ip, via) = addr.split_once(" via ").unwrap_or((addr, ""));
    f.ip("source.ip", ip);
    f.s("network.protocol", via);
    f.has("source.ip").then_some(f)
}

fn firewall(rest: &str) -> Option<Fields> {
    let at = rest.find("in:")?;
    let head = rest[..at].trim_end();
    let chain_end = head.strip_suffix(':')?;
    let (prefix, chain) = chain_end.rsplit_once(' ').unwrap_or(("", chain_end));
    let mut f = Fields::new();
    let body = &rest[at..];
    let mut proto = "";
    for part in body.split(", ") {
        if let Some(p) = part.strip_prefix("proto ") {
            proto = p.split(' ').next().unwrap_or("");
        } else if let Some((src, dst)) = part.split_once("->")
            && !f.has("source.ip")
        {
            endpoint(src, "source", &mut f);
            endpoint(dst, "destination", &mut f);
        } else {
            for kv in part.split(' ') {
                match kv.split_once(':') {
                    Some(("in", v)) => {
                        f.s("observer.ingress.interface.name", v);
                    }
                    Some(("out", v)) if !v.starts_with('(') => {
                        f.s("observer.egress.interface.name", v);
                    }
                    _ => {}
                }
            }
        }
    }
    if !f.has("source.ip") || proto.is_empty() {
        return None;
    }
    f.s("network.transport", &proto.to_ascii_lowercase());
    let action = prefix_action(prefix);
    f.event(
        "network",
        if action == "deny" {
            "denied"
        } else {
            "connection"
        },
        "",
    );
    f.s("event.action", action);
    f.s("netfilter.prefix", prefix).s("rule.name", chain);
    Some(f)
}

/// `IP:port`, `IP` or `[IPv6]:port` → `{side}.ip` / `{side}.port`.
fn endpoint(s: &str, side: &str, f: &mut Fields) {
    let (ip_key, port_key) = match side {
        "source" => ("source.ip", "source.port"),
        _ => ("destination.ip", "destination.port"),
    };
    if s.parse::<std::net::IpAddr>().is_ok() {
        f.s(ip_key, s);
        return;
    }
    if let Some((ip, port)) = s.rsplit_once(':') {
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if ip.parse::<std::net::IpAddr>().is_ok() {
            f.s(ip_key, ip).n(port_key, port);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn topics_are_required() {
        assert!(super::split("info user admin logged in").is_none());
        assert!(super::split("firewall,chaos x").is_none());
        assert!(
            super::split("system,info,account user admin logged in from 192.0.2.1 via ssh")
                .is_some()
        );
        let f = super::parse("system,info,account user admin logged in from 192.0.2.1 via ssh")
            .unwrap();
        assert_eq!(f.to_map()["user.name"], "admin");
        assert_eq!(f.to_map()["event.outcome"], "success");
        assert!(super::parse("system,info router rebooted").is_none());
    }
}
