//! A record whose input told its origin (journald: program, pid, host, time as fields, the
//! message alone as text) gets exactly the fields of the same line as syslog writes it to
//! `auth.log`. Checked on every line of the real sshd corpus (tests/data/crowdsec-sshd.log).

use std::collections::HashMap;

use logship_normalize::{Context, Normalizer, Origin};

const CTX: Context<'static> = Context {
    host: "agent-host",
    input: "test",
    path: "test",
    agent_tz: "UTC",
    observed_unix_nanos: 1_735_689_600_000_000_000, // 2025-01-01T00:00:00Z
};

/// Splits `Mmm dd hh:mm:ss HOST PROG[PID]: MSG` into journal attributes and the message.
fn as_journal(line: &str) -> Option<(HashMap<String, String>, &str)> {
    let mut rest = line;
    for _ in 0..3 {
        // Month, day (maybe space-padded), time.
        rest = rest.trim_start().split_once(' ')?.1;
    }
    let (host, rest) = rest.trim_start().split_once(' ')?;
    let (tag, msg) = rest.split_once(": ")?;
    let (prog, pid) = tag.strip_suffix(']')?.split_once('[')?;
    let attrs = [
        ("_HOSTNAME", host),
        ("SYSLOG_IDENTIFIER", prog),
        ("_PID", pid),
        ("_COMM", "sshd"),
        ("PRIORITY", "6"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Some((attrs, msg))
}

#[test]
fn journal_entries_get_the_fields_of_their_syslog_lines() {
    let corpus = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crowdsec-sshd.log"),
    )
    .expect("fixture present");
    let mut compared = 0;
    let mut with_user = 0;
    for line in corpus.lines() {
        let Some((attrs, msg)) = as_journal(line) else {
            continue;
        };
        let from_file = Normalizer::new().normalize(line.as_bytes(), &CTX);
        // The journal's realtime stamp is the event time; the file line's stamp gives it here.
        let ts: jiff::Timestamp = from_file.fields["@timestamp"]
            .as_str()
            .expect("timestamp")
            .parse()
            .expect("RFC 3339");
        let origin = Origin::from_journal(&attrs, ts.as_nanosecond() as i64);
        let from_journal = Normalizer::new().normalize_from(msg.as_bytes(), &CTX, origin.as_ref());
        assert_eq!(from_journal, from_file, "{line}");
        compared += 1;
        with_user += usize::from(from_file.fields.contains_key("user.name"));
    }
    assert!(compared >= 100, "only {compared} lines compared");
    assert!(with_user >= 50, "only {with_user} lines with user.name");
}

#[test]
fn failed_password_from_journal() {
    let attrs: HashMap<String, String> = [
        ("SYSLOG_IDENTIFIER", "sshd"),
        ("_PID", "811"),
        ("_HOSTNAME", "gw"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let origin = Origin::from_journal(&attrs, 1_764_061_800_000_000_000);
    let e = Normalizer::new().normalize_from(
        b"Failed password for root from 192.0.2.7 port 22 ssh2",
        &CTX,
        origin.as_ref(),
    );
    let s = |k: &str| e.fields.get(k).and_then(|v| v.as_str()).unwrap_or("");
    assert_eq!(e.dataset, "sshd");
    assert_eq!(
        (
            s("user.name"),
            s("source.ip"),
            s("event.outcome"),
            s("host.name")
        ),
        ("root", "192.0.2.7", "failure", "gw")
    );
    assert_eq!(s("@timestamp"), "2025-11-25T09:10:00Z");
    assert_eq!(e.fields["process.pid"], 811);
}

#[test]
fn records_without_journal_fields_have_no_origin() {
    let attrs: HashMap<String, String> = [("syslog.sender".to_string(), "x".to_string())].into();
    assert!(Origin::from_journal(&attrs, 0).is_none());
    assert!(Origin::from_journal(&HashMap::new(), 0).is_none());
}
