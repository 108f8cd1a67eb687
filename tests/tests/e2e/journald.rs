//! The journald input against real journal files: `systemd-journal-remote` (Debian's
//! `systemd-journal-remote` package) writes export-format entries into a journal directory the
//! test owns, and the agent follows that directory (`directory = ...`) with the system's
//! `journalctl`. No mock: if journal-remote is missing the tests fail.
//!
//! - 100,000 numbered entries arrive exactly once while the agent is killed with SIGKILL three
//!   times in the middle (the next chunk written while it is down) and journalctl itself twice;
//!   no journalctl outlives a killed or stopped agent.
//! - `start_at = "end"` reads only entries written after the input's first start, and that
//!   start point survives a kill -9.
//! - sshd entries from journald get the same ECS fields as the same line from `auth.log`; a
//!   binary `MESSAGE` arrives byte for byte, an oversize one is cut with its length kept;
//!   identifier and priority filters hold (and the unit filter, in its own test); a journal
//!   directory that does not exist yet, then one without journal files, is reported in
//!   status.json (`input_errors`) and retried until entries flow, and the error is cleared.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, check_exactly_once, env_u64,
    numbered_line, run_test, wait_until,
};
use rand::Rng;

/// Where Debian's systemd-journal-remote package puts the program.
const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
/// Event time of entry 0: 2025-11-25T09:10:00Z, in microseconds.
const BASE_US: u64 = 1_764_061_800_000_000;
const AGENT_KILLS: usize = 3;
const ARRIVAL: Duration = Duration::from_secs(300);

#[test]
fn journald_entries_arrive_once_across_agent_kills() {
    run_test(|sb| {
        let total = env_u64("LOGSHIP_E2E_JOURNAL_ENTRIES", 100_000);
        let chunks = 20u64;
        let per_chunk = total / chunks;
        ensure!(
            per_chunk * chunks == total,
            "entries must be a multiple of {chunks}"
        );
        let dir = sb.path().join("journal");
        std::fs::create_dir(&dir)?;
        let (collector, mut agent) = start(sb, &dir, "", Vec::new())?;
        let store = collector.store();
        // Kills after chunks 4, 9 and 14: the agent is mid-stream, and the next chunk is
        // written while it is down.
        let kill_after: Vec<u64> = (0..AGENT_KILLS as u64).map(|k| 4 + 5 * k).collect();
        let mut rng = rand::rng();
        let mut fed_early = None;
        // journalctl itself is killed (SIGKILL) just after these chunks are written: the agent
        // restarts it after the last entry it read.
        let journalctl_kills = [2, 12];
        for c in 0..chunks {
            if fed_early.take() != Some(c) {
                let mut entries = Vec::new();
                chunk(&mut entries, c * per_chunk..(c + 1) * per_chunk);
                feed(&dir, &entries)?;
            }
            if journalctl_kills.contains(&c) {
                std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
                let mut pids = Vec::new();
                wait_until(
                    Duration::from_secs(60),
                    "a journalctl following the journal",
                    || {
                        pids = journalctl_pids(&dir.display().to_string())?;
                        Ok(!pids.is_empty())
                    },
                )?;
                for pid in pids {
                    let status = Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status()?;
                    ensure!(status.success(), "kill -9 {pid} failed");
                }
                eprintln!("journalctl killed after chunk {c}");
            }
            if kill_after.contains(&c) {
                std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
                let stored = store.count(&["--input", "journal"])?;
                agent.kill9()?;
                eprintln!("agent killed after chunk {c} with {stored} entries stored");
                no_journalctl_left(&dir)?;
                if c + 1 < chunks {
                    // The next chunk is written while the agent is down.
                    let next = c + 1;
                    let mut more = Vec::new();
                    chunk(&mut more, next * per_chunk..(next + 1) * per_chunk);
                    feed(&dir, &more)?;
                    fed_early = Some(next);
                }
                agent.start()?;
            }
        }
        wait_until(ARRIVAL, "every journal entry stored", || {
            agent.check_alive()?;
            Ok(store.count(&["--input", "journal"])? >= total)
        })?;
        // Anything late would be a duplicate: give it time to show, then check each number.
        std::thread::sleep(Duration::from_secs(2));
        check_exactly_once(&store, "journal", total)?;
        let first = store.search(&["--input", "journal", "--limit", "1"])?;
        let r = first.first().context("a journal record")?;
        ensure!(r["attributes"]["SYSLOG_IDENTIFIER"] == "app", "{r}");
        ensure!(r["attributes"]["_SYSTEMD_UNIT"] == "app.service", "{r}");
        ensure!(r["path"] == dir.display().to_string(), "{r}");
        agent.stop()?;
        no_journalctl_left(&dir)?;
        Ok(())
    });
}

