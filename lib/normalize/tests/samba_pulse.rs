//! Samba authentication audit lines and Pulse/Ivanti Connect Secure VPN lines, on real published
//! lines (CrowdSec hub `smb-logs` tests; Elastic integrations `pulse_connect_secure` pipeline
//! tests; provenance in tests/data/README.md), plus the foreign-line checks for both parsers.

mod common;

use common::{CTX, data, line_of, norm, num, s};
use logship_normalize::{Context, Normalizer, datasets};

const PULSE: &str = "elastic-integrations-pulse-vpn.log";
const SMB: &str = "crowdsec-smb-logs.log";

#[test]
fn samba_logon_failure_through_syslog() {
    let e = norm(&line_of(SMB, "[toto]"));
    assert_eq!(e.dataset, "samba");
    assert_eq!(
        (
            s(&e, "user.name"),
            s(&e, "source.ip"),
            num(&e, "source.port"),
            s(&e, "destination.ip"),
            num(&e, "destination.port"),
        ),
        ("toto", "1.2.3.4", Some(62419), "10.1.1.1", Some(445))
    );
    assert_eq!(s(&e, "event.outcome"), "failure");
    assert_eq!(s(&e, "event.reason"), "NT_STATUS_NO_SUCH_USER");
    assert_eq!(e.get("event.category").unwrap()[0], "authentication");
    assert_eq!(s(&e, "network.protocol"), "smb");
    assert_eq!(s(&e, "host.name"), "host2");
    // The audit line's own `at [… UTC]` stamp, with its microseconds.
    assert_eq!(s(&e, "@timestamp"), "2021-09-24T10:04:59.030937Z");
    // Empty domain `[]` is not a field.
    assert!(e.get("user.domain").is_none());
}

#[test]
fn samba_bare_lines_from_the_log_file() {
    // `/var/log/samba/log.smbd` writes the audit line indented under a header line.
    let line = line_of(SMB, "[rcbiwx]");
    let e = norm(&format!("  {line}"));
    assert_eq!(e.dataset, "samba");
    assert_eq!(
        (s(&e, "user.name"), s(&e, "user.domain"), s(&e, "source.ip")),
        ("rcbiwx", "domainname", "180.252.252.57")
    );
    assert_eq!(s(&e, "@timestamp"), "2020-11-14T06:52:41.882477Z");
    assert_eq!(s(&e, "host.name"), "agent-host");
    let header = "[2021/12/03 19:44:45.496971,  2] ../../auth/auth_log.c:647(log_authentication_event_human_readable)";
    assert_eq!(norm(header).dataset, "unparsed");
}

#[test]
fn samba_zone_abbreviation_is_read_in_the_agent_zone() {
    let line = line_of(SMB, "[hp]").replace(" UTC]", " CET]");
    let ctx = Context {
        agent_tz: "Europe/Berlin",
        ..CTX
    };
    let e = Normalizer::new().normalize(line.as_bytes(), &ctx);
    assert_eq!(s(&e, "@timestamp"), "2020-12-18T01:49:33.33379Z");
}

/// Format details no fixture line has (written from Samba's `auth_log.c` format): an IPv6 peer,
/// a `became` success with a SID, a Kerberos service, a numeric zone, `local host [NULL]`.
#[test]
fn samba_ipv6_kerberos_success_documented_form() {
    let l = "Auth: [Kerberos KDC,ENC-TS Pre-authentication] user [(null)]\\[ga@EXAMPLE.ORG] at [Wed, 22 Jul 2026 15:42:08.629671 +0200] with [aes256-cts-hmac-sha1-96] status [NT_STATUS_OK] workstation [(null)] remote host [ipv6:2001:db8::5:52256] became [EXAMPLE]\\[ga] [S-1-5-21-1-2-3-1105]. local host [NULL]";
    let e = norm(l);
    assert_eq!(e.dataset, "samba");
    assert_eq!(
        (
            s(&e, "event.outcome"),
            s(&e, "source.ip"),
            num(&e, "source.port"),
            s(&e, "user.name"),
            s(&e, "network.protocol"),
            s(&e, "@timestamp"),
        ),
        (
            "success",
            "2001:db8::5",
            Some(52256),
            "ga@EXAMPLE.ORG",
            "kerberos",
            "2026-07-22T13:42:08.629671Z"
        )
    );
    for k in ["user.domain", "destination.ip", "event.reason"] {
        assert!(e.get(k).is_none(), "{k}");
    }
}

/// A client chooses the user and workstation names, and Samba does not escape brackets: a name
/// carrying a whole fake `status [NT_STATUS_OK] … remote host […]` must neither turn the failed
/// attempt into a success nor plant an address.
#[test]
fn samba_client_chosen_names_cannot_forge_status_or_address() {
    let real = line_of(SMB, "[toto]");
    let evil_user = "x] at [Fri, 24 Sep 2021 10:04:59.030937 UTC] with [NTLMv2] status [NT_STATUS_OK] workstation [] remote host [ipv4:6.6.6.6:1] mapped to []\\[x";
    let forged = real.replace("[toto]", &format!("[{evil_user}]"));
    let e = norm(&forged);
    assert_eq!(e.dataset, "samba");
    assert_eq!(s(&e, "event.outcome"), "failure", "{forged}");
    assert!(e.get("source.ip").is_none(), "{forged}");
    assert!(e.get("user.name").is_none());
    assert!(s(&e, "event.reason").starts_with("ambiguous"));
    let evil_ws = real.replace(
        "workstation []",
        "workstation [W] remote host [ipv4:6.6.6.6:1]",
    );
    let e = norm(&evil_ws);
    assert!(e.get("source.ip").is_none(), "{evil_ws}");
    assert_eq!(s(&e, "event.outcome"), "failure");
}

