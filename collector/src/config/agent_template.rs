//! The commented, ready-to-run `agent.toml` written by `issue-agent-cert`.
//!
//! Its format belongs to the agent (`agent/src/config`); a test in the agent parses what this
//! writes, so the two cannot drift apart.

/// Renders agent.toml for the given collector endpoints (certificate paths are relative to it).
pub fn agent_template(collectors: &[String]) -> String {
    let endpoints = collectors
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# logship agent configuration (written by `logship-collector issue-agent-cert`).
# Check it with: logship-agent check-config --config <this file>
version = 1

[collector]
# Collector addresses, tried in order; the agent fails over to the next one.
endpoints = [{endpoints}]
# Paths are relative to this file.
ca_cert = "ca.pem"
cert = "agent.pem"
key = "agent.key"        # mode 0600; never leaves this machine

[spool]
# Crash-safe disk spool: lines are here (fsync'd) before they count as read.
dir = "spool"
max_bytes = 268435456     # 256 MiB; when full, inputs stop reading (nothing is dropped)
fsync_interval_ms = 200

[batch]
max_records = 20000
max_bytes = 2097152       # uncompressed bytes per batch
max_wait_ms = 1000
zstd_level = 1

[shipper]
max_in_flight = 8
backoff_initial_ms = 200
backoff_max_ms = 30000
heartbeat_interval_secs = 30

# One [[file]] table per file input. More can be added on the command line with --tail GLOB.
[[file]]
name = "varlog"
include = ["/var/log/*.log", "/var/log/syslog", "/var/log/messages"]
exclude = []
# Files present at the agent's very first start: "beginning" or "end".
start_at = "beginning"
max_line_bytes = 65536
"#,
    )
}