#[test]
fn journald_start_at_end_reads_only_new_entries() {
    run_test(|sb| {
        let dir = sb.path().join("journal");
        std::fs::create_dir(&dir)?;
        let mut old = Vec::new();
        chunk(&mut old, 0..100);
        feed(&dir, &old)?;
        let (collector, mut agent) = start(sb, &dir, "start_at = \"end\"\n", Vec::new())?;
        wait_until(ARRIVAL, "the agent following the journal", || {
            agent.check_alive()?;
            Ok(agent.log_text()?.contains("Following the journal."))
        })?;
        let mut new = Vec::new();
        chunk(&mut new, 100..150);
        feed(&dir, &new)?;
        let store = collector.store();
        wait_until(ARRIVAL, "the 50 new entries", || {
            Ok(store.count(&["--input", "journal"])? >= 50)
        })?;
        // The start point was spooled: a kill -9 and restart neither re-decides nor re-reads.
        agent.kill9()?;
        let mut newer = Vec::new();
        chunk(&mut newer, 150..160);
        feed(&dir, &newer)?;
        agent.start()?;
        wait_until(
            ARRIVAL,
            "the 10 entries written while the agent was down",
            || Ok(store.count(&["--input", "journal"])? >= 60),
        )?;
        std::thread::sleep(Duration::from_secs(2));
        let mut numbers = Vec::new();
        store.search_each(&["--input", "journal"], |r| {
            numbers.extend(logship_e2e::line_number(r["raw"].as_str().unwrap_or("")));
            Ok(())
        })?;
        numbers.sort_unstable();
        ensure!(
            numbers == (100..160).collect::<Vec<u64>>(),
            "stored {numbers:?}"
        );
        Ok(())
    });
}

#[test]
fn journald_unit_filter_keeps_only_listed_units() {
    run_test(|sb| {
        let dir = sb.path().join("journal");
        std::fs::create_dir(&dir)?;
        let units = "units = [\"ssh.service\", \"cron.service\"]\n";
        let (collector, mut agent) = start(sb, &dir, units, Vec::new())?;
        let mut entries = Vec::new();
        for (i, unit) in [
            "ssh.service",
            "nginx.service",
            "cron.service",
            "ssh.service",
        ]
        .iter()
        .enumerate()
        {
            let message = format!("unit {unit} entry {i}");
            entry(
                &mut entries,
                i as u64,
                &[
                    ("_SYSTEMD_UNIT", unit.as_bytes()),
                    ("PRIORITY", b"6"),
                    ("MESSAGE", message.as_bytes()),
                ],
            );
        }
        feed(&dir, &entries)?;
        let store = collector.store();
        wait_until(ARRIVAL, "the ssh and cron entries", || {
            agent.check_alive()?;
            Ok(store.count(&["--input", "journal"])? >= 3)
        })?;
        std::thread::sleep(Duration::from_secs(2));
        let mut raws: Vec<String> = store
            .search(&["--input", "journal"])?
            .iter()
            .map(|r| r["raw"].as_str().unwrap_or_default().to_string())
            .collect();
        raws.sort();
        ensure!(
            raws == [
                "unit cron.service entry 2",
                "unit ssh.service entry 0",
                "unit ssh.service entry 3"
            ],
            "stored {raws:?}"
        );
        agent.stop()?;
        Ok(())
    });
}