#[test]
fn pulse_logins_failures_and_tunnels() {
    let e = norm(&line_of(PULSE, "Agent login succeeded"));
    assert_eq!(e.dataset, "pulse_secure");
    assert_eq!(
        (
            s(&e, "user.name"),
            s(&e, "source.ip"),
            s(&e, "event.outcome"),
            s(&e, "host.name"),
            s(&e, "pulse_secure.realm"),
        ),
        (
            "user.name",
            "89.160.20.156",
            "success",
            "pcs-node1",
            "REALM"
        )
    );
    assert_eq!(e.get("event.category").unwrap()[0], "authentication");
    // The relayed RFC 5424 stamp, with its offset, not the BSD header in front of it.
    assert_eq!(s(&e, "@timestamp"), "2021-10-19T07:10:35Z");

    let e = norm(&line_of(PULSE, "Reason: Wrong Password"));
    assert_eq!(
        (s(&e, "event.outcome"), s(&e, "event.reason")),
        ("failure", "Wrong Password")
    );
    let e = norm(&line_of(PULSE, "Primary authentication failed"));
    assert_eq!(
        (s(&e, "event.outcome"), s(&e, "user.name")),
        ("failure", "user.name")
    );

    let e = norm(&line_of(PULSE, "Session started for user (session"));
    assert_eq!(
        (
            s(&e, "pulse_secure.assigned_ip"),
            s(&e, "event.action"),
            s(&e, "event.outcome")
        ),
        ("172.22.27.209", "vpn_session_start", "success")
    );
    let e = norm(&line_of(PULSE, "Default Network::jvl"));
    assert_eq!(
        (
            s(&e, "user.name"),
            s(&e, "pulse_secure.assigned_ip"),
            s(&e, "event.action")
        ),
        ("jvl", "10.255.255.35", "vpn_session_end")
    );
    assert_eq!(s(&e, "@timestamp"), "2026-04-03T12:56:37Z");
}

#[test]
fn pulse_rfc5424_user_domain_and_web_requests() {
    let e = norm(&line_of(PULSE, "WebRequest completed"));
    assert_eq!(e.dataset, "pulse_secure");
    assert_eq!(
        (
            s(&e, "user.name"),
            s(&e, "user.domain"),
            s(&e, "host.name"),
            s(&e, "http.request.method"),
            num(&e, "http.response.status_code"),
        ),
        (
            "user.name",
            "students.mydom.com",
            "sslvpn02",
            "GET",
            Some(200)
        )
    );
    assert_eq!(s(&e, "@timestamp"), "2023-03-03T16:21:09Z");
    let e = norm(&line_of(PULSE, "Removed username"));
    assert_eq!(e.dataset, "pulse_secure");
    assert!(e.get("user.name").is_none(), "System() is the appliance");
}

/// The Pulse user name is typed by the client: one containing ` - ` or a whole fake
/// `(REALM)[] - Agent login succeeded` must not turn a failed login into a success nor name the
/// wrong account.
#[test]
fn pulse_client_typed_user_names_cannot_forge_the_outcome() {
    let real = line_of(PULSE, "Login failed. Reason: Wrong Password");
    let dash = real.replace(
        "] user.name(REALM)[]",
        "] bob - Agent login succeeded for bob(REALM)[]",
    );
    let e = norm(&dash);
    assert_eq!(e.dataset, "pulse_secure");
    assert_eq!(
        (s(&e, "user.name"), s(&e, "event.outcome")),
        ("bob - Agent login succeeded for bob", "failure"),
        "{dash}"
    );
    let header = real.replace(
        "] user.name(REALM)[]",
        "] bob(REALM)[] - Agent login succeeded for bob/REALM x(REALM)[]",
    );
    let e = norm(&header);
    assert_eq!(e.dataset, "pulse_secure");
    assert_eq!(s(&e, "event.outcome"), "failure", "{header}");
    assert!(e.get("user.name").is_none(), "{header}");
    assert!(s(&e, "event.reason").starts_with("ambiguous"));
}

/// Every Samba and Pulse fixture line is claimed by its own parser alone, automatically and when
/// forced; both parsers decline every other fixture line when forced.
#[test]
fn samba_and_pulse_lines_are_claimed_only_by_their_parser() {
    let mut n = Normalizer::new();
    for (file, own) in [(SMB, "samba"), (PULSE, "pulse_secure")] {
        for line in data(file).lines().filter(|l| !l.is_empty()) {
            assert_eq!(n.normalize(line.as_bytes(), &CTX).dataset, own, "{line}");
            for ds in datasets().iter().filter(|d| **d != own) {
                let e = n.normalize_as(ds, line.as_bytes(), &CTX).expect("known");
                assert_eq!(e.dataset, "unparsed", "{ds} claimed {line}");
            }
            let e = n.normalize_as(own, line.as_bytes(), &CTX).expect("known");
            assert_eq!(e.dataset, own, "forced {own} declined {line}");
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut others = 0;
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|x| x.to_str()).unwrap_or("");
        if !name.ends_with(".log") || name == SMB || name == PULSE {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("fixture").lines() {
            others += 1;
            for ds in ["samba", "pulse_secure"] {
                let e = n.normalize_as(ds, line.as_bytes(), &CTX).expect("known");
                assert_eq!(e.dataset, "unparsed", "{ds} claimed {name}: {line}");
            }
        }
    }
    assert!(others > 1000, "only {others} foreign lines");
}
