//! `logship-agent service install|uninstall|start|stop`: the agent as a Windows service.
//!
//! On Windows (`windows.rs`, the `windows-service` crate) the service "logship-agent" runs this
//! executable as `service dispatch --config PATH` under the Service Control Manager, which
//! calls the same run loop as `logship-agent run`; a Stop, Shutdown or Preshutdown control
//! cancels it exactly as SIGTERM or Ctrl+C does, so the inputs flush their last batch and the
//! spool is fsync'd before the service reports "stopped". The service logs to a file next to
//! its config ([`log_file`]) and warnings, errors and its own start/stop to the Application
//! event log (`eventlog_layer.rs`; the source is registered at install, `event_source.rs`).
//!
//! Invariants:
//! - `install` refuses a config that does not validate (exit 64), so an installed service
//!   starts with a config that did; the config path is stored absolute.
//! - A service run that ends in an error reports a service-specific exit code, which the
//!   failure actions set at install (restart after 5 s, 30 s, then every 60 s) act on.
//! - Elsewhere than Windows the subcommand exists and fails with [`EXIT_UNAVAILABLE`], saying
//!   what to use instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::ServiceCommand;
use crate::config::Config;

#[cfg(windows)]
pub mod event_source;
#[cfg(windows)]
pub mod eventlog_layer;
#[cfg(windows)]
mod windows;

/// Name of the service (and of its Application event log source).
pub const SERVICE_NAME: &str = "logship-agent";
/// Exit code of `service` where there are no Windows services (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// The service's log file is cut over to `.1` at start once it is this large.
pub const MAX_LOG_BYTES: u64 = 10 * 1024 * 1024;

/// How the binary runs the agent until `shutdown` is cancelled (builds its runtime and calls
/// [`crate::run::run`]); passed in so the service runs exactly what `run` runs.
pub type RunAgent = fn(Config, CancellationToken) -> anyhow::Result<()>;

/// The service's log file for config file `config`: `<config folder>\logs\logship-agent.log`.
pub fn log_file(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join("logs")
        .join("logship-agent.log")
}

/// Runs `logship-agent service ACTION`. `log_level` is the `--log-level` filter (the service's
/// own logging is set up here, as it has no console).
pub fn command(action: ServiceCommand, log_level: &str, run: RunAgent) -> anyhow::Result<ExitCode> {
    imp(action, log_level, run)
}

#[cfg(windows)]
fn imp(action: ServiceCommand, log_level: &str, run: RunAgent) -> anyhow::Result<ExitCode> {
    windows::command(action, log_level, run)
}

#[cfg(not(windows))]
fn imp(action: ServiceCommand, _log_level: &str, _run: RunAgent) -> anyhow::Result<ExitCode> {
    let what = match action {
        ServiceCommand::Install { .. } => "install",
        ServiceCommand::Uninstall => "uninstall",
        ServiceCommand::Start => "start",
        ServiceCommand::Stop => "stop",
        ServiceCommand::Dispatch { .. } => "dispatch",
    };
    eprintln!(
        "error: `logship-agent service {what}` manages the Windows service and works on Windows \
         only; here the agent runs under systemd (systemctl enable --now logship-agent)"
    );
    Ok(ExitCode::from(EXIT_UNAVAILABLE))
}

/// Moves `file` to `file.1` (replacing it) when it has reached [`MAX_LOG_BYTES`].
pub fn cut_over_log(file: &Path) -> std::io::Result<()> {
    match std::fs::metadata(file) {
        Ok(m) if m.len() >= MAX_LOG_BYTES => {
            let mut old = file.as_os_str().to_owned();
            old.push(".1");
            std::fs::rename(file, PathBuf::from(old))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_file_sits_in_logs_next_to_the_config() {
        assert_eq!(
            log_file(Path::new("/x/logship/agent.toml")),
            PathBuf::from("/x/logship/logs/logship-agent.log")
        );
    }

    #[test]
    fn a_full_log_is_cut_over_once_and_a_small_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        cut_over_log(&log).unwrap();
        std::fs::write(&log, b"small").unwrap();
        cut_over_log(&log).unwrap();
        assert!(log.try_exists().unwrap());
        std::fs::write(&log, vec![b'x'; MAX_LOG_BYTES as usize]).unwrap();
        cut_over_log(&log).unwrap();
        assert!(!log.try_exists().unwrap());
        assert_eq!(
            std::fs::metadata(dir.path().join("a.log.1")).unwrap().len(),
            MAX_LOG_BYTES
        );
    }
}
