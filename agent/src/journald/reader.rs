//! The journal reader: a `journalctl -o export --follow` child process, parsed on a thread of
//! its own into a bounded channel.
//!
//! Invariants:
//! - The child never outlives the agent: it gets `PR_SET_PDEATHSIG = SIGKILL` before exec (so a
//!   kill -9 of the agent kills it), and [`Follower`] kills and reaps it when dropped.
//! - Memory is bounded: at most [`CHANNEL_ENTRIES`] parsed entries wait in the channel, each
//!   bounded by the export reader's caps; when the input is slow the parser thread blocks, the
//!   pipe fills and journalctl waits (the journal itself is the buffer).
//! - Every entry sent is whole (the export reader never yields a partial entry); the stream's
//!   end is always reported last, with the reason ([`Event::Ended`]).
//! - The start point is explicit: after a cursor, from the journal's first entry, or (only to
//!   learn a starting cursor) the newest entry.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::export::{Entry, ExportError, ExportReader, Keep};
use crate::config::JournaldInput;

/// Parsed entries waiting for the input thread. An entry holds at most `max_message_bytes`
/// plus 4 KiB for each of the 9 other kept fields: about 6.4 MiB in all at the 64 KiB default.
pub const CHANNEL_ENTRIES: usize = 64;
/// Bytes of journalctl's last stderr line kept for error reports.
const STDERR_KEEP: usize = 512;
/// How long a journalctl whose output ended gets to exit by itself before it is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// The program run; found on `PATH`.
pub const JOURNALCTL: &str = "journalctl";

/// Where journalctl starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After this cursor (the last entry spooled).
    AfterCursor(String),
    /// At the oldest entry.
    Beginning,
}

/// What the parser thread sends.
#[derive(Debug)]
pub enum Event {
    /// A whole entry.
    Entry(Entry),
    /// The stream ended (journalctl exited or the stream broke); nothing follows.
    Ended(Option<ExportError>),
}

/// A running journalctl and the thread parsing its output.
pub struct Follower {
    child: Child,
    events: Receiver<Event>,
    threads: Vec<JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
}

// === impl Follower ===

impl Follower {
    /// Starts `journalctl --follow` for `input` from `start`.
    pub fn spawn(input: &JournaldInput, start: &Start, keep: Keep) -> std::io::Result<Follower> {
        let mut cmd = command(input);
        cmd.arg("--follow").arg("--no-tail");
        if let Start::AfterCursor(c) = start {
            cmd.arg(format!("--after-cursor={c}"));
        }
        let mut child = spawn_child(cmd)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");
        let (tx, events) = sync_channel(CHANNEL_ENTRIES);
        let stderr = Arc::new(Mutex::new(String::new()));
        let name = input.name.clone();
        let parse = std::thread::Builder::new()
            .name(format!("journal-{name}"))
            .spawn(move || parse_stream(stdout, keep, &tx))?;
        let keep_err = stderr.clone();
        let errs = std::thread::Builder::new()
            .name(format!("journal-err-{name}"))
            .spawn(move || collect_stderr(stderr_pipe, &name, &keep_err))?;
        Ok(Follower {
            child,
            events,
            threads: vec![parse, errs],
            stderr,
        })
    }

    /// The next event, or `None` after `timeout` without one.
    pub fn next(&self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Event::Ended(None)),
        }
    }

    /// Stops journalctl (if still running), reaps it and describes how it ended.
    pub fn finish(mut self) -> String {
        // Its output ended: give it a moment to exit by itself, so its own status is reported.
        let status = self.stop(EXIT_GRACE);
        let last = self
            .stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match (status, last.is_empty()) {
            (Some(s), true) => format!("journalctl exited ({s})"),
            (Some(s), false) => format!("journalctl exited ({s}): {last}"),
            (None, _) => "journalctl could not be reaped".to_string(),
        }
    }

    fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + grace;
        let mut exited = self.child.try_wait();
        while matches!(exited, Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            exited = self.child.try_wait();
        }
        let status = match exited {
            Ok(Some(s)) => Some(s),
            _ => {
                // Ignore "already exited": wait() below reaps it either way.
                let _killed = self.child.kill();
                self.child.wait().ok()
            }
        };
        // The parser may be blocked on a full channel: drain it so it sees the closed pipe.
        while self.events.try_recv().is_ok() {}
        for t in self.threads.drain(..) {
            while !t.is_finished() {
                while self.events.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.join().is_err() {
                tracing::error!("A journal reader thread panicked.");
            }
        }
        status
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop(Duration::ZERO);
        }
    }
}

