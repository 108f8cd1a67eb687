//! su, sudo variants, old-style PAM tags, Windows 4726/4740, Sysmon 3 and proxy request targets on
//! real published lines (tests/data/README.md names each source), plus the foreign-line checks
//! for them: each line is claimed by its own parser alone, auto or forced.

mod common;

use common::{CTX, data, line_of, norm, num, s};
use logship_normalize::{Event, Normalizer, datasets};

/// (dataset, user.name = target, source.user.name = caller, outcome)
fn su_view(e: &Event) -> (&str, &str, &str, &str) {
    (
        e.dataset,
        s(e, "user.name"),
        s(e, "source.user.name"),
        s(e, "event.outcome"),
    )
}

#[test]
fn su_util_linux_lines_from_a_sles_journal() {
    let f = "msdocs-azure-sles-su.log";
    let e = norm(&line_of(f, "(to hsoadm) root on none"));
    assert_eq!(su_view(&e), ("su", "hsoadm", "root", "success"));
    assert_eq!(e.get("event.category").unwrap()[0], "authentication");
    assert_eq!(
        (s(&e, "host.name"), s(&e, "@timestamp")),
        ("hso-hana-vm-s2-1", "2018-09-13T07:38:01Z")
    );
    assert_eq!(num(&e, "process.pid"), Some(93494));
    let e = norm(&line_of(f, "session opened for user hsoadm"));
    assert_eq!(
        (e.dataset, s(&e, "user.name"), s(&e, "process.name")),
        ("pam", "hsoadm", "su-l")
    );
    // `by (uid=0)` names no account.
    assert_eq!(s(&e, "source.user.name"), "");
    assert_eq!(norm(&line_of(f, "systemd[1]")).dataset, "unparsed");
}

#[test]
fn su_older_forms_from_wazuh_rule_tests() {
    let f = "wazuh-ruletest-su-sudo.log";
    let e = norm(&line_of(f, "BAD SU ger to fwmaster"));
    assert_eq!(su_view(&e), ("su", "fwmaster", "ger", "failure"));
    let e = norm(&line_of(f, "dcid to root on /dev/ttyp1"));
    assert_eq!(su_view(&e), ("su", "root", "dcid", "success"));
    let e = norm(&line_of(f, "changing from ldap to root"));
    assert_eq!(su_view(&e), ("su", "root", "ldap", "failure"));
    // Linux-PAM's old tag form `su(pam_unix)[PID]:`: the caller is `ruser`.
    let e = norm(&line_of(f, "su(pam_unix)[23164]"));
    assert_eq!(
        (
            e.dataset,
            s(&e, "user.name"),
            s(&e, "source.user.name"),
            s(&e, "event.outcome"),
            s(&e, "process.name")
        ),
        ("pam", "osaudit", "dcid", "failure", "su")
    );
    let e = norm(&line_of(f, "session opened for user news"));
    assert_eq!((e.dataset, s(&e, "user.name")), ("pam", "news"));
}

#[test]
fn sudo_failures_from_wazuh_rule_tests() {
    let f = "wazuh-ruletest-su-sudo.log";
    for (needle, user, reason) in [
        (
            "3 incorrect password attempts",
            "mike",
            "3 incorrect password attempts",
        ),
        (
            "1 incorrect password attempt ;",
            "mike",
            "1 incorrect password attempt",
        ),
        ("user NOT in sudoers", "ddp2", "user NOT in sudoers"),
    ] {
        let e = norm(&line_of(f, needle));
        assert_eq!(
            (
                e.dataset,
                s(&e, "user.name"),
                s(&e, "user.effective.name"),
                s(&e, "event.outcome"),
                s(&e, "event.reason"),
                s(&e, "process.command_line"),
            ),
            ("sudo", user, "root", "failure", reason, "/bin/ls"),
            "{needle}"
        );
    }
    // Padded user column (`sudo:     dcid : …`) and a TSID (sudo I/O log) before COMMAND.
    let e = norm(&line_of(f, "sudo:     dcid :"));
    assert_eq!(
        (e.dataset, s(&e, "user.name"), s(&e, "event.outcome")),
        ("sudo", "dcid", "success")
    );
    let e = norm(&line_of(f, "TSID=0000UM"));
    assert_eq!(
        (s(&e, "user.name"), s(&e, "process.command_line")),
        ("cplummer", "/bin/bash")
    );
}

