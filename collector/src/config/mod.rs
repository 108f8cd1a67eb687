//! Collector configuration: the raw TOML file (`collector.toml`) and its validated form.
//!
//! Two phases (STYLE.md habit 4): [`RawConfig`] mirrors the file with `deny_unknown_fields`, and
//! [`RawConfig::validate`] resolves paths and checks every rule, returning all problems at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod agent_template;
pub mod forward;
mod host;
pub use agent_template::{
    AgentLayout, SERVICE_AGENT_STATE_DIR, SERVICE_CONFIG_DIR, agent_template,
};
pub use host::{HostReport, check_host, writable_dir};

/// Default listen address of the ingest server.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7443";
/// Default cap on one gRPC message (a compressed batch), 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Default cap on a batch once decompressed, 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;
/// Default cap on records in one batch.
pub const DEFAULT_MAX_BATCH_RECORDS: u32 = 1_000_000;
/// Default cap on concurrent agent connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on batches in flight per connection (received, not yet acked).
pub const DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION: usize = 32;
/// Default collector-wide budget of bytes being decoded, 128 MiB.
pub const DEFAULT_DECODE_BUDGET_BYTES: usize = 128 << 20;
/// Default cap on TLS handshakes in progress.
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;
/// Default cap on TLS handshakes in progress from one source address.
pub const DEFAULT_MAX_HANDSHAKES_PER_SOURCE: usize = 16;
/// Default time a client has to finish its TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 3000;
/// Default segment size before rolling.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 256 << 20;
/// Default segment age before rolling (time partition).
pub const DEFAULT_SEGMENT_MAX_AGE_SECS: u64 = 3600;
/// Default silence after which an agent is stale: ten minutes.
pub const DEFAULT_STALE_AFTER: &str = "10m";
/// Default seconds between two signed checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY_SECS: u64 = 300;

/// The file as written by people. Versioned so old files keep loading.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Format version of this file; only 1 exists.
    pub version: u32,
    /// Where the CA, certificates and the store live. Relative paths are relative to the file.
    pub data_dir: PathBuf,
    /// Address the ingest server listens on, e.g. "0.0.0.0:7443".
    #[serde(default = "default_listen")]
    pub listen: String,
    /// TLS material; paths relative to data_dir.
    #[serde(default)]
    pub tls: RawTls,
    /// Resource limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Store settings.
    #[serde(default)]
    pub store: RawStore,
    /// Normalization of records at ingest.
    #[serde(default)]
    pub normalize: RawNormalize,
    /// Watching the fleet of agents.
    #[serde(default)]
    pub agents: RawAgents,
    /// Signed checkpoints of the store (the witness kept off the box).
    #[serde(default)]
    pub integrity: RawIntegrity,
    /// Forwarders to the SOC (`[[forward]]`).
    #[serde(default)]
    pub forward: Vec<forward::RawForward>,
    /// Enrollment and agent certificates.
    #[serde(default)]
    pub enroll: RawEnroll,
    /// Removal of the oldest sealed segments by age and total size.
    #[serde(default)]
    pub retention: RawRetention,
}

/// Retention of the store; both limits optional (none: keep everything forever).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Remove sealed segments sealed more than this many days ago (fractions allowed), once
    /// every forwarder and the normalizer has read them.
    pub max_age_days: Option<f64>,
    /// Remove the oldest sealed segments while the store's segment files total more than this
    /// many bytes, even ones a forwarder has not delivered (the loss is recorded).
    pub max_bytes: Option<u64>,
}

/// Signed checkpoints of the store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntegrity {
    /// Seconds between two signed checkpoints (one more is signed at shutdown).
    #[serde(default = "default_checkpoint_every_secs")]
    pub checkpoint_every_secs: u64,
}

/// Enrollment and agent certificates (`[enroll]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnroll {
    /// Lifetime of agent certificates issued by enrollment and renewal (`30d`, `12h`, `2m`);
    /// agents renew when a third of it is left.
    #[serde(default = "default_agent_cert_lifetime")]
    pub agent_cert_lifetime: String,
}

impl Default for RawEnroll {
    fn default() -> Self {
        RawEnroll {
            agent_cert_lifetime: default_agent_cert_lifetime(),
        }
    }
}

