//! Command line of `logship-agent` (clap derive).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// logship agent: tails logs, keeps them in a crash-safe spool and ships them to the collector.
#[derive(Debug, Parser)]
#[command(name = "logship-agent", version)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, global = true, default_value = "info", env = "LOGSHIP_LOG")]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent.
    Run {
        /// agent.toml (default: /etc/logship/agent.toml; Windows:
        /// %ProgramData%\logship\agent.toml).
        #[arg(long, default_value_os_t = crate::paths::default_config())]
        config: PathBuf,
        /// Also tail files matching GLOB (repeatable); each becomes an input "tailN".
        #[arg(long = "tail")]
        tails: Vec<String>,
    },
    /// Check a config file and report every problem; exits non-zero on any.
    CheckConfig {
        /// agent.toml (default as for `run`).
        #[arg(long, default_value_os_t = crate::paths::default_config())]
        config: PathBuf,
        /// Globs as for `run --tail`.
        #[arg(long = "tail")]
        tails: Vec<String>,
    },
    /// Enroll this machine with a collector: make a key pair here, send a certificate request
    /// with an enrollment token, trust the collector only through the CA fingerprint given, and
    /// write agent.toml, the key (mode 0600), the certificate and the CA into --out. Exits
    /// non-zero and writes nothing when refused.
    Enroll(crate::enroll::EnrollArgs),
    /// Import exported Windows event logs (.evtx) through the spool and the collector; exits 0
    /// once the collector has acked every event. The config's inputs are not started. A rerun
    /// (after an interruption, or of the same files) stores nothing twice.
    ImportEvtx {
        /// agent.toml (collector, certificates, spool).
        #[arg(long)]
        config: PathBuf,
        /// .evtx files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Manage the Windows service that runs the agent (Windows only; on Linux the agent runs
    /// under systemd).
    Service {
        /// What to do with the service.
        #[command(subcommand)]
        action: ServiceCommand,
    },
}

/// `logship-agent service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Install the service "logship-agent" (automatic start, LocalSystem, restart on failure)
    /// running this executable with the config file given.
    Install {
        /// agent.toml (default: %ProgramData%\logship\agent.toml); checked before installing.
        #[arg(long, default_value_os_t = crate::paths::default_config())]
        config: PathBuf,
    },
    /// Stop the service if it runs, then remove it.
    Uninstall,
    /// Start the service and wait until it runs.
    Start,
    /// Stop the service and wait until it has stopped (its spool flushed).
    Stop,
    /// What the Service Control Manager runs: the agent as a service (not for people).
    #[command(hide = true)]
    Dispatch {
        /// agent.toml.
        #[arg(long)]
        config: PathBuf,
    },
}
