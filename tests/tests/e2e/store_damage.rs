//! The collector's store under a full disk and a damaged last block: ingest stops without
//! losing anything while the disk is full and resumes by itself when space returns; a damaged
//! block at the end of the store is quarantined and reported, never silently cut.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, Tmpfs, check_exactly_once,
    files_with_ext, flip_bit_at, run_test, wait_until,
};

use crate::support::append_numbered;

const ARRIVAL: Duration = Duration::from_secs(180);

#[test]
fn a_full_store_disk_holds_ingest_and_it_resumes_when_space_returns() {
    run_test(|sb| {
        let log = sb.path().join("app.log");
        let copts = CollectorOpts {
            store_segment_max_bytes: 1 << 20,
            ..CollectorOpts::default()
        };
        let mut collector = Collector::init(sb, "collector", &copts)?;
        let disk = Tmpfs::mount(&collector.data_dir().join("store"), 3 << 20)?;
        collector.start()?;
        let mut agent = agent_on(sb, &collector, &log)?;
        // About 8 MB of poorly compressible lines: far more than the 3 MiB disk holds.
        let total = 60_000;
        append_numbered(&log, 0, total, 100)?;
        let collector_log = sb.log_path("collector");
        wait_until(ARRIVAL, "the store disk to fill up", || {
            agent.check_alive()?;
            let text = std::fs::read_to_string(&collector_log)?;
            Ok(text.contains("No space left on device"))
        })?;
        let stored = collector.count()?;
        ensure!(stored < total, "everything fit on a full disk: {stored}");
        std::thread::sleep(Duration::from_secs(3));
        ensure!(
            collector
                .proc_mut()
                .context("collector")?
                .exited()?
                .is_none(),
            "the collector died on a full disk"
        );
        disk.resize(64 << 20)?;
        wait_until(ARRIVAL, "every line after space returned", || {
            agent.check_alive()?;
            Ok(collector.count()? >= total)
        })?;
        ensure!(collector.count()? == total, "more records than lines");
        check_exactly_once(&collector.store(), "app", total)?;
        agent.stop()?;
        collector.stop()?;
        let verify = collector.store().verify()?;
        ensure!(
            verify.status.success(),
            "verify after a full disk: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        drop(disk);
        Ok(())
    });
}

#[test]
fn a_damaged_last_block_is_quarantined_and_reported_not_cut() {
    run_test(|sb| {
        let log = sb.path().join("app.log");
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let mut agent = agent_on(sb, &collector, &log)?;
        append_numbered(&log, 0, 20_000, 60)?;
        wait_until(ARRIVAL, "all lines stored", || {
            agent.check_alive()?;
            Ok(collector.count()? == 20_000)
        })?;
        collector.stop()?;
        // One flipped bit inside the last agent block, acked, made the last block of the store
        // (the collector's own shutdown checkpoint after it is cut away first).
        let store_dir = collector.data_dir().join("store");
        let last = files_with_ext(&store_dir, "seg")?
            .pop()
            .context("no segment")?;
        let spans = logship_store::tamper::block_spans(&last, 16);
        let (o, l) = spans[spans.len().checked_sub(2).context("two blocks")?];
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)?
            .set_len(o + l)?;
        flip_bit_at(&last, o + l - 200)?;
        collector.start()?;
        append_numbered(&log, 20_000, 20_100, 60)?;
        wait_until(ARRIVAL, "new lines after the damage", || {
            agent.check_alive()?;
            Ok(collector.store().count(&["--contains", "line=000020099"])? == 1)
        })?;
        let quarantined = files_with_ext(&store_dir.join("quarantine"), "tail")?;
        ensure!(quarantined.len() == 1, "quarantine: {quarantined:?}");
        let status = collector.status()?.context("no status.json")?;
        ensure!(
            status["store_quarantined"]
                .as_array()
                .is_some_and(|q| q.len() == 1),
            "status.json does not show the quarantined tail: {status}"
        );
        let text = std::fs::read_to_string(sb.log_path("collector"))?;
        ensure!(
            text.contains("moved to quarantine"),
            "serve did not say what it did"
        );
        let verify = collector.store().verify()?;
        let report = String::from_utf8_lossy(&verify.stdout).into_owned();
        ensure!(!verify.status.success(), "verify passed: {report}");
        let qname = quarantined[0].display().to_string();
        ensure!(
            report.contains(&qname) && report.contains("block removed"),
            "verify does not name the quarantine file and the lost seqs: {report}"
        );
        Ok(())
    });
}

fn agent_on(sb: &Sandbox, collector: &Collector, log: &std::path::Path) -> Result<Agent> {
    let opts = AgentOpts::new(collector, vec![FileInput::new("app", log)]);
    let mut agent = Agent::enroll(sb, collector, "agent1", &opts)?;
    agent.start()?;
    Ok(agent)
}