fn default_agent_cert_lifetime() -> String {
    crate::enroll::DEFAULT_AGENT_CERT_LIFETIME.to_string()
}

/// Watching the fleet of agents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgents {
    /// An agent silent (no heartbeat) for longer than this is stale: marked `"stale": true` in
    /// status.json and logged once when it crosses, once when it comes back. `30s`, `10m`, `2h`.
    #[serde(default = "default_stale_after")]
    pub stale_after: String,
}

impl Default for RawAgents {
    fn default() -> Self {
        RawAgents {
            stale_after: default_stale_after(),
        }
    }
}

/// TLS material of the ingest server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// CA certificate that agent certificates must chain to.
    #[serde(default = "default_ca")]
    pub ca_cert: PathBuf,
    /// Server certificate.
    #[serde(default = "default_cert")]
    pub cert: PathBuf,
    /// Server private key (mode 0600).
    #[serde(default = "default_key")]
    pub key: PathBuf,
}

/// Bounds on what one agent can make the collector do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest accepted gRPC message (compressed batch) in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Largest accepted batch once decompressed, in bytes; larger batches are refused.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// Largest accepted number of records in one batch.
    #[serde(default = "default_max_batch_records")]
    pub max_batch_records: u32,
    /// Authenticated connections at once; further ones are closed after their handshake and
    /// the agent retries with backoff.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Batches received but not yet acked, per connection; the stream is not read past it.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_per_connection: usize,
    /// Bytes being decoded at once over all connections; a batch that does not fit waits.
    #[serde(default = "default_decode_budget_bytes")]
    pub decode_budget_bytes: usize,
    /// TLS handshakes in progress at once; past it new connections are closed.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// TLS handshakes in progress at once from one source address.
    #[serde(default = "default_max_handshakes_per_source")]
    pub max_handshakes_per_source: usize,
    /// Milliseconds a client has to finish its TLS handshake.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

/// Store settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Roll a segment past this many bytes.
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// Roll a segment after this many seconds (time partitioning).
    #[serde(default = "default_segment_max_age_secs")]
    pub segment_max_age_secs: u64,
}

/// Normalization settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNormalize {
    /// Parse records into ECS fields at ingest (stored beside the raw bytes).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Parse threads (at low priority); default 1 (the normalizer thread alone).
    #[serde(default = "crate::normalize::default_workers")]
    pub workers: usize,
}

/// The validated configuration the collector runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute data directory.
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// CA certificate path.
    pub ca_cert: PathBuf,
    /// Server certificate path.
    pub cert: PathBuf,
    /// Server key path.
    pub key: PathBuf,
    /// Limits.
    pub max_message_bytes: usize,
    /// Cap after decompression.
    pub max_decompressed_bytes: usize,
    /// Cap on records per batch.
    pub max_batch_records: u32,
    /// Cap on connections.
    pub max_connections: usize,
    /// Cap on in-flight batches per connection.
    pub max_in_flight_per_connection: usize,
    /// Collector-wide decode budget in bytes.
    pub decode_budget_bytes: usize,
    /// Cap on handshakes in progress.
    pub max_handshakes: usize,
    /// Cap on handshakes in progress per source address.
    pub max_handshakes_per_source: usize,
    /// Handshake deadline.
    pub handshake_timeout: std::time::Duration,
    /// Segment roll size.
    pub segment_max_bytes: u64,
    /// Segment roll age.
    pub segment_max_age_secs: u64,
    /// Normalize at ingest.
    pub normalize: bool,
    /// Parse workers of the normalizer (`[normalize] workers`, 1..=64).
    pub normalize_workers: usize,
    /// Silence after which an agent is stale.
    pub stale_after: std::time::Duration,
    /// Time between two signed checkpoints.
    pub checkpoint_every: std::time::Duration,
    /// Forwarders (`[[forward]]`).
    pub forwards: Vec<forward::ForwardConfig>,
    /// Lifetime of agent certificates issued by enrollment and renewal.
    pub agent_cert_lifetime: std::time::Duration,
    /// Retention limits (`[retention]`); both `None`: keep everything.
    pub retention: logship_store::RetentionPolicy,
}

// === impl RawConfig ===

