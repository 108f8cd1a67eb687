//! The peer: two Debian `rsyslogd` processes moving the file over plain TCP.
//!
//! ```text
//! file ─► A: imfile (readMode 0) ─► main queue ─► omfwd TCP ─► 127.0.0.1:<port>
//!         B: imtcp 127.0.0.1:<port> ─► main queue ─► omfile <work>/rsyslog/received.log (%msg%)
//! ```
//!
//! Each instance runs in the foreground with its own config, pid file and work directory
//! (`rsyslogd -n -f <conf> -i <pid>`), loads only the modules above (no imuxsock, so no
//! `/dev/log`), and never reads `/etc/rsyslog.conf`. Done = B's output has as many lines as the
//! file.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::measure::{ChildGuard, Sampler, free_port, wait_for_progress, wait_listening};
use crate::report::{FileInfo, Run};

/// How long an rsyslogd may take to open its TCP listener.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long rsyslogd may take to stop on SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// Queue sizing shared by both instances: large in-memory queues, large batches.
pub(crate) const QUEUE: &str =
    r#"queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="4096""#;

/// Counts newlines of a file that is still growing, reading only what is new.
pub(crate) struct LineCounter {
    path: PathBuf,
    file: Option<File>,
    lines: u64,
    buf: Vec<u8>,
}

/// Moves the file through rsyslog A → B and measures both.
pub(crate) fn run(file: &FileInfo, work: &Path, stall: Duration) -> anyhow::Result<Run> {
    let rsyslogd = find_rsyslogd()?;
    let dir = work.join("rsyslog");
    if fs::symlink_metadata(&dir).is_ok() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let port = free_port()?;
    let received = dir.join("received.log");
    let receiver = Instance::prepare(
        &dir,
        "receiver",
        &receiver_conf(&dir.join("receiver"), port, &received),
    )?;
    let sender = Instance::prepare(
        &dir,
        "sender",
        &sender_conf(&dir.join("sender"), port, &file.path),
    )?;
    receiver.check(&rsyslogd)?;
    sender.check(&rsyslogd)?;

    let mut b = receiver.start(&rsyslogd)?;
    wait_listening(port, &mut b, LISTEN_TIMEOUT)?;
    let start = Instant::now();
    let mut a = sender.start(&rsyslogd)?;
    let (mut sa, mut sb) = (Sampler::new(a.pid()), Sampler::new(b.pid()));
    let mut counter = LineCounter::new(received);
    wait_for_progress(
        file.lines,
        stall,
        || counter.poll(),
        || {
            sa.update();
            sb.update();
            a.ensure_running()?;
            b.ensure_running()
        },
    )
    .context("rsyslog did not deliver every line")?;
    let wall = start.elapsed();
    let run = Run {
        wall,
        sender: sa.update(),
        receiver: Some(sb.update()),
    };
    a.stop(STOP_DEADLINE)?;
    b.stop(STOP_DEADLINE)?;
    Ok(run)
}

/// Config of instance A: read the file from its start, forward every line over TCP.
pub(crate) fn sender_conf(work: &Path, port: u16, input: &Path) -> String {
    format!(
        r#"# logship-bench rsyslog sender (A)
global(workDirectory="{work}" maxMessageSize="64k")
main_queue({QUEUE} queue.workerThreads="1")
module(load="imfile" mode="inotify")
input(type="imfile" file="{input}" tag="bench:" facility="local0" severity="info"
      readMode="0" freshStartTail="off" persistStateInterval="0" maxSubmitAtOnce="4096")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       template="RSYSLOG_ForwardFormat" action.resumeRetryCount="-1")
"#,
        work = work.display(),
        input = input.display(),
    )
}

/// Config of instance B: accept on localhost, write the message part of each line to a file.
pub(crate) fn receiver_conf(work: &Path, port: u16, out: &Path) -> String {
    format!(
        r#"# logship-bench rsyslog receiver (B)
global(workDirectory="{work}" maxMessageSize="64k")
main_queue({QUEUE} queue.workerThreads="1")
module(load="imtcp" maxSessions="16")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="bench_msg" type="string" string="%msg%\n")
action(type="omfile" file="{out}" template="bench_msg" ioBufferSize="256k" flushOnTXEnd="on")
"#,
        work = work.display(),
        out = out.display(),
    )
}

