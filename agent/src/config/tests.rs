use std::path::Path;

use super::*;

const EXAMPLE: &str = include_str!("../../../deploy/config/agent.example.toml");

fn with_certs(dir: &Path) {
    for f in ["ca.pem", "agent.pem", "agent.key"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
}

#[test]
fn the_example_config_parses_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    with_certs(dir.path());
    let config = RawConfig::parse(EXAMPLE)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap();
    assert_eq!(config.endpoints.len(), 2);
    assert_eq!(config.files.len(), 4);
    assert_eq!(config.files[1].tail.start_at, logship_tail::StartAt::End);
    assert_eq!(config.files[2].text.encoding, encoding_rs::SHIFT_JIS);
    assert!(config.files[3].text.multiline.is_some());
    assert_eq!(config.spool.max_bytes, 256 << 20);
    let j = &config.journald[0];
    assert_eq!(
        (j.name.as_str(), j.start_at),
        ("journal", JournalStart::End)
    );
    assert_eq!(j.identifiers, ["sshd", "sudo", "su"]);
    assert_eq!(j.priority.as_deref(), Some("info"));
}

#[test]
fn a_journald_input_alone_is_enough_and_names_are_unique() {
    let head = "version = 1\n[collector]\nendpoints = [\"c:1\"]\nca_cert = \"ca.pem\"\n\
                cert = \"agent.pem\"\nkey = \"agent.key\"\n";
    let dir = tempfile::tempdir().unwrap();
    with_certs(dir.path());
    let alone = format!("{head}[[journald]]\nname = \"journal\"\n");
    let config = RawConfig::parse(&alone)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap();
    assert_eq!(config.journald.len(), 1);
    assert!(config.journald[0].directory.is_none());
    let twice =
        format!("{head}[[file]]\nname = \"j\"\ninclude = [\"/x\"]\n[[journald]]\nname = \"j\"\n");
    let problems = RawConfig::parse(&twice)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("used twice")),
        "{problems:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
version = 2
[collector]
endpoints = ["nohost"]
ca_cert = "missing.pem"
cert = "agent.pem"
key = "agent.key"
[batch]
max_records = 0
zstd_level = 40
[[file]]
name = "a"
include = ["/var/log/[.log"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let problems = RawConfig::parse(text)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap_err();
    let joined = problems.join("\n");
    for needle in [
        "version 2",
        "nohost",
        "ca_cert",
        "max_records",
        "zstd_level",
        "bad glob",
    ] {
        assert!(
            joined.contains(needle),
            "{needle:?} missing from:\n{joined}"
        );
    }
}

#[test]
fn unknown_fields_are_refused() {
    let text = EXAMPLE.replace("[batch]", "[batch]\nmax_recrods = 5");
    let err = RawConfig::parse(&text).unwrap_err();
    assert!(err[0].contains("max_recrods"), "{err:?}");
}

#[test]
fn tail_flags_add_inputs_and_satisfy_the_input_rule() {
    let text = EXAMPLE.split("[[file]]").next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    with_certs(dir.path());
    let none = RawConfig::parse(text)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap_err();
    assert!(none.iter().any(|p| p.contains("no inputs")), "{none:?}");
    let tails = ["/tmp/a/*.log".to_string(), "/tmp/b.log".to_string()];
    let config = RawConfig::parse(text)
        .unwrap()
        .validate(dir.path(), &tails)
        .unwrap();
    let names: Vec<_> = config.files.iter().map(|f| f.tail.input.as_str()).collect();
    assert_eq!(names, ["tail1", "tail2"]);
}

#[test]
fn batches_and_lines_are_bounded_below_the_collector_caps() {
    let dir = tempfile::tempdir().unwrap();
    with_certs(dir.path());
    let text = EXAMPLE
        .replace("max_bytes = 2097152", "max_bytes = 16777216")
        .replace("max_line_bytes = 65536", "max_line_bytes = 33554432");
    let problems = RawConfig::parse(&text)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap_err();
    let joined = problems.join("\n");
    assert!(
        joined.contains("batch.max_bytes must be between 1 KiB and 8 MiB"),
        "{joined}"
    );
    assert!(
        joined.contains("max_line_bytes (33554432) must not exceed batch.max_bytes"),
        "{joined}"
    );
    let small_spool = EXAMPLE.replace("max_bytes = 268435456", "max_bytes = 2097152");
    let small_spool =
        small_spool.replace("segment_max_bytes = 8388608", "segment_max_bytes = 1048576");
    let problems = RawConfig::parse(&small_spool)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("at least twice batch.max_bytes")),
        "{problems:?}"
    );
}

#[test]
fn the_systemd_unit_allows_the_tailers_open_files() {
    let unit = include_str!("../../../deploy/systemd/logship-agent.service");
    let limit: usize = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("the agent unit sets LimitNOFILE")
        .trim()
        .parse()
        .expect("LimitNOFILE is a number");
    // Several busy inputs, each at the tailer's cap, plus spool segments and sockets.
    assert!(
        limit >= 16 * logship_tail::MAX_OPEN_FILES + 1024,
        "LimitNOFILE={limit}"
    );
}