/// Attack: the command's arguments are the caller's text. A command that writes ` ; USER=…`
/// cannot change the run-as identity, and the real command stays in `process.command_line`.
#[test]
fn sudo_arguments_cannot_forge_fields() {
    let real = line_of("wazuh-ruletest-su-sudo.log", "COMMAND=/bin/su -");
    let forged = format!("{real} ; USER=nobody ; COMMAND=/bin/true");
    let e = norm(&forged);
    assert_eq!(
        (s(&e, "user.effective.name"), s(&e, "process.command_line")),
        ("root", "/bin/su - ; USER=nobody ; COMMAND=/bin/true")
    );
}

#[test]
fn windows_4726_and_4740_documented_events() {
    let f = "msdocs-windows-4726-4740.xml";
    let e = norm(&line_of(f, "<EventID>4726<"));
    assert_eq!(
        (
            e.dataset,
            s(&e, "event.action"),
            s(&e, "user.name"),
            s(&e, "user.target.name"),
            s(&e, "user.target.domain"),
            s(&e, "@timestamp"),
            s(&e, "host.name"),
        ),
        (
            "windows.security",
            "deleted-user-account",
            "dadmin",
            "ksmith",
            "CONTOSO",
            "2015-08-22T00:52:25.1046138Z",
            "DC01.contoso.local"
        )
    );
    assert_eq!(e.get("event.type").unwrap()[0], "deletion");
    let e = norm(&line_of(f, "<EventID>4740<"));
    assert_eq!(
        (
            s(&e, "event.action"),
            s(&e, "user.name"),
            s(&e, "user.target.name"),
            s(&e, "source.domain"),
            s(&e, "user.target.domain"),
        ),
        ("locked-out-user-account", "DC01$", "Auditor", "WIN81", "")
    );
}

/// Sysmon 3 on real OTRF (Mordor) JSON: source/destination address and port, image, user.
#[test]
fn sysmon_3_network_connection_real_json() {
    let e = norm(&line_of("otrf-selected.json", "\"EventID\":3,"));
    assert_eq!(
        (
            e.dataset,
            s(&e, "source.ip"),
            num(&e, "source.port"),
            s(&e, "destination.ip"),
            num(&e, "destination.port"),
            s(&e, "process.executable"),
            s(&e, "user.name"),
            s(&e, "user.domain"),
            s(&e, "network.transport"),
        ),
        (
            "windows.sysmon",
            "192.168.2.5",
            Some(61628),
            "239.255.255.250",
            Some(1900),
            "C:\\Windows\\System32\\svchost.exe",
            "LOCAL SERVICE",
            "NT AUTHORITY",
            "udp",
        )
    );
}

/// Sysmon 3 as Windows renders it (the "Event XML" of a real event in OTRF's OSSEM data
/// dictionary): the same fields as the JSON form above, through the same event-id map.
#[test]
fn sysmon_3_network_connection_real_xml() {
    let line = data("ossem-sysmon-3.xml");
    let e = norm(line.trim_end());
    assert_eq!(
        (
            e.dataset,
            s(&e, "source.ip"),
            num(&e, "source.port"),
            s(&e, "destination.ip"),
            num(&e, "destination.port"),
            s(&e, "process.executable"),
            s(&e, "user.name"),
            s(&e, "user.domain"),
            s(&e, "network.transport"),
        ),
        (
            "windows.sysmon",
            "192.168.64.137",
            Some(49767),
            "192.168.64.178",
            Some(88),
            "C:\\Windows\\System32\\lsass.exe",
            "SYSTEM",
            "NT AUTHORITY",
            "tcp",
        )
    );
    assert_eq!(
        (s(&e, "host.name"), s(&e, "event.code"), s(&e, "@timestamp")),
        (
            "WARDOG.RIVENDELL.local",
            "3",
            "2019-04-27T00:10:32.9642823Z"
        )
    );
    let mut n = Normalizer::new();
    for ds in datasets().iter().filter(|d| **d != "windows.sysmon") {
        let e = n
            .normalize_as(ds, line.trim_end().as_bytes(), &CTX)
            .expect("known");
        assert_eq!(e.dataset, "unparsed", "{ds} claimed the Sysmon 3 event");
    }
}

