//! Helpers shared by the fixture-based parser tests: a fixed context, reading a fixture, finding
//! its line, normalizing one line and reading a field back.
#![allow(dead_code)] // each test file uses a subset

use logship_normalize::{Context, Event, Normalizer};

pub(crate) const CTX: Context<'static> = Context {
    host: "agent-host",
    input: "test",
    path: "test",
    agent_tz: "UTC",
    observed_unix_nanos: 1_735_689_600_000_000_000, // 2025-01-01T00:00:00Z
};

pub(crate) fn data(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(p).expect("fixture present")
}

pub(crate) fn line_of(file: &str, needle: &str) -> String {
    data(file)
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in {file}"))
        .to_owned()
}

pub(crate) fn norm(line: &str) -> Event {
    Normalizer::new().normalize(line.as_bytes(), &CTX)
}

pub(crate) fn s<'a>(e: &'a Event, k: &str) -> &'a str {
    e.get(k).and_then(|v| v.as_str()).unwrap_or("")
}

pub(crate) fn num(e: &Event, k: &str) -> Option<u64> {
    e.get(k).and_then(serde_json::Value::as_u64)
}
