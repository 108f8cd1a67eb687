//! Stop and restart (issue 7): SIGTERM with an agent connected stops the collector within 5 s
//! with no "did not stop in time", an immediate restart opens the store and carries on exactly
//! once; logs written to a file carry no colour codes even without `NO_COLOR`; and the collector
//! stops on SIGTERM when whoever read its stderr has gone away.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use logship_e2e::{
    Agent, AgentOpts, Collector, CollectorOpts, FileInput, Proc, Sandbox, bin, check_exactly_once,
    run_test, wait_until,
};

use crate::support::append_numbered;

/// What the issue promises for a stop with agents connected.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
const ARRIVAL: Duration = Duration::from_secs(60);

/// Starts `serve` for `collector` the way a service manager does: no `NO_COLOR`, stderr not a
/// terminal (`stderr` is where it goes).
fn serve(collector: &Collector, stderr: Stdio, log: &Path) -> Result<Proc> {
    let out = File::options().create(true).append(true).open(log)?;
    let child = Command::new(bin("logship-collector"))
        .arg("serve")
        .arg("--config")
        .arg(collector.data_dir().join("collector.toml"))
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(stderr)
        .spawn()
        .context("starting the collector")?;
    let mut proc = Proc::adopt("collector", child);
    let addr = collector.endpoint();
    wait_until(ARRIVAL, "collector listening", || {
        if let Some(status) = proc.exited()? {
            bail!("collector exited during start with {status}");
        }
        Ok(std::net::TcpStream::connect(&addr).is_ok())
    })?;
    Ok(proc)
}

fn agent_on(sb: &Sandbox, collector: &Collector, log: &Path) -> Result<Agent> {
    let opts = AgentOpts::new(collector, vec![FileInput::new("app", log)]);
    let mut agent = Agent::enroll(sb, collector, "agent1", &opts)?;
    agent.start()?;
    Ok(agent)
}

#[test]
fn sigterm_with_an_agent_connected_stops_in_time_and_restarts_at_once() {
    run_test(|sb| {
        let app = sb.path().join("app.log");
        append_numbered(&app, 0, 1000, 40)?;
        let collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        let log = sb.log_path("collector");
        let first = serve(&collector, Stdio::from(File::create(&log)?), &log)?;
        let _agent = agent_on(sb, &collector, &app)?;
        wait_until(ARRIVAL, "1000 lines stored", || {
            Ok(collector.count()? == 1000)
        })?;
        append_numbered(&app, 1000, 2000, 40)?;
        first.terminate(STOP_DEADLINE)?;
        let restarted = serve(&collector, Stdio::from(log_append(&log)?), &log)?;
        wait_until(ARRIVAL, "2000 lines stored", || {
            Ok(collector.count()? == 2000)
        })?;
        check_exactly_once(&collector.store(), "app", 2000)?;
        restarted.terminate(STOP_DEADLINE)?;
        let text = std::fs::read_to_string(&log)?;
        for bad in ["did not stop in time", "did not drain in time", "\u{1b}["] {
            ensure!(!text.contains(bad), "collector log contains {bad:?}");
        }
        ensure!(
            text.matches("Collector stopped.").count() == 2,
            "two clean stops expected"
        );
        Ok(())
    });
}

#[test]
fn collector_stops_on_sigterm_with_its_stderr_closed() {
    run_test(|sb| {
        let app = sb.path().join("app.log");
        append_numbered(&app, 0, 100, 40)?;
        let collector = Collector::init(sb, "collector", &CollectorOpts::default())?;
        let log = sb.log_path("collector");
        let mut proc = serve(&collector, Stdio::piped(), &log)?;
        // The reader goes away (a closed terminal, a logger that died): writes now fail.
        drop(proc.take_stderr().context("stderr is piped")?);
        let _agent = agent_on(sb, &collector, &app)?;
        wait_until(
            ARRIVAL,
            "100 lines stored",
            || Ok(collector.count()? == 100),
        )?;
        proc.terminate(STOP_DEADLINE)
    });
}

fn log_append(path: &Path) -> Result<File> {
    Ok(File::options().append(true).open(path)?)
}