#[test]
fn journald_sshd_fields_binary_messages_filters_and_a_missing_journal() {
    run_test(|sb| {
        let dir = sb.path().join("journal-later");
        let auth = sb.path().join("auth.log");
        let failed = "Failed password for root from 192.0.2.7 port 22 ssh2";
        let accepted = "Accepted password for alice from 198.51.100.4 port 50022 ssh2";
        std::fs::write(&auth, format!("Nov 25 09:10:00 gw sshd[811]: {failed}\n"))?;
        let filters = "identifiers = [\"sshd\", \"bin\"]\npriority = \"info\"\n";
        let (collector, mut agent) = start(sb, &dir, filters, vec![FileInput::new("auth", &auth)])?;
        // The journal directory does not exist yet: reported, retried, never fatal.
        wait_until(
            ARRIVAL,
            "the missing journal in status.json input_errors",
            || {
                agent.check_alive()?;
                let status = collector.status()?;
                Ok(status
                    .as_ref()
                    .and_then(|s| s["agents"]["agent1"]["input_errors"]["journal"].as_str())
                    .is_some_and(|e| e.contains("journalctl")))
            },
        )?;
        std::fs::create_dir(&dir)?;
        // Now journalctl runs but finds no journal file: that is said too.
        wait_until(
            ARRIVAL,
            "\"no journal files\" in status.json input_errors",
            || {
                let status = collector.status()?;
                Ok(status
                    .as_ref()
                    .and_then(|s| s["agents"]["agent1"]["input_errors"]["journal"].as_str())
                    .is_some_and(|e| e.contains("no journal files")))
            },
        )?;
        let binary: &[u8] = b"bin\0ary \xff\xfe\nsecond line";
        let mut entries = Vec::new();
        let sshd = |msg: &'static str, prio: &'static [u8]| {
            vec![
                ("_HOSTNAME", &b"gw"[..]),
                ("SYSLOG_IDENTIFIER", b"sshd"),
                ("_PID", b"811"),
                ("_UID", b"0"),
                ("_SYSTEMD_UNIT", b"ssh.service"),
                ("PRIORITY", prio),
                ("MESSAGE", msg.as_bytes()),
            ]
        };
        entry(&mut entries, 0, &sshd(failed, b"6"));
        entry(&mut entries, 1, &sshd(accepted, b"6"));
        // Filtered out: debug priority, and an identifier not listed.
        entry(&mut entries, 2, &sshd("debug1: not wanted", b"7"));
        entry(
            &mut entries,
            3,
            &[
                ("SYSLOG_IDENTIFIER", b"cron"),
                ("PRIORITY", b"6"),
                ("MESSAGE", b"not wanted"),
            ],
        );
        entry(
            &mut entries,
            4,
            &[
                ("SYSLOG_IDENTIFIER", b"bin"),
                ("PRIORITY", b"5"),
                ("MESSAGE", binary),
            ],
        );
        // Longer than max_message_bytes (64 KiB by default): cut, with the length kept.
        let long = vec![b'x'; 100 << 10];
        entry(
            &mut entries,
            5,
            &[
                ("SYSLOG_IDENTIFIER", b"bin"),
                ("PRIORITY", b"6"),
                ("MESSAGE", &long),
            ],
        );
        feed(&dir, &entries)?;
        let store = collector.store();
        wait_until(ARRIVAL, "4 journal records and the auth.log line", || {
            agent.check_alive()?;
            Ok(store.count(&["--input", "journal"])? >= 4
                && store.count(&["--input", "auth"])? >= 1)
        })?;
        std::thread::sleep(Duration::from_secs(2));
        let journal = store.search(&["--input", "journal"])?;
        let raws: Vec<String> = journal
            .iter()
            .map(|r| r["raw"].as_str().unwrap_or("").to_string())
            .collect();
        ensure!(journal.len() == 4, "filters let through {raws:?}");
        let cut = journal
            .iter()
            .find(|r| r["truncated_from"] == 100 << 10)
            .context("the oversize message, cut with truncated_from")?;
        ensure!(
            cut["raw"].as_str().map(str::len) == Some(64 << 10),
            "cut to 64 KiB"
        );
        // Binary MESSAGE: byte for byte.
        let bin = journal
            .iter()
            .find(|r| r["attributes"]["SYSLOG_IDENTIFIER"] == "bin")
            .context("the binary entry")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(bin["raw_b64"].as_str().context("binary raw is base64")?)?;
        ensure!(bytes == binary, "binary message changed: {bytes:?}");
        // The failed login: same ECS fields as the auth.log line.
        let j = store.search(&["--input", "journal", "--where", "user.name=root"])?;
        let f = store.search(&["--input", "auth", "--where", "user.name=root"])?;
        ensure!(j.len() == 1 && f.len() == 1, "journal {j:?} file {f:?}");
        let (jf, ff) = (&j[0]["fields"], &f[0]["fields"]);
        for k in [
            "user.name",
            "source.ip",
            "event.outcome",
            "event.dataset",
            "event.action",
            "host.name",
            "process.pid",
            "source.port",
            "event.category",
        ] {
            ensure!(jf[k] == ff[k], "{k}: journal {} file {}", jf[k], ff[k]);
        }
        ensure!(
            jf["event.outcome"] == "failure" && jf["source.ip"] == "192.0.2.7",
            "{jf}"
        );
        ensure!(
            jf["@timestamp"] == "2025-11-25T09:10:00Z",
            "event time: {jf}"
        );
        ensure!(
            j[0]["event_time"]
                .as_str()
                .is_some_and(|t| t.starts_with("2025-11-25T09:10:00")),
            "{}",
            j[0]
        );
        for (k, v) in [
            ("_PID", "811"),
            ("_UID", "0"),
            ("_HOSTNAME", "gw"),
            ("PRIORITY", "6"),
            ("_SYSTEMD_UNIT", "ssh.service"),
            ("SYSLOG_IDENTIFIER", "sshd"),
        ] {
            ensure!(j[0]["attributes"][k] == v, "attribute {k}: {}", j[0]);
        }
        let ok = store.search(&["--input", "journal", "--where", "user.name=alice"])?;
        ensure!(
            ok.len() == 1 && ok[0]["fields"]["event.outcome"] == "success",
            "{ok:?}"
        );
        wait_until(ARRIVAL, "input_errors cleared in status.json", || {
            let status = collector.status()?;
            Ok(status.as_ref().is_some_and(|s| {
                let e = &s["agents"]["agent1"]["input_errors"];
                e.is_null() || e.as_object().is_some_and(|m| m.is_empty())
            }))
        })?;
        agent.stop()?;
        Ok(())
    });
}

