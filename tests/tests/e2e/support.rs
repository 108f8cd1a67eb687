//! Setup shared by the areas: a started collector with one started agent tailing one glob.

use std::io::Write as _;
use std::path::Path;

use anyhow::Result;
use logship_e2e::{Agent, AgentOpts, Collector, CollectorOpts, FileInput, Sandbox, numbered_line};

/// A running collector and a running agent named "agent1" with input `input` on `glob`.
pub(crate) fn pair(sandbox: &Sandbox, input: FileInput) -> Result<(Collector, Agent)> {
    let mut collector = Collector::init(sandbox, "collector", &CollectorOpts::default())?;
    collector.start()?;
    let opts = AgentOpts::new(&collector, vec![input]);
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