impl RawConfig {
    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![e.to_string()])
    }

    /// Checks every rule and resolves paths relative to `base` (the config file's directory).
    pub fn validate(self, base: &Path) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        if self.version != 1 {
            problems.push(format!(
                "version {} is not supported (only 1)",
                self.version
            ));
        }
        let data_dir = base.join(&self.data_dir);
        let listen = self
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| problems.push(format!("listen {:?}: {e}", self.listen)))
            .ok();
        let tls_path = |p: &Path, what: &str, problems: &mut Vec<String>| {
            let path = data_dir.join(p);
            if !path.try_exists().unwrap_or(false) {
                problems.push(format!("tls.{what}: {} does not exist", path.display()));
            }
            path
        };
        let ca_cert = tls_path(&self.tls.ca_cert, "ca_cert", &mut problems);
        let cert = tls_path(&self.tls.cert, "cert", &mut problems);
        let key = tls_path(&self.tls.key, "key", &mut problems);
        let l = &self.limits;
        positive(
            &mut problems,
            "limits.max_message_bytes",
            l.max_message_bytes as u64,
        );
        positive(
            &mut problems,
            "limits.max_decompressed_bytes",
            l.max_decompressed_bytes as u64,
        );
        positive(
            &mut problems,
            "limits.max_batch_records",
            u64::from(l.max_batch_records),
        );
        positive(
            &mut problems,
            "limits.max_connections",
            l.max_connections as u64,
        );
        positive(
            &mut problems,
            "limits.max_in_flight_per_connection",
            l.max_in_flight_per_connection as u64,
        );
        for (name, v) in [
            ("limits.max_handshakes", l.max_handshakes),
            (
                "limits.max_handshakes_per_source",
                l.max_handshakes_per_source,
            ),
        ] {
            positive(&mut problems, name, v as u64);
        }
        positive(
            &mut problems,
            "limits.handshake_timeout_ms",
            l.handshake_timeout_ms,
        );
        let largest_batch = l
            .max_message_bytes
            .saturating_add(l.max_decompressed_bytes)
            .saturating_add(
                (l.max_batch_records as usize).saturating_mul(crate::ingest::RECORD_COST),
            );
        if l.decode_budget_bytes < largest_batch {
            problems.push(format!(
                "limits.decode_budget_bytes must be at least max_message_bytes + \
                 max_decompressed_bytes + {} x max_batch_records = {largest_batch}",
                crate::ingest::RECORD_COST
            ));
        }
        if self.store.segment_max_bytes < 1 << 20 {
            problems.push("store.segment_max_bytes must be at least 1 MiB".into());
        }
        if !(1..=crate::normalize::MAX_WORKERS).contains(&self.normalize.workers) {
            problems.push(format!(
                "normalize.workers must be between 1 and {}, not {}",
                crate::normalize::MAX_WORKERS,
                self.normalize.workers
            ));
        }
        positive(
            &mut problems,
            "store.segment_max_age_secs",
            self.store.segment_max_age_secs,
        );
        positive(
            &mut problems,
            "integrity.checkpoint_every_secs",
            self.integrity.checkpoint_every_secs,
        );
        let stale_after = match crate::timearg::parse_age(&self.agents.stale_after) {
            Ok(ns) if ns > 0 => Some(std::time::Duration::from_nanos(ns as u64)),
            Ok(_) => {
                problems.push("agents.stale_after must be greater than 0".into());
                None
            }
            Err(e) => {
                problems.push(format!("agents.stale_after: {e:#}"));
                None
            }
        };
        let retention = retention_policy(&self.retention, &self.store, &mut problems);
        let forwards = forward::validate(self.forward, &data_dir, &mut problems);
        let agent_cert_lifetime =
            match crate::enroll::parse_lifetime(&self.enroll.agent_cert_lifetime) {
                Ok(d) => Some(d),
                Err(e) => {
                    problems.push(format!("enroll.agent_cert_lifetime: {e:#}"));
                    None
                }
            };
        match (
            problems.is_empty(),
            listen,
            stale_after,
            agent_cert_lifetime,
        ) {
            (true, Some(listen), Some(stale_after), Some(agent_cert_lifetime)) => Ok(Config {
                data_dir,
                listen,
                ca_cert,
                cert,
                key,
                max_message_bytes: l.max_message_bytes,
                max_decompressed_bytes: l.max_decompressed_bytes,
                max_batch_records: l.max_batch_records,
                max_connections: l.max_connections,
                max_in_flight_per_connection: l.max_in_flight_per_connection,
                decode_budget_bytes: l.decode_budget_bytes,
                max_handshakes: l.max_handshakes,
                max_handshakes_per_source: l.max_handshakes_per_source,
                handshake_timeout: std::time::Duration::from_millis(l.handshake_timeout_ms),
                segment_max_bytes: self.store.segment_max_bytes,
                segment_max_age_secs: self.store.segment_max_age_secs,
                normalize: self.normalize.enabled,
                normalize_workers: self.normalize.workers,
                stale_after,
                checkpoint_every: std::time::Duration::from_secs(
                    self.integrity.checkpoint_every_secs,
                ),
                forwards,
                agent_cert_lifetime,
                retention,
            }),
            _ => Err(problems),
        }
    }
}

