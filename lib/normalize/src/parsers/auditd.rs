//! Linux audit records: `[node=N ]type=T msg=audit(EPOCH:SERIAL): key=value …`.
//!
//! One output event per record (the caller stores records one per line). Records of one event
//! share SERIAL; the SYSCALL record's process/user facts and the EXECVE/PROCTITLE command line are
//! remembered per serial (bounded map, oldest evicted) and copied onto later records of the same
//! serial when they lack them. EXECVE `aN` values without quotes are hex and are decoded.

use crate::fields::Fields;
use crate::kv::kv;
use crate::parsers::{AuditGroup, State};
use crate::time;

pub(crate) fn looks(line: &str) -> bool {
    (line.starts_with("type=") || line.starts_with("node=")) && line.contains(" msg=audit(")
}

pub(crate) fn parse(line: &str, st: &mut State) -> Option<Fields> {
    let mut node = "";
    let mut rest = line;
    if let Some(r) = rest.strip_prefix("node=") {
        let (n, r) = r.split_once(' ')?;
        node = n;
        rest = r;
    }
    let (typ, rest) = rest.strip_prefix("type=")?.split_once(' ')?;
    let rest = rest.strip_prefix("msg=audit(")?;
    let (stamp, body) = rest.split_once(')')?;
    let body = body.strip_prefix(':').unwrap_or(body);
    let (epoch, serial) = stamp.split_once(':')?;
    let ts = time::epoch(epoch)?;
    let serial: u64 = serial.parse().ok()?;
    let mut f = Fields::new();
    f.ts("@timestamp", ts).s("host.name", node);
    f.s("auditd.log.record_type", typ)
        .n("auditd.log.sequence", &serial.to_string());
    f.s("event.action", &typ.to_ascii_lowercase());
    let mut g = st.audit.get(&serial).cloned().unwrap_or_default();
    record(body, typ, &mut f, &mut g);
    carry(&g, &mut f);
    category(typ, &mut f);
    st.audit.insert(serial, g);
    Some(f)
}

fn record(body: &str, typ: &str, f: &mut Fields, g: &mut AuditGroup) {
    let mut args: Vec<(usize, String)> = Vec::new();
    let mut it = kv(body);
    while let Some((k, v)) = it.next() {
        let hex = !it.last_quoted;
        match k {
            "msg" => record(v, typ, f, g),
            "pid" => set(&mut g.pid, v),
            "ppid" => set(&mut g.ppid, v),
            "auid" | "uid" if v != "4294967295" => {
                let dst = if k == "uid" { &mut g.uid } else { &mut g.auid };
                set(dst, v);
            }
            "exe" => set(&mut g.exe, v),
            "comm" => set(&mut g.comm, v),
            "acct" => {
                f.s("user.name", &if hex { unhex(v) } else { v.to_owned() });
            }
            "addr" => {
                f.ip("source.ip", v);
            }
            "hostname" if v != "?" && !f.has("source.domain") => {
                if v.parse::<std::net::IpAddr>().is_err() {
                    f.s("source.domain", v);
                }
            }
            "res" | "success" => g.outcome = outcome(v),
            "proctitle" if g.cmdline.is_empty() => {
                g.cmdline = if hex {
                    unhex(v).replace('\0', " ")
                } else {
                    v.to_owned()
                };
            }
            "key" if v != "(null)" => {
                f.s("tags", v);
            }
            _ => {
                if typ == "EXECVE"
                    && let Some(n) = k.strip_prefix('a')
                    && let Ok(i) = n.parse()
                {
                    args.push((i, if hex { unhex(v) } else { v.to_owned() }));
                }
            }
        }
    }
    if !args.is_empty() {
        args.sort_by_key(|a| a.0);
        g.cmdline = args.into_iter().map(|a| a.1).collect::<Vec<_>>().join(" ");
    }
}

fn set(dst: &mut String, v: &str) {
    if dst.is_empty() && v != "?" {
        *dst = v.to_owned();
    }
}

fn outcome(v: &str) -> &'static str {
    match v {
        "success" | "yes" | "1" => "success",
        "failed" | "no" | "0" | "failure" => "failure",
        _ => "",
    }
}

fn carry(g: &AuditGroup, f: &mut Fields) {
    f.n("process.pid", &g.pid).n("process.parent.pid", &g.ppid);
    f.s("process.executable", &g.exe).s("process.name", &g.comm);
    f.s("user.id", &g.uid).s("user.audit.id", &g.auid);
    f.s("process.command_line", &g.cmdline);
    if !g.outcome.is_empty() {
        f.s("event.outcome", g.outcome);
    }
}

fn category(typ: &str, f: &mut Fields) {
    let (cat, t) = match typ {
        "USER_LOGIN" | "USER_AUTH" | "USER_ACCT" | "USER_ERR" | "CRED_ACQ" | "CRED_REFR" => {
            ("authentication", "info")
        }
        "USER_START" | "LOGIN" => ("session", "start"),
        "USER_END" | "CRED_DISP" => ("session", "end"),
        "ADD_USER" | "ADD_GROUP" => ("iam", "creation"),
        "DEL_USER" | "DEL_GROUP" => ("iam", "deletion"),
        "EXECVE" | "SYSCALL" | "PROCTITLE" => ("process", "info"),
        "CONFIG_CHANGE" => ("configuration", "change"),
        _ => return,
    };
    let outcome = f.get_str("event.outcome").unwrap_or("").to_owned();
    f.event(cat, t, &outcome);
}

/// Auditd hex encoding: an even-length string of hex digits (no quotes) is hex-encoded bytes.
fn unhex(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() < 2 || !b.len().is_multiple_of(2) || !b.iter().all(u8::is_ascii_hexdigit) {
        return v.to_owned();
    }
    let bytes: Vec<u8> = b
        .chunks(2)
        .map(|c| (hexval(c[0]) << 4) | hexval(c[1]))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn hexval(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    }
}
