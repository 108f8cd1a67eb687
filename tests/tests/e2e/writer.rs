//! The log writer of the exactly-once scenarios: a thread appending numbered lines at a steady
//! rate while rotating the file the way real systems do.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use logship_e2e::{Store, numbered_line, wait_until};

/// Random characters per line (about 100 bytes a line in total).
const FILLER: usize = 48;
/// Lines written between rate checks.
const CHUNK: u64 = 500;

/// How the writer rotates its file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rotation {
    /// app.log -> app.log.1 -> ... -> app.log.{keep} (deleted past that), every `every` lines.
    Rename { every: u64, keep: u32 },
    /// Debian's logrotate with `copytruncate` and `rotate 5`, every `every` lines.
    Copytruncate { every: u64 },
    /// `> app.log` every `every` lines, once the store holds everything written so far.
    Truncate { every: u64 },
    /// One file per line in `one/`; every fifth file has no trailing newline.
    OneLineFiles,
}

/// The writer's settings.
pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) rotation: Rotation,
    pub(crate) lines: u64,
    pub(crate) lines_per_sec: u64,
    /// Lines written so far (read by the fault driver).
    pub(crate) progress: Arc<AtomicU64>,
    /// For `Truncate`: where to check that written lines are stored.
    pub(crate) store: Store,
    /// For `Truncate`: held from "all written lines stored" until the agent saw the truncation,
    /// so an agent kill never spans it (truncating data the agent has not seen loses it by
    /// definition, and the agent honestly reports a gap then).
    pub(crate) guard: Arc<Mutex<()>>,
    /// The agent's log, to see when it noticed a truncation.
    pub(crate) agent_log: PathBuf,
}

// === impl Writer ===

impl Writer {
    /// The log file being written (`app.log`), or the `one/` dir for one-line files.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("app.log")
    }

    /// Writes every line, rotating as configured.
    pub(crate) fn run(&self) -> Result<()> {
        if let Rotation::OneLineFiles = self.rotation {
            return self.one_line_files();
        }
        let start = Instant::now();
        let mut out = open_append(&self.log_path())?;
        let mut i = 0;
        while i < self.lines {
            let end = (i + CHUNK).min(self.lines);
            for n in i..end {
                writeln!(out, "{}", numbered_line(n, FILLER))?;
                if (n + 1) % self.every() == 0 && n + 1 < self.lines {
                    out = self.rotate(out, n + 1)?;
                }
            }
            out.flush()?;
            i = end;
            self.progress.store(i, Ordering::SeqCst);
            self.pace(start, i);
        }
        out.flush()?;
        Ok(())
    }

    fn every(&self) -> u64 {
        match self.rotation {
            Rotation::Rename { every, .. }
            | Rotation::Copytruncate { every }
            | Rotation::Truncate { every } => every,
            Rotation::OneLineFiles => u64::MAX,
        }
    }

    fn rotate(&self, mut out: BufWriter<File>, written: u64) -> Result<BufWriter<File>> {
        out.flush()?;
        let path = self.log_path();
        match self.rotation {
            Rotation::Rename { keep, .. } => {
                drop(out);
                rename_generations(&path, keep)?;
                return open_append(&path);
            }
            Rotation::Copytruncate { .. } => run_logrotate(&self.dir, &path)?,
            Rotation::Truncate { .. } => self.truncate_when_stored(&path, written)?,
            Rotation::OneLineFiles => {}
        }
        Ok(out)
    }

    fn truncate_when_stored(&self, path: &Path, written: u64) -> Result<()> {
        let _guard = self
            .guard
            .lock()
            .map_err(|_| anyhow::anyhow!("guard poisoned"))?;
        wait_until(Duration::from_secs(600), "written lines stored", || {
            Ok(self.store.count(&["--input", "app"])? >= written)
        })?;
        let seen = log_count(&self.agent_log, TRUNCATION_SEEN)?;
        OpenOptions::new().write(true).open(path)?.set_len(0)?;
        wait_until(
            Duration::from_secs(60),
            "agent noticed the truncation",
            || Ok(log_count(&self.agent_log, TRUNCATION_SEEN)? > seen),
        )
    }

    fn one_line_files(&self) -> Result<()> {
        let start = Instant::now();
        let dir = self.dir.join("one");
        std::fs::create_dir_all(&dir)?;
        for i in 0..self.lines {
            let mut line = numbered_line(i, FILLER);
            if i % 5 != 0 {
                line.push('\n');
            }
            std::fs::write(dir.join(format!("f{i:06}.log")), line)?;
            self.progress.store(i + 1, Ordering::SeqCst);
            self.pace(start, i + 1);
        }
        Ok(())
    }

    /// Sleeps so that `written` lines take `written / lines_per_sec` seconds.
    fn pace(&self, start: Instant, written: u64) {
        let due = Duration::from_secs_f64(written as f64 / self.lines_per_sec as f64);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// What the agent logs when it notices a truncation.
const TRUNCATION_SEEN: &str = "File truncated";

/// Occurrences of `needle` in the log file at `path`.
pub(crate) fn log_count(path: &Path, needle: &str) -> Result<usize> {
    let text = std::fs::read(path)?;
    Ok(String::from_utf8_lossy(&text).matches(needle).count())
}

fn open_append(path: &Path) -> Result<BufWriter<File>> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(BufWriter::with_capacity(1 << 16, file))
}

/// app.log.{k} -> app.log.{k+1} for k = keep-1..1, then app.log -> app.log.1.
fn rename_generations(path: &Path, keep: u32) -> Result<()> {
    let generation = |k: u32| PathBuf::from(format!("{}.{k}", path.display()));
    for k in (1..keep).rev() {
        if generation(k).try_exists()? {
            std::fs::rename(generation(k), generation(k + 1))?;
        }
    }
    std::fs::rename(path, generation(1))?;
    Ok(())
}

/// Runs `logrotate -f -s STATE CONF` with copytruncate for `path`.
fn run_logrotate(dir: &Path, path: &Path) -> Result<()> {
    let conf = dir.join("logrotate.conf");
    if !conf.try_exists()? {
        let text = format!(
            "{} {{\n    copytruncate\n    rotate 5\n    missingok\n    nocompress\n}}\n",
            path.display()
        );
        std::fs::write(&conf, text)?;
    }
    let out = Command::new(logrotate_bin()?)
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&conf)
        .output()
        .context("running logrotate")?;
    if !out.status.success() {
        bail!("logrotate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Debian's logrotate; its absence is a test failure, never a skip.
pub(crate) fn logrotate_bin() -> Result<PathBuf> {
    for p in [
        "/usr/sbin/logrotate",
        "/sbin/logrotate",
        "/usr/bin/logrotate",
    ] {
        if Path::new(p).try_exists()? {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("logrotate is not installed (apt-get install logrotate); the copytruncate test needs it")
}