/// Reads, parses and validates a config file, reporting every problem.
pub fn load(path: &Path) -> Result<Config, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("reading {}: {e}", path.display())])?;
    let base = path.parent().unwrap_or(Path::new("."));
    RawConfig::parse(&text)?.validate(base)
}

/// Checks `[retention]`: a positive, finite age; a size cap of at least two segments (a cap
/// below that would remove every sealed segment as soon as it is sealed).
fn retention_policy(
    r: &RawRetention,
    store: &RawStore,
    problems: &mut Vec<String>,
) -> logship_store::RetentionPolicy {
    const NS_PER_DAY: f64 = 86_400e9;
    let max_age_ns = match r.max_age_days {
        Some(days) if !days.is_finite() || days <= 0.0 => {
            problems.push(format!(
                "retention.max_age_days must be a number of days greater than 0 (got {days})"
            ));
            None
        }
        // Ages beyond i64 nanoseconds (292 years) are "forever".
        Some(days) => Some((days * NS_PER_DAY).min(i64::MAX as f64) as i64),
        None => None,
    };
    if let Some(max) = r.max_bytes {
        let floor = store.segment_max_bytes.saturating_mul(2);
        if max < floor {
            problems.push(format!(
                "retention.max_bytes must be at least twice store.segment_max_bytes ({floor})"
            ));
        }
    }
    logship_store::RetentionPolicy {
        max_age_ns,
        max_bytes: r.max_bytes,
    }
}

fn positive(problems: &mut Vec<String>, name: &str, value: u64) {
    if value == 0 {
        problems.push(format!("{name} must be greater than 0"));
    }
}

fn default_stale_after() -> String {
    DEFAULT_STALE_AFTER.to_string()
}
fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_ca() -> PathBuf {
    PathBuf::from(crate::pki::CA_CERT)
}
fn default_cert() -> PathBuf {
    PathBuf::from(crate::pki::SERVER_CERT)
}
fn default_key() -> PathBuf {
    PathBuf::from(crate::pki::SERVER_KEY)
}
const fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
const fn default_max_decompressed_bytes() -> usize {
    DEFAULT_MAX_DECOMPRESSED_BYTES
}
const fn default_max_batch_records() -> u32 {
    DEFAULT_MAX_BATCH_RECORDS
}
const fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
const fn default_max_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION
}
const fn default_decode_budget_bytes() -> usize {
    DEFAULT_DECODE_BUDGET_BYTES
}
const fn default_max_handshakes() -> usize {
    DEFAULT_MAX_HANDSHAKES
}
const fn default_max_handshakes_per_source() -> usize {
    DEFAULT_MAX_HANDSHAKES_PER_SOURCE
}
const fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}
const fn default_segment_max_bytes() -> u64 {
    DEFAULT_SEGMENT_MAX_BYTES
}
const fn default_segment_max_age_secs() -> u64 {
    DEFAULT_SEGMENT_MAX_AGE_SECS
}
const fn default_checkpoint_every_secs() -> u64 {
    DEFAULT_CHECKPOINT_EVERY_SECS
}
const fn default_true() -> bool {
    true
}

