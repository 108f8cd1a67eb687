//! Issue 3 end to end: records shipped by a real agent are normalized by the collector and
//! searchable by field (`--where`, `!=`, CIDR), whether their fields were precomputed by the
//! normalizer worker or are computed at search time.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{Collector, FileInput, run_test, wait_until};

use crate::support::pair;

const ARRIVAL: Duration = Duration::from_secs(60);

/// Real sshd lines from the parser fixtures (crowdsec hub, MIT; see
/// lib/normalize/tests/data/README.md), plus lines for a user the test controls.
const CORPUS: &str = include_str!("../../../lib/normalize/tests/data/crowdsec-sshd.log");

fn auth_log() -> String {
    let mut text: String = CORPUS.lines().take(40).map(|l| format!("{l}\n")).collect();
    for port in [40001, 40002, 40003] {
        text.push_str(&format!(
            "Nov 25 09:1{}:00 gw sshd[811]: Failed password for alice from 203.0.113.7 port {port} ssh2\n",
            port % 10
        ));
    }
    text.push_str("Nov 25 09:20:00 gw sshd[812]: Accepted password for alice from 203.0.113.7 port 40004 ssh2\n");
    text.push_str(
        "Nov 25 09:21:00 gw sshd[813]: Failed password for bob from 198.51.100.9 port 40005 ssh2\n",
    );
    text.push_str("this line is in no known format\n");
    text
}

#[test]
fn where_filters_find_normalized_records_shipped_by_an_agent() {
    run_test(|sb| {
        let log = sb.path().join("auth.log");
        let text = auth_log();
        let total = text.lines().count() as u64;
        std::fs::write(&log, &text)?;
        let (collector, _agent) = pair(sb, FileInput::new("auth", &log))?;
        wait_until(ARRIVAL, "all records stored", || {
            Ok(collector.count()? == total)
        })?;
        wait_until(ARRIVAL, "fields precomputed", || {
            let status = collector.status()?.context("status.json")?;
            Ok(status["normalized_records"].as_u64() == Some(total))
        })?;
        check_queries(&collector)?;
        let with_sidecars = answers(&collector)?;
        let sidecars = sidecars(collector.data_dir())?;
        ensure!(!sidecars.is_empty(), "the normalizer wrote no sidecars");
        // A damaged sidecar (a flipped byte in its last column, a torn tail) is ignored where it
        // is damaged: search computes those fields itself, and nothing it prints changes.
        for path in &sidecars {
            let mut bytes = std::fs::read(path)?;
            let at = bytes.len() - 5;
            bytes[at] ^= 0x5a;
            bytes.extend_from_slice(&[0x42; 13]);
            std::fs::write(path, bytes)?;
        }
        check_queries(&collector)?;
        ensure!(
            answers(&collector)? == with_sidecars,
            "a damaged sidecar changed results"
        );
        // Without the precomputed sidecars, search computes the same fields itself.
        for path in &sidecars {
            std::fs::remove_file(path)?;
        }
        check_queries(&collector)?;
        ensure!(
            answers(&collector)? == with_sidecars,
            "search results differ with and without sidecars"
        );
        Ok(())
    });
}

/// The fields sidecars next to the store's segments.
pub(crate) fn sidecars(data_dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(data_dir.join("store/segments"))? {
        for f in std::fs::read_dir(day?.path())? {
            let p = f?.path();
            if p.extension().is_some_and(|e| e == "fld") {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// The full JSON output of several field searches, for comparing runs.
fn answers(collector: &Collector) -> Result<Vec<Vec<serde_json::Value>>> {
    let store = collector.store();
    [
        &["--where", "user.name=alice"][..],
        &["--where", "event.outcome=failure"],
        &[
            "--where",
            "source.ip=203.0.113.0/24",
            "--where",
            "source.port>=40003",
        ],
        &["--where", "event.category=authentication"],
        &["--where", "event.dataset!=sshd"],
        &["--where", "host.name=sd-126005"],
        &["--limit", "1000"],
    ]
    .iter()
    .map(|args| store.search(args))
    .collect()
}

fn check_queries(collector: &Collector) -> Result<()> {
    let store = collector.store();
    let failures = store.search(&[
        "--where",
        "user.name=alice",
        "--where",
        "event.outcome=failure",
        "--since",
        "-1d",
    ])?;
    ensure!(failures.len() == 3, "alice's failures: {failures:?}");
    for r in &failures {
        let f = &r["fields"];
        ensure!(
            f["user.name"] == "alice" && f["event.outcome"] == "failure",
            "{r}"
        );
        ensure!(
            f["source.ip"] == "203.0.113.7" && f["event.dataset"] == "sshd",
            "{r}"
        );
        ensure!(
            r["raw"]
                .as_str()
                .is_some_and(|t| t.contains("Failed password for alice")),
            "{r}"
        );
    }
    let cidr = store.count(&["--where", "source.ip=203.0.113.0/24"])?;
    ensure!(cidr == 4, "CIDR match found {cidr}, want 4");
    let unknown = store.search(&[
        "--where",
        "event.dataset=unparsed",
        "--contains",
        "no known format",
    ])?;
    ensure!(
        unknown.len() == 1 && unknown[0]["raw"] == "this line is in no known format",
        "unknown formats stay raw and are marked unparsed: {unknown:?}"
    );
    let not_sshd = store.count(&[
        "--where",
        "event.dataset!=sshd",
        "--where",
        "event.dataset!=pam",
    ])?;
    let unparsed = store.count(&["--where", "event.dataset=unparsed"])?;
    ensure!(
        not_sshd == unparsed,
        "!= filters: {not_sshd} records neither sshd nor pam, {unparsed} unparsed"
    );
    let real = store.count(&[
        "--where",
        "event.dataset=sshd",
        "--where",
        "host.name=sd-126005",
    ])?;
    ensure!(real > 0, "no corpus line was normalized");
    Ok(())
}
