//! The independent accuracy table: input lines and expected values published by other projects'
//! parser test suites (not written here), converted to our ECS names and scored against the
//! normalizer. Kept apart from the self-made table (`tests/accuracy.rs`).
//!
//! Sources (files, commits and licences in `tests/data/oracle/SOURCES.md`):
//! - CrowdSec hub `.tests/<name>/`: a `.log` plus selected `parser.assert` lines
//!   (`results["s01-parse"]["<parser>"][i].Evt.Parsed["k"] == "v"`); event `i` is line `i`.
//! - fail2ban `fail2ban/tests/files/logs/<filter>`: `# failJSON: {"match": …, "host": …}` before
//!   each input line.
//! - Elastic Beats `filebeat/module/*/test/*.log` plus a key subset of `*-expected.json`, one
//!   JSON document per line, joined to its line by `log.offset`.
//! - Elastic integrations `packages/*/data_stream/*/_dev/test/pipeline/*.log` plus a key subset of
//!   `*-expected.json`, joined by order (the documents carry no offset).
//!
//! Conversion (the only judgment made here; everything else is the other project's):
//! the field map in [`crowdsec_field`] and [`beats_field`]; fields not in the maps are not scored.
//! Each converted IP or user value must occur verbatim in its line (a misaligned fixture fails the
//! test instead of scoring nonsense).
//!
//! Score per source: recall = lines claimed by one of the source's datasets / lines the oracle
//! parsed; field precision = converted expected fields our output equals / converted fields.
//! Gate: ≥ 95 % of both for every source with at least 20 lines. The table is printed
//! (`cargo test -p logship-normalize --test oracle -- --nocapture`) and copied to docs/PARSERS.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use logship_normalize::{Context, Normalizer};
use serde_json::{Map, Value};

/// One scored line.
struct Case {
    line: String,
    expect: Map<String, Value>,
}

/// One oracle data set.
struct Source {
    name: &'static str,
    /// Datasets of ours that may claim its lines.
    datasets: &'static [&'static str],
    cases: Vec<Case>,
    /// Expected values were joined to lines by index or order, so each converted address or user
    /// must occur in its line (fail2ban pairs each line with the comment right above it, and its
    /// multi-line cases name a host from an earlier line of the same connection).
    check_alignment: bool,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/oracle")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// === CrowdSec hub ===

/// CrowdSec `Evt.Parsed`/`Evt.Meta` key and value → ECS field and value.
fn crowdsec_field(key: &str, val: &str) -> Option<(&'static str, Value)> {
    let num = |v: &str| v.parse::<u64>().ok().map(Value::from);
    let s = |v: &str| Some(Value::from(v));
    Some(match key {
        "source_ip" | "sshd_client_ip" | "src_ip" | "dovecot_remote_ip" | "ip_source" => {
            ("source.ip", s(val)?)
        }
        "smb_domain" => ("user.domain", s(val)?),
        "dst_ip" => ("destination.ip", s(val)?),
        "src_port" | "sport" => ("source.port", num(val)?),
        "dst_port" => ("destination.port", num(val)?),
        "target_user" | "sshd_invalid_user" | "invalid_user" | "dovecot_user" | "user" => {
            ("user.name", s(val)?)
        }
        "log_type"
            if val == "ssh_failed-auth" || val == "auth_failed" || val == "smb_failed_auth" =>
        {
            ("event.outcome", s("failure")?)
        }
        "dovecot_login_result" if val == "auth_failed" => ("event.outcome", s("failure")?),
        "auth_status" if val == "failed" => ("event.outcome", s("failure")?),
        "log_type" if val == "mikrotik_drop" => ("event.action", s("deny")?),
        "proto" => ("network.transport", s(&val.to_ascii_lowercase())?),
        // pf/filterlog verbs → our firewall vocabulary (see docs/PARSERS.md).
        "action" if val == "pass" => ("event.action", s("allow")?),
        "action" if val == "block" => ("event.action", s("deny")?),
        "rule" => ("rule.id", s(val)?),
        "ip4_proto" | "ip6_proto" => ("network.transport", s(val)?),
        _ => return None,
    })
}

