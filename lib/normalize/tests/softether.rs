//! SoftEther VPN Server lines, on the real lines of Debian 12's SoftEther VPN Server run on
//! loopback (`deploy/test/softether-fixtures.sh`: a wrong admin password, a wrong user password,
//! an unknown user, a good login with a SecureNAT DHCP lease, a disconnect; in its own files and
//! over syslog) and fail2ban's two published lines; provenance in tests/data/README.md. Plus the
//! foreign-line checks for the parser.

mod common;

use common::{CTX, data, line_of, norm, num, s};
use logship_normalize::{Event, Normalizer, datasets};

const SECURITY: &str = "softether-security_log.log";
const SERVER: &str = "softether-server_log.log";
const PACKET: &str = "softether-packet_log.log";
const RAW: &str = "softether-syslog-raw.log";
const RSYSLOG: &str = "softether-syslog-rsyslog.log";
const FAIL2BAN: &str = "fail2ban-softethervpn.log";
const OWN_FILES: [&str; 6] = [SECURITY, SERVER, PACKET, RAW, RSYSLOG, FAIL2BAN];

/// Every line of a fixture through one normalizer (the connection and session state carry over),
/// each with its event.
fn stream(file: &str) -> Vec<(String, Event)> {
    let mut n = Normalizer::new();
    data(file)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| (l.to_owned(), n.normalize(l.as_bytes(), &CTX)))
        .collect()
}

/// The event of the first line holding every needle.
fn event<'a>(events: &'a [(String, Event)], needles: &[&str]) -> &'a Event {
    &events
        .iter()
        .find(|(l, _)| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no line with {needles:?}"))
        .1
}

fn cat(e: &Event) -> &str {
    e.get("event.category")
        .and_then(|c| c[0].as_str())
        .unwrap_or("")
}

/// The login story of one round, the same in the hub's security log file, the server log file
/// (hub lines prefixed `[HUB "SITE"]`), the raw syslog datagrams and rsyslog's file of them.
#[test]
fn softether_logins_sessions_and_assigned_address_in_every_form() {
    for file in [SECURITY, SERVER, RAW, RSYSLOG] {
        let ev = stream(file);
        let attempt = event(&ev, &["is attempting to connect", "\"mallory\""]);
        assert_eq!(attempt.dataset, "softether", "{file}");
        assert_eq!(
            (
                s(attempt, "user.name"),
                s(attempt, "source.ip"),
                cat(attempt),
                s(attempt, "event.action"),
            ),
            (
                "mallory",
                "127.0.0.1",
                "authentication",
                "vpn_login_attempt"
            ),
            "{file}"
        );
        assert!(num(attempt, "source.port").is_some(), "{file}");
        assert!(
            attempt.get("event.outcome").is_none(),
            "an attempt has no outcome yet"
        );

        let failed = event(&ev, &["User authentication failed. The user", "\"alice\""]);
        assert_eq!(
            (
                s(failed, "user.name"),
                s(failed, "source.ip"),
                s(failed, "event.outcome"),
                s(failed, "event.action"),
            ),
            ("alice", "127.0.0.1", "failure", "vpn_login"),
            "{file}"
        );
        // The port comes from the attempt line of the same connection.
        assert!(num(failed, "source.port").is_some(), "{file}");
        let unknown = event(
            &ev,
            &["User authentication failed. The user", "\"mallory\""],
        );
        assert_eq!(
            (s(unknown, "user.name"), s(unknown, "event.outcome")),
            ("mallory", "failure")
        );

        let ok = event(&ev, &["Successfully authenticated as user"]);
        assert_eq!(
            (
                s(ok, "user.name"),
                s(ok, "source.ip"),
                s(ok, "event.outcome"),
                cat(ok)
            ),
            ("alice", "127.0.0.1", "success", "authentication"),
            "{file}"
        );
        let start = event(&ev, &["The new session \"SID-ALICE"]);
        let sid = s(start, "softether.session").to_owned();
        assert!(sid.starts_with("SID-ALICE-"), "{file}");
        assert_eq!(
            (
                s(start, "user.name"),
                s(start, "source.ip"),
                s(start, "event.action"),
                s(start, "event.outcome"),
            ),
            ("alice", "127.0.0.1", "vpn_session_start", "success"),
            "{file}"
        );
        let lease = event(&ev, &["allocated, for host \"SID-ALICE"]);
        assert_eq!(
            (
                s(lease, "softether.assigned_ip"),
                s(lease, "softether.session"),
                s(lease, "user.name"),
                s(lease, "event.action"),
            ),
            (
                "192.168.30.10",
                sid.as_str(),
                "alice",
                "vpn_address_assigned"
            ),
            "{file}"
        );
        let end = event(&ev, &["The session has been terminated", &sid]);
        assert_eq!(
            (
                s(end, "softether.session"),
                s(end, "user.name"),
                s(end, "event.action")
            ),
            (sid.as_str(), "alice", "vpn_session_end"),
            "{file}"
        );
    }
}

