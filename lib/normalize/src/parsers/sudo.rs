//! `sudo` command lines and `su` session messages.
//!
//! sudo: `USER : [3 incorrect password attempts ; |user NOT in sudoers ; ]TTY=… ; PWD=… ; USER=… ;
//! COMMAND=…` → `user.name`, `user.effective.name`, `process.command_line`, outcome.
//! su: `Successful su for T by U`, `FAILED su for T by U`, `+ tty U:T`, `- tty U:T`, `(to T) U on tty`.

use crate::fields::Fields;

pub(crate) fn parse_sudo(msg: &str) -> Option<Fields> {
    let (user, rest) = msg.split_once(" : ")?;
    if user.contains(' ') {
        return None;
    }
    let mut f = Fields::new();
    f.s("process.name", "sudo").s("user.name", user.trim());
    let failed = !rest.starts_with("TTY=") && !rest.starts_with("PWD=");
    for part in rest.split(" ; ") {
        if let Some(v) = part.strip_prefix("USER=") {
            f.s("user.effective.name", v);
        } else if let Some(v) = part.strip_prefix("COMMAND=") {
            f.s("process.command_line", v);
        }
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
    let mut f = Fields::new();
    f.s("process.name", "su");
    let (ok, user, target) = if let Some(r) = msg.strip_prefix("Successful su for ") {
        let (t, u) = r.split_once(" by ")?;
        (true, u, t)
    } else if let Some(r) = msg.strip_prefix("FAILED su for ") {
        let (t, u) = r.split_once(" by ")?;
        (false, u, t)
    } else if let Some(r) = msg.strip_prefix("(to ") {
        let (t, rest) = r.split_once(") ")?;
        (true, rest.split(' ').next()?, t)
    } else if let Some(r) = msg.strip_prefix("+ ").or_else(|| msg.strip_prefix("- ")) {
        let (u, t) = r.split_once(' ')?.1.split_once(':')?;
        (msg.starts_with('+'), u, t)
    } else {
        return None;
    };
    f.s("user.name", user.trim())
        .s("user.target.name", target.trim());
    f.event(
        "authentication",
        "start",
        if ok { "success" } else { "failure" },
    );
    f.s("event.action", "su");
    Some(f)
}