/// One assertion line: `results["stage"]["parser"][i].Evt.Parsed["k"] == "v"` (or `Evt.Meta`)
/// or `results["stage"]["parser"][i].Success == true|false`.
enum Assert {
    Field(usize, String, String),
    Success(usize, bool),
}

fn parse_assert(l: &str) -> Option<Assert> {
    let (lhs, rhs) = l.split_once(" == ")?;
    // The event index is the `[N]` right before `.Evt` / `.Success`.
    let dot = lhs.find("].")?;
    let i: usize = lhs[..dot].rsplit('[').next()?.parse().ok()?;
    let tail = &lhs[dot + 2..];
    if tail == "Success" {
        return Some(Assert::Success(i, rhs.trim() == "true"));
    }
    let key = tail
        .strip_prefix("Evt.Parsed[\"")
        .or_else(|| tail.strip_prefix("Evt.Meta[\""))?
        .strip_suffix("\"]")?;
    let val = rhs.trim().strip_prefix('"')?.strip_suffix('"')?;
    Some(Assert::Field(i, key.to_owned(), val.replace("\\\"", "\"")))
}

fn crowdsec(name: &'static str, test: &str, datasets: &'static [&'static str]) -> Source {
    let log = read(&format!("crowdsec/{test}.log"));
    let lines: Vec<&str> = log.lines().collect();
    let mut ok: BTreeMap<usize, bool> = BTreeMap::new();
    let mut exp: BTreeMap<usize, Map<String, Value>> = BTreeMap::new();
    for l in read(&format!("crowdsec/{test}.parser.assert.subset")).lines() {
        match parse_assert(l).unwrap_or_else(|| panic!("{test}: unreadable assert {l:?}")) {
            Assert::Success(i, b) => {
                ok.insert(i, b);
            }
            Assert::Field(i, k, v) => {
                let Some((field, val)) = crowdsec_field(&k, &v) else {
                    continue;
                };
                let m = exp.entry(i).or_default();
                if let Some(old) = m.get(field) {
                    assert_eq!(old, &val, "{test}[{i}]: {k} disagrees on {field}");
                }
                m.insert(field.to_owned(), val);
            }
        }
    }
    let cases = ok
        .iter()
        .filter(|(_, parsed)| **parsed)
        .map(|(i, _)| {
            let line = lines
                .get(*i)
                .unwrap_or_else(|| panic!("{test}: assert for line {i} beyond the log"));
            Case {
                line: (*line).to_owned(),
                expect: exp.remove(i).unwrap_or_default(),
            }
        })
        .collect();
    Source {
        name,
        datasets,
        cases,
        check_alignment: true,
    }
}

// === Elastic Beats ===

/// Beats ECS field → our field (the same name except where noted); others are not scored.
fn beats_field(key: &str) -> Option<&'static str> {
    Some(match key {
        "source.ip" => "source.ip",
        "source.port" => "source.port",
        "user.name" => "user.name",
        "user.domain" => "user.domain",
        // Elastic puts the address a VPN assigned to the client in `source.nat.ip`.
        "source.nat.ip" => "pulse_secure.assigned_ip",
        "event.outcome" => "event.outcome",
        "event.category" => "event.category",
        "process.pid" => "process.pid",
        "process.name" => "process.name",
        "host.hostname" => "host.name",
        "destination.ip" => "destination.ip",
        "destination.port" => "destination.port",
        "url.original" => "url.original",
        "http.request.method" => "http.request.method",
        "http.response.status_code" => "http.response.status_code",
        _ => return None,
    })
}

