//! The Windows side of `logship-agent service`: install, uninstall, start and stop through the
//! Service Control Manager, and the service itself (`service dispatch`), with the
//! `windows-service` crate.
//!
//! Invariants: see the parent module. `define_windows_service!` generates the one `extern
//! "system"` entry point the SCM calls; it is the only unsafe code here (hence the allow).
#![allow(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::{RunAgent, SERVICE_NAME, cut_over_log, log_file};
use crate::cli::ServiceCommand;

/// Exit code for a config that does not validate (as `run`).
const EXIT_CONFIG: u8 = 64;
/// How long `start` and `stop` wait for the service to get there.
const WAIT: Duration = Duration::from_secs(60);
/// What the service tells the SCM it needs to stop (drain deadline plus fsync, with margin).
const STOP_HINT: Duration = Duration::from_secs(20);
/// Service-specific exit code of a run that failed (the failure actions restart it).
const EXIT_FAILED: u32 = 1;

/// Config path and run function of the service started in this process.
static SERVICE: OnceLock<(PathBuf, RunAgent)> = OnceLock::new();

/// Runs one `service` subcommand.
pub(super) fn command(action: ServiceCommand, log_level: &str, run: RunAgent) -> Result<ExitCode> {
    match action {
        ServiceCommand::Install { config } => install(&config),
        ServiceCommand::Uninstall => uninstall().map(|()| ExitCode::SUCCESS),
        ServiceCommand::Start => start().map(|()| ExitCode::SUCCESS),
        ServiceCommand::Stop => stop().map(|()| ExitCode::SUCCESS),
        ServiceCommand::Dispatch { config } => dispatch(config, log_level, run),
    }
}

fn install(config: &Path) -> Result<ExitCode> {
    let config = std::path::absolute(config).context("making the config path absolute")?;
    if let Err(problems) = crate::config::load(&config, &[]) {
        for p in &problems {
            eprintln!("{}: {p}", config.display());
        }
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("connecting to the Service Control Manager (run as Administrator)")?;
    let info = ServiceInfo {
        name: OsString::from(SERVICE_NAME),
        display_name: OsString::from("logship agent"),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: vec![
            OsString::from("service"),
            OsString::from("dispatch"),
            OsString::from("--config"),
            config.clone().into_os_string(),
        ],
        dependencies: vec![],
        account_name: None, // LocalSystem: may read every channel, Security included.
        account_password: None,
    };
    let service = manager
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS,
        )
        .map_err(|e| match os_error(&e) {
            Some(1073) => anyhow::anyhow!(
                "the service {SERVICE_NAME:?} is already installed; `logship-agent service \
                 uninstall` first to install it again"
            ),
            _ => anyhow::Error::new(e).context("creating the service"),
        })?;
    service
        .set_description(
            "Ships this machine's logs and Windows event logs to the logship collector.",
        )
        .context("describing the service")?;
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(5), restart(30), restart(60)]),
        })
        .context("setting restart on failure")?;
    // Also restart when the service reports "stopped" with an error (a run that failed), not
    // only when its process dies. Wine's SCM does not know this setting (error 124): say so.
    if let Err(e) = service.set_failure_actions_on_non_crash_failures(true) {
        match os_error(&e) {
            Some(124) => eprintln!(
                "warning: this system does not support restarting a service that stops with an \
                 error; the service restarts only if its process dies"
            ),
            _ => return Err(anyhow::Error::new(e).context("setting restart on failure")),
        }
    }
    if let Err(error) = super::event_source::register() {
        eprintln!(
            "warning: the Application event log source was not registered ({error}); the \
             service logs there anyway, Event Viewer adds a \"description not found\" note"
        );
    }
    println!(
        "service {SERVICE_NAME:?} installed (automatic start, LocalSystem) with config {}; \
         start it with `logship-agent service start`; it logs to {}",
        config.display(),
        log_file(&config).display()
    );
    Ok(ExitCode::SUCCESS)
}

fn open(access: ServiceAccess) -> Result<windows_service::service::Service> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("connecting to the Service Control Manager")?;
    manager
        .open_service(SERVICE_NAME, access)
        .map_err(|e| match os_error(&e) {
            Some(1060) => anyhow::anyhow!(
                "the service {SERVICE_NAME:?} is not installed (`logship-agent service install`)"
            ),
            _ => anyhow::Error::new(e).context("opening the service (run as Administrator)"),
        })
}

fn uninstall() -> Result<()> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        service.stop().context("stopping the service")?;
        wait_for(&service, ServiceState::Stopped)?;
    }
    service.delete().context("removing the service")?;
    if let Err(error) = super::event_source::unregister() {
        eprintln!("warning: the Application event log source was not removed ({error})");
    }
    println!("service {SERVICE_NAME:?} removed");
    Ok(())
}

