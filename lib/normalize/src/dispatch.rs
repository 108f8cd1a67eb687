//! Format detection: whole-line formats first (Windows XML, with or without an XML declaration,
//! Windows JSON, auditd, FortiGate, ASA, squid, web access, OpenVPN native, Proxmox firewall), then
//! syslog framing and dispatch by program name, then by message content. The chosen parser may
//! still decline → `unparsed`. A record whose input told its [`Origin`] (journald) skips header
//! parsing: the origin is its frame.
//!
//! Cost: the frame is read only when no whole-line format took the line, and the tests that let
//! a line skip a candidate (`dotted_start`, the `] "` a CLF stamp needs) are exact: they skip
//! only parsers that would have declined the line, so which parser takes a line, and what it
//! emits, does not depend on them.

use std::borrow::Cow;

use jiff::tz::TimeZone;

use crate::fields::Fields;
use crate::parsers::{
    State, account, asa, auditd, dovecot, exchange, filterlog, firewall, mikrotik, opensmtpd,
    openvpn, panos, postfix, pulse, samba, softether, sshd, strongswan, sudo, web, windows,
};
use crate::syslog::{self, Frame};
use crate::{Context, Origin, UNPARSED, time};

/// Normalizes one record into `out` (its earlier content is replaced); `force` restricts to
/// one dataset. Returns the dataset.
pub(crate) fn run(
    st: &mut State,
    tz: &TimeZone,
    raw: &[u8],
    ctx: &Context<'_>,
    force: Option<&'static str>,
    origin: Option<&Origin<'_>>,
    out: &mut Fields,
) -> &'static str {
    // Valid UTF-8 (nearly every line) is checked by the fast validator, not `Utf8Chunks`.
    let text = match std::str::from_utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(raw),
    };
    let line = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let obs = time::observed(ctx.observed_unix_nanos);
    // A whole-line format (Windows, auditd, CSV logs…) has no syslog frame: a stamp-like start
    // such as Exchange's `2025-01-14T09:28:39.334Z,…` must not lend it a host. So the frame is
    // read only when no whole-line parser took the line (access and proxy logs, nearly half of
    // a typical mix, never pay for the syslog header parse).
    let mut frame = None;
    let got = match whole(st, tz, line, force) {
        Some(hit) => Some(hit),
        None => {
            frame = match origin {
                Some(o) => Some(told(line, o)),
                None => syslog::parse(line, tz, obs),
            };
            frame.as_ref().and_then(|fr| framed(st, tz, fr, force))
        }
    };
    let (dataset, mut f) = got.unwrap_or((UNPARSED, Fields::new()));
    if dataset == UNPARSED {
        f.clear();
    }
    if !f.has("@timestamp") {
        let ts = frame
            .as_ref()
            .and_then(|fr| fr.ts)
            .filter(|_| dataset != UNPARSED);
        f.ts("@timestamp", ts.unwrap_or(obs));
    }
    if !f.has("host.name") {
        let h = frame
            .as_ref()
            .map(|fr| fr.host)
            .filter(|h| !h.is_empty() && dataset != UNPARSED);
        f.s("host.name", h.unwrap_or(ctx.host));
    }
    if let Some(fr) = frame
        .as_ref()
        .filter(|_| dataset != UNPARSED && !f.has("process.pid"))
    {
        f.n("process.pid", fr.pid);
    }
    if let Some(fr) = frame
        .as_ref()
        .filter(|fr| fr.repeat > 0 && dataset != UNPARSED)
    {
        f.u64("event.count", u64::from(fr.repeat));
    }
    f.s("event.dataset", dataset);
    // `out`'s old buffers go back to the pool with `f`, for the next record's parser.
    std::mem::swap(out, &mut f);
    dataset
}

/// The frame an input told (journald fields) around a bare message.
fn told<'a>(msg: &'a str, o: &Origin<'a>) -> Frame<'a> {
    Frame {
        ts: (o.event_unix_nanos != 0).then(|| time::observed(o.event_unix_nanos)),
        host: o.host,
        program: o.program,
        pid: o.pid,
        msg,
        repeat: 0,
    }
}

fn want(force: Option<&str>, name: &str) -> bool {
    force.is_none_or(|f| f == name)
}

