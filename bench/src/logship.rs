//! logship itself: file → agent → (byte-counting relay) → collector store, then a search that
//! proves the file's lines were stored complete and in order.
//!
//! ```text
//! <work>/logship/collector/   logship-collector init --data-dir; status.json {"records_stored": N, …}
//! <work>/logship/agent/       logship-collector issue-agent-cert --out (agent.toml, certs, spool)
//! agent ─TLS─► relay 127.0.0.1:<relay> ─► collector 127.0.0.1:<port>
//! ```
//!
//! The example `[[file]]` input that `issue-agent-cert` writes is removed from `agent.toml`, so
//! the agent ships only the file (`--tail`). Done = `records_stored` ≥ the file's line count; the
//! order check counts only records whose `path` is the file. The stored and fields-ready times
//! are the collector's own (`records_last_stored_time`, `fields_last_ready_time` in status.json,
//! [`exact_since`]), not the 500 ms cadence of the file the poll reads.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::loggen::parse_seq;
use crate::measure::{ChildGuard, Sampler, free_port, sample, wait_for_progress, wait_listening};
use crate::relay::Relay;
use crate::report::{FileInfo, Run, SystemResult, mib};

/// How long the collector may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after completion before reading the agent's idle RSS.
const IDLE_WAIT: Duration = Duration::from_secs(3);
/// How long each program may take to stop on SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// Result of reading the search output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderCheck {
    /// Records of the file seen.
    pub(crate) seen: u64,
    /// Line numbers were exactly 1, 2, …, `lines`.
    pub(crate) in_order: bool,
    /// The first deviation, if any.
    pub(crate) problem: Option<String>,
}

/// Where this run's programs and files are.
pub(crate) struct Layout {
    agent_bin: PathBuf,
    collector_bin: PathBuf,
    /// `<work>/logship`: program logs.
    dir: PathBuf,
    /// Collector data dir.
    data: PathBuf,
    /// Agent certificates, config and spool.
    agent_dir: PathBuf,
}

#[derive(Deserialize)]
struct Hit {
    raw: Option<String>,
    path: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    records_stored: u64,
}

/// Ships the file with logship and measures agent and collector. With `normalize`, the
/// collector's default `[normalize] enabled = true`, and after the records are stored the run
/// goes on until their fields are ready ([`crate::fields`]); without it, the collector runs
/// with `enabled = false` in `<work>/nonorm` (row `logship-nonorm`: fields at search time).
pub(crate) fn run(
    file: &FileInfo,
    work: &Path,
    bins: &Path,
    stall: Duration,
    normalize: bool,
    workers: Option<u32>,
) -> anyhow::Result<SystemResult> {
    let work = if normalize {
        work.to_path_buf()
    } else {
        work.join("nonorm")
    };
    let layout = Layout::prepare(&work, bins)?;
    let port = free_port()?;
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], port)))?;
    layout.setup(relay.addr())?;
    if !normalize {
        layout.disable_normalize()?;
    }
    if let Some(n) = workers {
        layout.set_normalize_workers(n)?;
    }
    let mut collector = layout.start_collector(port)?;
    let (start, start_unix) = (Instant::now(), SystemTime::now());
    let mut agent = layout.start_agent(Some(&file.path))?;
    let (mut sa, mut sc) = (Sampler::new(agent.pid()), Sampler::new(collector.pid()));
    let status = layout.data.join("status.json");
    let mut poll = || {
        sa.update();
        sc.update();
        agent.ensure_running()?;
        collector.ensure_running()
    };
    wait_for_progress(file.lines, stall, || Ok(records_stored(&status)), &mut poll)
        .context("logship did not store every line")?;
    let wall = exact_since(
        &status,
        "records_last_stored_time",
        start_unix,
        start.elapsed(),
    );
    let receiver_stored = sc.update();
    let run = Run {
        wall,
        sender: sa.update(),
        receiver: Some(receiver_stored),
    };
    let (up, down) = relay.wire_bytes();
    let fields = if normalize {
        let mut poll = || {
            sa.update();
            sc.update();
            agent.ensure_running()?;
            collector.ensure_running()
        };
        wait_for_progress(
            file.lines,
            stall,
            || Ok(crate::fields::fields_progress(&status, file.lines)),
            &mut poll,
        )
        .context("the collector's normalizer did not catch up")?;
        let ready = exact_since(
            &status,
            "fields_last_ready_time",
            start_unix,
            start.elapsed(),
        );
        Some((ready, sc.update()))
    } else {
        None
    };
    std::thread::sleep(IDLE_WAIT);
    let idle = sample(agent.pid()).context("agent gone before its idle RSS was read")?;
    for (name, child) in [("agent", &mut agent), ("collector", &mut collector)] {
        if !child.stop(STOP_DEADLINE)? {
            tracing::warn!(name, "Process did not stop within its SIGTERM deadline.");
        }
    }
    let name = if normalize {
        "logship"
    } else {
        "logship-nonorm"
    };
    let mut result = SystemResult::from_run(name, file, &run);
    if let Some((ready, at_ready)) = fields {
        result.set_fields_ready(ready, at_ready, file);
    }
    result.set_wire_bytes(up + down, file);
    result.idle_rss_mib = Some(mib(idle.rss_kib * 1024));
    result.in_order = Some(layout.search_order(file)?.in_order);
    Ok(result)
}

