//! An agent under test: its own agent.toml (small, fast settings), certificate dir and spool,
//! kept across kills and restarts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::{Collector, Proc, Sandbox, bin};

/// How long an agent gets to stop on SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One `[[file]]` input.
#[derive(Debug, Clone)]
pub struct FileInput {
    /// Input name.
    pub name: String,
    /// Glob patterns.
    pub include: Vec<String>,
    /// Longer lines are cut.
    pub max_line_bytes: usize,
    /// Last line without newline is sent after this idle time.
    pub idle_flush_ms: u64,
    /// More `key = value` lines of the `[[file]]` table (e.g. `encoding = "shift_jis"`).
    pub extra: Vec<String>,
}

/// Settings written into agent.toml.
#[derive(Debug, Clone)]
pub struct AgentOpts {
    /// Collector endpoints, in failover order.
    pub endpoints: Vec<String>,
    /// `[spool] max_bytes`.
    pub spool_max_bytes: u64,
    /// `[spool] segment_max_bytes`.
    pub spool_segment_max_bytes: u64,
    /// File inputs.
    pub inputs: Vec<FileInput>,
    /// `[batch] max_records`: small values make many small store blocks.
    pub batch_max_records: u32,
}

/// An agent process with its config and spool.
pub struct Agent {
    name: String,
    dir: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

// === impl FileInput ===

impl FileInput {
    /// An input reading files matching `glob`, with test-friendly defaults.
    pub fn new(name: &str, glob: &Path) -> Self {
        FileInput {
            name: name.to_string(),
            include: vec![glob.display().to_string()],
            max_line_bytes: 64 << 10,
            idle_flush_ms: 300,
            extra: Vec::new(),
        }
    }
}

// === impl AgentOpts ===

impl AgentOpts {
    /// One collector endpoint, a 64 MiB spool of 1 MiB segments, and `inputs`.
    pub fn new(collector: &Collector, inputs: Vec<FileInput>) -> Self {
        AgentOpts {
            endpoints: vec![collector.endpoint()],
            spool_max_bytes: 64 << 20,
            spool_segment_max_bytes: 1 << 20,
            inputs,
            batch_max_records: 5000,
        }
    }

    fn render(&self) -> String {
        let endpoints: Vec<String> = self.endpoints.iter().map(|e| format!("{e:?}")).collect();
        let mut s = format!(
            "version = 1\n\n[collector]\nendpoints = [{}]\nca_cert = \"ca.pem\"\n\
             cert = \"agent.pem\"\nkey = \"agent.key\"\n\n[spool]\ndir = \"spool\"\n\
             max_bytes = {}\nsegment_max_bytes = {}\nfsync_interval_ms = 50\nfsync_bytes = 0\n\n\
             [batch]\nmax_records = {}\nmax_bytes = 1048576\nmax_wait_ms = 200\nzstd_level = 1\n\n\
             [shipper]\nmax_in_flight = 8\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n\
             heartbeat_interval_secs = 1\n",
            endpoints.join(", "),
            self.spool_max_bytes,
            self.spool_segment_max_bytes,
            self.batch_max_records,
        );
        for i in &self.inputs {
            let include: Vec<String> = i.include.iter().map(|g| format!("{g:?}")).collect();
            write!(
                s,
                "\n[[file]]\nname = {:?}\ninclude = [{}]\nstart_at = \"beginning\"\n\
                 max_line_bytes = {}\nidle_flush_ms = {}\n",
                i.name,
                include.join(", "),
                i.max_line_bytes,
                i.idle_flush_ms
            )
            .expect("writing to a String cannot fail");
            for line in &i.extra {
                s.push_str(line);
                s.push('\n');
            }
        }
        s
    }
}

// === impl Agent ===

impl Agent {
    /// Issues a certificate for `name` from `collector` and writes the agent's config (not started).
    pub fn enroll(
        sandbox: &Sandbox,
        collector: &Collector,
        name: &str,
        opts: &AgentOpts,
    ) -> Result<Agent> {
        let dir = sandbox.path().join(name);
        collector.issue_agent_cert(name, &dir, &[])?;
        Agent::with_certs(sandbox, name, &dir, opts)
    }

    /// An agent whose `dir` already holds ca.pem, agent.pem and agent.key.
    pub fn with_certs(
        sandbox: &Sandbox,
        name: &str,
        dir: &Path,
        opts: &AgentOpts,
    ) -> Result<Agent> {
        std::fs::write(dir.join("agent.toml"), opts.render())?;
        Ok(Agent {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            log: sandbox.log_path(name),
            proc: None,
        })
    }

    /// Starts `logship-agent run`.
    pub fn start(&mut self) -> Result<()> {
        if self.proc.is_some() {
            bail!("{} is already running", self.name);
        }
        let mut cmd = Command::new(bin("logship-agent"));
        cmd.arg("run").arg("--config").arg(self.config_path());
        self.proc = Some(Proc::spawn(&self.name, cmd, &self.log)?);
        Ok(())
    }

    /// Starts this agent's config with another program, such as the Windows agent under Wine
    /// (`cmd` gets no arguments added).
    pub fn start_command(&mut self, cmd: Command) -> Result<()> {
        if self.proc.is_some() {
            bail!("{} is already running", self.name);
        }
        self.proc = Some(Proc::spawn(&self.name, cmd, &self.log)?);
        Ok(())
    }

    /// Stops the agent with SIGTERM (it must exit cleanly).
    pub fn stop(&mut self) -> Result<()> {
        match self.proc.take() {
            Some(p) => p.terminate(STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Stops the agent with SIGINT (Ctrl+C; Wine turns it into a console Ctrl+C event for the
    /// Windows agent); it must exit cleanly.
    pub fn interrupt(&mut self) -> Result<()> {
        match self.proc.take() {
            Some(p) => p.signal_and_wait("INT", STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Kills the agent with SIGKILL.
    pub fn kill9(&mut self) -> Result<()> {
        match self.proc.take() {
            Some(p) => p.kill9(),
            None => Ok(()),
        }
    }

    /// Fails if the agent process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(p) = self.proc.as_mut()
            && let Some(status) = p.exited()?
        {
            bail!("agent {} exited with {status}", self.name);
        }
        Ok(())
    }

    /// Process id of the running agent.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Peak resident memory (VmHWM) of the running agent, in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        match self.proc.as_ref() {
            Some(p) => p.peak_rss_kib(),
            None => bail!("agent {} is not running", self.name),
        }
    }

    /// agent.toml.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// Everything the agent logged so far.
    pub fn log_text(&self) -> Result<String> {
        Ok(String::from_utf8_lossy(&std::fs::read(&self.log)?).into_owned())
    }
}