type Hit = Option<(&'static str, Fields)>;

/// One candidate parser of a whole line.
type Try<'a> = dyn Fn() -> Option<Fields> + 'a;

fn whole(st: &mut State, tz: &TimeZone, line: &str, force: Option<&str>) -> Hit {
    let b = line.as_bytes();
    match b.first()? {
        b'<' if line.starts_with("<Event") => {
            let r = windows::from_xml(line)?;
            return win(&r, force);
        }
        // An event rendered as a whole XML document (the `evtx` crate's output).
        b'<' if line.starts_with("<?xml") => {
            let body = line[line.find("?>")? + 2..].trim_start();
            return body
                .starts_with("<Event")
                .then(|| windows::from_xml(body))
                .flatten()
                .and_then(|r| win(&r, force));
        }
        b'{' => return win(&windows::from_json(line)?, force),
        // SoftEther's syslog form as received (no `<PRI>`, no header).
        b'[' if softether::find(line).is_some() => {
            return want(force, "softether")
                .then(|| softether::parse_syslog(line, tz, st))
                .flatten()
                .map(|f| ("softether", f));
        }
        _ => {}
    }
    // Samba's own log file (`/var/log/samba/log.*`): the audit line is an indented continuation
    // of a `[date, level] file:line(fn)` header line.
    if b[0] == b'A' && samba::looks(line) && want(force, "samba") {
        return samba::parse(line, tz).map(|f| ("samba", f));
    }
    if auditd::looks(line) {
        return want(force, "auditd")
            .then(|| auditd::parse(line, st))
            .flatten()
            .map(|f| ("auditd", f));
    }
    // `<PRI>`-prefixed FortiGate lines go through the framing layer (it strips the PRI).
    if b[0] != b'<' && firewall::is_fortigate(line) && want(force, "fortigate") {
        return firewall::parse_fortigate(line, tz).map(|f| ("fortigate", f));
    }
    if (line.starts_with("%ASA-") || line.starts_with("%FTD-")) && want(force, "cisco.asa") {
        return asa::parse(line).map(|f| ("cisco.asa", f));
    }
    if b[0].is_ascii_digit() && exchange::looks(line) && want(force, "exchange") {
        return exchange::parse(line).map(|f| ("exchange", f));
    }
    if b[0].is_ascii_digit() && want(force, "softether") {
        // The server's own files, or its syslog form behind a relay header the framing layer
        // does not take (`YYYY-MM-DDThh:mm:ss HOST  [HOST/VPN] …`, no zone).
        let hit = match softether::find(line) {
            Some(s) => softether::parse_syslog(s, tz, st),
            None => softether::parse_file(line, tz, st),
        };
        if let Some(f) = hit {
            return Some(("softether", f));
        }
    }
    if b[0].is_ascii_digit() {
        // An access-log line led by a client address (`10.0.0.1 - - […`) is neither squid's
        // (`EPOCH.MS` has one dot) nor Proxmox's (its first field is all digits).
        let addr = dotted_start(b);
        let tries: [(&'static str, bool, &Try<'_>); 3] = [
            ("squid", !addr, &|| web::parse_squid(line)),
            ("openvpn", true, &|| openvpn::parse_native(line, tz)),
            ("netfilter", !addr, &|| firewall::parse_proxmox(line)),
        ];
        let hit = tries
            .iter()
            .filter(|(n, can, _)| *can && want(force, n))
            .find_map(|(n, _, p)| Some((*n, p()?)));
        if hit.is_some() {
            return hit;
        }
    }
    web::parse_clf(line, want(force, "squid"), want(force, "web.access"))
}

/// Whether `b` starts with two dot-separated runs of 1–3 digits and a dot (`10.0.`, an IPv4
/// address): then its first field fails [`web::parse_squid`]'s epoch (a non-digit within the
/// first nine digits after the first dot) and [`firewall::parse_proxmox`]'s all-digit id.
fn dotted_start(b: &[u8]) -> bool {
    let run = |from: usize| {
        let n = b[from.min(b.len())..]
            .iter()
            .take(4)
            .take_while(|c| c.is_ascii_digit())
            .count();
        ((1..=3).contains(&n) && b.get(from + n) == Some(&b'.')).then_some(from + n + 1)
    };
    run(0).and_then(run).is_some()
}

fn win(r: &windows::WinRecord, force: Option<&str>) -> Hit {
    let name = if windows::sysmon(r) {
        "windows.sysmon"
    } else {
        "windows.security"
    };
    want(force, name).then(|| (name, windows::fields(r)))
}

fn framed(st: &mut State, tz: &TimeZone, fr: &Frame<'_>, force: Option<&str>) -> Hit {
    let (name, f) = pick(st, tz, fr)?;
    if want(force, name) {
        return Some((name, f));
    }
    let force = force?;
    forced(st, tz, fr, force).map(|f| (name_of(force), f))
}

fn name_of(n: &str) -> &'static str {
    crate::DATASETS
        .iter()
        .find(|d| **d == n)
        .copied()
        .unwrap_or(UNPARSED)
}

