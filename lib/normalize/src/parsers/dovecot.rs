//! Dovecot IMAP/POP3 server (`dovecot` program): login processes and auth workers.
//!
//! `imap-login: [Info: ]Login: user=<U>, method=M, rip=IP, lip=IP, …` → authentication success;
//! `…-login: [Info: ]Disconnected…(auth failed, N attempts in S secs): user=<U>, …, rip=IP, …` →
//! authentication failure (also `tried to use disabled plaintext auth`); other `…-login:` disconnects (`no auth attempts`) → `disconnect`
//! without an outcome. Auth workers: `auth-worker(PID): [Info: ][conn …: auth-worker<N>: ]
//! BACKEND(USER,IP[,<session>]): MSG` and `auth: BACKEND(USER,IP): MSG` → authentication
//! failure when MSG says `unknown user`, `mismatch`, `failed` or `failure`, else no outcome.
//!
//! Invariant: a line is claimed only with program `dovecot` and one of these two shapes.

use crate::fields::Fields;

/// Password databases Dovecot names in auth-worker lines.
const BACKENDS: &[&str] = &[
    "pam",
    "passwd-file",
    "passwd",
    "shadow",
    "sql",
    "ldap",
    "checkpassword",
    "bsdauth",
    "static",
    "dict",
    "lua",
    "oauth2",
];

pub(crate) fn parse(msg: &str) -> Option<Fields> {
    // Dovecot 1.x repeats its name: `dovecot: auth(default): …`.
    let msg = msg.strip_prefix("dovecot: ").unwrap_or(msg);
    let (svc, rest) = msg.split_once(": ")?;
    if let Some(proto) = svc.strip_suffix("-login") {
        return login(proto, rest);
    }
    if svc == "auth" || svc.starts_with("auth(") || svc.starts_with("auth-worker(") {
        return auth(msg);
    }
    None
}

/// A login process that logs under its own name (`imap-login: …` without `dovecot: `, as with
/// daemontools' multilog).
pub(crate) fn parse_login_program(program: &str, msg: &str) -> Option<Fields> {
    let proto = program.strip_suffix("-login")?;
    matches!(proto, "imap" | "pop3" | "submission" | "managesieve")
        .then(|| login(proto, msg))
        .flatten()
}

fn login(proto: &str, rest: &str) -> Option<Fields> {
    let rest = rest.strip_prefix("Info: ").unwrap_or(rest);
    // The key=value list starts at the first `user=<`, `method=` or `rip=`.
    let kv_at = ["user=<", "method=", "rip="]
        .iter()
        .filter_map(|k| rest.find(k))
        .min()?;
    let head = rest[..kv_at].trim_end_matches([':', ' ']);
    let kv = &rest[kv_at..];
    let mut f = Fields::new();
    f.s("network.protocol", proto);
    if head == "Login" {
        f.event("authentication", "start", "success")
            .s("event.action", "login");
    } else if head.contains("(auth failed") || head.contains("disabled plaintext auth") {
        f.event("authentication", "start", "failure")
            .s("event.action", "login");
    } else if head.starts_with("Disconnected") || head.starts_with("Aborted login") {
        f.event("network", "end", "")
            .s("event.action", "disconnect");
    } else {
        return None;
    }
    for item in kv.split(", ") {
        match item.split_once('=') {
            Some(("user", v)) => {
                f.s("user.name", v.trim_start_matches('<').trim_end_matches('>'));
            }
            Some(("rip", v)) => {
                f.ip("source.ip", v);
            }
            Some(("lip", v)) => {
                f.ip("destination.ip", v);
            }
            _ => {}
        }
    }
    f.s("process.name", "dovecot");
    Some(f)
}

fn auth(msg: &str) -> Option<Fields> {
    // The last `BACKEND(USER,IP…): MSG` of the line.
    let (open, backend) = BACKENDS
        .iter()
        .filter_map(|b| msg.rfind(&format!(" {b}(")).map(|i| (i + b.len() + 2, *b)))
        .max_by_key(|(i, _)| *i)?;
    let (args, tail) = msg[open..].split_once("): ")?;
    let mut parts = args.split(',');
    let user = parts.next()?;
    let ip = parts.next().unwrap_or("");
    let mut f = Fields::new();
    let low = tail.to_ascii_lowercase();
    let fail = ["unknown user", "mismatch", "failed", "failure"]
        .iter()
        .any(|w| low.contains(w));
    f.event("authentication", "info", if fail { "failure" } else { "" })
        .s("event.action", "auth");
    f.s("user.name", user).ip("source.ip", ip);
    f.s("event.reason", tail).s("dovecot.auth_backend", backend);
    f.s("process.name", "dovecot");
    Some(f)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shapes_outside_dovecots_are_declined() {
        assert!(super::parse("master: Dovecot v2.3.19 starting up for imap").is_none());
        assert!(super::parse("imap(bob)<123>: Logged out in=10 out=20").is_none());
        let f = super::parse("auth: passwd-file(bob,192.0.2.9): unknown user").unwrap();
        assert_eq!(f.to_map()["event.outcome"], "failure");
        assert_eq!(f.to_map()["source.ip"], "192.0.2.9");
    }
}
