//! `logship-agent` binary: parse the CLI, set up logging, load and validate the config (exit 64
//! on problems, before anything starts), install the rustls provider, run until SIGTERM/SIGINT
//! (Windows: Ctrl+C, Ctrl+Break, console close, shutdown), drain with a deadline.
//!
//! Output on stdout goes through [`print_line`]: a closed stdout (`| head`) is a normal end,
//! status 0 and no message, as for `grep`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use logship_agent::cli::{Cli, Command, ServiceCommand};
use logship_agent::config;
use tokio_util::sync::CancellationToken;

/// Exit code for a bad configuration.
const EXIT_CONFIG: u8 = 64;
/// `import-evtx`: every event that could be read is stored, but a file or part of one could
/// not be read (gap records say where).
const EXIT_UNREADABLE: u8 = 65;
/// `import-evtx`: stopped before the collector acked everything; run the same command again.
const EXIT_UNFINISHED: u8 = 75;

fn main() -> ExitCode {
    logship_agent::memory::limit_arenas();
    let cli = Cli::parse();
    // The service (no console) sets up its own logging: a file and the Application event log.
    if !matches!(
        cli.command,
        Command::Service {
            action: ServiceCommand::Dispatch { .. }
        }
    ) {
        logship_logging::init(&quiet_evtx(&cli.log_level));
    }
    match try_main(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main(cli: Cli) -> Result<ExitCode> {
    let (path, tails, check_only) = match cli.command {
        Command::Run { config, tails } => (config, tails, false),
        Command::CheckConfig { config, tails } => (config, tails, true),
        Command::ImportEvtx { config, files } => return import_evtx(&config, files),
        Command::Service { action } => {
            return logship_agent::service::command(action, &cli.log_level, run_agent);
        }
        Command::Enroll(args) => return enroll(&args),
    };
    let cfg = match config::load(&path, &tails) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if check_only {
        return Ok(report_host_checks(&path, &cfg));
    }
    let shutdown = CancellationToken::new();
    run_agent(cfg, shutdown)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the agent until a stop signal or `shutdown` is cancelled (the Windows service cancels
/// it on a Stop or Shutdown control).
fn run_agent(cfg: config::Config, shutdown: CancellationToken) -> Result<()> {
    runtime()?.block_on(async move {
        tokio::spawn(stop_on_signal(shutdown.clone()));
        logship_agent::run::run(cfg, shutdown).await
    })
}

/// `enroll`: a summary on stdout; a refusal is an error (exit 1) naming the reason.
fn enroll(args: &logship_agent::enroll::EnrollArgs) -> Result<ExitCode> {
    let enrolled = runtime()?.block_on(logship_agent::enroll::enroll(args))?;
    print_line(&format!(
        "enrolled as {:?}; certificate valid until {} (renewed automatically while the agent runs)",
        enrolled.name, enrolled.not_after
    ))?;
    if enrolled.config_written {
        print_line(&format!("wrote {}", enrolled.config.display()))?;
    } else {
        print_line(&format!("kept the existing {}", enrolled.config.display()))?;
    }
    print_line(&format!(
        "start it with: logship-agent run --config {}",
        enrolled.config.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `filter` with the `evtx` crate's own logging (a line per chunk at info) at warn, unless the
/// filter names that crate.
fn quiet_evtx(filter: &str) -> String {
    if filter.contains("evtx") {
        filter.to_string()
    } else {
        format!("{filter},evtx=warn")
    }
}

/// Installs the rustls provider and builds the agent's runtime.
fn runtime() -> Result<tokio::runtime::Runtime> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .enable_all()
        .build()?)
}

/// `import-evtx`: one summary line per file on stdout, problems on stderr.
fn import_evtx(path: &std::path::Path, files: Vec<std::path::PathBuf>) -> Result<ExitCode> {
    let cfg = match config::load_for_import(path) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{}: {p}", path.display());
            }
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let outcome = runtime()?.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        logship_agent::evtx::import(cfg, files, shutdown).await
    })?;
    for f in &outcome.files {
        match &f.result {
            Ok(r) => print_line(&format!(
                "{}: {} events imported, {} already imported, {} unreadable parts{}",
                f.path.display(),
                r.imported,
                r.already,
                r.unreadable,
                if r.interrupted { " (interrupted)" } else { "" }
            ))?,
            Err(error) => eprintln!("error: {error}"),
        }
    }
    if !outcome.all_acked {
        eprintln!(
            "error: stopped before the collector acked every event ({} records unacked); run \
             the same command again to finish (nothing is stored twice)",
            outcome.unacked
        );
        return Ok(ExitCode::from(EXIT_UNFINISHED));
    }
    if outcome.some_unreadable() {
        eprintln!(
            "error: some files or parts of files could not be read (see above); every event \
             that could be read is stored, with a gap record for each unreadable part"
        );
        return Ok(ExitCode::from(EXIT_UNREADABLE));
    }
    print_line("every event is stored: the collector acked them all")?;
    Ok(ExitCode::SUCCESS)
}

/// `check-config`'s checks of this machine: warnings are printed, errors fail (exit 64).
fn report_host_checks(path: &std::path::Path, cfg: &config::Config) -> ExitCode {
    let report = config::check_host(cfg, logship_agent::cert::now());
    for w in &report.warnings {
        eprintln!("{}: warning: {w}", path.display());
    }
    for e in &report.errors {
        eprintln!("{}: {e}", path.display());
    }
    if report.errors.is_empty() {
        if let Err(error) = print_line(&format!("{}: ok", path.display())) {
            eprintln!("error: writing to stdout: {error}");
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}

/// Writes one line to stdout; ends the process with status 0 when stdout is a closed pipe.
fn print_line(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

/// Cancels `shutdown` on the first stop request: SIGTERM or SIGINT on Unix; Ctrl+C, Ctrl+Break,
/// closing the console window or a system shutdown on Windows (Windows gives a process about
/// 5 s after a console close; the drain deadline is longer, and whatever is not drained by then
/// is still in the spool).
async fn stop_on_signal(shutdown: CancellationToken) {
    wait_for_stop().await;
    // Cancel first: the stop must not depend on logging.
    shutdown.cancel();
    tracing::info!("Stop signal received; draining.");
}

#[cfg(unix)]
async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(windows)]
async fn wait_for_stop() {
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_shutdown};
    let mut c = ctrl_c().expect("installing a Ctrl+C handler");
    let mut brk = ctrl_break().expect("installing a Ctrl+Break handler");
    let mut close = ctrl_close().expect("installing a console close handler");
    let mut down = ctrl_shutdown().expect("installing a shutdown handler");
    tokio::select! {
        _ = c.recv() => {}
        _ = brk.recv() => {}
        _ = close.recv() => {}
        _ = down.recv() => {}
    }
}
