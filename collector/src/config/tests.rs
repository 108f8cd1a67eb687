use super::*;

const EXAMPLE: &str = include_str!("../../../deploy/config/collector.example.toml");

fn data_dir_with_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    dir
}

#[test]
fn the_example_config_validates() {
    let dir = data_dir_with_certs();
    let text = EXAMPLE.replace(
        "/var/lib/logship-collector",
        &dir.path().display().to_string(),
    );
    let config = RawConfig::parse(&text)
        .unwrap()
        .validate(dir.path())
        .unwrap();
    assert_eq!(config.listen.port(), 7443);
    assert_eq!(config.max_decompressed_bytes, 64 << 20);
    assert!(config.normalize);
    assert_eq!(config.stale_after, std::time::Duration::from_secs(600));
    assert_eq!(config.retention.max_bytes, Some(200_000_000_000));
    assert_eq!(
        config.retention.max_age_ns,
        Some(400 * 86_400 * 1_000_000_000)
    );
}

#[test]
fn retention_is_optional_and_checked() {
    let dir = data_dir_with_certs();
    let base = format!(
        "version = 1\ndata_dir = {:?}\n",
        dir.path().display().to_string()
    );
    let config = RawConfig::parse(&base)
        .unwrap()
        .validate(dir.path())
        .unwrap();
    assert_eq!(config.retention, logship_store::RetentionPolicy::default());
    let ok = format!("{base}[retention]\nmax_age_days = 0.5\n");
    let config = RawConfig::parse(&ok).unwrap().validate(dir.path()).unwrap();
    assert_eq!(config.retention.max_age_ns, Some(43_200 * 1_000_000_000));
    assert_eq!(config.retention.max_bytes, None);
    for (bad, expect) in [
        ("max_age_days = 0", "retention.max_age_days"),
        ("max_age_days = -3", "retention.max_age_days"),
        ("max_age_days = nan", "retention.max_age_days"),
        (
            "max_bytes = 1000",
            "retention.max_bytes must be at least twice",
        ),
        ("max_size = 1", "unknown field"),
    ] {
        let text = format!("{base}[retention]\n{bad}\n");
        let problems = RawConfig::parse(&text)
            .and_then(|r| r.validate(dir.path()).map(|_| ()))
            .unwrap_err()
            .join("\n");
        assert!(problems.contains(expect), "{bad}: {problems}");
    }
}

#[test]
fn the_init_template_validates() {
    let dir = data_dir_with_certs();
    let text = template(dir.path(), "127.0.0.1:9000");
    let config = RawConfig::parse(&text)
        .unwrap()
        .validate(dir.path())
        .unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
version = 3
data_dir = "/nonexistent/logship"
listen = "not an address"
[limits]
max_connections = 0
max_handshakes_per_source = 0
decode_budget_bytes = 1048576
[store]
segment_max_bytes = 10
[agents]
stale_after = "10 minutes"
"#;
    let problems = RawConfig::parse(text)
        .unwrap()
        .validate(Path::new("/"))
        .unwrap_err();
    let joined = problems.join("\n");
    for needle in [
        "version 3",
        "listen",
        "tls.ca_cert",
        "tls.key",
        "max_connections",
        "max_handshakes_per_source",
        "decode_budget_bytes must be at least",
        "segment_max_bytes",
        "agents.stale_after",
    ] {
        assert!(
            joined.contains(needle),
            "{needle:?} missing from:\n{joined}"
        );
    }
}

#[test]
fn stale_after_defaults_to_ten_minutes_and_must_be_positive() {
    let dir = data_dir_with_certs();
    let base = format!(
        "version = 1\ndata_dir = {:?}\n",
        dir.path().display().to_string()
    );
    let parse = |extra: &str| {
        RawConfig::parse(&format!("{base}{extra}"))
            .unwrap()
            .validate(dir.path())
    };
    assert_eq!(
        parse("").unwrap().stale_after,
        std::time::Duration::from_secs(600)
    );
    let short = parse("[agents]\nstale_after = \"3s\"\n").unwrap();
    assert_eq!(short.stale_after, std::time::Duration::from_secs(3));
    let zero = parse("[agents]\nstale_after = \"0s\"\n").unwrap_err();
    assert!(
        zero.join(" ")
            .contains("agents.stale_after must be greater than 0"),
        "{zero:?}"
    );
}

#[test]
fn normalize_workers_default_to_one_and_are_checked() {
    let dir = data_dir_with_certs();
    let base = format!(
        "version = 1\ndata_dir = {:?}\n",
        dir.path().display().to_string()
    );
    let config = RawConfig::parse(&base)
        .unwrap()
        .validate(dir.path())
        .unwrap();
    assert_eq!(config.normalize_workers, 1);
    let ok = format!("{base}[normalize]\nworkers = 3\n");
    let config = RawConfig::parse(&ok).unwrap().validate(dir.path()).unwrap();
    assert_eq!(config.normalize_workers, 3);
    for bad in ["workers = 0", "workers = 65"] {
        let text = format!("{base}[normalize]\n{bad}\n");
        let problems = RawConfig::parse(&text)
            .and_then(|r| r.validate(dir.path()).map(|_| ()))
            .unwrap_err()
            .join("\n");
        assert!(
            problems.contains("normalize.workers must be between 1 and 64"),
            "{bad}: {problems}"
        );
    }
    let text = format!("{base}[normalize]\nworkers = -1\n");
    assert!(
        RawConfig::parse(&text).is_err(),
        "a negative count is refused"
    );
}
