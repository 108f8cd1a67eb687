//! The Windows agent (cross-built for x86_64-pc-windows-gnu) under Wine ships a file to the
//! native Linux collector over mutual TLS: numbered lines arrive exactly once across a SIGKILL
//! of the Windows agent while lines are being written, and across a rotation done by a Windows
//! program (`cmd /c move`) while the agent holds the file open (Windows sharing rules apply
//! between Wine processes: the agent's `FILE_SHARE_DELETE` is what lets the move succeed).
//! The include glob is written Windows-style: drive letter and backslashes. At the end Ctrl+C
//! stops the agent cleanly.
//!
//! A second test runs the same agent as a Windows service under Wine's Service Control Manager.
//!
//! Needs wine64, mingw-w64 and the cross-built exe (`scripts/test.sh` installs and builds
//! them); a missing one fails the test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Wine, check_exactly_once, run_test,
    wait_until, windows_path,
};

use crate::support::append_numbered;

const ARRIVAL: Duration = Duration::from_secs(120);
/// Idle time after the last line arrived, before the exactly-once check (5 glob re-scans).
const SETTLE: Duration = Duration::from_secs(5);
/// Lines in all; the first `BEFORE_START` exist before the agent starts.
const LINES: u64 = 6_000;
const BEFORE_START: u64 = 1_000;
/// The writer's progress at which the agent is killed, and at which the file is rotated.
const KILL_AT: u64 = 2_500;
const ROTATE_AT: u64 = 4_000;
/// Lines per append; the writer pauses between appends so the kill lands mid-stream.
const CHUNK: u64 = 50;

#[test]
fn windows_agent_under_wine_ships_exactly_once_across_kill_and_rotation() {
    run_test(|sb| {
        let wine = Wine::install(sb)?;
        let logs = sb.path().join("winlogs");
        std::fs::create_dir(&logs)?;
        let log = logs.join("app.log");
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let mut input = FileInput::new("app", &log);
        input.include = vec![format!(r"{}\app.log*", windows_path(&logs))];
        let opts = AgentOpts::new(&collector, vec![input]);
        let mut agent = Agent::enroll(sb, &collector, "winagent", &opts)?;
        let start = |agent: &mut Agent| {
            let mut cmd = wine.agent();
            cmd.arg("run")
                .arg("--config")
                .arg(windows_path(&agent.config_path()));
            agent.start_command(cmd)
        };

        append_numbered(&log, 0, BEFORE_START, 40)?;
        start(&mut agent)?;
        wait_until(ARRIVAL, "the lines written before start", || {
            agent.check_alive()?;
            Ok(collector.count()? >= BEFORE_START)
        })?;

        let progress = AtomicU64::new(BEFORE_START);
        std::thread::scope(|scope| -> Result<()> {
            let writer = scope.spawn(|| write_and_rotate(&wine, &logs, &progress));
            wait_until(ARRIVAL, "the writer to reach the kill point", || {
                Ok(progress.load(Ordering::SeqCst) >= KILL_AT || writer.is_finished())
            })?;
            agent.kill9()?;
            eprintln!(
                "killed the Windows agent at line {} with {} stored",
                progress.load(Ordering::SeqCst),
                collector.count()?
            );
            start(&mut agent)?;
            writer.join().expect("writer thread panicked")
        })?;

        wait_until(ARRIVAL, "every line stored", || {
            agent.check_alive()?;
            Ok(collector.count()? >= LINES)
        })?;
        // Let the agent sit idle past several glob re-scans and release intervals: a file whose
        // identity changed between scans would be released and read again from 0 now.
        std::thread::sleep(SETTLE);
        check_exactly_once(&collector.store(), "app", LINES)?;
        // Ctrl+C (SIGINT, which Wine delivers as a console Ctrl+C event): drain and exit 0.
        agent.interrupt()?;
        let text = agent.log_text()?;
        ensure!(
            text.contains("Stop signal received; draining.") && text.contains("Agent stopped."),
            "the Windows agent did not stop cleanly on Ctrl+C:\n{text}"
        );
        ensure!(
            !text.contains("panicked"),
            "the Windows agent panicked:\n{text}"
        );
        // Identity (volume serial + file index) carried the read position across the restart
        // and followed the file through the rename.
        ensure!(
            text.contains("Resuming file.") && text.contains("File renamed."),
            "the Windows agent did not resume and follow the renamed file:\n{text}"
        );
        Ok(())
    });
}

