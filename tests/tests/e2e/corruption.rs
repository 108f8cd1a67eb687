//! Corruption: bytes flipped in an agent spool segment and in a collector store segment. Both
//! programs must start, keep working, and report what was lost.

use std::time::Duration;

use anyhow::{Context, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, files_with_ext, flip_bytes, run_test,
    wait_until,
};

use crate::support::append_numbered;

const ARRIVAL: Duration = Duration::from_secs(180);

#[test]
fn flipped_spool_bytes_become_a_gap_and_shipping_goes_on() {
    run_test(|sb| {
        let log = sb.path().join("app.log");
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        let input = FileInput::new("app", &log);
        let mut opts = AgentOpts::new(&collector, vec![input]);
        opts.spool_segment_max_bytes = 64 << 10;
        let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
        // The collector is down: the spool keeps everything, in several segments.
        agent.start()?;
        append_numbered(&log, 0, 20_000, 80)?;
        wait_until(ARRIVAL, "4 spool segments", || {
            Ok(files_with_ext(&agent.spool_dir(), "seg")?.len() >= 4)
        })?;
        agent.stop()?;
        let segments = files_with_ext(&agent.spool_dir(), "seg")?;
        let victim = segments.first().context("no spool segment")?;
        flip_bytes(victim, 64)?;
        agent.start()?;
        collector.start()?;
        append_numbered(&log, 20_000, 20_100, 80)?;
        let store = collector.store();
        wait_until(ARRIVAL, "gap record and new lines", || {
            agent.check_alive()?;
            let gap = store.count(&["--input", "logship-agent"])? >= 1;
            Ok(gap && store.count(&["--contains", "line=000020099"])? == 1)
        })?;
        let gaps = store.search(&["--input", "logship-agent"])?;
        ensure!(gaps[0]["kind"] == "gap", "not a gap record: {}", gaps[0]);
        let text = gaps[0]["raw"].as_str().unwrap_or_default();
        ensure!(
            text.contains("corrupt"),
            "gap record does not say what was lost: {text}"
        );
        let quarantined = files_with_ext(&agent.spool_dir().join("quarantine"), "seg")?;
        ensure!(!quarantined.is_empty(), "nothing quarantined");
        Ok(())
    });
}

#[test]
fn flipped_store_bytes_are_skipped_and_reported_by_verify() {
    run_test(|sb| {
        let log = sb.path().join("app.log");
        let copts = CollectorOpts {
            store_segment_max_bytes: 1 << 20,
            ..CollectorOpts::default()
        };
        let mut collector = Collector::init(sb, "collector", &copts)?;
        collector.start()?;
        let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
        let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
        agent.start()?;
        let store_dir = collector.data_dir().join("store");
        let mut written = 0;
        wait_until(ARRIVAL, "3 store segments", || {
            append_numbered(&log, written, written + 5_000, 120)?;
            written += 5_000;
            Ok(files_with_ext(&store_dir, "seg")?.len() >= 3)
        })?;
        wait_until(ARRIVAL, "all lines stored", || {
            Ok(collector.count()? == written)
        })?;
        collector.stop()?;
        let segments = files_with_ext(&store_dir, "seg")?;
        let victim = segments.first().context("no store segment")?;
        flip_bytes(victim, 64)?;
        collector.start()?;
        append_numbered(&log, written, written + 100, 40)?;
        let after = format!("line={:09}", written + 99);
        wait_until(ARRIVAL, "new lines after the damage", || {
            agent.check_alive()?;
            Ok(collector.store().count(&["--contains", &after])? == 1)
        })?;
        let left = collector.count()?;
        ensure!(
            left < written + 100,
            "a damaged block still counted: {left}"
        );
        let verify = collector.store().verify()?;
        let report = String::from_utf8_lossy(&verify.stdout).into_owned();
        ensure!(
            !verify.status.success(),
            "verify passed a damaged store: {report}"
        );
        let name = victim
            .file_name()
            .context("segment name")?
            .to_string_lossy();
        ensure!(
            report.contains(name.as_ref()),
            "verify does not name {name}: {report}"
        );
        Ok(())
    });
}
