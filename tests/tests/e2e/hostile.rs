//! Hostile files next to a normal one, all read by one agent: a 100 MiB line without newline,
//! NUL bytes, invalid UTF-8, a file deleted while open, rotation faster than reading and a glob
//! matching 5,000 files. The agent's peak RSS must stay under 64 MiB, the cut line must carry
//! its original length, nothing may be duplicated, and the normal file arrives exactly once.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, check_exactly_once, run_test,
    wait_until,
};
use serde_json::Value;

use crate::support::append_numbered;

/// The long line: 100 MiB, no newline.
const HUGE: u64 = 100 << 20;
const MANY_FILES: usize = 5_000;
const MAX_RSS_KIB: u64 = 64 << 10;
/// The tailer holds at most 1,024 files open per input (`logship_tail::MAX_OPEN_FILES`); at
/// least that many of the small files must be read even though the glob matches more.
const MIN_MANY_READ: u64 = 1_000;
const ROTATIONS: usize = 20;
const LINES_PER_ROTATION: usize = 500;

#[test]
fn hostile_files_neither_bloat_nor_stall_the_agent() {
    run_test(|sb| {
        let (hostile, many) = (sb.path().join("hostile"), sb.path().join("many"));
        write_hostile_files(&hostile, &many)?;
        let (collector, mut agent) = start(sb, &hostile, &many)?;
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = spawn_writer(sb.path().join("app.log"), written.clone(), stop.clone());
        wait_until(Duration::from_secs(30), "first app lines", || {
            Ok(collector.store().count(&["--input", "app"])? > 0)
        })?;
        append_lines(&hostile.join("deleted.log"), "deleted", 100..200)?;
        std::fs::remove_file(hostile.join("deleted.log"))?;
        rotate_fast(&hostile)?;
        let by_path = wait_for_hostile(&collector, &mut agent, &hostile)?;
        check_hostile(&by_path)?;
        let mut many_seen = 0;
        let what = format!("{MIN_MANY_READ} of the {MANY_FILES} small files read");
        wait_until(Duration::from_secs(60), &what, || {
            many_seen = collector.store().count(&["--input", "many"])?;
            Ok(many_seen >= MIN_MANY_READ)
        })?;
        stop.store(true, Ordering::SeqCst);
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        let total = written.load(Ordering::SeqCst);
        wait_until(Duration::from_secs(60), "all app lines", || {
            agent.check_alive()?;
            Ok(collector.store().count(&["--input", "app"])? >= total)
        })?;
        check_exactly_once(&collector.store(), "app", total)?;
        let rss = agent.peak_rss_kib()?;
        eprintln!("agent VmHWM {rss} KiB, {many_seen} small files read");
        ensure!(rss < MAX_RSS_KIB, "agent peak RSS {rss} KiB");
        Ok(())
    });
}

fn start(sb: &Sandbox, hostile: &Path, many: &Path) -> Result<(Collector, Agent)> {
    let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
    collector.start()?;
    let inputs = vec![
        FileInput::new("app", &sb.path().join("app.log")),
        FileInput::new("hostile", &hostile.join("*.log")),
        FileInput::new("many", &many.join("*.log")),
    ];
    let opts = AgentOpts::new(&collector, inputs);
    let mut agent = Agent::enroll(sb, &collector, "agent1", &opts)?;
    agent.start()?;
    Ok((collector, agent))
}

fn write_hostile_files(hostile: &Path, many: &Path) -> Result<()> {
    std::fs::create_dir_all(hostile)?;
    std::fs::create_dir_all(many)?;
    let mut huge = std::fs::File::create(hostile.join("huge.log"))?;
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..HUGE >> 20 {
        huge.write_all(&chunk)?;
    }
    std::fs::write(hostile.join("binary.log"), b"bin\0ary\0\0line\n\0\0\0\n")?;
    std::fs::write(hostile.join("latin1.log"), b"caf\xe9 cr\xe8me \xff\xfe\n")?;
    append_lines(&hostile.join("deleted.log"), "deleted", 0..100)?;
    append_lines(&hostile.join("rot.log"), "rot", 0..LINES_PER_ROTATION)?;
    for i in 0..MANY_FILES {
        std::fs::write(
            many.join(format!("f{i:05}.log")),
            format!("small file {i}\n"),
        )?;
    }
    Ok(())
}

