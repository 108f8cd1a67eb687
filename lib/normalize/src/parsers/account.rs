//! Linux account management by shadow-utils (`useradd`, `userdel`, `groupadd`, `groupdel`,
//! `usermod`, `passwd`, `chpasswd`): creation and deletion of users and groups, password changes.
//!
//! `new user: name=U, UID=N, GID=N, home=…, shell=…` → `user_created`; `new group: name=G, GID=N`
//! → `group_created`; `delete user 'U'` → `user_deleted`; `removed group 'G' owned by 'U'` /
//! `group 'G' removed` → `group_deleted`; `password for 'U' changed by 'A'` and
//! `password changed for U` → `password_changed`. Anything else from these programs is declined.

use crate::fields::Fields;

/// Programs whose lines this parser reads.
pub(crate) const PROGRAMS: &[&str] = &[
    "useradd", "userdel", "groupadd", "groupdel", "usermod", "passwd", "chpasswd",
];

pub(crate) fn parse(program: &str, msg: &str) -> Option<Fields> {
    let mut f = Fields::new();
    f.s("process.name", program);
    if let Some(r) = msg.strip_prefix("new user: ") {
        f.event("iam", "creation", "success")
            .s("event.action", "user_created");
        kv(r, &mut f, "user.name", "user.id");
    } else if let Some(r) = msg.strip_prefix("new group: ") {
        f.event("iam", "creation", "success")
            .s("event.action", "group_created");
        kv(r, &mut f, "group.name", "group.id");
    } else if let Some(r) = msg.strip_prefix("delete user '") {
        f.event("iam", "deletion", "success")
            .s("event.action", "user_deleted");
        f.s("user.name", r.split('\'').next().unwrap_or(""));
    } else if let Some(r) = msg.strip_prefix("removed group '").or_else(|| {
        msg.strip_prefix("group '")
            .filter(|r| r.ends_with("' removed"))
    }) {
        f.event("iam", "deletion", "success")
            .s("event.action", "group_deleted");
        f.s("group.name", r.split('\'').next().unwrap_or(""));
    } else if let Some(r) = msg.strip_prefix("password for '") {
        f.event("iam", "change", "success")
            .s("event.action", "password_changed");
        f.s("user.name", r.split('\'').next().unwrap_or(""));
    } else if let Some(r) = msg.strip_prefix("password changed for ") {
        f.event("iam", "change", "success")
            .s("event.action", "password_changed");
        f.s("user.name", r.trim());
    } else {
        return None;
    }
    Some(f)
}

/// `name=X, UID=N, GID=N, …` → name and id fields.
fn kv(r: &str, f: &mut Fields, name_k: &'static str, id_k: &'static str) {
    for item in r.split(", ") {
        match item.split_once('=') {
            Some(("name", v)) => {
                f.s(name_k, v);
            }
            Some(("UID", v)) if id_k == "user.id" => {
                f.s(id_k, v);
            }
            Some(("GID", v)) => {
                f.s(if id_k == "group.id" { id_k } else { "group.id" }, v);
            }
            _ => {}
        }
    }
}
