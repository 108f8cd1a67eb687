//! OpenSSH server (`sshd`, `sshd-session`) and PAM (`pam_unix(...)`, `PAM:` errors) messages.
//!
//! Recognized sshd messages and their `event.action` (outcome):
//! `Accepted …` → `ssh_login` (success); `Failed …`, `error: PAM: … failure for`, `ROOT LOGIN
//! REFUSED`, `User … not allowed` → `ssh_login` (failure); `Invalid user` → `invalid_user` (failure);
//! `Connection closed by`, `Disconnected from`, `Received disconnect`, `Connection reset by`,
//! `Disconnecting …` → `disconnect`; `error: maximum authentication attempts exceeded for …` →
//! `max_auth_attempts` (failure). Other sshd lines are claimed with only the common fields.

use crate::fields::Fields;

/// Parses an sshd message (syslog framing already stripped).
pub(crate) fn parse(msg: &str) -> Fields {
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
    let Some((user, tail)) = rest.rsplit_once(" from ") else {
        return false;
    };
    auth(f, "ssh_login", ok);
    f.s("user.name", user).s("sshd.auth_method", method);
    addr(tail, f);
    true
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
    if first.parse::<std::net::IpAddr>().is_ok() {
        addr(rest, f);
        return true;
    }
    // "[invalid|authenticating] user NAME IP port N"
    let rest = ["invalid user ", "authenticating user ", "user "]
        .iter()
        .find_map(|p| rest.strip_prefix(p));
    if let Some(rest) = rest
        && let Some((user, tail)) = rest.split_once(' ')
    {
        f.s("user.name", user);
        addr(tail, f);
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
        && tail.contains(" not allowed because ")
    {
        auth(f, "ssh_login", false);
        f.s("user.name", user);
        addr(tail, f);
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
    }
}

/// `Authentication failure for [illegal user ]USER from HOST` (also `authentication error`).
fn pam_error(rest: &str, f: &mut Fields) {
    let lower = rest.get(..22).map(str::to_ascii_lowercase);
    if !matches!(
        lower.as_deref(),
        Some("authentication failure" | "authentication error f")
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
    let body = &msg[close + 3..];
    let mut f = Fields::new();
    f.s("process.name", svc.split(':').next().unwrap_or(""));
    f.s("pam.module", module);
    if body.starts_with("authentication failure") {
        f.event("authentication", "info", "failure");
        f.s("event.action", "pam_auth_failure");
        for (k, v) in crate::kv::kv(body) {
            match k {
                "user" => {
                    f.s("user.name", v);
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
    } else if let Some(r) = body.strip_prefix("session closed for user ") {
        f.event("session", "end", "success")
            .s("event.action", "session_closed");
        f.s("user.name", r.split([' ', '(']).next().unwrap_or(""));
    }
    Some(f)
}
