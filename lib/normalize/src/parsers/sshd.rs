//! OpenSSH server (`sshd`, `sshd-session`) and PAM (`pam_unix(...)`, `PAM:` errors) messages.
//!
//! Recognized sshd messages and their `event.action` (outcome):
//! `Accepted …` → `ssh_login` (success); `Failed …`, `error: PAM: … failure for`, `ROOT LOGIN
//! REFUSED`, `User … not allowed` → `ssh_login` (failure); `Invalid user` → `invalid_user` (failure);
//! `Connection closed by`, `Disconnected from`, `Received disconnect`, `Connection reset by`,
//! `Disconnecting …` → `disconnect`; `error: maximum authentication attempts exceeded for …` →
//! `max_auth_attempts` (failure); tcp_wrappers `refused connect from … (ADDR)` → `refused_connect`
//! (failure). `Accepted`/`Failed` take the address OpenSSH wrote, not one forged inside the user
//! name or the auth info (see `peer_after_user`). Other sshd lines are claimed with only the common fields.

use crate::fields::Fields;
use crate::parsers::State;

/// [`parse`], then the per-connection join: `Connection from IP port N` (LogLevel VERBOSE) and
/// `SSH: Server;…;Remote: IP-port;…` remember the client of an sshd process (host + pid, bounded
/// map); a later line of that process without an address (`Disconnecting: Too many
/// authentication failures`, `fatal: Read from socket failed`, `kex_exchange_identification`,
/// `Unable to negotiate a key exchange method`) gets it as `source.ip`.
pub(crate) fn parse_joined(msg: &str, host: &str, pid: &str, st: &mut State) -> Fields {
    let mut f = parse(msg);
    if pid.is_empty() {
        return f;
    }
    let key = || format!("{host}|{pid}");
    let announced = msg
        .strip_prefix("Connection from ")
        .map(|r| r.split(' ').next().unwrap_or(""))
        .or_else(|| {
            msg.strip_prefix("SSH: Server;")?
                .split(';')
                .find_map(|kv| kv.strip_prefix("Remote: "))
                .and_then(|r| r.rsplit_once('-').map(|x| x.0))
        });
    if let Some(ip) = announced.filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()) {
        f.s("source.ip", ip);
        st.sshd_client.insert(key(), ip.to_owned());
    } else if !f.has("source.ip")
        && let Some(ip) = st.sshd_client.get(&key())
    {
        f.s("source.ip", &ip.clone());
    }
    f
}

/// Parses an sshd message (syslog framing already stripped).
pub(crate) fn parse(msg: &str) -> Fields {
    // Solaris prefixes `[ID 800047 auth.info] `; some builds prefix `error: ` to disconnects.
    let msg = match msg.strip_prefix("[ID ").and_then(|r| r.split_once("] ")) {
        Some((_, rest)) => rest,
        None => msg,
    };
    let msg = match msg.strip_prefix("error: ") {
        Some(r) if r.starts_with("Received disconnect") => r,
        _ => msg,
    };
    let mut f = Fields::new();
    f.s("process.name", "sshd");
    if !(accepted_failed(msg, &mut f) || invalid(msg, &mut f) || disconnect(msg, &mut f)) {
        refused(msg, &mut f);
    }
    f
}

fn auth(f: &mut Fields, action: &str, ok: bool) {
    f.event(
        "authentication",
        if ok { "start" } else { "info" },
        if ok { "success" } else { "failure" },
    );
    f.s("event.action", action);
}

fn accepted_failed(msg: &str, f: &mut Fields) -> bool {
    let (ok, rest) = if let Some(r) = msg.strip_prefix("Accepted ") {
        (true, r)
    } else if let Some(r) = msg.strip_prefix("Failed ") {
        (false, r)
    } else {
        return false;
    };
    let Some((method, rest)) = rest.split_once(" for ") else {
        return false;
    };
    let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
    let Some((user, tail)) = peer_after_user(rest) else {
        return false;
    };
    auth(f, "ssh_login", ok);
    f.s("user.name", user).s("sshd.auth_method", method);
    addr(tail, f);
    true
}

/// How well the text after a ` from ` fits OpenSSH's `from IP port N sshV[: info]`.
#[derive(PartialEq)]
enum Fit {
    No,
    /// `IP` or `IP port N` ending the line (older formats).
    Weak,
    /// `IP port N ssh1|ssh2` then the end or `: ` (the auth info).
    Strong,
}

fn fit(tail: &str) -> Fit {
    let (ip, rest) = tail.split_once(' ').unwrap_or((tail, ""));
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Fit::No;
    }
    if rest.is_empty() {
        return Fit::Weak;
    }
    let Some(p) = rest.strip_prefix("port ") else {
        return Fit::No;
    };
    let (port, rest) = p.split_once(' ').unwrap_or((p, ""));
    if port.parse::<u16>().is_err() {
        return Fit::No;
    }
    if rest.is_empty() {
        return Fit::Weak;
    }
    match rest
        .strip_prefix("ssh1")
        .or_else(|| rest.strip_prefix("ssh2"))
    {
        Some(after) if after.is_empty() || after.starts_with(": ") => Fit::Strong,
        _ => Fit::No,
    }
}

