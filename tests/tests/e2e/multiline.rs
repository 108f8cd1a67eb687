//! Multiline records (issue 9, item 4): a real JVM's java.util.logging output arrives as one
//! record per event, its stack trace ("Caused by:", "Suppressed:", "... N more") joined with
//! "\n"; and a generated multiline file (UTF-8, and UTF-16LE) written in pieces that end
//! anywhere arrives with every record exactly once and complete while the agent is killed with
//! SIGKILL 4 times and stopped once (each fault lands while the agent holds an unfinished record:
//! the last record read is always open until the next one starts).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use logship_e2e::{FileInput, env_u64, run_test, wait_until};
use rand::Rng;

use crate::support::pair;
use crate::writer::log_count;

const ARRIVAL: Duration = Duration::from_secs(120);
const START: &str = r"multiline = { start = '^\d{4}-\d{2}-\d{2} ', timeout_ms = TIMEOUT }";

/// A `[[file]]` input on `log` joining records that start with a date.
fn multiline_input(name: &str, log: &Path, timeout_ms: u64) -> FileInput {
    let mut input = FileInput::new(name, log);
    input
        .extra
        .push(START.replace("TIMEOUT", &timeout_ms.to_string()));
    input
}

/// True when `line` starts like "2026-11-29 " (the tests' own reading of the start pattern).
fn starts_record(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 11
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && b[10] == b' '
}

/// The records of a file: each start line with the lines after it, joined by "\n".
fn split_records(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        match out.last_mut() {
            Some(record) if !starts_record(line) => {
                record.push('\n');
                record.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

fn java_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/java/StackTraceLog.java")
}

#[test]
fn java_stack_traces_arrive_as_one_record_per_event() {
    run_test(|sb| {
        let log = sb.path().join("app.log");
        std::fs::write(&log, "")?;
        let (collector, _agent) = pair(sb, multiline_input("java", &log, 1000))?;
        let events: u64 = 400;
        let out = Command::new("java")
            .arg("-Djava.util.logging.SimpleFormatter.format=%1$tF %1$tT.%1$tL %4$s %3$s - %5$s%6$s%n")
            .arg(java_source())
            .arg(&log)
            .arg(events.to_string())
            .output()
            .context("java (package default-jdk-headless) must be installed for this test")?;
        ensure!(
            out.status.success(),
            "java failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&log)?;
        let expected = split_records(&text);
        ensure!(
            expected.len() as u64 == events,
            "the JVM wrote {} records",
            expected.len()
        );
        wait_until(ARRIVAL, "one record per event", || {
            Ok(collector.count()? >= events)
        })?;
        let records = collector.store().search(&["--input", "java"])?;
        let raws: Vec<&str> = records.iter().filter_map(|r| r["raw"].as_str()).collect();
        ensure!(raws.len() == records.len(), "a record is not UTF-8 text");
        if raws != expected {
            let first = raws.iter().zip(&expected).position(|(a, b)| a != b);
            bail!(
                "{} records stored for {} events; first difference at {first:?}: {:?}",
                raws.len(),
                expected.len(),
                first.map(|i| (raws[i], &expected[i]))
            );
        }
        for (i, raw) in raws.iter().enumerate() {
            let want: &[&str] = match i % 4 {
                0 => &[],
                1 => &[
                    "\nCaused by: java.sql.SQLException",
                    "\nCaused by: java.io.IOException",
                    " more",
                ],
                2 => &["\n\tSuppressed: java.io.IOException: close failed"],
                _ => &["\njava.lang.NullPointerException", "\n\tat "],
            };
            for needle in want {
                ensure!(raw.contains(needle), "record {i} lacks {needle:?}: {raw}");
            }
        }
        let failures = collector.store().count(&["--contains", "ログイン失敗"])?;
        ensure!(
            failures == events / 4,
            "--contains ログイン失敗: {failures}"
        );
        Ok(())
    });
}

/// Record `i` of the generated file (with its final newline): an INFO line alone, or an ERROR
/// line followed by 1 to 6 trace lines and sometimes a cause, every line naming the event.
fn generated_record(i: u64) -> String {
    let (min, sec, ms) = ((i / 60_000) % 60, (i / 1000) % 60, i % 1000);
    let mut s = String::new();
    if i.is_multiple_of(5) {
        s += &format!(
            "2026-11-29 10:{min:02}:{sec:02}.{ms:03} INFO  [main] c.e.Job - event={i:09} ok\n"
        );
        return s;
    }
    s += &format!(
        "2026-11-29 10:{min:02}:{sec:02}.{ms:03} ERROR [w-{}] c.e.Job - event={i:09} failed\n",
        i % 8
    );
    s += &format!("java.lang.IllegalStateException: job event={i:09}\n");
    for j in 0..1 + i % 6 {
        s += &format!(
            "\tat com.example.Job.step{j}(Job.java:{}) event={i:09}\n",
            100 + j
        );
    }
    if i.is_multiple_of(3) {
        s += &format!("Caused by: java.io.IOException: disk full event={i:09}\n\t... 3 more\n");
    }
    s
}

/// The event number in a record's first line.
fn event_of(raw: &str) -> Option<u64> {
    let at = raw.find("event=")? + 6;
    raw.get(at..at + 9)?.parse().ok()
}

/// How the generated file is encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Utf8,
    Utf16Le,
}

impl Encoding {
    fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Encoding::Utf8 => text.as_bytes().to_vec(),
            Encoding::Utf16Le => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        }
    }
}

