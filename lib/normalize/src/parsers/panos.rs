//! Palo Alto Networks PAN-OS `TRAFFIC` logs, CSV in the documented field order (PAN-OS 8–11
//! "Traffic Log Fields"): `FUTURE_USE, Receive Time, Serial, Type, Subtype, FUTURE_USE, Generated
//! Time, Source, Destination, NAT Source, NAT Destination, Rule, Source User, Destination User,
//! Application, Virtual System, Source Zone, Destination Zone, Inbound IF, Outbound IF, Log Action,
//! FUTURE_USE, Session ID, Repeat Count, Source Port, Destination Port, NAT Source Port, NAT
//! Destination Port, Flags, Protocol, Action, …`.
//!
//! Claimed only when field 4 is `TRAFFIC`, field 2 a `YYYY/MM/DD hh:mm:ss` receive time and both
//! addresses parse. `@timestamp` ← Generated Time in the agent zone (PAN-OS writes device-local
//! time without a zone); `event.action` allow (allow) / deny (deny, drop, reset-*), the vendor
//! word in `panw.action`; `rule.name`, `user.name` ← source user, `network.application`,
//! zones and interfaces on `observer.ingress/egress.*`, ports for TCP/UDP/SCTP only,
//! `event.count` ← repeat count when > 1.

use jiff::tz::TimeZone;

use crate::fields::Fields;
use crate::time;

/// True when `msg` looks like a PAN-OS CSV record of type TRAFFIC.
pub(crate) fn looks(msg: &str) -> bool {
    let mut it = msg.splitn(5, ',');
    let (_, recv, _, typ) = (it.next(), it.next(), it.next(), it.next());
    typ == Some("TRAFFIC") && recv.is_some_and(|r| r.len() == 19 && r.as_bytes()[4] == b'/')
}

pub(crate) fn parse(msg: &str, tz: &TimeZone) -> Option<Fields> {
    if !looks(msg) {
        return None;
    }
    let c: Vec<&str> = msg.split(',').collect();
    if c.len() < 31 {
        return None;
    }
    let (src, dst) = (c[7], c[8]);
    if src.parse::<std::net::IpAddr>().is_err() || dst.parse::<std::net::IpAddr>().is_err() {
        return None;
    }
    let mut f = Fields::new();
    f.s("observer.vendor", "Palo Alto Networks")
        .s("observer.product", "PAN-OS");
    if let Some(ts) = time::iso(&c[6].replace('/', "-"), tz) {
        f.ts("@timestamp", ts);
    }
    f.s("source.ip", src).s("destination.ip", dst);
    f.ip("source.nat.ip", c[9]).ip("destination.nat.ip", c[10]);
    f.s("rule.name", c[11]).s("user.name", c[12]);
    f.s("network.application", c[14]);
    f.s("observer.ingress.zone", c[16])
        .s("observer.egress.zone", c[17]);
    f.s("observer.ingress.interface.name", c[18])
        .s("observer.egress.interface.name", c[19]);
    if c[23].parse::<u64>().is_ok_and(|n| n > 1) {
        f.n("event.count", c[23]);
    }
    if matches!(c[29], "tcp" | "udp" | "sctp") {
        f.n("source.port", c[24]).n("destination.port", c[25]);
    }
    f.s("network.transport", c[29]);
    let vendor = c[30];
    let action = match vendor {
        "allow" => "allow",
        "deny" | "drop" | "drop-icmp" | "drop-all-packets" => "deny",
        a if a.starts_with("reset") => "deny",
        a => a,
    };
    f.event(
        "network",
        if action == "deny" {
            "denied"
        } else {
            "connection"
        },
        "",
    );
    f.s("event.action", action).s("panw.action", vendor);
    f.s("panw.subtype", c[4]);
    f.s("observer.serial_number", c[2]);
    Some(f)
}