/// Splits `USER from IP port N sshV[: info]` where USER and info may themselves contain
/// ` from IP port N ssh2` (forged by a client choosing its user name, or by PAM auth info):
/// the first strong fit wins, else the last weak one. The source address is never taken from
/// text the client controls when the line has OpenSSH's own `port N sshV` after the real one.
fn peer_after_user(rest: &str) -> Option<(&str, &str)> {
    let mut weak = None;
    let mut from = 0;
    while let Some(i) = rest[from..].find(" from ") {
        let at = from + i;
        let tail = &rest[at + 6..];
        match fit(tail) {
            Fit::Strong => return Some((&rest[..at], tail)),
            Fit::Weak => weak = Some((&rest[..at], tail)),
            Fit::No => {}
        }
        from = at + 6;
    }
    weak
}

fn invalid(msg: &str, f: &mut Fields) -> bool {
    let Some(rest) = msg.strip_prefix("Invalid user ") else {
        return false;
    };
    auth(f, "invalid_user", false);
    if let Some((user, tail)) = rest.rsplit_once(" from ") {
        f.s("user.name", user.trim());
        addr(tail, f);
    } else if let Some(tail) = rest.strip_prefix("from ") {
        addr(tail, f);
    }
    true
}

const DISCONNECT: [&str; 6] = [
    "Connection closed by ",
    "Disconnected from ",
    "Received disconnect from ",
    "Connection reset by ",
    "Disconnecting ",
    "Timeout before authentication for ",
];

fn disconnect(msg: &str, f: &mut Fields) -> bool {
    let Some(rest) = DISCONNECT.iter().find_map(|p| msg.strip_prefix(p)) else {
        return false;
    };
    f.event("session", "end", "");
    f.s("event.action", "disconnect");
    let mut toks = rest.split(' ');
    let Some(first) = toks.next() else {
        return true;
    };
    if first
        .trim_end_matches(':')
        .parse::<std::net::IpAddr>()
        .is_ok()
    {
        addr(rest, f);
        return true;
    }
    // "[invalid|authenticating] user NAME IP port N"
    let rest = ["invalid user ", "authenticating user ", "user "]
        .iter()
        .find_map(|p| rest.strip_prefix(p));
    // Read from the right: the user name is the client's choice and may itself hold an address
    // (`user test 127.0.0.1 192.0.2.11 port 46039`): the address is the token before ` port N`.
    if let Some(rest) = rest {
        let body = rest.trim_end_matches(" [preauth]");
        let body = body.split(": ").next().unwrap_or(body);
        let (head, _port) = body.rsplit_once(" port ").unwrap_or((body, ""));
        if let Some((user, ip)) = head.rsplit_once(' ')
            && ip.parse::<std::net::IpAddr>().is_ok()
        {
            f.s("user.name", user);
            addr(&body[user.len() + 1..], f);
        }
    }
    true
}

fn refused(msg: &str, f: &mut Fields) {
    if let Some(rest) = msg.strip_prefix("ROOT LOGIN REFUSED FROM ") {
        auth(f, "ssh_login", false);
        f.s("user.name", "root");
        addr(rest.trim_start_matches("::ffff:"), f);
    } else if let Some(rest) = msg.strip_prefix("User ")
        && let Some((user, tail)) = rest.split_once(" from ")
        && let Some((host, _)) = tail.split_once(" not allowed because ")
    {
        auth(f, "ssh_login", false);
        f.s("user.name", user);
        source_host(host, f);
    } else if let Some(rest) =
        msg.strip_prefix("error: maximum authentication attempts exceeded for ")
        && let Some((user, tail)) = rest
            .strip_prefix("invalid user ")
            .unwrap_or(rest)
            .rsplit_once(" from ")
    {
        auth(f, "max_auth_attempts", false);
        f.s("user.name", user);
        addr(tail, f);
    } else if let Some(rest) = msg.strip_prefix("error: PAM: ") {
        pam_error(rest, f);
    } else if let Some(rest) = msg.strip_prefix("Bad protocol version identification ") {
        // The identification string is the client's: the address follows the last ` from `.
        f.event("network", "connection", "")
            .s("event.action", "bad_protocol_version");
        if let Some((_, tail)) = rest.rsplit_once(" from ") {
            addr(tail, f);
        }
    } else if let Some(rest) = msg
        .strip_prefix("Unable to negotiate with ")
        .or_else(|| msg.strip_prefix("fatal: Unable to negotiate with "))
    {
        f.event("network", "connection", "failure")
            .s("event.action", "negotiation_failed");
        addr(rest.split(':').next().unwrap_or(rest), f);
    } else if let Some(rest) = msg.strip_prefix("Did not receive identification string from ") {
        // A client that connected and sent nothing (scanners).
        f.event("network", "connection", "")
            .s("event.action", "no_identification");
        addr(rest, f);
    } else if let Some(rest) = msg.strip_prefix("refused connect from ") {
        // tcp_wrappers: `refused connect from NAME@HOST (ADDR)`; ADDR is what the kernel saw.
        let a = rest
            .rsplit_once(" (")
            .and_then(|(_, a)| a.strip_suffix(')'))
            .unwrap_or("");
        f.event("network", "denied", "failure")
            .s("event.action", "refused_connect");
        f.ip("source.ip", a.trim_start_matches("::ffff:"));
    }
}

