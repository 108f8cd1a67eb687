//! Process measurement from `/proc`: CPU seconds, peak and current RSS; child process guards.
//!
//! ```text
//! /proc/<pid>/stat    … ) state … field 14 utime, field 15 stime (clock ticks, all threads)
//! /proc/<pid>/status  VmHWM: <kB>  (peak RSS)   VmRSS: <kB>  (current RSS)
//! ```
//!
//! Invariant: a [`Sampler`] keeps the last successful sample, so a process that exits between
//! two samples still reports what it used until then.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How often the wait loops poll progress and sample processes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcSample {
    /// utime + stime of all threads.
    pub(crate) cpu_s: f64,
    /// VmHWM: peak resident set size.
    pub(crate) peak_rss_kib: u64,
    /// VmRSS: current resident set size.
    pub(crate) rss_kib: u64,
}

/// Keeps the latest sample of one process.
#[derive(Debug)]
pub(crate) struct Sampler {
    pid: u32,
    last: ProcSample,
}

/// Kills (SIGKILL) and reaps its child when dropped, so no error path leaves a daemon behind.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    name: &'static str,
    child: Child,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub(crate) fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let ticks = parse_stat_ticks(&stat).ok_or_else(|| invalid("/proc/<pid>/stat"))?;
    Ok(ProcSample {
        cpu_s: ticks as f64 / clock_ticks_per_sec(),
        peak_rss_kib: status_kib(&status, "VmHWM:").ok_or_else(|| invalid("VmHWM"))?,
        rss_kib: status_kib(&status, "VmRSS:").ok_or_else(|| invalid("VmRSS"))?,
    })
}

/// CPU seconds used by this process's waited-for children (cutime + cstime), for short-lived
/// commands such as `zstd` whose `/proc` entry is gone when they finish.
pub(crate) fn children_cpu_s() -> io::Result<f64> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    let fields = after_comm(&stat).ok_or_else(|| invalid("/proc/self/stat"))?;
    // Fields 16 and 17 are at offsets 13 and 14 after the comm.
    let ticks: u64 = [13, 14]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Ok(ticks as f64 / clock_ticks_per_sec())
}

/// CPU seconds (utime + stime) of the calling thread so far.
pub(crate) fn thread_cpu_s() -> io::Result<f64> {
    let stat = fs::read_to_string("/proc/thread-self/stat")?;
    let ticks = parse_stat_ticks(&stat).ok_or_else(|| invalid("/proc/thread-self/stat"))?;
    Ok(ticks as f64 / clock_ticks_per_sec())
}

/// utime + stime in clock ticks.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let fields = after_comm(stat)?;
    // Field 3 (state) is offset 0, so utime (14) and stime (15) are offsets 11 and 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The fields after `(comm)`, which may itself contain spaces and parentheses.
fn after_comm(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

pub(crate) fn clock_ticks_per_sec() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"))
}

/// Sends SIGTERM through kill(1): the workspace forbids `unsafe`, so no direct libc call.
pub(crate) fn terminate(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -TERM {pid} failed: {status}");
    }
    Ok(())
}

/// Polls `progress` until it reaches `target`, failing if it does not advance for `stall`.
/// `on_poll` runs every interval (sampling processes, checking they are alive).
pub(crate) fn wait_for_progress(
    target: u64,
    stall: Duration,
    mut progress: impl FnMut() -> anyhow::Result<u64>,
    mut on_poll: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let (mut best, mut last_change) = (0, Instant::now());
    loop {
        on_poll()?;
        let now = progress()?;
        if now >= target {
            return Ok(start.elapsed());
        }
        if now != best {
            (best, last_change) = (now, Instant::now());
        } else if last_change.elapsed() > stall {
            bail!("no progress for {stall:?}: {now} of {target}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// An ephemeral localhost port that was free a moment ago.
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls until a socket listens on TCP `port`, failing if `process` exits first. It reads the
/// kernel's socket tables instead of connecting, so the server sees no probe connection.
pub(crate) fn wait_listening(
    port: u16,
    process: &mut ChildGuard,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !is_listening(port) {
        process.ensure_running()?;
        if start.elapsed() > timeout {
            bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Ok(())
}

fn is_listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .any(|table| listens_in(&table, port))
}

/// Whether a `/proc/net/tcp` table has a LISTEN (state `0A`) socket on `port`.
fn listens_in(table: &str, port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        local.is_some_and(|l| l.ends_with(&suffix)) && state == Some("0A")
    })
}

// === impl Sampler ===

impl Sampler {
    pub(crate) fn new(pid: u32) -> Self {
        Self {
            pid,
            last: ProcSample::default(),
        }
    }

    /// Takes a sample if the process is still there; returns the latest known sample.
    pub(crate) fn update(&mut self) -> ProcSample {
        if let Ok(s) = sample(self.pid) {
            self.last = s;
        }
        self.last
    }
}

// === impl ChildGuard ===

impl ChildGuard {
    pub(crate) fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        Ok(Self { name, child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process already exited (it should be serving).
    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("{} exited early: {status}", self.name),
        }
    }

    /// SIGTERM, then wait up to `deadline` before SIGKILL. Returns whether it stopped in time.
    pub(crate) fn stop(&mut self, deadline: Duration) -> anyhow::Result<bool> {
        if self.child.try_wait()?.is_some() {
            return Ok(true);
        }
        terminate(self.pid())?;
        let start = Instant::now();
        while start.elapsed() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        tracing::warn!(
            name = self.name,
            ?deadline,
            "Process ignored SIGTERM; killing it."
        );
        self.child.kill()?;
        self.child.wait()?;
        Ok(false)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && self.child.kill().is_ok()
        {
            drop(self.child.wait());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_ticks(stat), Some(300));
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("sample self");
        assert!(s.peak_rss_kib >= s.rss_kib && s.rss_kib > 0);
        assert!(sample(u32::MAX).is_err());
    }

    #[test]
    fn children_cpu_counts_a_busy_child() {
        let before = children_cpu_s().expect("before");
        let status = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .expect("run sh");
        assert!(status.success());
        assert!(children_cpu_s().expect("after") > before);
    }

    #[test]
    fn sees_a_listening_socket_without_connecting() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(is_listening(port));
        drop(listener);
        assert!(!is_listening(port));
        let table =
            "  sl  local_address rem_address   st\n   0: 0100007F:4423 00000000:0000 01 0\n";
        assert!(
            !listens_in(table, 0x4423),
            "an established socket is not listening"
        );
    }

    #[test]
    fn stop_terminates_a_sleeping_child() {
        let mut child = ChildGuard::spawn("sleep", Command::new("sleep").arg("60")).expect("spawn");
        child.ensure_running().expect("running");
        assert!(child.stop(Duration::from_secs(10)).expect("stop"));
        assert!(child.ensure_running().is_err());
    }

    #[test]
    fn wait_for_progress_reports_a_stall() {
        let err = wait_for_progress(10, Duration::from_millis(200), || Ok(3), || Ok(()))
            .expect_err("stalled");
        assert!(err.to_string().contains("3 of 10"), "{err}");
        let mut n = 0;
        wait_for_progress(
            5,
            Duration::from_secs(5),
            || {
                n += 1;
                Ok(n)
            },
            || Ok(()),
        )
        .expect("done");
    }
}