pub(crate) fn find_rsyslogd() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join("rsyslogd");
        if fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            return Ok(candidate);
        }
    }
    bail!("rsyslogd not found; install it with `apt-get install rsyslog` (Debian)")
}

/// One rsyslogd's files: `<dir>/<name>.conf`, `<dir>/<name>.pid`, `<dir>/<name>/`, `<dir>/<name>.stderr`.
pub(crate) struct Instance {
    name: &'static str,
    conf: PathBuf,
    pid: PathBuf,
    log: PathBuf,
}

// === impl Instance ===

impl Instance {
    pub(crate) fn prepare(dir: &Path, name: &'static str, conf_text: &str) -> anyhow::Result<Self> {
        fs::create_dir_all(dir.join(name))?;
        let conf = dir.join(format!("{name}.conf"));
        fs::write(&conf, conf_text)?;
        Ok(Self {
            name,
            conf,
            pid: dir.join(format!("{name}.pid")),
            log: dir.join(format!("{name}.stderr")),
        })
    }

    /// `rsyslogd -N1`: a config error is reported with rsyslog's own words.
    pub(crate) fn check(&self, rsyslogd: &Path) -> anyhow::Result<()> {
        let out = Command::new(rsyslogd)
            .arg("-N1")
            .arg("-f")
            .arg(&self.conf)
            .output()?;
        if !out.status.success() {
            bail!(
                "rsyslog {} config {} rejected: {}",
                self.name,
                self.conf.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    pub(crate) fn start(&self, rsyslogd: &Path) -> anyhow::Result<ChildGuard> {
        let log = File::create(&self.log)?;
        let mut cmd = Command::new(rsyslogd);
        cmd.arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(&self.pid);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        ChildGuard::spawn(
            if self.name == "sender" {
                "rsyslog sender"
            } else {
                "rsyslog receiver"
            },
            &mut cmd,
        )
    }
}

// === impl LineCounter ===

impl LineCounter {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            lines: 0,
            buf: vec![0; 1 << 20],
        }
    }

    /// Newlines so far; 0 while the file does not exist.
    pub(crate) fn poll(&mut self) -> anyhow::Result<u64> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
        let file = self.file.as_mut().expect("opened above");
        loop {
            let n = file.read(&mut self.buf)?;
            if n == 0 {
                return Ok(self.lines);
            }
            self.lines += memchr::memchr_iter(b'\n', &self.buf[..n]).count() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn line_counter_follows_a_growing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.log");
        let mut counter = LineCounter::new(path.clone());
        assert_eq!(counter.poll().expect("missing file"), 0);
        let mut f = File::create(&path).expect("create");
        f.write_all(b"a\nb\nc").expect("write");
        assert_eq!(counter.poll().expect("poll"), 2);
        f.write_all(b"\nd\n").expect("write");
        assert_eq!(counter.poll().expect("poll"), 4);
        assert_eq!(counter.poll().expect("poll again"), 4);
    }

    #[test]
    fn configs_name_their_own_paths_and_port() {
        let s = sender_conf(Path::new("/w/a"), 6514, Path::new("/in.log"));
        assert!(s.contains(r#"file="/in.log""#) && s.contains(r#"port="6514""#));
        assert!(s.contains(r#"workDirectory="/w/a""#) && !s.contains("imuxsock"));
        let r = receiver_conf(Path::new("/w/b"), 6514, Path::new("/out.log"));
        assert!(r.contains(r#"file="/out.log""#) && r.contains(r#"address="127.0.0.1""#));
    }

    /// Runs only where rsyslogd is installed: the configs must pass `rsyslogd -N1`.
    #[test]
    fn configs_pass_rsyslogd_check() {
        // Fails (never skips) without Debian's rsyslog: scripts/test.sh installs it.
        let rsyslogd = find_rsyslogd().expect("rsyslogd is installed (apt-get install rsyslog)");
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.log");
        fs::write(&input, "x seq=1\n").expect("input");
        let a = Instance::prepare(
            dir.path(),
            "sender",
            &sender_conf(&dir.path().join("sender"), 1, &input),
        );
        a.expect("prepare")
            .check(&rsyslogd)
            .expect("sender config valid");
        let conf = receiver_conf(&dir.path().join("receiver"), 1, &dir.path().join("o"));
        Instance::prepare(dir.path(), "receiver", &conf)
            .expect("prepare")
            .check(&rsyslogd)
            .expect("receiver config valid");
    }
}