/// Appends lines `BEFORE_START..LINES` in chunks; at `ROTATE_AT` moves `app.log` to
/// `app.log.1` with a Windows program, then writes to a new `app.log`.
fn write_and_rotate(wine: &Wine, logs: &std::path::Path, progress: &AtomicU64) -> Result<()> {
    let log = logs.join("app.log");
    let mut next = BEFORE_START;
    while next < LINES {
        if next == ROTATE_AT {
            let from = windows_path(&log);
            let to = windows_path(&logs.join("app.log.1"));
            wine.cmd(&format!("move /Y {from} {to}"))
                .context("rotating the file the agent holds open")?;
            ensure!(!log.try_exists()?, "cmd move left {}", log.display());
        }
        let end = (next + CHUNK).min(LINES);
        append_numbered(&log, next, end, 40)?;
        next = end;
        progress.store(next, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Lines the service test writes in each of its three phases.
const SERVICE_PHASE: u64 = 1_500;

/// The Windows agent as a service under Wine's Service Control Manager: `service install`
/// registers it (stopped), `service start` runs it and it ships a file to the Linux collector
/// over mutual TLS; `service stop` drains it (its log says the spool was flushed) and the SCM
/// records exit code 0; started again it resumes where it stopped, every line stored exactly
/// once; `service uninstall` removes it.
///
/// Not shown here, because Wine 8's SCM does not do it: restart on failure (Wine does not
/// notice a service process that dies: `sc query` keeps saying RUNNING after `taskkill /F`).
/// A kill of the Windows agent is covered by the test above.
#[test]
fn windows_agent_as_a_service_under_wine_ships_and_stops_cleanly() {
    run_test(|sb| {
        let wine = Wine::install(sb)?;
        let logs = sb.path().join("winlogs");
        std::fs::create_dir(&logs)?;
        let log = logs.join("app.log");
        let mut collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        collector.start()?;
        let mut input = FileInput::new("app", &log);
        input.include = vec![format!(r"{}\app.log", windows_path(&logs))];
        let opts = AgentOpts::new(&collector, vec![input]);
        let agent = Agent::enroll(sb, &collector, "winsvc", &opts)?;
        let config = windows_path(&agent.config_path());
        let service_log = agent
            .config_path()
            .with_file_name("logs")
            .join("logship-agent.log");
        let service_log_text = || -> Result<String> {
            Ok(String::from_utf8_lossy(&std::fs::read(&service_log)?).into_owned())
        };

        ensure!(
            wine.sc_query("logship-agent")?.is_none(),
            "the service exists before it was installed"
        );
        let out = wine.agent_service(&["install", "--config", &config])?;
        ensure!(out.contains("installed"), "service install said: {out}");
        // Wine's SCM in a fresh prefix can miss a just-created service for a moment.
        let mut query = String::new();
        wait_until(ARRIVAL, "sc query to find the installed service", || {
            query = wine.sc_query("logship-agent")?.unwrap_or_default();
            Ok(!query.is_empty())
        })?;
        ensure!(query.contains("STOPPED"), "after install: {query}");
        // The Application event log source, so Event Viewer shows the agent's entries as text.
        const SOURCE_KEY: &str =
            r"HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\logship-agent";
        let source = wine
            .reg_query(SOURCE_KEY)?
            .context("the event log source is not registered")?;
        ensure!(
            source.contains("EventMessageFile") && source.contains("EventLogMessages.dll"),
            "event log source: {source}"
        );

        // Phase 1: the service ships what is there, then stops cleanly.
        append_numbered(&log, 0, SERVICE_PHASE, 40)?;
        wine.agent_service(&["start"])?;
        let query = wine.sc_query("logship-agent")?.context("sc query")?;
        ensure!(query.contains("RUNNING"), "after service start: {query}");
        wait_until(ARRIVAL, "phase 1 lines stored", || {
            Ok(collector.count()? >= SERVICE_PHASE)
        })?;
        wine.agent_service(&["stop"])?;
        let query = wine.sc_query("logship-agent")?.context("sc query")?;
        ensure!(
            query.contains("STOPPED") && query.contains("WIN32_EXIT_CODE    : 0"),
            "after service stop: {query}"
        );
        let text = service_log_text()?;
        ensure!(
            text.contains("Service stop requested; draining.")
                && text.contains("Agent stopped.")
                && text.contains("logship-agent service stopped; spool flushed."),
            "the service did not stop cleanly:\n{text}"
        );

        // Phase 2: lines written while it is stopped, then more while it runs again; it
        // resumes from the positions spooled before the stop.
        append_numbered(&log, SERVICE_PHASE, 2 * SERVICE_PHASE, 40)?;
        wine.agent_service(&["start"])?;
        let mut next = 2 * SERVICE_PHASE;
        while next < 3 * SERVICE_PHASE {
            let end = (next + CHUNK).min(3 * SERVICE_PHASE);
            append_numbered(&log, next, end, 40)?;
            next = end;
            std::thread::sleep(Duration::from_millis(20));
        }
        wait_until(ARRIVAL, "every line stored", || {
            Ok(collector.count()? >= 3 * SERVICE_PHASE)
        })?;
        std::thread::sleep(SETTLE);
        check_exactly_once(&collector.store(), "app", 3 * SERVICE_PHASE)?;
        wine.agent_service(&["stop"])?;

        let out = wine.agent_service(&["uninstall"])?;
        ensure!(out.contains("removed"), "service uninstall said: {out}");
        ensure!(
            wine.sc_query("logship-agent")?.is_none(),
            "the service still exists after uninstall"
        );
        ensure!(
            wine.reg_query(SOURCE_KEY)?.is_none(),
            "the event log source is still registered after uninstall"
        );
        let again = wine.agent().args(["service", "start"]).output()?;
        let said = String::from_utf8_lossy(&again.stderr);
        ensure!(
            !again.status.success() && said.contains("is not installed"),
            "service start after uninstall: {} {said}",
            again.status
        );
        let text = service_log_text()?;
        ensure!(!text.contains("panicked"), "the service panicked:\n{text}");
        let runs = text.matches("logship-agent service running.").count();
        ensure!(
            runs == 2,
            "expected two service runs, the log has {runs}:\n{text}"
        );
        Ok(())
    });
}

/// The Windows example config (`deploy/config/agent.windows.example.toml`, with its
/// `[[eventlog]]` inputs) with real certificates beside it.
fn windows_example(sb: &logship_e2e::Sandbox, pki: &Collector) -> Result<std::path::PathBuf> {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/config/agent.windows.example.toml");
    let dir = sb.path().join("winexample");
    pki.issue_agent_cert("winexample", &dir, &[])?;
    let copy = dir.join("agent.toml");
    std::fs::copy(&example, &copy).context("copying the Windows example")?;
    Ok(copy)
}

/// The Windows example passes the Windows agent's `check-config` (under Wine), and the
/// Linux agent refuses its `[[eventlog]]` inputs with a clear message.
#[test]
fn windows_example_config_passes_check_config_on_windows_and_is_refused_on_linux() {
    run_test(|sb| {
        let pki = Collector::init(sb, "pki", &CollectorOpts::default())?;
        let config = windows_example(sb, &pki)?;
        let wine = Wine::install(sb)?;
        let out = wine
            .agent()
            .args(["check-config", "--config", &windows_path(&config)])
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            out.status.success() && text.contains(": ok"),
            "Windows check-config of the example: {} {text}",
            out.status
        );
        let out = std::process::Command::new(logship_e2e::bin("logship-agent"))
            .args(["check-config", "--config"])
            .arg(&config)
            .output()?;
        let text = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(64)
                && text.matches("reads the Windows Event Log").count() == 4,
            "Linux check-config of the Windows example: {} {text}",
            out.status
        );
        Ok(())
    });
}

/// `logship-agent service ...` exists on Linux and says it is for Windows (exit 69).
#[test]
fn service_subcommand_on_linux_says_it_is_windows_only() {
    run_test(|_sb| {
        for args in [
            &["service", "install", "--config", "/nonexistent/agent.toml"][..],
            &["service", "uninstall"],
            &["service", "start"],
            &["service", "stop"],
        ] {
            let out = std::process::Command::new(logship_e2e::bin("logship-agent"))
                .args(args)
                .output()?;
            let text = String::from_utf8_lossy(&out.stderr);
            ensure!(
                out.status.code() == Some(69) && text.contains("works on Windows only"),
                "{args:?}: {} {text}",
                out.status
            );
        }
        Ok(())
    });
}