/// Auto choice for a framed message.
fn pick(st: &mut State, tz: &TimeZone, fr: &Frame<'_>) -> Hit {
    let (p, msg) = (fr.program, fr.msg);
    if msg.starts_with("pam_")
        && let Some(f) = sshd::parse_pam(msg)
    {
        return Some(("pam", f));
    }
    match p {
        "sshd" | "sshd-session" => {
            return Some(("sshd", sshd::parse_joined(msg, fr.host, fr.pid, st)));
        }
        "sudo" => return Some(("sudo", sudo::parse_sudo(msg)?)),
        "su" => return Some(("su", sudo::parse_su(msg)?)),
        _ if p.ends_with(')') && p.contains("(pam_") => {
            return Some(("pam", sshd::parse_pam_tag(p, msg)?));
        }
        "openvpn" => return Some(("openvpn", openvpn::parse_msg(msg))),
        "filterlog" => return Some(("filterlog", filterlog::parse(msg)?)),
        "dovecot" => return Some(("dovecot", dovecot::parse(msg)?)),
        _ if p.ends_with("-login") && fr.pid.is_empty() => {
            return Some(("dovecot", dovecot::parse_login_program(p, msg)?));
        }
        _ if account::PROGRAMS.contains(&p) => {
            return Some(("linux.account", account::parse(p, msg)?));
        }
        "charon" | "charon-systemd" => return Some(("strongswan", strongswan::parse(msg, st)?)),
        "PulseSecure:" | "PulseSecure" => {
            return Some(("pulse_secure", pulse::parse("", msg, tz)?));
        }
        _ if samba::PROGRAMS.contains(&p) && samba::looks(msg) => {
            return Some(("samba", samba::parse(msg, tz)?));
        }
        "smtpd" if opensmtpd::looks(msg) => {
            return Some(("opensmtpd", opensmtpd::parse(msg, st)?));
        }
        _ if p.starts_with("postfix") => return Some(("postfix", postfix::parse(p, msg, st))),
        _ if p.starts_with("ovpn-") => return Some(("openvpn", openvpn::parse_msg(msg))),
        _ => {}
    }
    // Cisco `logging device-id`: `Mmm dd [yyyy ]hh:mm:ss DEVICE: %ASA-…` names the firewall where
    // the tag would be.
    if fr.host.is_empty()
        && fr.pid.is_empty()
        && !p.is_empty()
        && (msg.starts_with("%ASA-") || msg.starts_with("%FTD-"))
    {
        let mut f = asa::parse(msg)?;
        f.s("host.name", p).s("observer.name", p);
        return Some(("cisco.asa", f));
    }
    // SoftEther sends its syslog form without a tag: a tagged message (`logger`, any local
    // program) imitating it is not the VPN server's.
    if p.is_empty()
        && msg.starts_with('[')
        && let Some(s) = softether::find(msg)
    {
        return softether::parse_syslog(s, tz, st).map(|f| ("softether", f));
    }
    by_content(tz, msg)
}

