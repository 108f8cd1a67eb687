//! `sudo` command lines and `su` session messages.
//!
//! sudo: `USER : [REASON ; ]TTY=… ; PWD=… ; USER=… ; [TSID=… ; ]COMMAND=…` → `user.name`,
//! `user.effective.name` (the identity the command runs as), `process.command_line`, outcome;
//! REASON (`3 incorrect password attempts`, `user NOT in sudoers`, `command not allowed`, …) makes
//! the line a failure and goes to `event.reason`. A line without `TTY=`/`COMMAND=` is not sudo's.
//!
//! su: `user.name` is the account switched to (the one authenticated, as for a logon),
//! `source.user.name` the account that ran su; `user.target.name` repeats the target. Forms:
//! util-linux `(to T) U on TTY` / `FAILED SU (to T) U on TTY`, shadow-utils `Successful su for T by
//! U` / `FAILED su for T by U` / `+ TTY U:T` / `- TTY U:T`, and the older `U to T on TTY` /
//! `BAD SU U to T on TTY` / `failed: TTY changing from U to T`.

use crate::fields::Fields;

pub(crate) fn parse_sudo(msg: &str) -> Option<Fields> {
    let (user, rest) = msg.trim_start().split_once(" : ")?;
    if user.contains(' ')
        || user.is_empty()
        || !(rest.contains("TTY=") || rest.contains("COMMAND="))
    {
        return None;
    }
    let mut f = Fields::new();
    f.s("process.name", "sudo").s("user.name", user);
    let failed = !rest.starts_with("TTY=") && !rest.starts_with("PWD=");
    // COMMAND is sudo's last field and its arguments are the caller's text: everything after the
    // first `COMMAND=` is the command line, so arguments such as `x ; USER=root` cannot set
    // another field, and the real command is always inside `process.command_line`.
    let (head, cmd) = match rest.strip_prefix("COMMAND=") {
        Some(c) => ("", Some(c)),
        None => match rest.split_once(" ; COMMAND=") {
            Some((h, c)) => (h, Some(c)),
            None => (rest, None),
        },
    };
    if let Some(v) = head
        .split(" ; ")
        .filter_map(|p| p.strip_prefix("USER="))
        .last()
    {
        f.s("user.effective.name", v);
    }
    if let Some(c) = cmd {
        f.s("process.command_line", c);
    }
    if failed {
        f.s("event.reason", rest.split(" ; ").next().unwrap_or(""));
    }
    f.event(
        "process",
        "start",
        if failed { "failure" } else { "success" },
    );
    f.s(
        "event.action",
        if failed {
            "sudo_denied"
        } else {
            "sudo_command"
        },
    );
    Some(f)
}

pub(crate) fn parse_su(msg: &str) -> Option<Fields> {
    let (ok, user, target) = su_parts(msg)?;
    if user.is_empty() || target.is_empty() || user.contains(' ') || target.contains(' ') {
        return None;
    }
    let mut f = Fields::new();
    f.s("process.name", "su");
    f.s("user.name", target)
        .s("user.target.name", target)
        .s("source.user.name", user);
    f.event(
        "authentication",
        "start",
        if ok { "success" } else { "failure" },
    );
    f.s("event.action", "su");
    Some(f)
}

/// (success, invoking user, target user).
fn su_parts(msg: &str) -> Option<(bool, &str, &str)> {
    if let Some(r) = msg.strip_prefix("Successful su for ") {
        let (t, u) = r.split_once(" by ")?;
        return Some((true, u.trim(), t.trim()));
    }
    if let Some(r) = msg.strip_prefix("FAILED su for ") {
        let (t, u) = r.split_once(" by ")?;
        return Some((false, u.trim(), t.trim()));
    }
    let (ok, r) = match msg.strip_prefix("FAILED SU ") {
        Some(r) => (false, r),
        None => (true, msg),
    };
    if let Some(r) = r.strip_prefix("(to ") {
        let (t, rest) = r.split_once(") ")?;
        let (u, _tty) = rest.split_once(" on ")?;
        return Some((ok, u, t));
    }
    if let Some(r) = msg.strip_prefix("+ ").or_else(|| msg.strip_prefix("- ")) {
        let (u, t) = r.split_once(' ')?.1.split_once(':')?;
        return Some((msg.starts_with('+'), u, t));
    }
    if let Some(r) = msg.strip_prefix("failed: ") {
        let (_tty, r) = r.split_once(" changing from ")?;
        let (u, t) = r.split_once(" to ")?;
        return Some((false, u, t));
    }
    let (ok, r) = match msg.strip_prefix("BAD SU ") {
        Some(r) => (false, r),
        None => (true, msg),
    };
    let (u, r) = r.split_once(" to ")?;
    let (t, _tty) = r.split_once(" on ")?;
    Some((ok, u, t))
}