#[test]
fn multiline_records_survive_agent_kills_exactly_once_and_whole() {
    let n = env_u64("LOGSHIP_E2E_RECORDS", 20_000);
    run_test(|sb| kills_scenario(sb, n, Encoding::Utf8));
}

#[test]
fn utf16_multiline_records_survive_agent_kills_exactly_once_and_whole() {
    let n = env_u64("LOGSHIP_E2E_RECORDS", 20_000) / 4;
    run_test(|sb| kills_scenario(sb, n, Encoding::Utf16Le));
}

/// Writes `n` generated records in pieces that end anywhere (inside lines, inside UTF-16 code
/// units), kills the agent 4 times and stops it once meanwhile, then checks every record arrived once and whole
/// (and, for UTF-16, that its original bytes are the record as written).
fn kills_scenario(sb: &logship_e2e::Sandbox, n: u64, encoding: Encoding) -> Result<()> {
    let log = sb.path().join("jobs.log");
    std::fs::write(&log, "")?;
    // A long timeout: only the next start line (or the end of the test) closes a record, so a
    // slow writer on a busy machine cannot split one; likewise no pause inside a line may
    // pass for a finished last line (idle flush).
    let mut input = multiline_input("jobs", &log, 10_000);
    input.idle_flush_ms = 60_000;
    if encoding == Encoding::Utf16Le {
        input.extra.push("encoding = \"utf-16le\"".into());
    }
    let (collector, mut agent) = pair(sb, input)?;
    let progress = Arc::new(AtomicU64::new(0));
    let writer = {
        let (log, progress) = (log.clone(), progress.clone());
        std::thread::spawn(move || write_generated(&log, n, encoding, &progress))
    };
    let agent_log = sb.log_path("agent1");
    let mut rng = rand::rng();
    let mut kills: Vec<u64> = (0..5)
        .map(|_| rng.random_range(n / 20..=n * 19 / 20))
        .collect();
    kills.sort_unstable();
    for (k, at) in kills.into_iter().enumerate() {
        while progress.load(Ordering::SeqCst) < at && !writer.is_finished() {
            agent.check_alive()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        let resumed = |log: &Path| -> Result<usize> {
            Ok(log_count(log, "Resuming file.")? + log_count(log, "Tailing new file.")?)
        };
        let before = resumed(&agent_log)?;
        // The third fault is a clean stop: a buffered record is not sent, but read again.
        if k == 2 {
            agent.stop()?;
        } else {
            agent.kill9()?;
        }
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(0..300)));
        agent.start()?;
        wait_until(Duration::from_secs(60), "agent resumed its file", || {
            agent.check_alive()?;
            Ok(resumed(&agent_log)? > before)
        })?;
    }
    match writer.join() {
        Ok(result) => result.context("writer")?,
        Err(_) => bail!("writer thread panicked"),
    }
    // On a timeout the check below still runs, to say which records are missing.
    let arrived = wait_until(
        Duration::from_secs(300),
        &format!("{n} records stored"),
        || {
            agent.check_alive()?;
            let stored = collector.count()?;
            ensure!(stored <= n, "{stored} records stored for {n} written");
            Ok(stored == n)
        },
    );
    let mut seen = vec![0u8; usize::try_from(n)?];
    let mut bad = Vec::new();
    collector.store().search_each(&["--input", "jobs"], |r| {
        let raw = r["raw"].as_str().unwrap_or_default();
        let whole = |i: u64| -> Result<bool> {
            let want = generated_record(i);
            let want = want.trim_end_matches('\n');
            if want != raw {
                return Ok(false);
            }
            Ok(match (encoding, r["original_b64"].as_str()) {
                (Encoding::Utf8, None) => true,
                (Encoding::Utf16Le, Some(b64)) => {
                    base64::engine::general_purpose::STANDARD.decode(b64)? == encoding.encode(want)
                }
                _ => false,
            })
        };
        match event_of(raw).filter(|&i| i < n) {
            Some(i) if whole(i)? => seen[usize::try_from(i)?] += 1,
            _ if bad.len() < 5 => bad.push(r.to_string()),
            _ => {}
        }
        Ok(())
    })?;
    let missing = seen.iter().filter(|&&c| c == 0).count();
    let twice = seen.iter().filter(|&&c| c > 1).count();
    ensure!(
        missing == 0 && twice == 0 && bad.is_empty(),
        "{missing} records missing (first {:?}), {twice} duplicated, incomplete or \
         foreign: {bad:?}",
        seen.iter().position(|&c| c == 0)
    );
    arrived?;
    eprintln!("{encoding:?}: {n} multiline records exactly once and whole across 4 kills, 1 stop");
    Ok(())
}

/// Appends records `0..n` to `log`, encoded, in writes of a few records each that end at a
/// random byte (inside a line, a character or a UTF-16 code unit; the rest follows a moment
/// later), about 2,000 records/s.
fn write_generated(log: &Path, n: u64, encoding: Encoding, progress: &AtomicU64) -> Result<()> {
    let mut file = std::fs::OpenOptions::new().append(true).open(log)?;
    let mut rng = rand::rng();
    let mut pending: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < n {
        let upto = (i + rng.random_range(1..40)).min(n);
        while i < upto {
            pending.extend(encoding.encode(&generated_record(i)));
            i += 1;
        }
        let keep = if i < n {
            rng.random_range(1..=pending.len())
        } else {
            pending.len()
        };
        file.write_all(&pending[..keep])?;
        pending.drain(..keep);
        progress.store(i, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(rng.random_range(1..20)));
    }
    file.write_all(&pending)?;
    Ok(())
}
