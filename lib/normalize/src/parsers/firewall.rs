//! Linux netfilter LOG lines (iptables/nftables, UniFi, Proxmox) and FortiGate key=value logs.
//!
//! `event.action` is `allow` or `deny` when the log prefix or vendor action says so (netfilter:
//! prefix words DROP/REJECT/BLOCK/DENY or UniFi `-D-` → deny, ACCEPT/ALLOW or `-A-` → allow),
//! otherwise absent; the vendor's own word is kept in `netfilter.prefix` / `fortinet.action`.

use crate::fields::Fields;
use crate::kv::kv;
use crate::needle::{Needle, needle};
use crate::time;
use jiff::tz::TimeZone;

static IN: Needle = needle!(" IN=");
static OUT: Needle = needle!(" OUT=");
static SRC: Needle = needle!(" SRC=");
static DST: Needle = needle!(" DST=");
static FG_DEVID: Needle = needle!(" devid=\"FG");

pub(crate) fn is_netfilter(msg: &str) -> bool {
    iface_start(msg).is_some() && SRC.is_in(msg) && DST.is_in(msg)
}

/// Offset of the first `IN=` or `OUT=` key.
fn iface_start(msg: &str) -> Option<usize> {
    if msg.starts_with("IN=") || msg.starts_with("OUT=") {
        return Some(0);
    }
    let a = IN.find(msg);
    let b = OUT.find(msg);
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

pub(crate) fn prefix_action(prefix: &str) -> &'static str {
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
    f.ts("@timestamp", ts);
    Some(f)
}

/// FortiOS's own key=value format: `date=` … `logid=` … or a FortiGate serial (`devid="FG…`).
/// Also `devname=`/`logver=` first (the order varies by FortiOS version) with `logid=` and
/// `subtype=`.
pub(crate) fn is_fortigate(msg: &str) -> bool {
    (msg.starts_with("date=") && msg.contains(" logid="))
        || FG_DEVID.is_in(msg)
        || ((msg.starts_with("devname=") || msg.starts_with("logver="))
            && msg.contains(" logid=")
            && msg.contains(" subtype="))
}

/// One FortiGate log line: traffic (firewall), event/vpn (SSL-VPN and IPsec) and utm (web filter
/// and other profiles). `@timestamp`: `date`+`time` in `tz` when the line has `tz`, else `eventtime`
/// (epoch, UTC), else `date`+`time` in the agent zone.
pub(crate) fn parse_fortigate(msg: &str, tz: &TimeZone) -> Option<Fields> {
    let mut f = Fields::new();
    let mut v = Forti::default();
    for (k, val) in kv(msg) {
        match k {
            "date" => v.date = val,
            "time" => v.time = val,
            "tz" => v.zone = val,
            "eventtime" => v.eventtime = val,
            "type" => v.typ = val,
            "subtype" => v.sub = val,
            "action" => v.action = val,
            "status" => v.status = val,
            "hostname" => v.hostname = val,
            "url" => v.url = val,
            "logid" => {
                v.logid = true;
                f.s("event.code", val);
            }
            "srcip" | "remip" => {
                f.ip("source.ip", val);
            }
            "dstip" => {
                f.ip("destination.ip", val);
            }
            "srcport" => {
                f.n("source.port", val);
            }
            "dstport" => {
                f.n("destination.port", val);
            }
            "user" if val != "N/A" => {
                f.s("user.name", val);
            }
            "devname" => {
                f.s("observer.name", val).s("host.name", val);
            }
            "policyid" => {
                f.s("rule.id", val);
            }
            "proto" => {
                f.s("network.transport", proto(val));
            }
            "reason" if val != "N/A" => {
                f.s("event.reason", val);
            }
            "tunnelip" | "assignip" if val != "N/A" => {
                f.ip("fortinet.tunnelip", val);
            }
            _ => {}
        }
    }
    if v.date.is_empty() && !v.logid {
        return None;
    }
    if let Some(ts) = v.timestamp(tz) {
        f.ts("@timestamp", ts);
    }
    f.s("observer.vendor", "Fortinet")
        .s("observer.product", "FortiGate");
    f.s("fortinet.type", v.typ)
        .s("fortinet.subtype", v.sub)
        .s("fortinet.action", v.action);
    classify(&mut f, &v);
    Some(f)
}

