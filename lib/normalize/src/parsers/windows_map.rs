//! Event-id → ECS mapping for Windows Security and Sysmon (shared by XML and JSON inputs).
//!
//! `user.name` is the actor (Subject) except for logon/logoff events, where it is the account that
//! logged on (Target); the other account goes to `user.target.name`.

use crate::fields::Fields;

type Get<'a> = dyn Fn(&str) -> &'a str + 'a;

pub(crate) fn security(id: u32, g: &Get<'_>, f: &mut Fields) {
    match id {
        4624 | 4625 => {
            let ok = id == 4624;
            f.event(
                "authentication",
                "start",
                if ok { "success" } else { "failure" },
            );
            f.s(
                "event.action",
                if ok { "logged-in" } else { "logon-failed" },
            );
            target_user(g, f);
            f.ip("source.ip", g("IpAddress"))
                .n("source.port", g("IpPort"));
            f.s("winlog.logon.type", g("LogonType"))
                .s("winlog.event_data.Status", g("Status"));
            f.s("process.executable", g("ProcessName"));
        }
        4634 => {
            f.event("authentication", "end", "success")
                .s("event.action", "logged-out");
            target_user(g, f);
            f.s("winlog.logon.type", g("LogonType"));
        }
        4648 => {
            f.event("authentication", "start", "success");
            f.s("event.action", "logged-in-explicit");
            subject(g, f);
            f.s("user.target.name", g("TargetUserName"));
            f.ip("source.ip", g("IpAddress"))
                .n("source.port", g("IpPort"));
            f.s("process.executable", g("ProcessName"));
        }
        4672 => {
            f.event("iam", "admin", "success")
                .s("event.action", "logged-in-special");
            subject(g, f);
        }
        4688 => {
            f.event("process", "start", "success")
                .s("event.action", "created-process");
            subject(g, f);
            f.s("process.executable", g("NewProcessName"))
                .s("process.command_line", g("CommandLine"));
            f.s("process.parent.executable", g("ParentProcessName"));
        }
        4720 | 4726 | 4740 => iam(id, g, f),
        1102 => {
            f.event("configuration", "deletion", "success")
                .s("event.action", "audit-log-cleared");
            subject(g, f);
        }
        _ => {}
    }
}

fn iam(id: u32, g: &Get<'_>, f: &mut Fields) {
    let (t, action) = match id {
        4720 => ("creation", "added-user-account"),
        4726 => ("deletion", "deleted-user-account"),
        _ => ("change", "locked-out-user-account"),
    };
    f.event("iam", t, "success").s("event.action", action);
    subject(g, f);
    f.s("user.target.name", g("TargetUserName"));
    if id == 4740 {
        // 4740 writes the Caller Computer Name (where the failed logons came from) into
        // TargetDomainName, not the locked account's domain.
        f.s("source.domain", g("TargetDomainName"));
    } else {
        f.s("user.target.domain", g("TargetDomainName"));
    }
}

fn subject(g: &Get<'_>, f: &mut Fields) {
    f.s("user.name", g("SubjectUserName"))
        .s("user.domain", g("SubjectDomainName"));
    f.s("user.id", g("SubjectUserSid"));
}

fn target_user(g: &Get<'_>, f: &mut Fields) {
    f.s("user.name", g("TargetUserName"))
        .s("user.domain", g("TargetDomainName"));
    f.s("user.id", g("TargetUserSid"));
}

pub(crate) fn sysmon(id: u32, g: &Get<'_>, f: &mut Fields) {
    match id {
        1 => {
            f.event("process", "start", "success")
                .s("event.action", "process-created");
            f.s("process.executable", g("Image"))
                .s("process.command_line", g("CommandLine"));
            f.n("process.pid", g("ProcessId"))
                .s("process.parent.executable", g("ParentImage"));
            f.s("process.parent.command_line", g("ParentCommandLine"));
            domain_user(g("User"), f);
        }
        3 => {
            f.event("network", "connection", "success");
            f.s("event.action", "network-connection-detected");
            f.ip("source.ip", g("SourceIp"))
                .n("source.port", g("SourcePort"));
            f.ip("destination.ip", g("DestinationIp"))
                .n("destination.port", g("DestinationPort"));
            f.s("network.transport", g("Protocol"))
                .s("process.executable", g("Image"));
            f.n("process.pid", g("ProcessId"));
            domain_user(g("User"), f);
        }
        _ => {}
    }
}

/// `DOMAIN\user` → user.domain + user.name.
fn domain_user(v: &str, f: &mut Fields) {
    match v.split_once('\\') {
        Some((d, u)) => f.s("user.domain", d).s("user.name", u),
        None => f.s("user.name", v),
    };
}
