//! strongSwan IKE daemon (`charon`, `charon-systemd`): `NN[GRP] [<NAME|ID>] TEXT`.
//!
//! The IKE_SA unique id (`<ID>` or `<NAME|ID>`) joins lines of one negotiation: the peer address
//! (`IP is initiating an IKE_SA`, `received packet: from IP[port]`) and the EAP identity
//! (`EAP-… username: 'U'`) are remembered per id (bounded, see [`crate::STATE_CAP`]) and put on
//! the later lines of that SA. Events:
//! - `EAP-MS-CHAPv2 verification failed`, `XAuth authentication of 'U' failed` → authentication
//!   failure; `XAuth authentication of 'U' successful`, `authentication of 'U' with EAP
//!   successful`, `EAP method … succeeded` → success (one outcome per attempt: the `XAuth
//!   pam_authenticate … failed` and `no EAP key found` lines that precede a failure carry only
//!   `event.reason`);
//! - `IKE_SA NAME[N] established between L[…]...R[…]` → session start, success;
//!   `assigning virtual IP V to peer 'U'` → `strongswan.assigned_ip`; `deleting IKE_SA`,
//!   `received DELETE for IKE_SA` → session end;
//! - other lines: claimed with the SA's peer and user, no category.

use crate::fields::Fields;
use crate::parsers::State;

/// Peer address and EAP/XAuth identity of one IKE_SA.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sa {
    pub(crate) ip: String,
    pub(crate) user: String,
}

pub(crate) fn parse(msg: &str, st: &mut State) -> Option<Fields> {
    // `06[IKE] ` thread and log group.
    let (head, rest) = msg.split_once("] ")?;
    let (thread, group) = head.split_once('[')?;
    if !thread.bytes().all(|b| b.is_ascii_digit()) || group.is_empty() {
        return None;
    }
    let (id, text) = match rest.strip_prefix('<').and_then(|r| r.split_once("> ")) {
        Some((sa, text)) => (sa.rsplit('|').next().unwrap_or(sa), text),
        None => ("", rest),
    };
    let mut sa = st.ike_sa.get(id).cloned().unwrap_or_default();
    let mut f = Fields::new();
    f.s("observer.vendor", "strongSwan")
        .s("observer.product", "charon");
    learn(text, &mut sa);
    classify(text, &mut sa, &mut f);
    if !id.is_empty() {
        f.s("strongswan.ike_sa_id", id);
        st.ike_sa.insert(id, sa.clone());
    }
    if !f.has("user.name") {
        f.s("user.name", &sa.user);
    }
    if !f.has("source.ip") {
        f.ip("source.ip", &sa.ip);
    }
    Some(f)
}

/// Facts a line states about its SA.
fn learn(text: &str, sa: &mut Sa) {
    if let Some((ip, _)) = text.split_once(" is initiating an IKE_SA") {
        sa.ip = ip.to_owned();
    } else if let Some(r) = text.strip_prefix("received packet: from ")
        && let Some((ip, _)) = r.split_once('[')
        && sa.ip.is_empty()
    {
        sa.ip = ip.to_owned();
    } else if let Some((_, r)) = text.split_once(" username: '")
        && let Some((u, _)) = r.split_once('\'')
    {
        sa.user = u.to_owned();
    }
}

fn quoted(s: &str) -> Option<&str> {
    s.split_once('\'')?.1.split_once('\'').map(|x| x.0)
}

fn classify(text: &str, sa: &mut Sa, f: &mut Fields) {
    let auth = |f: &mut Fields, ok: bool, action: &str| {
        f.event(
            "authentication",
            "start",
            if ok { "success" } else { "failure" },
        )
        .s("event.action", action);
    };
    if text.contains("verification failed") && text.starts_with("EAP-") {
        auth(f, false, "eap_auth");
        f.s("event.reason", text);
    } else if let Some(r) = text.strip_prefix("XAuth authentication of ") {
        let user = quoted(r).unwrap_or("");
        sa.user = user.to_owned();
        auth(f, !r.ends_with("failed"), "xauth");
    } else if let Some(r) = text.strip_prefix("authentication of ")
        && r.ends_with("with EAP successful")
    {
        sa.user = quoted(r).unwrap_or("").to_owned();
        auth(f, true, "eap_auth");
    } else if text.starts_with("EAP method ") && text.contains(" succeeded") {
        auth(f, true, "eap_auth");
    } else if text.starts_with("XAuth pam_authenticate for ")
        || text.starts_with("no EAP key found")
    {
        f.s("event.reason", text);
    } else if let Some(r) = text.strip_prefix("IKE_SA ")
        && let Some((_, between)) = r.split_once(" established between ")
    {
        f.event("session", "start", "success")
            .s("event.action", "ike_sa_established");
        if let Some((_, remote)) = between.split_once("...")
            && let Some((ip, _)) = remote.split_once('[')
        {
            sa.ip = ip.to_owned();
        }
    } else if let Some(r) = text.strip_prefix("assigning virtual IP ")
        && let Some((vip, peer)) = r.split_once(" to peer ")
    {
        f.ip("strongswan.assigned_ip", vip);
        f.s("event.action", "virtual_ip_assigned");
        if let Some(u) = quoted(peer) {
            sa.user = u.to_owned();
        }
    } else if text.starts_with("deleting IKE_SA ") || text.starts_with("received DELETE for IKE_SA")
    {
        f.event("session", "end", "")
            .s("event.action", "ike_sa_deleted");
    } else if text.ends_with(" is initiating an IKE_SA") {
        f.event("network", "start", "")
            .s("event.action", "ike_sa_init");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn needs_thread_and_group() {
        let mut st = crate::parsers::State::default();
        assert!(super::parse("Starting IKE charon daemon", &mut st).is_none());
        assert!(super::parse("xx[IKE] hello", &mut st).is_none());
        let f = super::parse(
            "16[IKE] <rw|7> assigning virtual IP 10.3.0.1 to peer 'carol@strongswan.org'",
            &mut st,
        )
        .unwrap();
        assert_eq!(f.to_map()["strongswan.assigned_ip"], "10.3.0.1");
        assert_eq!(f.to_map()["user.name"], "carol@strongswan.org");
    }
}