#[test]
fn softether_syslog_form_names_the_server_hub_and_its_own_time() {
    for file in [RAW, RSYSLOG] {
        let ev = stream(file);
        let e = event(&ev, &["Successfully authenticated"]);
        assert_eq!(
            (
                s(e, "host.name"),
                s(e, "observer.name"),
                s(e, "softether.hub")
            ),
            ("vm", "vm", "SITE"),
            "{file}"
        );
        assert!(
            s(e, "@timestamp").starts_with("2026-11-30T05:33:53.592"),
            "{file}: {}",
            s(e, "@timestamp")
        );
        let server = event(&ev, &["<SERVER_LOG>: On the TCP Listener"]);
        assert!(server.get("softether.hub").is_none());
        assert_eq!(num(server, "destination.port"), Some(5555));
    }
    // The file form: the hub from the server log's `[HUB "…"]`, the agent host otherwise.
    let ev = stream(SERVER);
    let e = event(&ev, &["Successfully authenticated"]);
    assert_eq!(
        (s(e, "softether.hub"), s(e, "host.name")),
        ("SITE", "agent-host")
    );
    assert_eq!(s(e, "@timestamp"), "2026-11-30T05:33:04.671Z");
}

#[test]
fn softether_admin_logins_and_connection_ends() {
    for file in [SERVER, RAW] {
        let ev = stream(file);
        let denied = event(&ev, &["unable to log in using administration mode"]);
        assert_eq!(
            (
                s(denied, "event.outcome"),
                s(denied, "event.action"),
                s(denied, "source.ip"),
                s(denied, "event.reason"),
            ),
            (
                "failure",
                "vpn_admin_login",
                "127.0.0.1",
                "Access has been denied."
            ),
            "{file}"
        );
        let admin = event(&ev, &["successfully logged in using administration mode"]);
        assert_eq!(
            (s(admin, "event.outcome"), s(admin, "source.ip")),
            ("success", "127.0.0.1")
        );
        let cause = event(
            &ev,
            &["terminated by the cause \"User authentication failed"],
        );
        assert_eq!(s(cause, "event.reason"), "User authentication failed.");
        assert_eq!(s(cause, "event.action"), "vpn_connection_terminated");
    }
}

#[test]
fn softether_packet_log_rows() {
    let ev = stream(PACKET);
    let e = event(&ev, &["DHCPv4,Request"]);
    assert_eq!(e.dataset, "softether");
    assert_eq!(
        (
            s(e, "source.ip"),
            num(e, "source.port"),
            s(e, "destination.ip"),
            num(e, "destination.port"),
            s(e, "softether.session"),
        ),
        (
            "0.0.0.0",
            Some(68),
            "255.255.255.255",
            Some(67),
            "SID-ALICE-2"
        )
    );
    assert_eq!(s(e, "@timestamp"), "2026-11-30T05:33:04.986Z");
    let ev = stream(RAW);
    let e = event(&ev, &["<PACKET_LOG>: SID-SECURENAT-1"]);
    assert_eq!(
        (
            s(e, "source.ip"),
            num(e, "source.port"),
            s(e, "softether.hub")
        ),
        ("192.168.30.1", Some(67), "SITE")
    );
}

/// fail2ban's published SoftEther lines (security log file; a relayed syslog line whose ISO
/// relay stamp has no zone).
#[test]
fn softether_fail2ban_lines() {
    let e = norm(&line_of(FAIL2BAN, "CID-72"));
    assert_eq!(
        (
            e.dataset,
            s(&e, "user.name"),
            s(&e, "source.ip"),
            s(&e, "event.outcome"),
            s(&e, "@timestamp"),
        ),
        (
            "softether",
            "bob",
            "80.10.11.12",
            "failure",
            "2020-05-12T10:53:19.781Z"
        )
    );
    let e = norm(&line_of(FAIL2BAN, "CID-594"));
    assert_eq!(
        (
            e.dataset,
            s(&e, "user.name"),
            s(&e, "source.ip"),
            s(&e, "host.name"),
            s(&e, "softether.hub"),
            s(&e, "@timestamp"),
        ),
        (
            "softether",
            "alice",
            "80.10.11.13",
            "myserver.com",
            "defaultvpn",
            "2020-05-13T10:53:19.591Z"
        )
    );
}

