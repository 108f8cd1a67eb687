//! A collector under test: one data dir and one port kept across restarts, and [`Store`], a
//! cloneable handle running `search`/`verify` against the data dir (usable from other threads).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Proc, Sandbox, bin, free_port, wait_until};

/// How long a collector gets to start listening or to stop on SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings written into collector.toml.
#[derive(Debug, Clone)]
pub struct CollectorOpts {
    /// `[limits] max_decompressed_bytes`.
    pub max_decompressed_bytes: u64,
    /// `[store] segment_max_bytes`.
    pub store_segment_max_bytes: u64,
}

/// A collector process with its data dir.
pub struct Collector {
    name: String,
    data_dir: PathBuf,
    port: u16,
    log: PathBuf,
    proc: Option<Proc>,
}

/// Read access to a collector's store through the CLI.
#[derive(Debug, Clone)]
pub struct Store {
    data_dir: PathBuf,
}

impl Default for CollectorOpts {
    fn default() -> Self {
        CollectorOpts {
            max_decompressed_bytes: 64 << 20,
            store_segment_max_bytes: 256 << 20,
        }
    }
}

// === impl Collector ===

impl Collector {
    /// Runs `init` in `<sandbox>/<name>` and writes a collector.toml for `opts` (not started).
    pub fn init(sandbox: &Sandbox, name: &str, opts: &CollectorOpts) -> Result<Collector> {
        let data_dir = sandbox.path().join(name);
        run_ok(
            Command::new(bin("logship-collector"))
                .arg("init")
                .arg("--data-dir")
                .arg(&data_dir),
        )?;
        let port = free_port();
        let config = format!(
            "version = 1\ndata_dir = {dir:?}\nlisten = \"127.0.0.1:{port}\"\n\n[limits]\n\
             max_decompressed_bytes = {}\n\n[store]\nsegment_max_bytes = {}\n",
            opts.max_decompressed_bytes,
            opts.store_segment_max_bytes,
            dir = data_dir.display().to_string(),
        );
        std::fs::write(data_dir.join("collector.toml"), config)?;
        Ok(Collector {
            name: name.to_string(),
            data_dir,
            port,
            log: sandbox.log_path(name),
            proc: None,
        })
    }

    /// Starts `serve` and waits until the port accepts connections.
    pub fn start(&mut self) -> Result<()> {
        if self.proc.is_some() {
            bail!("{} is already running", self.name);
        }
        let mut cmd = Command::new(bin("logship-collector"));
        cmd.arg("serve")
            .arg("--config")
            .arg(self.data_dir.join("collector.toml"));
        let proc = Proc::spawn(&self.name, cmd, &self.log)?;
        self.proc = Some(proc);
        let addr = self.endpoint();
        wait_until(START_TIMEOUT, "collector listening", || {
            if let Some(status) = self.proc.as_mut().expect("just started").exited()? {
                bail!("collector exited during start with {status}");
            }
            Ok(std::net::TcpStream::connect(&addr).is_ok())
        })
    }

    /// Stops the collector with SIGTERM (it must exit cleanly).
    pub fn stop(&mut self) -> Result<()> {
        match self.proc.take() {
            Some(p) => p.terminate(STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Kills the collector with SIGKILL.
    pub fn kill9(&mut self) -> Result<()> {
        match self.proc.take() {
            Some(p) => p.kill9(),
            None => Ok(()),
        }
    }

    /// The running process, if any.
    pub fn proc_mut(&mut self) -> Option<&mut Proc> {
        self.proc.as_mut()
    }

    /// HOST:PORT agents connect to (the same across restarts).
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The data dir (CA, store, status.json).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A handle for searching the store.
    pub fn store(&self) -> Store {
        Store {
            data_dir: self.data_dir.clone(),
        }
    }

    /// Number of records in the store.
    pub fn count(&self) -> Result<u64> {
        self.store().count(&[])
    }

    /// The parsed status.json, if it exists yet.
    pub fn status(&self) -> Result<Option<Value>> {
        match std::fs::read(self.data_dir.join("status.json")) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Peak resident memory (VmHWM) of the running collector, in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        self.proc
            .as_ref()
            .context("collector not running")?
            .peak_rss_kib()
    }

    /// Runs `issue-agent-cert` for `name` into `out`, with extra flags (validity).
    pub fn issue_agent_cert(&self, name: &str, out: &Path, extra: &[&str]) -> Result<()> {
        run_ok(
            Command::new(bin("logship-collector"))
                .arg("issue-agent-cert")
                .arg("--data-dir")
                .arg(&self.data_dir)
                .args(["--name", name, "--collector", &self.endpoint()])
                .arg("--out")
                .arg(out)
                .args(extra),
        )?;
        Ok(())
    }
}

// === impl Store ===

impl Store {
    /// `search --count` with extra filter arguments; 0 while no store exists yet.
    pub fn count(&self, args: &[&str]) -> Result<u64> {
        if !self.data_dir.join("store").try_exists()? {
            return Ok(0);
        }
        let out = run_ok(self.search_cmd(args).arg("--count"))?;
        let text = String::from_utf8(out.stdout)?;
        text.trim()
            .parse()
            .with_context(|| format!("search --count printed {text:?}"))
    }

    /// Streams `search` output, calling `each` per JSON line. Returns the number of lines.
    pub fn search_each(
        &self,
        args: &[&str],
        mut each: impl FnMut(Value) -> Result<()>,
    ) -> Result<u64> {
        let mut child = self
            .search_cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut n = 0;
        for line in BufReader::with_capacity(1 << 20, stdout).lines() {
            each(serde_json::from_str(&line?).context("search output is not JSON")?)?;
            n += 1;
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("search {args:?} failed with {status}");
        }
        Ok(n)
    }

    /// All `search` results for the given filter arguments.
    pub fn search(&self, args: &[&str]) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        self.search_each(args, |v| {
            all.push(v);
            Ok(())
        })?;
        Ok(all)
    }

    /// Runs `verify` and returns its output, whatever the exit status.
    pub fn verify(&self) -> Result<Output> {
        Ok(Command::new(bin("logship-collector"))
            .arg("verify")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()?)
    }

    fn search_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("logship-collector"));
        cmd.arg("search")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args);
        cmd
    }
}

/// Runs a command to completion; fails with its stderr unless it exits 0.
pub(crate) fn run_ok(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}