/// `Authentication failure for [illegal user ]USER from HOST[ via ADDR]` (also `authentication
/// error`, `User not known to the underlying authentication module`).
fn pam_error(rest: &str, f: &mut Fields) {
    let lower = rest.get(..22).map(str::to_ascii_lowercase);
    if !matches!(
        lower.as_deref(),
        Some("authentication failure" | "authentication error f" | "user not known to the ")
    ) {
        return;
    }
    let Some((_, tail)) = rest.split_once(" for ") else {
        return;
    };
    let tail = tail.strip_prefix("illegal user ").unwrap_or(tail);
    let Some((user, host)) = tail.rsplit_once(" from ") else {
        return;
    };
    // macOS: `… from HOST via LOCAL-ADDR`.
    let host = host.split(" via ").next().unwrap_or(host);
    auth(f, "ssh_login", false);
    f.s("user.name", user);
    source_host(host.trim(), f);
}

/// "IP[ port N][ ...]" → source.ip / source.port.
pub(crate) fn addr(tail: &str, f: &mut Fields) {
    let tail = tail.trim_start();
    let ip_end = tail.find(' ').unwrap_or(tail.len());
    let ip = tail[..ip_end].trim_end_matches(':');
    f.ip("source.ip", ip);
    if let Some(i) = tail.find(" port ") {
        let p = &tail[i + 6..];
        let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
        f.n("source.port", &p[..end]);
    }
}

/// An address or a host name.
pub(crate) fn source_host(h: &str, f: &mut Fields) {
    if h.parse::<std::net::IpAddr>().is_ok() {
        f.s("source.ip", h);
    } else {
        f.s("source.domain", h);
    }
}

/// `pam_unix(service:type): …` and similar PAM module messages from any program.
pub(crate) fn parse_pam(msg: &str) -> Option<Fields> {
    let open = msg.find('(')?;
    let module = &msg[..open];
    if !module.starts_with("pam_") {
        return None;
    }
    let close = msg.find("): ")?;
    let svc = msg.get(open + 1..close)?;
    Some(pam_body(
        module,
        svc.split(':').next().unwrap_or(""),
        &msg[close + 3..],
    ))
}

/// The old Linux-PAM tag form `SERVICE(pam_unix)[PID]: BODY` (program `su(pam_unix)`).
pub(crate) fn parse_pam_tag(program: &str, msg: &str) -> Option<Fields> {
    let (svc, module) = program.strip_suffix(')')?.split_once('(')?;
    if !module.starts_with("pam_") || svc.is_empty() {
        return None;
    }
    let f = pam_body(module, svc, msg);
    f.has("event.category").then_some(f)
}

fn pam_body(module: &str, svc: &str, body: &str) -> Fields {
    let mut f = Fields::new();
    f.s("process.name", svc);
    f.s("pam.module", module);
    if body.starts_with("authentication failure") {
        f.event("authentication", "info", "failure");
        f.s("event.action", "pam_auth_failure");
        for (k, v) in crate::kv::kv(body) {
            match k {
                "user" => {
                    f.s("user.name", v);
                }
                // The account that asked (su's caller, the login name of a remote user).
                "ruser" => {
                    f.s("source.user.name", v);
                }
                "rhost" => source_host(v, &mut f),
                _ => {}
            }
        }
    } else if let Some((_, u)) = body.split_once(" not met by user ") {
        // pam_succeed_if: `requirement "uid >= 1000" not met by user "root"`.
        f.s("user.name", u.trim().trim_matches('"'));
    } else if let Some(r) = body.strip_prefix("session opened for user ") {
        f.event("session", "start", "success")
            .s("event.action", "session_opened");
        f.s("user.name", r.split([' ', '(']).next().unwrap_or(""));
        // `… by alice(uid=1000)`; `by (uid=0)` names no account.
        if let Some((_, by)) = r.rsplit_once(" by ") {
            f.s("source.user.name", by.split('(').next().unwrap_or(""));
        }
    } else if let Some(r) = body.strip_prefix("session closed for user ") {
        f.event("session", "end", "success")
            .s("event.action", "session_closed");
        f.s("user.name", r.split([' ', '(']).next().unwrap_or(""));
    }
    f
}
