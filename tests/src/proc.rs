//! One running child process whose output goes to a log file; killed with SIGKILL on drop.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A child process owned by a test.
pub struct Proc {
    name: String,
    child: Child,
}

// === impl Proc ===

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        let mut file = OpenOptions::new().create(true).append(true).open(log)?;
        writeln!(file, "===== start {name}: {cmd:?}")?;
        let child = cmd
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
        })
    }

    /// Takes ownership of a child the caller started with its own stdio and environment (for
    /// tests of exactly those); it is killed on drop like any other.
    pub fn adopt(name: &str, child: Child) -> Proc {
        Proc {
            name: name.to_string(),
            child,
        }
    }

    /// The child's stderr pipe, when it was started with one.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory (VmHWM from /proc/PID/status), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("no VmHWM in /proc/PID/status")?;
        let kib = line.split_whitespace().nth(1).context("VmHWM value")?;
        Ok(kib.parse()?)
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends SIGTERM and waits up to `deadline` for a clean exit (status 0).
    pub fn terminate(self, deadline: Duration) -> Result<()> {
        self.signal_and_wait("TERM", deadline)
    }

    /// Sends `signal` (a `kill` name such as "INT") and waits up to `deadline` for a clean exit
    /// (status 0).
    pub fn signal_and_wait(mut self, signal: &str, deadline: Duration) -> Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .with_context(|| format!("running kill -{signal}"))?;
        if !status.success() {
            bail!("kill -{signal} {} failed", self.pid());
        }
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status} after SIG{signal}", self.name);
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not stop within {deadline:?} of SIG{signal}",
            self.name
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Best effort while dropping: a failure here cannot be reported anywhere useful.
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}
