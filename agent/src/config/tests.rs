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
    assert_eq!(config.files.len(), 2);
    assert_eq!(config.files[1].tail.start_at, logship_tail::StartAt::End);
    assert_eq!(config.spool.max_bytes, 256 << 20);
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