/// The newest entry's cursor (`None`: the journal is empty), for `start_at = "end"`.
pub fn newest_cursor(input: &JournaldInput) -> Result<Option<String>, String> {
    let mut cmd = command(input);
    cmd.arg("--lines=1");
    let mut child = spawn_child(cmd).map_err(|e| format!("running {JOURNALCTL}: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut reader = ExportReader::new(
        BufReader::new(stdout),
        Box::new(|n| (n == "__CURSOR").then_some(4096)),
    );
    let mut cursor = None;
    let read = loop {
        match reader.next_entry() {
            Ok(Some(e)) => cursor = e.text("__CURSOR").map(|c| c.into_owned()),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        // Best effort: only for the error message.
        let _read = (&mut e).take(STDERR_KEEP as u64).read_to_string(&mut err);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    match read {
        Err(e) => Err(e.to_string()),
        Ok(()) if status.success() => Ok(cursor),
        Ok(()) => Err(format!("journalctl exited ({status}): {}", err.trim())),
    }
}

/// What `check-config` warns about on this machine: no journalctl on `PATH`, a journal
/// directory that does not exist (the input reports and retries either way).
pub fn check(input: &JournaldInput) -> Vec<String> {
    let mut out = Vec::new();
    let who = format!("journald {:?}", input.name);
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(JOURNALCTL).is_file()));
    if !on_path {
        out.push(format!(
            "{who}: {JOURNALCTL} is not on PATH (install systemd; the input retries until it is)"
        ));
    }
    if let Some(dir) = &input.directory
        && !dir.is_dir()
    {
        out.push(format!(
            "{who}: directory {} does not exist now (it is read once it does)",
            dir.display()
        ));
    }
    out
}

/// Where the system journal lives (persistent, then volatile).
const SYSTEM_JOURNALS: [&str; 2] = ["/var/log/journal", "/run/log/journal"];

/// A message when the input's journal has no journal file at all (in its directory or one
/// level below, where journald keeps one folder per machine id), else `None`.
pub fn missing_journal(input: &JournaldInput) -> Option<String> {
    let dirs: Vec<PathBuf> = match &input.directory {
        Some(d) => vec![d.clone()],
        None => SYSTEM_JOURNALS.iter().map(PathBuf::from).collect(),
    };
    let is_journal = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        name.ends_with(".journal") || name.ends_with(".journal~")
    };
    let found = dirs.iter().any(|d| {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                is_journal(&p)
                    || (p.is_dir()
                        && std::fs::read_dir(&p)
                            .into_iter()
                            .flatten()
                            .flatten()
                            .any(|e| is_journal(&e.path())))
            })
    });
    (!found).then(|| {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!(
            "no journal files in {} (is systemd-journald running?); waiting for them",
            list.join(" or ")
        )
    })
}

/// journalctl with the input's journal and filters, export output, no pager, quiet.
fn command(input: &JournaldInput) -> Command {
    let mut cmd = Command::new(JOURNALCTL);
    cmd.args(["--output=export", "--no-pager", "--quiet"]);
    // Without --merge, --follow shows only the current boot (systemd >= 250), and a cursor
    // from an earlier boot would skip that boot's rest.
    cmd.arg("--merge");
    if let Some(dir) = &input.directory {
        cmd.arg("--directory").arg(dir);
    }
    for u in &input.units {
        cmd.arg(format!("--unit={u}"));
    }
    for i in &input.identifiers {
        cmd.arg(format!("--identifier={i}"));
    }
    if let Some(p) = &input.priority {
        cmd.arg(format!("--priority={p}"));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_COLORS", "0");
    cmd
}

fn spawn_child(mut cmd: Command) -> std::io::Result<Child> {
    die_with_parent(&mut cmd);
    cmd.spawn()
}

/// Makes the child get SIGKILL when the thread that spawned it (and so the agent) dies.
/// Linux only (`PR_SET_PDEATHSIG`); elsewhere journalctl still ends when its stdout closes.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// Makes the child get SIGKILL when the thread that spawned it (and so the agent) dies.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec; it calls only prctl and
    // getppid, which are async-signal-safe, and allocates nothing (`last_os_error` and
    // `from_raw_os_error` build an integer-backed error).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The agent died between fork and prctl: the signal was missed, end now.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

fn parse_stream(stdout: impl Read, keep: Keep, tx: &SyncSender<Event>) {
    let mut reader = ExportReader::new(BufReader::with_capacity(64 << 10, stdout), keep);
    let end = loop {
        match reader.next_entry() {
            Ok(Some(entry)) => {
                if tx.send(Event::Entry(entry)).is_err() {
                    return; // the follower is gone
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    // Ignore a gone receiver: nobody is waiting for the end then.
    let _sent = tx.send(Event::Ended(end));
}

fn collect_stderr(pipe: impl Read, input: &str, last: &Mutex<String>) {
    let mut lines = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bounded: a line longer than STDERR_KEEP is read in pieces.
        match (&mut lines)
            .take(STDERR_KEEP as u64)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf).trim().to_string();
                if text.is_empty() {
                    continue;
                }
                tracing::debug!(input, message = %text, "journalctl said.");
                *last.lock().unwrap_or_else(PoisonError::into_inner) = text;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JournalStart;

    fn input(dir: &Path) -> JournaldInput {
        JournaldInput {
            name: "j".into(),
            directory: Some(dir.to_path_buf()),
            units: Vec::new(),
            identifiers: Vec::new(),
            priority: None,
            start_at: JournalStart::Beginning,
            max_message_bytes: 1024,
        }
    }

    #[test]
    fn journal_files_are_looked_for_one_level_deep() {
        let dir = tempfile::tempdir().unwrap();
        let missing = missing_journal(&input(&dir.path().join("nope"))).unwrap();
        assert!(missing.contains("no journal files"), "{missing}");
        assert!(missing_journal(&input(dir.path())).is_some());
        let machine = dir.path().join("0123456789abcdef");
        std::fs::create_dir(&machine).unwrap();
        std::fs::write(machine.join("other.txt"), "").unwrap();
        assert!(missing_journal(&input(dir.path())).is_some());
        std::fs::write(machine.join("system.journal"), "").unwrap();
        assert!(missing_journal(&input(dir.path())).is_none());
    }
}
