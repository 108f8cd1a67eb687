//! pfSense / OPNsense packet filter log (`filterlog` program), one CSV record per packet.
//!
//! Layout (pfSense "Filter Log Format", also used by OPNsense): `rule,subrule,anchor,tracker,
//! interface,reason,action,direction,ipversion,` then for IPv4 `tos,ecn,ttl,id,offset,flags,
//! protoid,proto,length,src,dst,` and for IPv6 `class,flowlabel,hoplimit,proto,protoid,length,
//! src,dst,`; TCP and UDP add `srcport,dstport,datalen,…`. Other protocols stop after `dst`.
//!
//! Invariants: a record is claimed only when the program is `filterlog`, the IP version is 4 or
//! 6 and both addresses parse; `event.action` is `allow` (pass) or `deny` (block, reject), the
//! vendor word otherwise; `rule.id` is the rule number, `rule.uuid` the tracker id.

use crate::fields::Fields;

/// Parses a `filterlog` message (framing stripped).
pub(crate) fn parse(msg: &str) -> Option<Fields> {
    let c: Vec<&str> = msg.trim_end().split(',').collect();
    if c.len() < 9 {
        return None;
    }
    let (ver, rest) = (c[8], &c[9..]);
    // Indices within `rest` of proto text, protocol number, src, dst.
    let (proto, proto_id, src, dst) = match ver {
        "4" if rest.len() >= 11 => (rest[7], rest[6], rest[9], rest[10]),
        "6" if rest.len() >= 8 => (rest[3], rest[4], rest[6], rest[7]),
        _ => return None,
    };
    if src.parse::<std::net::IpAddr>().is_err() || dst.parse::<std::net::IpAddr>().is_err() {
        return None;
    }
    let mut f = Fields::new();
    let action = match c[6] {
        "pass" => "allow",
        "block" | "reject" => "deny",
        other => other,
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
    f.s("event.action", action);
    f.s("rule.id", c[0]).s("rule.uuid", c[3]);
    let iface = match c[7] {
        "out" => "observer.egress.interface.name",
        _ => "observer.ingress.interface.name",
    };
    f.s(iface, c[4]);
    f.s(
        "network.direction",
        match c[7] {
            "in" => "ingress",
            "out" => "egress",
            _ => "",
        },
    );
    f.s("network.transport", &proto.to_ascii_lowercase());
    f.n("network.iana_number", proto_id);
    f.s("source.ip", src).s("destination.ip", dst);
    let ports = if ver == "4" {
        rest.get(11..13)
    } else {
        rest.get(8..10)
    };
    if let Some([sp, dp]) = ports
        && matches!(proto, "tcp" | "udp" | "TCP" | "UDP")
    {
        f.n("source.port", sp).n("destination.port", dp);
    }
    f.s("observer.type", "firewall");
    Some(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn icmp_has_no_ports_and_short_records_are_declined() {
        let f = super::parse("5,,,1000000103,igb1,match,block,in,4,0x0,,64,0,0,none,1,icmp,84,192.0.2.1,198.51.100.2,request,1,2").unwrap();
        assert_eq!(f.to_map()["network.transport"], "icmp");
        assert!(!f.has("source.port"));
        assert!(super::parse("5,,,1,igb1,match,block,in,4").is_none());
        assert!(super::parse("5,,,1,igb1,match,block,in,9,a,b,c,d,e,f,g,h,i,j,k,l").is_none());
    }
}