/// `renamed` lists addresses Elastic replaced in the log between the pinned log and expected
/// versions (expected value → value in the pinned log; see SOURCES.md).
fn beats(
    name: &'static str,
    log: &str,
    expected: &str,
    renamed: &[(&str, &str)],
    datasets: &'static [&'static str],
) -> Source {
    let text = read(&format!("beats/{log}"));
    let mut at = BTreeMap::new();
    let mut off = 0usize;
    for l in text.split_inclusive('\n') {
        at.insert(off, l.trim_end_matches('\n').to_owned());
        off += l.len();
    }
    let mut cases = Vec::new();
    for doc in read(&format!("beats/{expected}")).lines() {
        let doc: Map<String, Value> = serde_json::from_str(doc).expect("expected doc is JSON");
        let o = doc["log.offset"].as_u64().expect("log.offset") as usize;
        let line = at
            .get(&o)
            .unwrap_or_else(|| panic!("{log}: no line starts at offset {o}"))
            .clone();
        let mut expect = Map::new();
        for (k, v) in doc {
            let Some(f) = beats_field(&k) else { continue };
            let v = match v
                .as_str()
                .and_then(|s| renamed.iter().find(|(a, _)| *a == s))
            {
                Some((_, b)) => Value::from(*b),
                None => v,
            };
            expect.insert(f.to_owned(), v);
        }
        cases.push(Case { line, expect });
    }
    Source {
        name,
        datasets,
        cases,
        check_alignment: true,
    }
}

// === Elastic integrations ===

/// An Elastic integrations pipeline test (`_dev/test/pipeline/*.log` with a key subset of its
/// `-expected.json`, one ECS document per line, in line order; the documents carry no offsets).
fn elastic_ordered(
    name: &'static str,
    log: &str,
    expected: &str,
    datasets: &'static [&'static str],
) -> Source {
    let text = read(&format!("elastic/{log}"));
    let docs = read(&format!("elastic/{expected}"));
    let lines: Vec<&str> = text.lines().collect();
    let docs: Vec<&str> = docs.lines().collect();
    assert_eq!(
        lines.len(),
        docs.len(),
        "{log}: one expected document per line"
    );
    let cases = lines
        .iter()
        .zip(docs)
        .map(|(line, doc)| {
            let doc: Map<String, Value> = serde_json::from_str(doc).expect("JSON");
            let expect = doc
                .into_iter()
                .filter_map(|(k, v)| Some((beats_field(&k)?.to_owned(), v)))
                .collect();
            Case {
                line: (*line).to_owned(),
                expect,
            }
        })
        .collect();
    Source {
        name,
        datasets,
        cases,
        check_alignment: true,
    }
}

// === fail2ban ===