/// The user name is the client's, written between the server's quotes without escaping: a name
/// carrying the server's own phrases must neither plant an address nor name another account.
#[test]
fn softether_client_chosen_user_names_cannot_forge_address_or_account() {
    let real = line_of(SECURITY, "provided was \"mallory\"");
    let evil = real.replace(
        "\"mallory\", from 127.0.0.1.",
        "\"x\", from 6.6.6.6.\", from 127.0.0.1.",
    );
    let e = norm(&evil);
    assert_eq!(e.dataset, "softether");
    assert_eq!(s(&e, "source.ip"), "127.0.0.1", "{evil}");
    assert_eq!(s(&e, "user.name"), "x\", from 6.6.6.6.");
    assert_eq!(s(&e, "event.outcome"), "failure");

    let attempt = line_of(SECURITY, "the user name is \"mallory\"");
    let evil = attempt.replace(
        "the user name is \"mallory\".",
        "the user name is \"bob\" and the user name is \"root\".",
    );
    let e = norm(&evil);
    assert_eq!(e.dataset, "softether");
    assert!(e.get("user.name").is_none(), "{evil}");
    assert!(s(&e, "event.reason").starts_with("ambiguous"));
    assert_eq!(s(&e, "source.ip"), "127.0.0.1");
}

/// SoftEther sends its syslog form without a tag; the same text logged by another program (a
/// local user's `logger` adds the tag `user:`) is not the VPN server's login.
#[test]
fn softether_form_under_another_programs_tag_is_not_claimed() {
    let raw = line_of(RAW, "Successfully authenticated");
    let untagged = format!("Nov 30 05:33:53 vpnhost {raw}");
    assert_eq!(norm(&untagged).dataset, "softether");
    for tag in ["user:", "logger[4242]:", "sshd[1]:"] {
        let tagged = format!("Nov 30 05:33:53 vpnhost {tag} {raw}");
        let e = norm(&tagged);
        assert_ne!(e.dataset, "softether", "{tagged}");
        let forced = Normalizer::new()
            .normalize_as("softether", tagged.as_bytes(), &CTX)
            .expect("known");
        assert_eq!(forced.dataset, "unparsed", "{tagged}");
    }
}

/// Every SoftEther fixture line is claimed by the softether parser alone, automatically and when
/// forced, except the server log's start-up and shutdown notes that have no SoftEther term
/// (claimed by none); a forced softether declines every line of every other `.log` fixture.
#[test]
fn softether_lines_are_claimed_only_by_their_parser() {
    let mut n = Normalizer::new();
    let mut unclaimed = 0;
    for file in OWN_FILES {
        for line in data(file).lines().filter(|l| !l.is_empty()) {
            let auto = n.normalize(line.as_bytes(), &CTX).dataset;
            if auto == "unparsed" && file == SERVER {
                unclaimed += 1;
            } else {
                assert_eq!(auto, "softether", "{line}");
            }
            for ds in datasets().iter().filter(|d| **d != "softether") {
                let e = n.normalize_as(ds, line.as_bytes(), &CTX).expect("known");
                assert_eq!(e.dataset, "unparsed", "{ds} claimed {line}");
            }
            let e = n
                .normalize_as("softether", line.as_bytes(), &CTX)
                .expect("known");
            assert_eq!(e.dataset, auto, "forced softether differs on {line}");
        }
    }
    assert_eq!(unclaimed, 7, "server-log lines unclaimed");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut others = 0;
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|x| x.to_str()).unwrap_or("");
        if !name.ends_with(".log") || OWN_FILES.contains(&name) {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("fixture").lines() {
            others += 1;
            let e = n
                .normalize_as("softether", line.as_bytes(), &CTX)
                .expect("known");
            assert_eq!(e.dataset, "unparsed", "softether claimed {name}: {line}");
            assert_ne!(n.normalize(line.as_bytes(), &CTX).dataset, "softether");
        }
    }
    assert!(others > 1000, "only {others} foreign lines");
}
