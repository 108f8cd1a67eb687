//! Disk full on the agent's spool, which lives on a small tmpfs while numbered lines keep being
//! written. 1) A filler file fills the disk: the input must keep its batch and retry (not end),
//! the collector's status.json must show `spool_blocked_reason`, and once the filler is removed
//! shipping resumes by itself. 2) The spool fills its own disk during a collector outage (the
//! last free pages are then taken too): once the collector is back, acks must still free space
//! (the spool's reserve lets the ledger be written). 3) The agent is stopped (SIGTERM) while
//! blocked: it exits cleanly and, restarted, loses and repeats nothing (read positions never ran
//! ahead of the spool). All: every line stored exactly once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Tmpfs, check_exactly_once,
    fill_until_full, run_test, wait_until,
};

use crate::support::append_numbered;

/// Size of the spool's file system (the spool's own cap, 64 MiB, is larger: the disk fills first).
const FS_BYTES: u64 = 8 << 20;
/// Lines per second written during the test (about 100 bytes each).
const RATE: u64 = 2_000;
/// The second test's disk: a few 1 MiB segments and the spool's reserve.
const OWN_FS_BYTES: u64 = 3 << 20;
/// Lines per second in the second test: fills that disk within seconds.
const FAST_RATE: u64 = 10_000;
/// How long the spool stays blocked once status.json shows it.
const BLOCKED_FOR: Duration = Duration::from_secs(4);

#[test]
fn full_spool_disk_blocks_inputs_until_space_returns_and_loses_nothing() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let input = FileInput::new("app", &sb.path().join("app.log"));
        let opts = AgentOpts::new(&collector, vec![input]);
        let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
        // Declared before the agent is started: dropped (unmounted) after the agent is killed.
        let mut fault = Fault::prepare(&agent.spool_dir())?;
        agent.start()?;
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let log = sb.path().join("app.log");
        let writer = spawn_writer(log, RATE, written.clone(), stop.clone());
        wait_until(Duration::from_secs(30), "first lines stored", || {
            Ok(collector.count()? > 0)
        })?;
        fault.inject()?;
        let mut reason = String::new();
        wait_until(Duration::from_secs(30), "spool_blocked_reason", || {
            agent.check_alive()?;
            reason = blocked_reason(&collector)?;
            Ok(!reason.is_empty())
        })?;
        eprintln!("status.json: spool_blocked_reason = {reason:?}");
        ensure!(
            reason.contains(fault.expected()) && reason.contains("input app"),
            "unexpected reason {reason:?}"
        );
        std::thread::sleep(BLOCKED_FOR);
        agent.check_alive()?;
        let still = blocked_reason(&collector)?;
        ensure!(
            !still.is_empty(),
            "the block cleared while the disk was full"
        );
        let before_free = written.load(Ordering::SeqCst);
        fault.clear()?;
        let freed = Instant::now();
        wait_until(Duration::from_secs(30), "block cleared", || {
            agent.check_alive()?;
            Ok(blocked_reason(&collector)?.is_empty())
        })?;
        eprintln!(
            "block cleared {:?} after the fault was cleared",
            freed.elapsed()
        );
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::SeqCst);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        let total = written.load(Ordering::SeqCst);
        ensure!(total > before_free, "no line written after space returned");
        all_stored_exactly_once(&mut agent, &collector, total, Duration::from_secs(120))?;
        check_logged_once(&agent.log_text()?)?;
        agent.stop()?;
        drop(fault);
        Ok(())
    });
}

#[test]
fn spool_filling_its_own_disk_recovers_when_acks_free_space() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let input = FileInput::new("app", &sb.path().join("app.log"));
        let opts = AgentOpts::new(&collector, vec![input]);
        let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
        let fs = Tmpfs::mount(&agent.spool_dir(), OWN_FS_BYTES)?;
        agent.start()?;
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let log = sb.path().join("app.log");
        let writer = spawn_writer(log, FAST_RATE, written.clone(), stop.clone());
        wait_until(Duration::from_secs(30), "first lines stored", || {
            Ok(collector.count()? > 0)
        })?;
        collector.stop()?;
        wait_until(
            Duration::from_secs(60),
            "spool blocked on its full disk",
            || {
                agent.check_alive()?;
                Ok(agent.log_text()?.contains("Spool append failed"))
            },
        )?;
        // Take the last free pages too, so even the small ledger write of an ack fails.
        let crumbs = fill_until_full(&fs.path().join("crumbs.bin"))?;
        eprintln!("the spool filled its disk; {crumbs} bytes were left");
        collector.start()?;
        wait_until(Duration::from_secs(60), "append recovered", || {
            agent.check_alive()?;
            Ok(agent.log_text()?.contains("Spool append succeeded again"))
        })?;
        ensure!(
            agent.log_text()?.contains("released the reserve"),
            "the acks never needed the spool's reserve: the disk was not full"
        );
        stop.store(true, Ordering::SeqCst);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        let total = written.load(Ordering::SeqCst);
        all_stored_exactly_once(&mut agent, &collector, total, Duration::from_secs(120))?;
        agent.stop()?;
        Ok(())
    });
}