/// A collector and an agent with a `[[journald]]` input "journal" on `dir` (plus `extra` keys)
/// and `files`.
fn start(
    sb: &Sandbox,
    dir: &Path,
    extra: &str,
    files: Vec<FileInput>,
) -> Result<(Collector, Agent)> {
    journal_remote()?;
    let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
    collector.start()?;
    let opts = AgentOpts::new(&collector, files);
    let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
    let mut toml = std::fs::OpenOptions::new()
        .append(true)
        .open(agent.config_path())?;
    write!(
        toml,
        "\n[[journald]]\nname = \"journal\"\ndirectory = {:?}\n{extra}",
        dir.display().to_string()
    )?;
    agent.start()?;
    Ok((collector, agent))
}

fn journal_remote() -> Result<PathBuf> {
    let p = PathBuf::from(JOURNAL_REMOTE);
    if !p.try_exists()? {
        bail!("{JOURNAL_REMOTE} is missing: install Debian's systemd-journal-remote package");
    }
    Ok(p)
}

/// Numbered entries `range` of the exactly-once test.
fn chunk(out: &mut Vec<u8>, range: std::ops::Range<u64>) {
    for i in range {
        let message = numbered_line(i, 40);
        let pid = (1000 + i % 7).to_string();
        entry(
            out,
            i,
            &[
                ("_HOSTNAME", b"plc-gw"),
                ("SYSLOG_IDENTIFIER", b"app"),
                ("_PID", pid.as_bytes()),
                ("_SYSTEMD_UNIT", b"app.service"),
                ("PRIORITY", b"6"),
                ("MESSAGE", message.as_bytes()),
            ],
        );
    }
}

/// Appends one export-format entry numbered `i` (its realtime stamp is `BASE_US + i`).
fn entry(out: &mut Vec<u8>, i: u64, fields: &[(&str, &[u8])]) {
    out.extend_from_slice(format!("__REALTIME_TIMESTAMP={}\n", BASE_US + i * 1_000_000).as_bytes());
    for (name, value) in fields {
        if value.contains(&b'\n') {
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
            out.push(b'\n');
        } else {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value);
            out.push(b'\n');
        }
    }
    out.push(b'\n');
}

/// Writes `entries` into `dir/remote.journal` with systemd-journal-remote (appending).
fn feed(dir: &Path, entries: &[u8]) -> Result<()> {
    let mut child = Command::new(journal_remote()?)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting systemd-journal-remote")?;
    child.stdin.take().context("stdin")?.write_all(entries)?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "systemd-journal-remote failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Fails unless, within a few seconds, no journalctl reading `dir` is left running.
fn no_journalctl_left(dir: &Path) -> Result<()> {
    let needle = dir.display().to_string();
    wait_until(
        Duration::from_secs(10),
        "no journalctl left after the agent",
        || Ok(journalctl_pids(&needle)?.is_empty()),
    )
}

fn journalctl_pids(needle: &str) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc")? {
        let e = e?;
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_journalctl = args.first().is_some_and(|a| a.ends_with("journalctl"));
        if is_journalctl && args.iter().any(|a| a == needle) {
            // A zombie has an empty cmdline, so this one is running.
            pids.push(pid);
        }
    }
    Ok(pids)
}
