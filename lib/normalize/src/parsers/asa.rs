//! Cisco ASA `%ASA-SEV-ID: text` messages (bare or after syslog framing).
//!
//! Addresses are taken generically: the first `[iface:]IP[/port]` after ` from `/` src `/` for `/
//! ` SRC ` is the source, the next after ` to `/` dst `/` DEST ` the destination. Messages that deny
//! or drop set `event.action=deny`, `Built`/`permitted` ones `allow`. Login/AAA ids set outcome.

use crate::fields::Fields;

pub(crate) fn find(msg: &str) -> Option<&str> {
    let at = memchr::memmem::find(msg.as_bytes(), b"%ASA-")?;
    Some(&msg[at..])
}

pub(crate) fn parse(msg: &str) -> Option<Fields> {
    let rest = msg.strip_prefix("%ASA-")?;
    let (sev, rest) = rest.split_once('-')?;
    let id_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let id = &rest[..id_end];
    if sev.len() != 1 || id.len() != 6 {
        return None;
    }
    let text = rest[id_end..].trim_start_matches(':').trim_start();
    let mut f = Fields::new();
    f.s("observer.vendor", "Cisco").s("observer.product", "ASA");
    f.s("event.code", id).n("log.syslog.severity.code", sev);
    addresses(text, &mut f);
    user(text, &mut f);
    classify(id, text, &mut f);
    Some(f)
}

/// `[iface:]IP[/port]` → (ip, port).
fn endpoint(tok: &str) -> Option<(&str, &str)> {
    let tok = tok.trim_end_matches([',', ';', ')']);
    let (addr, port) = tok.split_once('/').unwrap_or((tok, ""));
    let ip = if addr.parse::<std::net::IpAddr>().is_ok() {
        addr
    } else {
        let (_, a) = addr.split_once(':')?;
        a.parse::<std::net::IpAddr>().ok()?;
        a
    };
    Some((ip, port))
}

fn after<'a>(text: &'a str, keys: &[&str]) -> Option<(&'a str, &'a str, &'a str)> {
    let mut best: Option<(usize, usize)> = None;
    for k in keys {
        if let Some(i) = text.find(k)
            && best.is_none_or(|(b, _)| i < b)
        {
            best = Some((i, k.len()));
        }
    }
    let (i, l) = best?;
    let rest = &text[i + l..];
    let tok = rest.split(' ').next().unwrap_or("");
    let (ip, port) = endpoint(tok)?;
    Some((ip, port, rest))
}

fn addresses(text: &str, f: &mut Fields) {
    let src = after(text, &[" from ", " src ", " for ", " SRC ", "from "]);
    let Some((ip, port, rest)) = src else { return };
    f.s("source.ip", ip).n("source.port", port);
    if let Some((dip, dport, _)) = after(rest, &[" to ", " dst ", " DEST "]) {
        f.s("destination.ip", dip).n("destination.port", dport);
    }
}

fn user(text: &str, f: &mut Fields) {
    let grab = |k: &str, end: &[char]| -> Option<String> {
        let i = text.find(k)?;
        let r = &text[i + k.len()..];
        let e = r.find(end).unwrap_or(r.len());
        Some(r[..e].to_owned())
    };
    let u = grab("user \"", &['"'])
        .or_else(|| grab("User '", &['\'']))
        .or_else(|| grab("User = ", &[':', ',', ' ']))
        .or_else(|| grab("Uname: ", &[' ', ',']));
    if let Some(u) = u {
        f.s("user.name", u.trim());
    }
}

fn classify(id: &str, text: &str, f: &mut Fields) {
    let lower = text.to_ascii_lowercase();
    match id {
        "605004" | "113005" | "113006" | "611102" => {
            f.event("authentication", "start", "failure");
        }
        "605005" | "113004" | "113012" => {
            f.event("authentication", "start", "success");
        }
        _ => {}
    }
    let deny = lower.starts_with("deny") || lower.contains(" denied") || lower.contains("drop");
    if deny && !f.has("event.category") {
        f.event("network", "denied", "").s("event.action", "deny");
    } else if (lower.starts_with("built") || lower.contains("permitted"))
        && !f.has("event.category")
    {
        f.event("network", "connection", "")
            .s("event.action", "allow");
    } else if lower.starts_with("teardown") && !f.has("event.category") {
        f.event("network", "end", "");
    }
}