/// fail2ban filter test logs: each input line follows a `# failJSON: {…}` comment stating whether
/// the filter must match and, if so, the offending `host` (and sometimes `user`). `host` is
/// compared with our `source.ip` (an address) or `source.domain` (a name); `user` with
/// `user.name`. Hosts that are neither (`192.030.0.6`) are not scored.
fn fail2ban(name: &'static str, file: &str, datasets: &'static [&'static str]) -> Source {
    let mut cases = Vec::new();
    let mut pending: Option<Map<String, Value>> = None;
    for l in read(&format!("fail2ban/{file}")).lines() {
        if let Some(j) = l.strip_prefix("# failJSON:") {
            pending = Some(serde_json::from_str(j).expect("failJSON is JSON"));
            continue;
        }
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        let j = pending
            .take()
            .unwrap_or_else(|| panic!("{file}: line without failJSON: {l}"));
        let mut expect = Map::new();
        if j.get("match") == Some(&Value::Bool(true)) {
            if let Some(h) = j.get("host").and_then(Value::as_str) {
                if h.parse::<std::net::IpAddr>().is_ok() {
                    expect.insert("source.ip".into(), h.into());
                } else if h.chars().any(|c| c.is_ascii_alphabetic()) && !h.contains(':') {
                    expect.insert("source.domain".into(), h.into());
                }
            }
            // An empty `user` ("Invalid user  from …") has no field to compare.
            if let Some(u) = j
                .get("user")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
            {
                expect.insert("user.name".into(), u.into());
            }
        }
        cases.push(Case {
            line: l.to_owned(),
            expect,
        });
    }
    Source {
        name,
        datasets,
        cases,
        check_alignment: false,
    }
}

/// Beats' pre-ECS `system.auth.*` names (filebeat 6.x expected files) → (our field, value).
fn beats_legacy_field(key: &str, v: &Value) -> Option<(&'static str, Value)> {
    let s = v.as_str()?;
    let num = |s: &str| s.parse::<u64>().ok().map(Value::from);
    Some(match key {
        "system.auth.hostname" => ("host.name", v.clone()),
        "system.auth.pid" => ("process.pid", num(s)?),
        "system.auth.user" | "system.auth.useradd.name" => ("user.name", v.clone()),
        "system.auth.ssh.ip" | "system.auth.ssh.dropped_ip" => ("source.ip", v.clone()),
        "system.auth.ssh.port" => ("source.port", num(s)?),
        "system.auth.ssh.event" => (
            "event.outcome",
            Value::from(if s == "Accepted" {
                "success"
            } else {
                "failure"
            }),
        ),
        "system.auth.sudo.command" => ("process.command_line", v.clone()),
        // sudo's `USER=` is the identity the command runs as.
        "system.auth.sudo.user" => ("user.effective.name", v.clone()),
        "system.auth.sudo.error" => ("event.outcome", Value::from("failure")),
        "system.auth.groupadd.name" => ("group.name", v.clone()),
        "system.auth.groupadd.gid" | "system.auth.useradd.gid" => ("group.id", v.clone()),
        "system.auth.useradd.uid" => ("user.id", v.clone()),
        _ => return None,
    })
}

/// A pre-ECS Beats expected file joined to its log by order (one document per line), with the
/// address translation of [`beats`].
fn beats_legacy(
    name: &'static str,
    log: &str,
    expected: &str,
    renamed: &[(&str, &str)],
    datasets: &'static [&'static str],
) -> Source {
    let text = read(&format!("beats/{log}"));
    let docs = read(&format!("beats/{expected}"));
    let lines: Vec<&str> = text.lines().collect();
    let docs: Vec<&str> = docs.lines().collect();
    assert_eq!(
        lines.len(),
        docs.len(),
        "{log}: one expected document per line"
    );
    let cases = lines
        .iter()
        .zip(docs)
        .map(|(line, doc)| {
            let doc: Map<String, Value> = serde_json::from_str(doc).expect("JSON");
            let mut expect = Map::new();
            for (k, v) in &doc {
                let v = match v
                    .as_str()
                    .and_then(|s| renamed.iter().find(|(a, _)| *a == s))
                {
                    Some((_, b)) => Value::from(*b),
                    None => v.clone(),
                };
                if let Some((f, v)) = beats_legacy_field(k, &v) {
                    expect.insert(f.to_owned(), v);
                }
            }
            Case {
                line: (*line).to_owned(),
                expect,
            }
        })
        .collect();
    Source {
        name,
        datasets,
        cases,
        check_alignment: true,
    }
}

