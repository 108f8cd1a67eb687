//! Samba authentication audit lines (`log level = auth_audit:2` or higher; smbd, the AD DC and
//! winbind's NTLM pass-through all write them through `auth/auth_log.c`):
//!
//! ```text
//! Auth: [SERVICE,AUTH] user [DOMAIN]\[USER] at [Www, dd Mmm yyyy hh:mm:ss.ffffff ZONE]
//!       with [PWTYPE] status [NT_STATUS_…] workstation [WKS] remote host [ipv4:IP:PORT]
//!       (mapped to|became) [D]\[U] [SID]. local host [ipv4:IP:PORT|NULL]
//! ```
//!
//! In `/var/log/samba/log.*` the line follows a `[date, level] file:line(function)` header line
//! and is indented (the header line itself is not an event and is not claimed); through syslog it
//! is the message of `smbd`/`smb`/`samba`/`winbindd`.
//!
//! Fields: `user.name`, `user.domain` (empty and `(null)` omitted), `source.ip`/`source.port`
//! from `remote host`, `destination.ip`/`destination.port` from `local host`, `event.category`
//! authentication, `event.outcome` success for `NT_STATUS_OK` and failure otherwise with the
//! status in `event.reason`, `event.action` `samba_logon`, `network.protocol` from the service
//! (`SMB2` → `smb`, `LDAP`, `Kerberos KDC` → `kerberos`, …). `@timestamp` comes from `at […]`:
//! `UTC`/`GMT` or a numeric offset as written, a zone abbreviation (`CEST`) in the agent zone.
//!
//! Claimed only with the whole shape (`Auth: [`, `] user [`, ` status [`, ` remote host [`).
//! The user, domain and workstation names are chosen by the client and Samba does not escape
//! brackets, so a name can carry a whole fake `status [NT_STATUS_OK] … remote host [ipv4:…]`.
//! When `] status [` or ` remote host [` occurs more than once the line is ambiguous: it is
//! still an authentication event, but it names no user or address (none can be trusted), its
//! outcome is failure if any status in it is not `NT_STATUS_OK` (a planted `NT_STATUS_OK` cannot
//! hide a failed attempt), and `event.reason` says why.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::fields::Fields;
use crate::time;

/// Programs whose messages may be Samba audit lines.
pub(crate) const PROGRAMS: &[&str] = &["smbd", "smb", "samba", "winbindd", "samba-dcerpcd"];

/// A Samba audit line's message starts like this (after trimming the file's indentation).
pub(crate) fn looks(msg: &str) -> bool {
    msg.starts_with("Auth: [") && msg.contains("] user [") && msg.contains(" remote host [")
}

/// Why an ambiguous line names nobody (see the module doc).
const AMBIGUOUS: &str =
    "ambiguous Samba audit line: a client-supplied name repeats its field markers";

pub(crate) fn parse(msg: &str, tz: &TimeZone) -> Option<Fields> {
    let msg = msg.trim_start();
    let count = |m: &str| memchr::memmem::find_iter(msg.as_bytes(), m.as_bytes()).count();
    if count("] status [") > 1 || count(" remote host [") > 1 {
        return ambiguous(msg);
    }
    let rest = msg.strip_prefix("Auth: [")?;
    let (service, rest) = rest.split_once("] user [")?;
    let (domain, rest) = rest.split_once("]\\[")?;
    let (user, rest) = rest.split_once("] at [")?;
    let (stamp, rest) = rest.split_once("] with [")?;
    let (_pwtype, rest) = rest.split_once("] status [")?;
    let (status, rest) = rest.split_once(']')?;
    if !status.starts_with("NT_STATUS_") {
        return None;
    }
    let (_, rest) = rest.split_once(" remote host [")?;
    let (remote, rest) = rest.split_once(']')?;
    let local = rest
        .split_once(" local host [")
        .and_then(|(_, r)| r.split_once(']'))
        .map_or("", |x| x.0);
    let mut f = Fields::new();
    let ok = status == "NT_STATUS_OK";
    f.event(
        "authentication",
        "start",
        if ok { "success" } else { "failure" },
    );
    f.s("event.action", "samba_logon");
    if !ok {
        f.s("event.reason", status);
    }
    let named = |s: &str| !s.is_empty() && s != "(null)";
    if named(user) {
        f.s("user.name", user);
    }
    if named(domain) {
        f.s("user.domain", domain);
    }
    endpoint(remote, "source", &mut f);
    endpoint(local, "destination", &mut f);
    let svc = service.split(',').next().unwrap_or("");
    f.s("network.protocol", &protocol(svc));
    if let Some(ts) = at(stamp, tz) {
        f.ts("@timestamp", ts);
    }
    f.s("observer.vendor", "Samba")
        .s("observer.product", "Samba");
    Some(f)
}

fn ambiguous(msg: &str) -> Option<Fields> {
    if !msg.starts_with("Auth: [") {
        return None;
    }
    let mut statuses = msg
        .split("] status [")
        .skip(1)
        .map(|r| r.split(']').next().unwrap_or(""));
    let failed = statuses.any(|s| s != "NT_STATUS_OK");
    let mut f = Fields::new();
    f.event(
        "authentication",
        "start",
        if failed { "failure" } else { "success" },
    );
    f.s("event.action", "samba_logon")
        .s("event.reason", AMBIGUOUS);
    f.s("observer.vendor", "Samba")
        .s("observer.product", "Samba");
    Some(f)
}

/// `ipv4:1.2.3.4:445` / `ipv6:2001:db8::5:445` (tsocket's form: the port after the last `:`) → `{side}.ip`, `{side}.port`.
fn endpoint(s: &str, side: &str, f: &mut Fields) {
    let (ip, port) = if let Some(v4) = s.strip_prefix("ipv4:") {
        v4.rsplit_once(':').unwrap_or((v4, ""))
    } else if let Some(v6) = s.strip_prefix("ipv6:") {
        v6.rsplit_once(':').unwrap_or((v6, ""))
    } else {
        return;
    };
    let (ipk, portk) = if side == "source" {
        ("source.ip", "source.port")
    } else {
        ("destination.ip", "destination.port")
    };
    if f.ip(ipk, ip).has(ipk) {
        f.n(portk, port);
    }
}

fn protocol(svc: &str) -> String {
    let p = svc.to_ascii_lowercase();
    match p.as_str() {
        "smb" | "smb2" => "smb".into(),
        "kerberos kdc" => "kerberos".into(),
        "(null)" => String::new(),
        _ => p,
    }
}

/// `Fri, 24 Sep 2021 10:04:59.030937 UTC` (Samba's `timeval_str_buf` form).
fn at(s: &str, tz: &TimeZone) -> Option<jiff::Timestamp> {
    let mut t = s.split_ascii_whitespace();
    let _wday = t.next()?;
    let day: i8 = t.next()?.parse().ok()?;
    let mon = time::month(t.next()?.as_bytes())?;
    let year: i16 = t.next()?.parse().ok()?;
    let (h, m, sec, ns) = time::hms(t.next()?.as_bytes())?;
    let zone = t.next().unwrap_or("");
    let dt = DateTime::new(year, mon, day, h, m, sec, ns).ok()?;
    match zone {
        "UTC" | "GMT" | "Z" => time::civil(dt, &TimeZone::UTC),
        z if z.starts_with(['+', '-']) => {
            let off = time::parse_offset(z)?;
            time::civil(dt, &TimeZone::fixed(off))
        }
        _ => time::civil(dt, tz),
    }
}