/// The FortiGate keys that decide timestamp and classification.
#[derive(Default)]
struct Forti<'a> {
    date: &'a str,
    time: &'a str,
    zone: &'a str,
    eventtime: &'a str,
    typ: &'a str,
    sub: &'a str,
    action: &'a str,
    status: &'a str,
    hostname: &'a str,
    url: &'a str,
    logid: bool,
}

impl Forti<'_> {
    fn timestamp(&self, tz: &TimeZone) -> Option<jiff::Timestamp> {
        let civil = |zone: &TimeZone| {
            let mut b = [0u8; 40];
            let (d, t) = (self.date.as_bytes(), self.time.as_bytes());
            if d.len() + t.len() + 1 > b.len() {
                return None;
            }
            b[..d.len()].copy_from_slice(d);
            b[d.len()] = b' ';
            b[d.len() + 1..d.len() + 1 + t.len()].copy_from_slice(t);
            time::iso(std::str::from_utf8(&b[..d.len() + 1 + t.len()]).ok()?, zone)
        };
        if !self.zone.is_empty()
            && let Some(ts) = civil(&time::parse_zone(self.zone))
        {
            return Some(ts);
        }
        time::epoch_auto(self.eventtime).or_else(|| civil(tz))
    }
}

fn proto(v: &str) -> &str {
    match v {
        "6" => "tcp",
        "17" => "udp",
        "1" => "icmp",
        "58" => "ipv6-icmp",
        other => other,
    }
}

/// Traffic → firewall (`event.action` allow/deny, the vendor word in `fortinet.action`); VPN →
/// authentication with outcome from `status`/`action`; web filter → web with the URL; other
/// kinds keep the vendor action.
fn classify(f: &mut Fields, v: &Forti<'_>) {
    let action = v.action;
    if v.typ == "traffic" {
        let deny = matches!(action, "deny" | "block" | "blocked" | "dropped" | "drop");
        let allow = matches!(
            action,
            "accept" | "close" | "timeout" | "server-rst" | "client-rst" | "start" | "allow"
        );
        f.event("network", if deny { "denied" } else { "connection" }, "");
        f.s(
            "event.action",
            if deny {
                "deny"
            } else if allow {
                "allow"
            } else {
                action
            },
        );
    } else if v.sub == "vpn" || action.contains("login") || action.starts_with("tunnel") {
        let st = v.status;
        let fail = action.contains("fail")
            || st.contains("fail")
            || st.contains("error")
            || st == "negotiate_error";
        let ok = action == "tunnel-up"
            || action.ends_with("login")
            || action == "ssl-login-success"
            || st == "success";
        let outcome = if fail {
            "failure"
        } else if ok {
            "success"
        } else {
            ""
        };
        f.event("authentication", "start", outcome);
        f.s("event.action", action);
    } else if v.typ == "utm" && v.sub == "webfilter" {
        let blocked = matches!(action, "blocked" | "block" | "deny");
        f.event("web", if blocked { "denied" } else { "allowed" }, "");
        f.s("event.action", action);
        f.s("url.domain", v.hostname);
        if v.url.contains("://") || v.hostname.is_empty() {
            f.s("url.original", v.url);
        } else if !v.url.is_empty() {
            let mut u = String::with_capacity(v.hostname.len() + v.url.len());
            u.push_str(v.hostname);
            u.push_str(v.url);
            f.s("url.original", &u);
        }
    } else {
        f.s("event.action", action);
    }
}