/// Squid native lines of a forward proxy: absolute URLs and `CONNECT host:port` name the site.
#[test]
fn proxy_targets_give_url_domain() {
    let e = norm(&line_of(
        "fail2ban-squid.log",
        "GET http://www.proxy-listen.de/azenv.php",
    ));
    assert_eq!(
        (
            e.dataset,
            s(&e, "url.domain"),
            s(&e, "url.scheme"),
            s(&e, "http.request.method"),
            num(&e, "http.response.status_code"),
            s(&e, "source.ip"),
        ),
        (
            "squid",
            "www.proxy-listen.de",
            "http",
            "GET",
            Some(403),
            "91.188.124.227"
        )
    );
    let e = norm(&line_of(
        "beats-squid-access1-first40.log",
        "CONNECT login.yahoo.com:443",
    ));
    assert_eq!(
        (
            s(&e, "url.domain"),
            num(&e, "url.port"),
            s(&e, "user.name"),
            s(&e, "source.ip")
        ),
        ("login.yahoo.com", Some(443), "badeyek", "10.105.21.199")
    );
    // squid's own error pseudo-URL is no site.
    let e = norm(&line_of("fail2ban-squid.log", "error:method-not-allowed"));
    assert_eq!((e.dataset, s(&e, "url.domain")), ("squid", ""));
    // A web server's origin-form request names no site either.
    let e = norm(&line_of("crowdsec-nginx_http-logs.log", "\"GET /"));
    assert_eq!((e.dataset, s(&e, "url.domain")), ("web.access", ""));
}

/// Every line of the new fixtures is claimed by its own parser alone, auto or forced.
#[test]
fn su_sudo_pam_and_windows_lines_are_claimed_only_by_their_parser() {
    let mut lines: Vec<(String, &str)> = Vec::new();
    for l in data("wazuh-ruletest-su-sudo.log").lines() {
        let own = if l.contains(" sudo:") {
            "sudo"
        } else if l.contains("(pam_unix)") {
            "pam"
        } else {
            "su"
        };
        lines.push((l.to_owned(), own));
    }
    for l in data("msdocs-azure-sles-su.log").lines() {
        let own = if l.contains("pam_unix") {
            "pam"
        } else if l.contains(" su[") {
            "su"
        } else {
            "unparsed"
        };
        lines.push((l.to_owned(), own));
    }
    for l in data("msdocs-windows-4726-4740.xml").lines() {
        lines.push((l.to_owned(), "windows.security"));
    }
    let mut n = Normalizer::new();
    for (line, own) in &lines {
        assert_eq!(n.normalize(line.as_bytes(), &CTX).dataset, *own, "{line}");
        for ds in datasets().iter().filter(|d| *d != own) {
            let e = n.normalize_as(ds, line.as_bytes(), &CTX).expect("known");
            assert_eq!(e.dataset, "unparsed", "{ds} claimed {line}");
        }
    }
    // su's loose forms (`U to T on TTY`) are read from su's lines only: another program's
    // sentence of that shape is not su's, forced or not.
    let other = "Apr 22 17:51:51 enigma kernel: eth0 to bond0 on link up";
    assert_eq!(norm(other).dataset, "unparsed");
    let e = n.normalize_as("su", other.as_bytes(), &CTX).expect("known");
    assert_eq!(e.dataset, "unparsed");
    // A colon-separated message of another program is not sudo's.
    let e = n
        .normalize_as("sudo", b"Apr 22 17:51:51 h app: x : y", &CTX)
        .expect("known");
    assert_eq!(e.dataset, "unparsed");
}
