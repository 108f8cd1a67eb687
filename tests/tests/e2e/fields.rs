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
        // Without the precomputed sidecars, search computes the same fields itself.
        let fields_dir = collector.data_dir().join("fields");
        ensure!(fields_dir.is_dir(), "the normalizer wrote no sidecars");
        std::fs::rename(&fields_dir, collector.data_dir().join("fields.moved"))?;
        check_queries(&collector)
    });
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
