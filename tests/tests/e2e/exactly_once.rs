//! The headline acceptance: every line arrives exactly once while the agent is killed with
//! SIGKILL at 5 random moments and the collector twice, for rename rotation, copytruncate
//! (Debian's logrotate), truncation in place, and one-line files.
//!
//! Sizes: rename uses 1,000,000 lines as in the issue (`LOGSHIP_E2E_LINES` overrides it); the
//! other three use 200,000 lines (one-line files: 1,000 files, under the agent's open-file
//! limit of 1,024) to keep CI time sane; their faults are the same.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use logship_e2e::{
    Agent, Collector, FileInput, Sandbox, check_exactly_once, env_u64, run_test, wait_until,
};
use rand::Rng;

use crate::support::pair;
use crate::writer::{Rotation, Writer, log_count, logrotate_bin};

const AGENT_KILLS: usize = 5;
const COLLECTOR_KILLS: usize = 2;
/// Time allowed, after the writer finished, for everything to arrive.
const CATCH_UP: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Agent,
    Collector,
}

#[test]
fn rename_rotation_with_kills() {
    let lines = env_u64("LOGSHIP_E2E_LINES", 1_000_000);
    let rotation = Rotation::Rename {
        every: 50_000,
        keep: 5,
    };
    run_test(|sb| scenario(sb, rotation, lines, 25_000));
}

#[test]
fn copytruncate_with_logrotate_and_kills() {
    logrotate_bin().expect("logrotate must be installed for this test");
    let lines = env_u64("LOGSHIP_E2E_LINES", 200_000);
    let rotation = Rotation::Copytruncate { every: 20_000 };
    run_test(|sb| scenario(sb, rotation, lines, 10_000));
}

#[test]
fn truncation_in_place_with_kills() {
    let lines = env_u64("LOGSHIP_E2E_LINES", 200_000);
    let rotation = Rotation::Truncate { every: 20_000 };
    run_test(|sb| scenario(sb, rotation, lines, 20_000));
}

#[test]
fn one_line_files_with_kills() {
    run_test(|sb| scenario(sb, Rotation::OneLineFiles, 1_000, 100));
}

fn scenario(sb: &Sandbox, rotation: Rotation, lines: u64, lines_per_sec: u64) -> Result<()> {
    let started = Instant::now();
    let glob = match rotation {
        Rotation::OneLineFiles => sb.path().join("one").join("*.log"),
        _ => sb.path().join("app.log"),
    };
    let (mut collector, mut agent) = pair(sb, FileInput::new("app", &glob))?;
    let progress = Arc::new(AtomicU64::new(0));
    let guard = Arc::new(Mutex::new(()));
    let writer = Writer {
        dir: sb.path().to_path_buf(),
        rotation,
        lines,
        lines_per_sec,
        progress: progress.clone(),
        store: collector.store(),
        guard: guard.clone(),
        agent_log: sb.log_path("agent1"),
    };
    let handle = std::thread::spawn(move || writer.run());
    let mut faults = Faults {
        collector: &mut collector,
        agent: &mut agent,
        agent_log: sb.log_path("agent1"),
        guard,
    };
    faults.drive(&progress, lines, handle)?;
    eprintln!("{rotation:?}: writer done after {:?}", started.elapsed());
    wait_for_count(&collector, &mut agent, lines)?;
    eprintln!(
        "{rotation:?}: all {lines} stored after {:?}",
        started.elapsed()
    );
    check_exactly_once(&collector.store(), "app", lines)?;
    eprintln!("{rotation:?}: checked after {:?}", started.elapsed());
    Ok(())
}

/// Random progress points (5%..95% of the lines) at which each fault fires, in order.
fn schedule(lines: u64) -> Vec<(u64, Fault)> {
    let mut rng = rand::rng();
    let mut at: Vec<(u64, Fault)> = (0..AGENT_KILLS)
        .map(|_| Fault::Agent)
        .chain((0..COLLECTOR_KILLS).map(|_| Fault::Collector))
        .map(|f| (rng.random_range(lines / 20..=lines * 19 / 20), f))
        .collect();
    at.sort_by_key(|&(p, _)| p);
    at
}

/// The processes the faults hit.
struct Faults<'a> {
    collector: &'a mut Collector,
    agent: &'a mut Agent,
    agent_log: std::path::PathBuf,
    /// Agent kills take it (see `Writer::guard`).
    guard: Arc<Mutex<()>>,
}

// === impl Faults ===

impl Faults<'_> {
    /// Fires every scheduled fault while the writer runs (the rest right after it, if it was
    /// faster), then waits for the writer.
    fn drive(
        &mut self,
        progress: &AtomicU64,
        lines: u64,
        writer: JoinHandle<Result<()>>,
    ) -> Result<()> {
        for (at, fault) in schedule(lines) {
            while progress.load(Ordering::SeqCst) < at && !writer.is_finished() {
                self.agent.check_alive()?;
                std::thread::sleep(Duration::from_millis(20));
            }
            match fault {
                Fault::Agent => self.kill_agent()?,
                Fault::Collector => self.kill_collector()?,
            }
        }
        match writer.join() {
            Ok(result) => result.context("writer"),
            Err(_) => bail!("writer thread panicked"),
        }
    }

    /// SIGKILL, a short random pause, restart; returns once the agent restored its files.
    fn kill_agent(&mut self) -> Result<()> {
        let _guard = self
            .guard
            .lock()
            .map_err(|_| anyhow::anyhow!("guard poisoned"))?;
        let restored = |log: &std::path::Path| -> Result<usize> {
            Ok(log_count(log, "Resuming file.")? + log_count(log, "Tailing new file.")?)
        };
        let before = restored(&self.agent_log)?;
        self.agent.kill9()?;
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..300)));
        self.agent.start()?;
        wait_until(Duration::from_secs(60), "agent restored its files", || {
            self.agent.check_alive()?;
            Ok(restored(&self.agent_log)? > before)
        })
    }

    /// SIGKILL, a random pause of 0.2-1.5 s, restart.
    fn kill_collector(&mut self) -> Result<()> {
        self.collector.kill9()?;
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(200..1500)));
        self.collector.start()
    }
}

fn wait_for_count(collector: &Collector, agent: &mut Agent, lines: u64) -> Result<()> {
    wait_until(CATCH_UP, &format!("{lines} records stored"), || {
        agent.check_alive()?;
        let n = collector.count()?;
        if n > lines {
            bail!("{n} records stored for {lines} lines written (duplicates or extra records)");
        }
        Ok(n == lines)
    })
}