#[test]
fn the_syslog_relay_example_parses_and_validates() {
    let text = include_str!("../../../deploy/config/agent.syslog-relay.example.toml");
    let dir = tempfile::tempdir().unwrap();
    with_certs(dir.path());
    for f in ["syslog.pem", "syslog.key", "devices-ca.pem"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let config = RawConfig::parse(text)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap();
    assert!(config.files.is_empty());
    let s = &config.syslog[0];
    assert_eq!(s.name, "network");
    let urls: Vec<String> = s.listeners.iter().map(|l| l.url()).collect();
    assert_eq!(
        urls,
        [
            "udp://0.0.0.0:514",
            "tcp://0.0.0.0:514",
            "tls://0.0.0.0:6514"
        ]
    );
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(tls.client_ca, Some(dir.path().join("devices-ca.pem")));
    assert_eq!(s.max_message_bytes, 65536);
}

#[test]
fn a_syslog_input_name_may_not_repeat_a_file_input_name() {
    let dir = tempfile::tempdir().unwrap();
    with_certs(dir.path());
    let text = r#"
version = 1
[collector]
endpoints = ["127.0.0.1:7443"]
ca_cert = "ca.pem"
cert = "agent.pem"
key = "agent.key"
[[file]]
name = "a"
include = ["/var/log/*.log"]
[[syslog]]
name = "a"
listen = ["udp://127.0.0.1:5514"]
tls_cert = "x.pem"
"#;
    let p = RawConfig::parse(text)
        .unwrap()
        .validate(dir.path(), &[])
        .unwrap_err();
    assert!(p.iter().any(|m| m.contains("used twice")), "{p:?}");
    assert!(
        p.iter().any(|m| m.contains("need a tls:// listener")),
        "{p:?}"
    );
}

#[test]
fn import_needs_no_inputs_but_run_does() {
    let dir = tempfile::tempdir().unwrap();
    with_certs(dir.path());
    let text = "version = 1\n[collector]\nendpoints = [\"c:7443\"]\nca_cert = \"ca.pem\"\n\
                cert = \"agent.pem\"\nkey = \"agent.key\"\n";
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let problems = load(&path, &[]).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("no inputs")),
        "{problems:?}"
    );
    let config = load_for_import(&path).unwrap();
    assert!(config.files.is_empty());
    // Everything else is still checked.
    std::fs::write(&path, text.replace("c:7443", "nohost")).unwrap();
    assert!(load_for_import(&path).is_err());
}

#[test]
fn encodings_and_multiline_are_checked_and_named_by_input() {
    let dir = tempfile::tempdir().unwrap();
    with_certs(dir.path());
    let base = EXAMPLE.split("[[file]]").next().unwrap().to_owned();
    let check = |files: &str| {
        RawConfig::parse(&format!("{base}{files}"))
            .unwrap()
            .validate(dir.path(), &[])
    };
    let ok = check(
        r#"[[file]]
name = "w"
include = ["/x/*.log"]
encoding = "UTF-16LE"
multiline = { continue = '^\s' }
"#,
    )
    .unwrap();
    let f = &ok.files[0];
    assert_eq!(f.tail.framing, logship_tail::Framing::Utf16Le);
    let m = f.text.multiline.as_ref().unwrap();
    assert_eq!(
        (m.max_bytes, m.timeout),
        (1 << 20, std::time::Duration::from_secs(1))
    );
    let problems = check(
        r#"[[file]]
name = "sjis"
include = ["/x/*.log"]
encoding = "shift-jis-ish"
[[file]]
name = "both"
include = ["/x/*.log"]
multiline = { start = 'a', continue = 'b' }
[[file]]
name = "badre"
include = ["/x/*.log"]
multiline = { start = '(unclosed', max_bytes = 1024, timeout_ms = 0 }
[[file]]
name = "huge"
include = ["/x/*.log"]
multiline = { start = 'a', max_bytes = 9000000 }
"#,
    )
    .unwrap_err()
    .join("\n");
    for needle in [
        "file \"sjis\": unknown encoding \"shift-jis-ish\"",
        "file \"both\": multiline needs exactly one of start or continue",
        "file \"badre\": multiline.start \"(unclosed\" is not a valid regex",
        "file \"badre\": multiline.max_bytes (1024) must be at least max_line_bytes (65536)",
        "file \"badre\": multiline.timeout_ms must be at least 1",
        "file \"huge\": multiline.max_bytes (9000000) must not exceed batch.max_bytes",
    ] {
        assert!(
            problems.contains(needle),
            "{needle:?} missing from:\n{problems}"
        );
    }
    let err = RawConfig::parse(&format!(
        "{base}[[file]]\nname = \"x\"\ninclude = [\"/x\"]\nmultiline = {{ begin = 'a' }}\n"
    ))
    .unwrap_err();
    assert!(err[0].contains("begin"), "{err:?}");
}
