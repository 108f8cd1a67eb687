//! Linux netfilter LOG lines (iptables/nftables, UniFi, Proxmox) and FortiGate key=value logs.
//!
//! `event.action` is `allow` or `deny` when the log prefix or vendor action says so (netfilter:
//! prefix words DROP/REJECT/BLOCK/DENY or UniFi `-D-` → deny, ACCEPT/ALLOW or `-A-` → allow),
//! otherwise absent; the vendor's own word is kept in `netfilter.prefix` / `fortinet.action`.

use crate::fields::Fields;
use crate::kv::kv;
use crate::time;
use jiff::tz::TimeZone;

pub(crate) fn is_netfilter(msg: &str) -> bool {
    iface_start(msg).is_some() && msg.contains(" SRC=") && msg.contains(" DST=")
}

/// Offset of the first `IN=` or `OUT=` key.
fn iface_start(msg: &str) -> Option<usize> {
    if msg.starts_with("IN=") || msg.starts_with("OUT=") {
        return Some(0);
    }
    let a = msg.find(" IN=");
    let b = msg.find(" OUT=");
    let i = match (a, b) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(i + 1)
}

pub(crate) fn parse_netfilter(msg: &str) -> Option<Fields> {
    let at = iface_start(msg)?;
    let prefix = msg[..at].trim();
    let prefix = match prefix.strip_prefix('[') {
        Some(p) if prefix.split(']').next().is_some_and(|k| k.contains('.')) => {
            p.split_once(']').map(|x| x.1.trim()).unwrap_or("")
        }
        _ => prefix,
    };
    let mut f = Fields::new();
    f.s("observer.vendor", "Linux")
        .s("observer.product", "netfilter");
    f.s("netfilter.prefix", prefix);
    for (k, v) in kv(&msg[at..]) {
        match k {
            "IN" => {
                f.s("observer.ingress.interface.name", v);
            }
            "OUT" => {
                f.s("observer.egress.interface.name", v);
            }
            "SRC" => {
                f.ip("source.ip", v);
            }
            "DST" => {
                f.ip("destination.ip", v);
            }
            "SPT" => {
                f.n("source.port", v);
            }
            "DPT" => {
                f.n("destination.port", v);
            }
            "PROTO" => {
                f.s("network.transport", &v.to_ascii_lowercase());
            }
            _ => {}
        }
    }
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
    Some(f)
}

fn prefix_action(prefix: &str) -> &'static str {
    let up = prefix.to_ascii_uppercase();
    let has = |w: &[&str]| w.iter().any(|x| up.contains(x));
    if up.contains("-D-") {
        "deny"
    } else if up.contains("-A-") {
        "allow"
    } else if has(&["DROP", "REJECT", "BLOCK", "DENY"]) {
        "deny"
    } else if has(&["ACCEPT", "ALLOW", "PASS"]) {
        "allow"
    } else {
        ""
    }
}

/// Proxmox `pve-firewall`: `VMID CHAIN-NR CHAIN dd/Mon/yyyy:hh:mm:ss ±zzzz PREFIX: IN=…`.
pub(crate) fn parse_proxmox(line: &str) -> Option<Fields> {
    let mut it = line.splitn(6, ' ');
    let (a, b, _chain) = (it.next()?, it.next()?, it.next()?);
    if !a.bytes().all(|c| c.is_ascii_digit()) || !b.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let stamp = format!("{} {}", it.next()?, it.next()?);
    let ts = time::clf(&stamp)?;
    let mut f = parse_netfilter(it.next()?)?;
    f.s("@timestamp", &time::fmt(ts));
    Some(f)
}

pub(crate) fn is_fortigate(msg: &str) -> bool {
    msg.starts_with("date=") && msg.contains(" logid=") || msg.contains(" devid=\"FG")
}

pub(crate) fn parse_fortigate(msg: &str, tz: &TimeZone) -> Option<Fields> {
    let mut f = Fields::new();
    let (mut date, mut time_s, mut zone, mut typ, mut sub, mut action) = ("", "", "", "", "", "");
    for (k, v) in kv(msg) {
        match k {
            "date" => date = v,
            "time" => time_s = v,
            "tz" => zone = v,
            "type" => typ = v,
            "subtype" => sub = v,
            "action" => action = v,
            "srcip" | "remip" => {
                f.ip("source.ip", v);
            }
            "dstip" => {
                f.ip("destination.ip", v);
            }
            "srcport" => {
                f.n("source.port", v);
            }
            "dstport" => {
                f.n("destination.port", v);
            }
            "user" if v != "N/A" => {
                f.s("user.name", v);
            }
            "devname" => {
                f.s("observer.name", v);
            }
            "logid" => {
                f.s("event.code", v);
            }
            "proto" => {
                f.s("network.transport", proto(v));
            }
            "reason" => {
                f.s("event.reason", v);
            }
            _ => {}
        }
    }
    if date.is_empty() && !msg.contains("logid=") {
        return None;
    }
    let zone = if zone.is_empty() {
        tz.clone()
    } else {
        time::parse_zone(zone)
    };
    if let Some(ts) = time::iso(&format!("{date} {time_s}"), &zone) {
        f.s("@timestamp", &time::fmt(ts));
    }
    f.s("observer.vendor", "Fortinet")
        .s("observer.product", "FortiGate");
    f.s("fortinet.type", typ)
        .s("fortinet.subtype", sub)
        .s("fortinet.action", action);
    classify(&mut f, typ, sub, action);
    Some(f)
}

fn proto(v: &str) -> &str {
    match v {
        "6" => "tcp",
        "17" => "udp",
        "1" => "icmp",
        other => other,
    }
}

fn classify(f: &mut Fields, typ: &str, sub: &str, action: &str) {
    if typ == "traffic" {
        let deny = matches!(action, "deny" | "block" | "blocked" | "dropped" | "drop");
        f.event("network", if deny { "denied" } else { "connection" }, "");
        f.s("event.action", if deny { "deny" } else { "allow" });
    } else if sub == "vpn" || action.contains("login") || action.starts_with("tunnel") {
        let fail = action.contains("fail");
        let ok =
            action == "tunnel-up" || action.ends_with("login") || action == "ssl-login-success";
        let outcome = if fail {
            "failure"
        } else if ok {
            "success"
        } else {
            ""
        };
        f.event("authentication", "start", outcome);
        f.s("event.action", action);
    } else {
        f.s("event.action", action);
    }
}
