//! The `agent.toml` that `enroll` writes: the collector it enrolled with, absolute paths to the
//! key, certificate and CA it wrote, the spool beside them, and one file input for the usual
//! system logs. A test loads it with the agent's own config loader, so the two cannot drift.

use std::path::Path;

/// Renders agent.toml for `endpoint` with the certificates (and spool) in `dir` (absolute).
pub fn agent_toml(endpoint: &str, dir: &Path) -> String {
    let d = dir.display().to_string();
    let q = |name: &str| toml_string(&format!("{d}/{name}"));
    format!(
        r#"# logship agent configuration (written by `logship-agent enroll`).
# Check it with: logship-agent check-config --config <this file>
version = 1

[collector]
# Collector addresses, tried in order; the agent fails over to the next one.
endpoints = [{endpoint}]
ca_cert = {ca}
# Renewed by the agent itself when a third of its lifetime is left.
cert = {cert}
key = {key}        # mode 0600; made on this machine, never leaves it

[spool]
# Crash-safe disk spool: lines are here (fsync'd) before they count as read.
dir = {spool}
max_bytes = 268435456     # 256 MiB; when full, inputs stop reading (nothing is dropped)

# One [[file]] table per file input. More can be added on the command line with --tail GLOB.
[[file]]
name = "varlog"
include = ["/var/log/*.log", "/var/log/syslog", "/var/log/messages"]
exclude = []
# Files present at the agent's very first start: "beginning" or "end".
start_at = "beginning"
"#,
        endpoint = toml_string(endpoint),
        ca = q(super::CA_FILE),
        cert = q(super::CERT_FILE),
        key = q(super::KEY_FILE),
        spool = q("spool"),
    )
}

/// A TOML literal string when possible (no escapes: Windows paths stay readable), else a basic
/// string with escapes.
fn toml_string(s: &str) -> String {
    if !s.contains(['\'', '\n', '\r']) {
        format!("'{s}'")
    } else {
        format!("{:?}", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            super::super::CA_FILE,
            super::super::CERT_FILE,
            super::super::KEY_FILE,
        ] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, agent_toml("collector.example:7443", dir.path())).unwrap();
        let config = crate::config::load(&path, &[]).unwrap();
        assert_eq!(config.endpoints, vec!["collector.example:7443".to_string()]);
        assert_eq!(config.key, dir.path().join("agent.key"));
        assert_eq!(config.spool.dir, dir.path().join("spool"));
    }
}