// === impl Layout ===

impl Layout {
    /// Checks the binaries and clears `<work>/logship`.
    pub(crate) fn prepare(work: &Path, bins: &Path) -> anyhow::Result<Self> {
        let (agent_bin, collector_bin) =
            (bins.join("logship-agent"), bins.join("logship-collector"));
        for bin in [&agent_bin, &collector_bin] {
            if !fs::metadata(bin).is_ok_and(|m| m.is_file()) {
                bail!(
                    "{} not found; build with `cargo build --release -p logship-agent -p logship-collector` or pass --bin-dir",
                    bin.display()
                );
            }
        }
        let dir = work.join("logship");
        if fs::symlink_metadata(&dir).is_ok() {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        fs::create_dir_all(&dir)?;
        let (data, agent_dir) = (dir.join("collector"), dir.join("agent"));
        Ok(Self {
            agent_bin,
            collector_bin,
            dir,
            data,
            agent_dir,
        })
    }

    /// `init`, `issue-agent-cert` pointing the agent at the relay, then the example input
    /// removed from `agent.toml`.
    pub(crate) fn setup(&self, relay: SocketAddr) -> anyhow::Result<()> {
        run_ok(
            Command::new(&self.collector_bin)
                .arg("init")
                .arg("--data-dir")
                .arg(&self.data),
        )?;
        run_ok(
            Command::new(&self.collector_bin)
                .arg("issue-agent-cert")
                .arg("--data-dir")
                .arg(&self.data)
                .args(["--name", "bench"])
                .arg("--collector")
                .arg(relay.to_string())
                .arg("--out")
                .arg(&self.agent_dir),
        )?;
        let agent_toml = self.agent_dir.join("agent.toml");
        fs::write(
            &agent_toml,
            drop_file_inputs(&fs::read_to_string(&agent_toml)?),
        )?;
        Ok(())
    }

    /// Sets `[normalize] enabled = false` in `collector.toml` (the table `init` writes, or a
    /// new one).
    pub(crate) fn disable_normalize(&self) -> anyhow::Result<()> {
        let path = self.data.join("collector.toml");
        fs::write(&path, normalize_off(&fs::read_to_string(&path)?))?;
        Ok(())
    }

    /// Sets `[normalize] workers = n` in `collector.toml`.
    pub(crate) fn set_normalize_workers(&self, n: u32) -> anyhow::Result<()> {
        let path = self.data.join("collector.toml");
        let toml = fs::read_to_string(&path)?;
        let toml = toml.replacen("[normalize]\n", &format!("[normalize]\nworkers = {n}\n"), 1);
        anyhow::ensure!(
            toml.contains("workers = "),
            "no [normalize] table in {}",
            path.display()
        );
        fs::write(&path, toml)?;
        Ok(())
    }

    pub(crate) fn start_collector(&self, port: u16) -> anyhow::Result<ChildGuard> {
        let mut collector = spawn_logged(
            &self.dir,
            "collector",
            Command::new(&self.collector_bin)
                .arg("serve")
                .arg("--config")
                .arg(self.data.join("collector.toml"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}")),
        )?;
        wait_listening(port, &mut collector, LISTEN_TIMEOUT)?;
        Ok(collector)
    }

    /// The agent's folder (agent.toml, certificates, spool).
    pub(crate) fn agent_dir(&self) -> &Path {
        &self.agent_dir
    }

    /// The `logship-collector` binary.
    pub(crate) fn collector_bin(&self) -> &Path {
        &self.collector_bin
    }

    /// The collector's data dir.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The agent with the inputs of its `agent.toml`, plus `--tail tail` when given.
    pub(crate) fn start_agent(&self, tail: Option<&Path>) -> anyhow::Result<ChildGuard> {
        let mut cmd = Command::new(&self.agent_bin);
        cmd.arg("run")
            .arg("--config")
            .arg(self.agent_dir.join("agent.toml"));
        if let Some(input) = tail {
            cmd.arg("--tail").arg(input);
        }
        spawn_logged(&self.dir, "agent", &mut cmd)
    }

    /// Streams `logship-collector search` and checks the file's line numbers.
    fn search_order(&self, file: &FileInfo) -> anyhow::Result<OrderCheck> {
        let mut child = Command::new(&self.collector_bin)
            .arg("search")
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--limit", "1000000000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot run logship-collector search")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let check = check_order(
            BufReader::with_capacity(1 << 20, stdout),
            &file.path,
            file.lines,
        );
        let status = child.wait()?;
        if !status.success() {
            bail!("logship-collector search failed: {status}");
        }
        let check = check?;
        if let Some(problem) = &check.problem {
            tracing::warn!(
                problem,
                seen = check.seen,
                "Stored lines are not complete and in order."
            );
        }
        Ok(check)
    }
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Starts a program with stdout/stderr in `<dir>/<name>.log`.
fn spawn_logged(dir: &Path, name: &'static str, cmd: &mut Command) -> anyhow::Result<ChildGuard> {
    let log = fs::File::create(dir.join(format!("{name}.log")))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    ChildGuard::spawn(name, cmd)
}

/// Removes the `[[file]]` tables (the example input over /var/log) from an agent config, so the
/// agent ships only the benchmark file given with `--tail`.
fn drop_file_inputs(toml: &str) -> String {
    let mut skipping = false;
    let mut out = String::with_capacity(toml.len());
    for line in toml.lines() {
        let header = line.trim_start();
        if header.starts_with('[') {
            skipping = header.starts_with("[[file]]");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The config with `enabled = false` in its `[normalize]` table (added if missing).
fn normalize_off(toml: &str) -> String {
    let (mut out, mut table, mut done) = (String::with_capacity(toml.len() + 32), "", false);
    for line in toml.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            table = trimmed;
        }
        if table.starts_with("[normalize]") && trimmed.starts_with("enabled") {
            out.push_str("enabled = false\n");
            done = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !done {
        out.push_str("\n[normalize]\nenabled = false\n");
    }
    out
}

/// The moment a status.json time (`records_last_stored_time`, `fields_last_ready_time`) names,
/// as time since `start` (a wall-clock reading taken with the run's `Instant`), if the file
/// has it and it falls within `(0, polled]`; otherwise `polled`, the time the poll saw the
/// count. The file is rewritten every 500 ms, so the polled time is late by up to that much;
/// the collector's own time of the commit (or of the normalizer's advance) is not.
pub(crate) fn exact_since(path: &Path, key: &str, start: SystemTime, polled: Duration) -> Duration {
    let at = fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|s| {
            s[key]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        })
        .map(SystemTime::from);
    since_or_polled(at, start, polled)
}

/// `at` as time since `start` if it falls within `(0, polled]` (a receiver's own record of
/// when it stored the last message); otherwise `polled`, the time the poll saw it.
pub(crate) fn since_or_polled(
    at: Option<SystemTime>,
    start: SystemTime,
    polled: Duration,
) -> Duration {
    match at.and_then(|at| at.duration_since(start).ok()) {
        Some(d) if !d.is_zero() && d <= polled => d,
        _ => polled,
    }
}

/// `records_stored` from the collector's status file; 0 while it is missing or unreadable.
pub(crate) fn records_stored(path: &Path) -> u64 {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Status>(&b).ok())
        .map_or(0, |s| s.records_stored)
}

/// Reads JSON lines and checks that the records of `path` carry line numbers 1..=`lines` in order.
pub(crate) fn check_order(
    reader: impl BufRead,
    path: &Path,
    lines: u64,
) -> anyhow::Result<OrderCheck> {
    let path = path.to_string_lossy();
    let (mut seen, mut problem) = (0u64, None);
    for line in reader.lines() {
        let hit: Hit =
            serde_json::from_str(&line?).context("search printed a line that is not a record")?;
        if hit.path.as_deref().is_some_and(|p| p != path) {
            continue;
        }
        seen += 1;
        let seq = hit.raw.as_deref().and_then(parse_seq);
        if problem.is_none() && seq != Some(seen) {
            problem = Some(format!("record {seen} of the file has line number {seq:?}"));
        }
    }
    if problem.is_none() && seen != lines {
        problem = Some(format!(
            "{seen} records of the file stored, {lines} lines written"
        ));
    }
    Ok(OrderCheck {
        seen,
        in_order: problem.is_none(),
        problem,
    })
}

/// Where the logship binaries are: `--bin-dir`, else next to this executable.
pub(crate) fn bin_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    let exe = std::env::current_exe().context("cannot locate the bench executable")?;
    Ok(exe
        .parent()
        .context("the executable has no directory")?
        .to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(path: &str, seq: u64) -> String {
        serde_json::json!({"event_id": "e", "path": path, "raw": format!("sshd[1]: x seq={seq}")})
            .to_string()
    }

    fn check(lines: &[String], expected: u64) -> OrderCheck {
        check_order(lines.join("\n").as_bytes(), Path::new("/f.log"), expected).expect("check")
    }

    #[test]
    fn complete_in_order_lines_pass_and_other_files_are_ignored() {
        let lines = [
            hit("/f.log", 1),
            hit("/var/log/syslog", 9),
            hit("/f.log", 2),
            hit("/f.log", 3),
        ];
        assert_eq!(
            check(&lines, 3),
            OrderCheck {
                seen: 3,
                in_order: true,
                problem: None
            }
        );
    }

    #[test]
    fn gaps_duplicates_reordering_and_shortfall_fail() {
        for (lines, expected) in [
            (vec![hit("/f.log", 1), hit("/f.log", 3)], 2),
            (
                vec![hit("/f.log", 1), hit("/f.log", 1), hit("/f.log", 2)],
                2,
            ),
            (vec![hit("/f.log", 2), hit("/f.log", 1)], 2),
            (vec![hit("/f.log", 1)], 2),
        ] {
            let result = check(&lines, expected);
            assert!(
                !result.in_order && result.problem.is_some(),
                "{lines:?} passed"
            );
        }
    }

    #[test]
    fn drop_file_inputs_keeps_every_other_table() {
        let toml = "version = 1\n[spool]\ndir = \"s\"\n[[file]]\nname = \"varlog\"\ninclude = [\"/var/log/*.log\"]\n[batch]\nmax_records = 5\n[[file]]\nname = \"b\"\n";
        let kept = drop_file_inputs(toml);
        assert_eq!(
            kept,
            "version = 1\n[spool]\ndir = \"s\"\n[batch]\nmax_records = 5\n"
        );
    }

    #[test]
    fn normalize_off_sets_the_key_of_its_table_only() {
        let toml = "version = 1\n[normalize]\n# on\nenabled = true\n[other]\nenabled = true\n";
        assert_eq!(
            normalize_off(toml),
            "version = 1\n[normalize]\n# on\nenabled = false\n[other]\nenabled = true\n"
        );
        assert_eq!(
            normalize_off("version = 1\n"),
            "version = 1\n\n[normalize]\nenabled = false\n"
        );
    }

    #[test]
    fn records_stored_reads_the_status_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = dir.path().join("status.json");
        assert_eq!(records_stored(&status), 0);
        fs::write(&status, r#"{"records_stored": 42, "other": 1}"#).expect("write");
        assert_eq!(records_stored(&status), 42);
    }

    #[test]
    fn exact_since_takes_the_collectors_time_when_it_is_plausible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = dir.path().join("status.json");
        let start: SystemTime = "2026-11-30T12:00:00Z"
            .parse::<jiff::Timestamp>()
            .expect("time")
            .into();
        let polled = Duration::from_millis(4_400);
        let key = "records_last_stored_time";
        let at = |text: &str| {
            fs::write(&status, format!(r#"{{"{key}": {text}}}"#)).expect("write");
            exact_since(&status, key, start, polled)
        };
        assert_eq!(
            at(r#""2026-11-30T12:00:03.987654321Z""#),
            Duration::new(3, 987_654_321)
        );
        // Missing, null, unreadable, before the start or after the poll saw it: the poll's time.
        assert_eq!(
            exact_since(&dir.path().join("none"), key, start, polled),
            polled
        );
        assert_eq!(at("null"), polled);
        assert_eq!(at(r#""yesterday""#), polled);
        assert_eq!(at(r#""2026-11-30T11:59:59Z""#), polled);
        assert_eq!(at(r#""2026-11-30T12:00:05Z""#), polled);
    }
}