#[test]
fn agent_stopped_while_its_spool_is_blocked_exits_and_resumes_exactly_once() {
    run_test(|sb| {
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let input = FileInput::new("app", &sb.path().join("app.log"));
        let opts = AgentOpts::new(&collector, vec![input]);
        let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
        let mut fault = Fault::prepare(&agent.spool_dir())?;
        agent.start()?;
        let log = sb.path().join("app.log");
        append_numbered(&log, 0, 5_000, 60)?;
        wait_until(Duration::from_secs(30), "first lines stored", || {
            Ok(collector.count()? == 5_000)
        })?;
        fault.inject()?;
        let written = Arc::new(AtomicU64::new(5_000));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = spawn_writer(log, RATE, written.clone(), stop.clone());
        wait_until(Duration::from_secs(30), "spool_blocked_reason", || {
            agent.check_alive()?;
            Ok(!blocked_reason(&collector)?.is_empty())
        })?;
        // SIGTERM while the input is retrying: a clean exit within the harness deadline.
        let stopping = Instant::now();
        agent.stop()?;
        eprintln!(
            "agent stopped {:?} after SIGTERM while blocked",
            stopping.elapsed()
        );
        fault.clear()?;
        agent.start()?;
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        let total = written.load(Ordering::SeqCst);
        all_stored_exactly_once(&mut agent, &collector, total, Duration::from_secs(60))?;
        agent.stop()?;
        drop(fault);
        Ok(())
    });
}

/// Waits up to `deadline` for `total` records, then checks lines `0..total` of input "app"
/// are each stored exactly once.
fn all_stored_exactly_once(
    agent: &mut Agent,
    collector: &Collector,
    total: u64,
    deadline: Duration,
) -> Result<()> {
    wait_until(deadline, "all lines stored", || {
        agent.check_alive()?;
        Ok(collector.count()? >= total)
    })?;
    ensure!(collector.count()? == total, "more records than lines");
    check_exactly_once(&collector.store(), "app", total)?;
    eprintln!("{total} lines written, each stored exactly once");
    Ok(())
}

/// `agents.agent1.spool_blocked_reason` of status.json ("" when absent).
fn blocked_reason(collector: &Collector) -> Result<String> {
    let Some(status) = collector.status()? else {
        return Ok(String::new());
    };
    Ok(status["agents"]["agent1"]["spool_blocked_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// One WARN per blocked episode and one INFO per recovery, not one per retry.
fn check_logged_once(log: &str) -> Result<()> {
    let blocked = log.matches("Spool append failed").count();
    let recovered = log.matches("Spool append succeeded again").count();
    ensure!(
        blocked >= 1 && recovered == blocked,
        "{blocked} blocked and {recovered} recovered messages"
    );
    // The disk stayed full for over 5 s: with retries at 50 ms doubling to 2 s, a message per
    // retry would show five or more. (An ack freeing a segment may briefly unblock the input.)
    ensure!(
        blocked <= 3,
        "{blocked} 'append failed' messages: logged per retry?"
    );
    let retries = log
        .lines()
        .filter(|l| l.contains("Spool append succeeded again"))
        .filter_map(|l| {
            l.split("retries=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    ensure!(retries >= 4, "the recovery reported {retries} retries");
    Ok(())
}

/// How the first test makes spool appends fail: a full tmpfs, or, where no tmpfs can be mounted
/// (or `LOGSHIP_E2E_NO_MOUNT=1`), the spool directory moved away (creating a segment fails).
enum Fault {
    Full {
        fs: Tmpfs,
        hog: Option<(Arc<AtomicBool>, std::thread::JoinHandle<Result<()>>)>,
    },
    Moved {
        spool: PathBuf,
        away: PathBuf,
    },
}

impl Fault {
    fn prepare(spool: &Path) -> Result<Fault> {
        let forced = std::env::var_os("LOGSHIP_E2E_NO_MOUNT").is_some_and(|v| v == "1");
        let mounted = if forced {
            Err(anyhow::anyhow!("LOGSHIP_E2E_NO_MOUNT=1"))
        } else {
            Tmpfs::mount(spool, FS_BYTES)
        };
        Ok(match mounted {
            Ok(fs) => Fault::Full { fs, hog: None },
            Err(error) => {
                eprintln!("no tmpfs ({error:#}); injecting the fault by moving the spool away");
                let away = spool.with_extension("away");
                Fault::Moved {
                    spool: spool.to_path_buf(),
                    away,
                }
            }
        })
    }

    /// What the blocked reason must say.
    fn expected(&self) -> &'static str {
        match self {
            Fault::Full { .. } => "no space left on device",
            Fault::Moved { .. } => "no such file or directory",
        }
    }

    fn inject(&mut self) -> Result<()> {
        match self {
            Fault::Full { fs, hog } => {
                let filler = fs.path().join("filler.bin");
                let filled = fill_until_full(&filler)?;
                eprintln!("filler took {filled} bytes");
                // Space freed meanwhile (acked segments deleted) is taken too.
                let stop = Arc::new(AtomicBool::new(false));
                *hog = Some((stop.clone(), spawn_hog(filler, stop)));
            }
            Fault::Moved { spool, away } => std::fs::rename(&*spool, &*away)?,
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<()> {
        match self {
            Fault::Full { fs, hog } => {
                if let Some((stop, thread)) = hog.take() {
                    stop.store(true, Ordering::SeqCst);
                    thread
                        .join()
                        .map_err(|_| anyhow::anyhow!("hog panicked"))??;
                }
                std::fs::remove_file(fs.path().join("filler.bin"))?;
            }
            Fault::Moved { spool, away } => std::fs::rename(&*away, &*spool)?,
        }
        Ok(())
    }
}

/// Keeps `filler` growing into any space that frees up, every 20 ms until `stop`.
fn spawn_hog(filler: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            fill_until_full(&filler)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })
}

/// Appends numbered lines from `written` on at `rate` a second until `stop`.
fn spawn_writer(
    log: PathBuf,
    rate: u64,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let first = written.load(Ordering::SeqCst);
        let mut n = first;
        while !stop.load(Ordering::SeqCst) {
            append_numbered(&log, n, n + rate / 10, 60)?;
            n += rate / 10;
            written.store(n, Ordering::SeqCst);
            let due = Duration::from_millis((n - first) * 1000 / rate);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        Ok(())
    })
}
