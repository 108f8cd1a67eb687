//! Setup shared by the areas: a started collector with one started agent tailing one glob.

use std::io::Write as _;
use std::path::Path;

use anyhow::Result;
use logship_e2e::{Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, numbered_line};

/// A running collector and a running agent named "agent1" with input `input` on `glob`.
pub(crate) fn pair(sandbox: &Sandbox, input: FileInput) -> Result<(Collector, Agent)> {
    pair_inputs(sandbox, vec![input])
}

/// A running collector and a running agent named "agent1" with these inputs.
pub(crate) fn pair_inputs(sandbox: &Sandbox, inputs: Vec<FileInput>) -> Result<(Collector, Agent)> {
    let mut collector = Collector::init(sandbox, "collector", &CollectorOpts::default())?;
    collector.start()?;
    let opts = AgentOpts::new(&collector, inputs);
    let mut agent = Agent::enroll(sandbox, &collector, "agent1", &opts)?;
    agent.start()?;
    Ok((collector, agent))
}

/// Appends numbered lines `from..to` to `path` (each with `filler` random characters).
pub(crate) fn append_numbered(path: &Path, from: u64, to: u64, filler: usize) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut w = std::io::BufWriter::new(file);
    for i in from..to {
        writeln!(w, "{}", numbered_line(i, filler))?;
    }
    w.flush()?;
    Ok(())
}

/// RFC 3339 (UTC, whole seconds) for now + `secs`, by `date`, which every Debian has.
pub(crate) fn rfc3339_in(secs: i64) -> Result<String> {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("{secs} seconds"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()?;
    anyhow::ensure!(out.status.success(), "date failed with {}", out.status);
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Web access and sshd lines for the field tests: statuses 200, 404, 500 and one failed login.
pub(crate) const SECURITY_LINES: &str = "\
203.0.113.9 - - [25/Nov/2026:09:00:00 +0000] \"GET /ok HTTP/1.1\" 200 12 \"-\" \"curl/8.5.0\"
203.0.113.9 - - [25/Nov/2026:09:00:01 +0000] \"GET /missing HTTP/1.1\" 404 12 \"-\" \"curl/8.5.0\"
203.0.113.9 - - [25/Nov/2026:09:00:02 +0000] \"GET /boom HTTP/1.1\" 500 12 \"-\" \"curl/8.5.0\"
Nov 25 09:10:00 gw sshd[811]: Failed password for alice from 203.0.113.7 port 40001 ssh2
";

/// A collector and an agent named `agent` that has shipped `numbered` numbered lines followed by
/// [`SECURITY_LINES`]; returns them and the number of records stored.
pub(crate) fn shipped(
    sandbox: &Sandbox,
    agent: &str,
    numbered: u64,
) -> Result<(Collector, Agent, u64)> {
    let log = sandbox.path().join("app.log");
    append_numbered(&log, 0, numbered, 100)?;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log)?;
    f.write_all(SECURITY_LINES.as_bytes())?;
    let total = numbered + SECURITY_LINES.lines().count() as u64;
    let mut collector = Collector::init(sandbox, "collector", &CollectorOpts::default())?;
    collector.start()?;
    let opts = AgentOpts::new(&collector, vec![FileInput::new("app", &log)]);
    let mut a = Agent::enroll(sandbox, &collector, agent, &opts)?;
    a.start()?;
    let arrival = std::time::Duration::from_secs(90);
    logship_e2e::wait_until(arrival, "every line stored", || {
        Ok(collector.count()? == total)
    })?;
    logship_e2e::wait_until(arrival, "the agent's heartbeat in status.json", || {
        Ok(collector
            .status()?
            .is_some_and(|s| s["agents"][agent]["online"] == true))
    })?;
    Ok((collector, a, total))
}