impl Default for RawTls {
    fn default() -> Self {
        RawTls {
            ca_cert: default_ca(),
            cert: default_cert(),
            key: default_key(),
        }
    }
}
impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_in_flight_per_connection: DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
            decode_budget_bytes: DEFAULT_DECODE_BUDGET_BYTES,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_handshakes_per_source: DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
        }
    }
}
impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            segment_max_age_secs: DEFAULT_SEGMENT_MAX_AGE_SECS,
        }
    }
}
impl Default for RawIntegrity {
    fn default() -> Self {
        RawIntegrity {
            checkpoint_every_secs: DEFAULT_CHECKPOINT_EVERY_SECS,
        }
    }
}
impl Default for RawNormalize {
    fn default() -> Self {
        RawNormalize {
            enabled: true,
            workers: crate::normalize::default_workers(),
        }
    }
}

/// The commented `collector.toml` written by `init`.
pub fn template(data_dir: &Path, listen: &str) -> String {
    format!(
        r#"# logship collector configuration (written by `logship-collector init`).
# Check it with: logship-collector check-config --config <this file>
version = 1

# Where the CA, the certificates and the evidence store live.
data_dir = "{data_dir}"

# Address agents connect to (gRPC over TLS 1.3, client certificates required).
listen = "{listen}"

[tls]
# Paths are relative to data_dir.
ca_cert = "ca.pem"      # agent certificates must be signed by this CA
cert = "server.pem"
key = "server.key"      # mode 0600

[limits]
# Largest compressed batch accepted, in bytes.
max_message_bytes = {mmb}
# Largest batch once decompressed; larger ones are refused with a clear error.
max_decompressed_bytes = {mdb}
max_batch_records = {mbr}
max_connections = {mc}
# Batches received but not yet durable, per connection (back-pressure past it).
max_in_flight_per_connection = {mif}
# Bytes being decoded at once over all connections (compressed + decompressed + 32 per
# record); a batch that does not fit waits. At least max_message_bytes +
# max_decompressed_bytes + 32 x max_batch_records.
decode_budget_bytes = {dbb}
# Unauthenticated connections: TLS handshakes in progress (all, and per source address) and
# the time each gets. Past a limit new connections are closed at once; agents retry.
max_handshakes = {mh}
max_handshakes_per_source = {mhs}
handshake_timeout_ms = {hto}

[store]
# Segments roll by size and by age (time partitioning).
segment_max_bytes = {smb}
segment_max_age_secs = {sma}

[normalize]
# Parse records into ECS fields at ingest; raw bytes are always kept.
enabled = true

[agents]
# An agent silent (no heartbeat) for longer than this is stale: "stale": true in status.json,
# STALE in `logship-collector agents`, and one warning in this collector's log when it crosses
# (one more when it is heard again). 30s, 10m, 2h.
stale_after = "{stale}"

[integrity]
# Every this many seconds (and once at shutdown) the collector signs a checkpoint of the store
# (chain head, block count, time) with its witness key (witness.key, made by init) and stores it
# as a record of its own, agent "@collector", which forwarders deliver to the SOC like any other.
# `logship-collector verify --data-dir DIR --checkpoint FILE` holds the store against them.
checkpoint_every_secs = {cpe}

[enroll]
# Lifetime of the agent certificates enrollment and renewal issue (30d, 12h, 2m; at least 1m).
# Agents renew over their own connection when a third of it is left.
agent_cert_lifetime = "{lifetime}"
"#,
        cpe = DEFAULT_CHECKPOINT_EVERY_SECS,
        data_dir = data_dir.display(),
        mmb = DEFAULT_MAX_MESSAGE_BYTES,
        mdb = DEFAULT_MAX_DECOMPRESSED_BYTES,
        mbr = DEFAULT_MAX_BATCH_RECORDS,
        mc = DEFAULT_MAX_CONNECTIONS,
        mif = DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
        dbb = DEFAULT_DECODE_BUDGET_BYTES,
        mh = DEFAULT_MAX_HANDSHAKES,
        mhs = DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
        hto = DEFAULT_HANDSHAKE_TIMEOUT_MS,
        smb = DEFAULT_SEGMENT_MAX_BYTES,
        sma = DEFAULT_SEGMENT_MAX_AGE_SECS,
        stale = DEFAULT_STALE_AFTER,
        lifetime = crate::enroll::DEFAULT_AGENT_CERT_LIFETIME,
    )
}

#[cfg(test)]
mod tests;
