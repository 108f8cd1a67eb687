//! The commented, ready-to-run `agent.toml` written by `issue-agent-cert`.
//!
//! Its format belongs to the agent (`agent/src/config`); a test in the agent parses what this
//! writes, so the two cannot drift apart. Written for the packaged service (`--for-service`)
//! every path is absolute: the unit runs with `ProtectSystem=strict`, where only
//! `/var/lib/logship-agent` is writable, so the certificate and key (which the agent renews)
//! live there with the spool; agent.toml stays in `/etc/logship`.

/// Where the files an agent.toml names live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentLayout {
    /// Certificates beside agent.toml, spool in `spool/` beside it (paths relative to the file).
    BesideConfig,
    /// The packaged service: certificates and spool in `/var/lib/logship-agent`.
    Service,
}

/// Configuration folder of the packaged services.
pub const SERVICE_CONFIG_DIR: &str = "/etc/logship";
/// State folder of the packaged agent service (the unit's `StateDirectory`).
pub const SERVICE_AGENT_STATE_DIR: &str = "/var/lib/logship-agent";

/// Renders agent.toml for the given collector endpoints and file layout.
pub fn agent_template(collectors: &[String], layout: AgentLayout) -> String {
    let (dir, spool, note) = match layout {
        AgentLayout::BesideConfig => (String::new(), "spool".to_string(), "relative to this file"),
        AgentLayout::Service => (
            format!("{SERVICE_AGENT_STATE_DIR}/"),
            format!("{SERVICE_AGENT_STATE_DIR}/spool"),
            "absolute, for the packaged service",
        ),
    };
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
# Paths are {note}.
ca_cert = "{dir}ca.pem"
cert = "{dir}agent.pem"
key = "{dir}agent.key"        # mode 0600; never leaves this machine

[spool]
# Crash-safe disk spool: lines are here (fsync'd) before they count as read.
dir = "{spool}"
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