fn by_content(tz: &TimeZone, msg: &str) -> Hit {
    if let Some(m) = asa::find(msg) {
        return asa::parse(m).map(|f| ("cisco.asa", f));
    }
    if firewall::is_fortigate(msg) {
        return firewall::parse_fortigate(msg, tz).map(|f| ("fortigate", f));
    }
    if firewall::is_netfilter(msg) {
        return firewall::parse_netfilter(msg).map(|f| ("netfilter", f));
    }
    if mikrotik::split(msg).is_some() {
        return mikrotik::parse(msg).map(|f| ("mikrotik", f));
    }
    if panos::looks(msg) {
        return panos::parse(msg, tz).map(|f| ("paloalto", f));
    }
    if let Some((stamp, payload)) = pulse::find("", msg) {
        return pulse::parse(stamp, payload, tz).map(|f| ("pulse_secure", f));
    }
    if samba::looks(msg) {
        return samba::parse(msg, tz).map(|f| ("samba", f));
    }
    None
}

/// A forced parser run on a framed message regardless of program name.
fn forced(st: &mut State, tz: &TimeZone, fr: &Frame<'_>, force: &str) -> Option<Fields> {
    let msg = fr.msg;
    match force {
        "sshd" => {
            Some(sshd::parse_joined(msg, fr.host, fr.pid, st)).filter(|f| f.has("event.category"))
        }
        "pam" => sshd::parse_pam(msg).or_else(|| sshd::parse_pam_tag(fr.program, msg)),
        "sudo" => sudo::parse_sudo(msg),
        // su's message forms are loose English (`U to T on TTY`): only su's own lines.
        "su" => (fr.program == "su").then(|| sudo::parse_su(msg)).flatten(),
        "postfix" => Some(postfix::parse(fr.program, msg, st)).filter(|f| f.has("event.action")),
        // Another program's message is OpenVPN's only with OpenVPN's own evidence (a peer prefix
        // or phrase): `EAP-MS-CHAPv2 verification failed` from charon is not.
        "openvpn" => Some(openvpn::parse_msg(msg))
            .filter(|f| f.has("event.category"))
            .filter(|_| openvpn::is_own(msg)),
        "opensmtpd" => opensmtpd::parse(msg, st).filter(|f| f.has("event.action")),
        "filterlog" => filterlog::parse(msg),
        "dovecot" => match fr.program {
            "dovecot" => dovecot::parse(msg),
            p => dovecot::parse_login_program(p, msg),
        },
        "mikrotik" => mikrotik::parse(msg),
        "paloalto" => panos::parse(msg, tz),
        "linux.account" => account::PROGRAMS
            .contains(&fr.program)
            .then(|| account::parse(fr.program, msg))
            .flatten(),
        "strongswan" => matches!(fr.program, "charon" | "charon-systemd")
            .then(|| strongswan::parse(msg, st))
            .flatten(),
        "cisco.asa" => asa::parse(asa::find(msg)?),
        "fortigate" => firewall::parse_fortigate(msg, tz).filter(|_| msg.contains("logid=")),
        "pulse_secure" => {
            let (stamp, payload) = pulse::find(fr.program, msg)?;
            pulse::parse(stamp, payload, tz)
        }
        "samba" => samba::looks(msg).then(|| samba::parse(msg, tz)).flatten(),
        "softether" => fr
            .program
            .is_empty()
            .then(|| softether::parse_syslog(softether::find(msg)?, tz, st))
            .flatten(),
        "netfilter" => firewall::is_netfilter(msg)
            .then(|| firewall::parse_netfilter(msg))
            .flatten(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_start_is_an_address_lead_that_squid_and_proxmox_refuse() {
        for (line, dotted) in [
            (
                "10.0.0.1 - - [05/Mar/2024:10:11:12 +0000] \"GET / HTTP/1.1\" 200 1",
                true,
            ),
            ("192.168.100.254 - -", true),
            ("1.2.", true),
            (
                "1157689312.049    120 10.0.0.2 TCP_MISS/200 1 GET http://h/ - HIER_DIRECT/h -",
                false,
            ),
            ("1157689312 120", false),
            (
                "12 6 PVEFW-FORWARD 05/Mar/2024:10:11:12 +0000 policy DROP: IN=eth0",
                false,
            ),
            ("2025-01-14 09:28:39 OpenVPN 2.6", false),
            ("1234.5.6", false),
            ("1.", false),
            ("", false),
        ] {
            assert_eq!(dotted_start(line.as_bytes()), dotted, "{line:?}");
            if dotted {
                assert!(web::parse_squid(line).is_none(), "{line:?}");
                assert!(firewall::parse_proxmox(line).is_none(), "{line:?}");
            }
        }
    }
}