fn append_lines(path: &Path, tag: &str, range: std::ops::Range<usize>) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let text: String = range.map(|i| format!("{tag} {i:06}\n")).collect();
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Renames `rot.log` away and writes a new one every 100 ms: faster than the glob re-scan (1 s)
/// can notice every file. The first one was open since start-up and must be drained.
fn rotate_fast(hostile: &Path) -> Result<()> {
    for r in 0..ROTATIONS {
        std::fs::rename(
            hostile.join("rot.log"),
            hostile.join(format!("rot.log.{r}")),
        )?;
        let from = (r + 1) * LINES_PER_ROTATION;
        append_lines(
            &hostile.join("rot.log"),
            "rot",
            from..from + LINES_PER_ROTATION,
        )?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Waits for the cut line, the binary and invalid UTF-8 lines and every deleted.log line;
/// returns the hostile records grouped by file name.
fn wait_for_hostile(
    collector: &Collector,
    agent: &mut Agent,
    hostile: &Path,
) -> Result<HashMap<String, Vec<Value>>> {
    let mut by_path = HashMap::new();
    wait_until(Duration::from_secs(60), "hostile records", || {
        agent.check_alive()?;
        by_path = group_by_file(collector.store().search(&["--input", "hostile"])?, hostile);
        let n = |name: &str| by_path.get(name).map_or(0, Vec::len);
        Ok(n("huge.log") >= 1
            && n("binary.log") >= 2
            && n("latin1.log") >= 1
            && n("deleted.log") >= 200)
    })?;
    Ok(by_path)
}

fn group_by_file(records: Vec<Value>, hostile: &Path) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for r in records {
        let path = PathBuf::from(r["path"].as_str().unwrap_or_default());
        let name = path
            .strip_prefix(hostile)
            .unwrap_or(&path)
            .display()
            .to_string();
        // Rotated names (rot.log.N) count as rot.log.
        let name = if name.starts_with("rot.log") {
            "rot.log".into()
        } else {
            name
        };
        out.entry(name).or_default().push(r);
    }
    out
}

fn check_hostile(by_path: &HashMap<String, Vec<Value>>) -> Result<()> {
    let huge = &by_path["huge.log"];
    ensure!(huge.len() == 1, "{} records for huge.log", huge.len());
    ensure!(
        huge[0]["truncated_from"].as_u64() == Some(HUGE),
        "huge.log record says truncated_from {:?}",
        huge[0]["truncated_from"]
    );
    let kept = huge[0]["raw"].as_str().context("huge.log raw")?.len();
    ensure!(kept == 64 << 10, "huge.log record kept {kept} bytes");
    // Bytes as read: the original when the text is a decoding of them (U+FFFD replaced).
    let raw_bytes = |r: &Value| -> Vec<u8> {
        if let Some(b64) = r["original_b64"].as_str() {
            return base64_decode(b64);
        }
        match r["raw"].as_str() {
            Some(s) => s.as_bytes().to_vec(),
            None => base64_decode(r["raw_b64"].as_str().unwrap_or_default()),
        }
    };
    let binary: Vec<Vec<u8>> = by_path["binary.log"].iter().map(raw_bytes).collect();
    ensure!(
        binary == [b"bin\0ary\0\0line".to_vec(), b"\0\0\0".to_vec()],
        "binary.log arrived as {binary:?}"
    );
    let latin1: Vec<Vec<u8>> = by_path["latin1.log"].iter().map(raw_bytes).collect();
    ensure!(
        latin1 == [b"caf\xe9 cr\xe8me \xff\xfe".to_vec()],
        "latin1.log arrived as {latin1:?}"
    );
    exactly_once_tagged(&by_path["deleted.log"], "deleted", Some(200))?;
    let rot = by_path.get("rot.log").map_or(&[][..], Vec::as_slice);
    exactly_once_tagged(rot, "rot", None)?;
    eprintln!(
        "rotation: {} of {} lines read, none twice",
        rot.len(),
        (ROTATIONS + 1) * LINES_PER_ROTATION
    );
    Ok(())
}

/// Every "tag NNNNNN" line at most once (and all of `0..n` when `n` is given).
fn exactly_once_tagged(records: &[Value], tag: &str, n: Option<usize>) -> Result<()> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in records {
        let raw = r["raw"].as_str().unwrap_or_default();
        ensure!(
            raw.starts_with(tag) || r["kind"] == "gap",
            "unexpected {tag} record {r}"
        );
        if r["kind"] != "gap" {
            *seen.entry(raw.to_string()).or_default() += 1;
        }
    }
    let dups: Vec<_> = seen.iter().filter(|&(_, &c)| c > 1).take(5).collect();
    ensure!(dups.is_empty(), "{tag}: duplicated lines {dups:?}");
    if let Some(n) = n {
        ensure!(seen.len() == n, "{tag}: {} of {n} lines", seen.len());
    }
    Ok(())
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

/// Appends numbered lines to the normal file at 1,000 lines a second until `stop`.
fn spawn_writer(
    log: PathBuf,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            append_numbered(&log, n, n + 100, 60)?;
            n += 100;
            written.store(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    })
}
