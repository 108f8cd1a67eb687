//! Collector outage: the collector is stopped for 60 s (`LOGSHIP_E2E_OUTAGE_SECS` may shorten
//! it for local runs) while lines keep coming; the agent's small spool must stay under its cap
//! (inputs block, nothing is dropped) and everything arrives exactly once afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, check_exactly_once, dir_bytes,
    env_u64, run_test, wait_until,
};

use crate::support::append_numbered;

const SPOOL_CAP: u64 = 8 << 20;
const SPOOL_SEGMENT: u64 = 1 << 20;
/// Lines per second written during the whole test (about 100 bytes each).
const RATE: u64 = 5_000;

#[test]
fn collector_outage_keeps_spool_under_cap_and_loses_nothing() {
    run_test(|sb| {
        let outage = Duration::from_secs(env_u64("LOGSHIP_E2E_OUTAGE_SECS", 60));
        let (mut collector, mut agent) = start(sb)?;
        let log = sb.path().join("app.log");
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = spawn_writer(log, written.clone(), stop.clone());
        wait_until(Duration::from_secs(60), "first lines stored", || {
            Ok(collector.count()? > 0)
        })?;
        collector.stop()?;
        let peak = watch_spool(&mut agent, outage)?;
        collector.start()?;
        watch_spool(&mut agent, Duration::from_secs(5))?;
        stop.store(true, Ordering::SeqCst);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        let total = written.load(Ordering::SeqCst);
        eprintln!("outage {outage:?}: {total} lines written, spool peak {peak} bytes");
        wait_until(Duration::from_secs(600), "all lines stored", || {
            agent.check_alive()?;
            Ok(collector.count()? >= total)
        })?;
        ensure!(collector.count()? == total, "more records than lines");
        check_exactly_once(&collector.store(), "app", total)?;
        if outage >= Duration::from_secs(30) {
            ensure!(
                peak >= SPOOL_CAP / 2,
                "the outage never filled the spool (peak {peak})"
            );
        }
        Ok(())
    });
}

fn start(sb: &Sandbox) -> Result<(Collector, Agent)> {
    let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
    collector.start()?;
    let input = FileInput::new("app", &sb.path().join("app.log"));
    let mut opts = AgentOpts::new(&collector, vec![input]);
    opts.spool_max_bytes = SPOOL_CAP;
    opts.spool_segment_max_bytes = SPOOL_SEGMENT;
    let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
    agent.start()?;
    Ok((collector, agent))
}

/// Samples the spool size every 200 ms for `period`; fails past cap + one segment.
fn watch_spool(agent: &mut Agent, period: Duration) -> Result<u64> {
    let start = Instant::now();
    let mut peak = 0;
    while start.elapsed() < period {
        agent.check_alive()?;
        let bytes = dir_bytes(&agent.spool_dir())?;
        peak = peak.max(bytes);
        if bytes > SPOOL_CAP + SPOOL_SEGMENT {
            bail!("spool holds {bytes} bytes, over its cap {SPOOL_CAP} + one segment");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(peak)
}

/// Appends numbered lines at [`RATE`] until `stop`.
fn spawn_writer(
    log: std::path::PathBuf,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            append_numbered(&log, n, n + RATE / 10, 80)?;
            n += RATE / 10;
            written.store(n, Ordering::SeqCst);
            let due = Duration::from_millis(n * 1000 / RATE);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        Ok(())
    })
}