fn sources() -> Vec<Source> {
    vec![
        beats(
            "elastic/beats system/auth secure-rhel7",
            "secure-rhel7-first59.log",
            "secure-rhel7.log-expected.subset.jsonl",
            &[
                ("202.196.224.106", "202.109.143.106"),
                ("216.160.83.58", "116.31.116.27"),
            ],
            &["sshd", "pam"],
        ),
        beats_legacy(
            "elastic/beats system/auth test.log",
            "system-auth-test.log",
            "system-auth-test.log-expected.subset.jsonl",
            &[
                ("116.31.116.24", "216.160.83.57"),
                ("123.57.245.163", "2.125.160.217"),
            ],
            &["sshd", "sudo", "linux.account"],
        ),
        fail2ban(
            "fail2ban tests/files/logs/sshd (first part)",
            "sshd-first-part",
            &["sshd", "pam"],
        ),
        fail2ban(
            "fail2ban tests/files/logs/dovecot",
            "dovecot",
            &["dovecot", "pam"],
        ),
        crowdsec("crowdsec sshd-logs", "sshd-logs", &["sshd", "pam"]),
        crowdsec("crowdsec pf-logs", "pf-logs", &["filterlog"]),
        crowdsec("crowdsec dovecot-logs", "dovecot-logs", &["dovecot"]),
        crowdsec("crowdsec openvpn-logs", "openvpn-logs", &["openvpn"]),
        crowdsec("crowdsec mikrotik-logs", "mikrotik-logs", &["mikrotik"]),
        crowdsec("crowdsec smb-logs", "smb-logs", &["samba"]),
        elastic_ordered(
            "elastic/integrations pulse_connect_secure test-log-vpn (first 14)",
            "pulse-vpn-first14.log",
            "pulse-vpn.log-expected.subset.jsonl",
            &["pulse_secure"],
        ),
    ]
}

// === scoring ===

#[derive(Default)]
struct Score {
    lines: usize,
    claimed: usize,
    fields: usize,
    correct: usize,
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

#[test]
fn oracle_fixtures_are_aligned() {
    for s in sources() {
        assert!(!s.cases.is_empty(), "{}: no cases", s.name);
        for c in s.cases.iter().filter(|_| s.check_alignment) {
            for f in ["source.ip", "destination.ip", "user.name"] {
                if let Some(Value::String(v)) = c.expect.get(f) {
                    assert!(
                        c.line.contains(v.as_str()),
                        "{}: {f}={v} not in line {:?}",
                        s.name,
                        c.line
                    );
                }
            }
        }
    }
}

#[test]
fn independent_oracle_meets_gate() {
    let ctx = |tz| Context {
        host: "agent-host",
        input: "oracle",
        path: "oracle",
        agent_tz: tz,
        observed_unix_nanos: 1_735_689_600_000_000_000,
    };
    let mut table = String::from(
        "| source | lines | recall | fields checked | field precision |\n|---|---:|---:|---:|---:|\n",
    );
    let mut misses = Vec::new();
    let mut failed = Vec::new();
    for s in sources() {
        let mut n = Normalizer::new();
        let mut sc = Score::default();
        for (i, c) in s.cases.iter().enumerate() {
            let ev = n.normalize(c.line.as_bytes(), &ctx("UTC"));
            sc.lines += 1;
            if s.datasets.contains(&ev.dataset) {
                sc.claimed += 1;
            } else {
                misses.push(format!(
                    "{} #{i}: dataset {}: {}",
                    s.name, ev.dataset, c.line
                ));
            }
            for (k, want) in &c.expect {
                sc.fields += 1;
                match ev.get(k) {
                    Some(got) if got == want => sc.correct += 1,
                    got => misses.push(format!(
                        "{} #{i}: {k} expected {want}, got {got:?}: {}",
                        s.name, c.line
                    )),
                }
            }
        }
        let (r, p) = (pct(sc.claimed, sc.lines), pct(sc.correct, sc.fields));
        table.push_str(&format!(
            "| {} | {} | {r:.1}% | {} | {p:.1}% |\n",
            s.name, sc.lines, sc.fields
        ));
        if sc.lines >= 20 && (r < 95.0 || p < 95.0) {
            failed.push(s.name);
        }
    }
    println!("{table}");
    for m in &misses {
        println!("miss: {m}");
    }
    assert!(
        failed.is_empty(),
        "under the 95 % gate: {failed:?}\n{table}"
    );
}