fn start() -> Result<()> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::START)?;
    if service.query_status()?.current_state == ServiceState::Running {
        println!("service {SERVICE_NAME:?} is already running");
        return Ok(());
    }
    match service.start::<&OsStr>(&[]) {
        // ERROR_SERVICE_ALREADY_RUNNING: started meanwhile (automatic start).
        Err(e) if os_error(&e) == Some(1056) => {}
        other => other.context("starting the service")?,
    }
    wait_for(&service, ServiceState::Running)?;
    println!("service {SERVICE_NAME:?} running");
    Ok(())
}

fn stop() -> Result<()> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        service.stop().context("stopping the service")?;
        wait_for(&service, ServiceState::Stopped)?;
    }
    println!("service {SERVICE_NAME:?} stopped");
    Ok(())
}

/// Waits (at most [`WAIT`]) until the service is in `state`.
fn wait_for(service: &windows_service::service::Service, state: ServiceState) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = service.query_status()?;
        if status.current_state == state {
            return Ok(());
        }
        if state == ServiceState::Running && status.current_state == ServiceState::Stopped {
            bail!(
                "the service stopped instead of running (exit code {:?}); see its log file",
                status.exit_code
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the service is {:?} after {WAIT:?}, not {state:?}",
                status.current_state
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `service dispatch`: hands this process to the SCM, which calls [`service_main`].
fn dispatch(config: PathBuf, log_level: &str, run: RunAgent) -> Result<ExitCode> {
    let log = log_file(&config);
    init_logging(log_level, &log)?;
    SERVICE
        .set((config, run))
        .map_err(|_| anyhow::anyhow!("the service was dispatched twice"))?;
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(|e| {
        anyhow::Error::new(e).context(
            "this command is run by the Service Control Manager; use `logship-agent service \
             start` (or `run` in a console)",
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The service's logging: every line to its log file, warnings and errors (and the service's
/// start and stop) to the Application event log.
fn init_logging(filter: &str, file: &Path) -> Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the log folder {}", dir.display()))?;
    }
    cut_over_log(file).with_context(|| format!("cutting over {}", file.display()))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("opening the log file {}", file.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{filter},evtx=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Mutex::new(out)),
        )
        .with(super::eventlog_layer::EventLogLayer::new())
        .try_init()
        .context("setting up logging")?;
    Ok(())
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let Some((config, run)) = SERVICE.get() else {
        return;
    };
    if let Err(error) = run_service(config, *run) {
        tracing::error!(
            error = format!("{error:#}"),
            "The logship-agent service failed."
        );
    }
}

fn status(state: ServiceState, exit_code: ServiceExitCode, wait_hint: Duration) -> ServiceStatus {
    let controls_accepted = if state == ServiceState::Running {
        ServiceControlAccept::STOP
            | ServiceControlAccept::SHUTDOWN
            | ServiceControlAccept::PRESHUTDOWN
    } else {
        ServiceControlAccept::empty()
    };
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted,
        exit_code,
        checkpoint: 0,
        wait_hint,
        process_id: None,
    }
}

/// Runs the agent until a Stop, Shutdown or Preshutdown control, reporting each state.
fn run_service(config: &Path, run: RunAgent) -> Result<()> {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle_slot: Arc<OnceLock<service_control_handler::ServiceStatusHandle>> = Arc::default();
    let slot = handle_slot.clone();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            // Cancel first: the stop must not depend on logging or status reports.
            token.cancel();
            if let Some(h) = slot.get()
                && let Err(error) = h.set_service_status(status(
                    ServiceState::StopPending,
                    ServiceExitCode::Win32(0),
                    STOP_HINT,
                ))
            {
                tracing::debug!(%error, "Reporting StopPending failed.");
            }
            tracing::info!(control = ?control, "Service stop requested; draining.");
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(SERVICE_NAME, handler)
        .context("registering the service control handler")?;
    // Set here only, once: the handler reads it.
    if handle_slot.set(handle).is_err() {
        tracing::debug!("The service status handle was already set.");
    }
    handle.set_service_status(status(
        ServiceState::StartPending,
        ServiceExitCode::Win32(0),
        Duration::from_secs(10),
    ))?;
    let result = match crate::config::load(config, &[]) {
        Ok(cfg) => {
            handle.set_service_status(status(
                ServiceState::Running,
                ServiceExitCode::Win32(0),
                Duration::ZERO,
            ))?;
            tracing::info!(config = %config.display(), "logship-agent service running.");
            run(cfg, shutdown)
        }
        Err(problems) => Err(anyhow::anyhow!(
            "{}: {}",
            config.display(),
            problems.join("; ")
        )),
    };
    let exit = match &result {
        Ok(()) => {
            tracing::info!("logship-agent service stopped; spool flushed.");
            ServiceExitCode::Win32(0)
        }
        Err(_) => ServiceExitCode::ServiceSpecific(EXIT_FAILED),
    };
    handle.set_service_status(status(ServiceState::Stopped, exit, Duration::ZERO))?;
    result
}

/// The Windows error code inside a windows-service error, if any.
fn os_error(e: &windows_service::Error) -> Option<i32> {
    match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}
