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
