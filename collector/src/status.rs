//! `DATA_DIR/status.json`: the collector's live counters, rewritten atomically about twice a
//! second so operators, tests and benchmarks can watch progress without a network API.
//!
//! Invariants:
//! - Readers always see a complete JSON document (write to a temp file, then rename).
//! - Every agent that ever sent a heartbeat stays listed: agents of the previous file are
//!   carried over at start, so a stopped agent is still there (with `online: false`): `online`
//!   means a heartbeat reached this collector process within [`ONLINE_WITHIN`].
//! - `stale` per agent follows [`crate::fleet`]'s rule for `[agents] stale_after`
//!   (`agents_stale_after_secs`); each crossing is logged once.
//! - Times are RFC 3339 (`started_at`, `written_at`, per agent `last_heartbeat`; the older
//!   `last_heartbeat_unix_ns` stays for programs). `records_last_stored_time` (the last group
//!   commit that stored new records) and `fields_last_ready_time` (the normalizer's last
//!   advance) carry the moment itself, finer than the file's 500 ms cadence; `null` until it
//!   happens in this process. `counter_scope` lists the counters that count
//!   all time (the whole store), since this collector started, or since the agent started.
//!   Keys are only ever added, never renamed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::fleet::{StaleWatch, input_lag};
use crate::ingest::{Guards, HeartbeatBook};
use crate::normalize::NormalizeStats;
use crate::tls::TlsStats;
use crate::writer::WriterStats;

/// Everything the status file reports on.
pub struct Sources {
    /// Store writer counters.
    pub writer: Arc<WriterStats>,
    /// Normalizer counters (absent when normalization is off).
    pub normalize: Option<Arc<NormalizeStats>>,
    /// Latest heartbeats.
    pub heartbeats: HeartbeatBook,
    /// Decode budget, agent instances and claims.
    pub guards: Guards,
    /// Connection counters.
    pub tls: Arc<TlsStats>,
    /// Silence after which an agent is stale (`[agents] stale_after`).
    pub stale_after: Duration,
    /// One per `[[forward]]` entry.
    pub forwarders: Vec<Arc<crate::forward::ForwardStats>>,
    /// CA fingerprint and enrollment counters.
    pub enroll: crate::enroll::StatusFacts,
    /// Retention counters (all zero when `[retention]` sets no limit).
    pub retention: Arc<crate::retention::RetentionStats>,
}

/// How often the file is rewritten.
const INTERVAL: Duration = Duration::from_millis(500);

/// An agent is `online` while its last heartbeat is younger than this: three of the agent's
/// default 30 s heartbeat intervals.
pub const ONLINE_WITHIN: Duration = Duration::from_secs(90);

/// What each counter counts, by scope: `all_time` (the whole store), `since_start` (this
/// collector process, see `started_at`) or `since_agent_start` (per agent, reset when the agent
/// restarts). Scope → counters, so a counter's name appears once as a key in the file (the quick
/// start greps `"records_stored": N`).
const COUNTER_SCOPE: &[(&str, &[&str])] = &[
    ("all_time", &["records_stored"]),
    (
        "since_start",
        &[
            "blocks_stored",
            "payload_bytes",
            "duplicate_records",
            "commits",
            "normalized_records",
            "normalize_deferred_records",
            "normalize_deferred_total",
            "normalize_skipped_records",
            "normalize_failed_blocks",
            "checkpoints_signed",
            "checkpoint_failures",
        ],
    ),
    ("since_agent_start", &["agents.*.drops"]),
];

/// The agents of the status file as JSON objects by certificate name.
type AgentMap = serde_json::Map<String, serde_json::Value>;

/// Writes the status file until `shutdown`, and once more at the end.
pub async fn run(path: PathBuf, sources: Sources, shutdown: CancellationToken) {
    let known = previous_agents(&path);
    let mut writer = StatusWriter {
        normalize: sources.normalize.clone().unwrap_or_default(),
        started: jiff::Timestamp::now(),
        started_instant: std::time::Instant::now(),
        stale: StaleWatch::new(sources.stale_after, &known),
        known,
        path,
        sources,
    };
    loop {
        writer.write_once();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
    writer.write_once();
}

/// State carried between two writes of the status file.
struct StatusWriter {
    path: PathBuf,
    sources: Sources,
    normalize: Arc<NormalizeStats>,
    started: jiff::Timestamp,
    /// The same moment on the monotonic clock (the age of records stored before the start).
    started_instant: std::time::Instant,
    /// Every agent ever seen (carried over from the previous file at start).
    known: AgentMap,
    /// Which agents are stale, each crossing logged once.
    stale: StaleWatch,
}

impl StatusWriter {
    /// Rewrites the status file and persists the instance book; failures are logged.
    fn write_once(&mut self) {
        let s = &self.sources;
        let doc = document(
            self.started,
            &s.writer,
            &self.normalize,
            &s.heartbeats,
            &mut self.known,
        );
        let mut doc = with_guards_and_disk(&self.path, s, doc);
        if let Some(agents) = doc["agents"].as_object_mut() {
            self.stale
                .mark(agents, jiff::Timestamp::now().as_nanosecond() as i64);
        }
        doc["agents_stale_after_secs"] = json!(self.stale.after_secs());
        add_fields_lag(&mut doc, s, self.started_instant);
        let now_ns = jiff::Timestamp::now().as_nanosecond() as i64;
        doc["forwarders"] = s
            .forwarders
            .iter()
            .map(|f| {
                let mut snap = f.snapshot(now_ns);
                // Records retention removed before this forwarder delivered them (all time).
                let cursor = crate::forward::cursor_name(&f.name);
                snap["lost_to_retention"] = json!(s.retention.undelivered(&cursor));
                (f.name.clone(), snap)
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        s.enroll.add_to(&mut doc);
        doc["retention"] = s.retention.snapshot();
        if let Err(error) = write(&self.path, &doc) {
            tracing::warn!(%error, path = %self.path.display(), "Writing the status file failed.");
        }
        if let Err(error) = s.guards.instances.persist_if_changed() {
            tracing::warn!(%error, "Writing the instance book failed.");
        }
    }
}

/// `normalize_enabled`, `fields_lag_records` and `fields_lag_seconds` (see
/// [`crate::normalize::lag`]; both `null` when normalization is off or not measured yet).
fn add_fields_lag(doc: &mut serde_json::Value, s: &Sources, started: std::time::Instant) {
    let lag = s.normalize.as_ref().and_then(|n| {
        crate::normalize::lag::fields_lag(
            &s.writer.records_stored,
            &s.writer.stored_at,
            n,
            started,
            std::time::Instant::now(),
        )
    });
    doc["normalize_enabled"] = json!(s.normalize.is_some());
    doc["fields_lag_records"] = json!(lag.map(|l| l.records));
    doc["fields_lag_seconds"] = json!(lag.map(|l| (l.seconds * 1000.0).round() / 1000.0));
}

/// Damaged tails the store moved to quarantine (listed from disk, so they stay visible until
/// an operator removes them). `path` is `DATA_DIR/status.json`.
fn store_quarantined(path: &std::path::Path) -> Vec<serde_json::Value> {
    let Some(data_dir) = path.parent() else {
        return Vec::new();
    };
    let found = logship_store::quarantined(&crate::serve::store_dir(data_dir)).unwrap_or_default();
    found
        .into_iter()
        .map(|q| {
            json!({
                "segment": q.segment, "offset": q.offset, "bytes": q.bytes,
                "file": q.file.display().to_string(),
            })
        })
        .collect()
}

/// Agents listed in the status file a previous collector process left (none if unreadable).
fn previous_agents(path: &PathBuf) -> AgentMap {
    let Ok(bytes) = std::fs::read(path) else {
        return AgentMap::new();
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut doc)) => match doc.remove("agents") {
            Some(serde_json::Value::Object(agents)) => agents,
            _ => AgentMap::new(),
        },
        _ => {
            tracing::warn!(path = %path.display(), "Previous status file unreadable; agents seen before are not listed.");
            AgentMap::new()
        }
    }
}

/// Sets `online`: the agent's heartbeat reached this process (`live`) within [`ONLINE_WITHIN`].
fn mark_online(agents: &mut AgentMap, live: &AgentMap, now_ns: i64) {
    let within = ONLINE_WITHIN.as_nanos() as i64;
    for (name, agent) in agents.iter_mut() {
        let last = agent["last_heartbeat_unix_ns"].as_i64().unwrap_or(i64::MIN);
        let online = live.contains_key(name) && now_ns.saturating_sub(last) < within;
        if let Some(obj) = agent.as_object_mut() {
            obj.insert("online".into(), json!(online));
        }
    }
}

fn rfc3339(ns: i64) -> String {
    crate::timearg::format_ns(ns)
}

fn write(path: &PathBuf, doc: &serde_json::Value) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(doc)?)?;
    std::fs::rename(&tmp, path)
}

/// The whole status document; live heartbeats are merged into `known` (agents ever seen).
fn document(
    started: jiff::Timestamp,
    stats: &WriterStats,
    normalize: &NormalizeStats,
    heartbeats: &HeartbeatBook,
    known: &mut AgentMap,
) -> serde_json::Value {
    let now = jiff::Timestamp::now();
    let live: AgentMap = heartbeats
        .lock()
        .expect("heartbeat book lock is never poisoned")
        .iter()
        .map(|(agent, (at, beat, peer))| {
            let facts = beat.host.clone().unwrap_or_default();
            let v = json!({
                "last_heartbeat_unix_ns": at,
                "last_heartbeat": rfc3339(*at),
                "host": facts.host_name,
                "os_name": facts.os_name,
                "os_version": facts.os_version,
                "agent_version": beat.agent_version,
                "spool_bytes": beat.spool_bytes,
                "spool_records": beat.spool_records,
                "drops": beat.drops,
                "spool_blocked_reason": beat.spool_blocked_reason,
                "input_errors": beat.input_errors,
                "files": beat.positions.len(),
                "positions": beat.positions.iter().take(64).map(|p| json!({
                    "input": p.input, "path": p.path, "offset": p.offset,
                    "size": p.size, "lag_bytes": p.lag_bytes, "lag_entries": p.lag_entries,
                })).collect::<Vec<_>>(),
                "input_lag": input_lag(&beat.positions),
                "kernel_version": facts.kernel_version,
                "ip_addresses": facts.ip_addresses.iter().take(256)
                    .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
                    .take(32).collect::<Vec<_>>(),
                "peer_addr": peer.addr.to_string(),
                "cert_not_after": jiff::Timestamp::from_second(peer.cert_not_after)
                    .map(|t| t.to_string()).unwrap_or_default(),
                "cert_not_after_unix": peer.cert_not_after,
            });
            (agent.clone(), v)
        })
        .collect();
    known.extend(live.clone());
    mark_online(known, &live, now.as_nanosecond() as i64);
    let scope: AgentMap = COUNTER_SCOPE
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({
        "started_at": started.to_string(),
        "written_at": now.to_string(),
        "records_stored": stats.records_stored.load(Ordering::Relaxed),
        "blocks_stored": stats.blocks_stored.load(Ordering::Relaxed),
        "payload_bytes": stats.payload_bytes.load(Ordering::Relaxed),
        "duplicate_records": stats.duplicate_records.load(Ordering::Relaxed),
        "commits": stats.commits.load(Ordering::Relaxed),
        "normalized_records": normalize.records.load(Ordering::Relaxed),
        "normalize_deferred_records": normalize.deferred_records.load(Ordering::Relaxed),
        "normalize_deferred_total": normalize.deferred_total.load(Ordering::Relaxed),
        "normalize_skipped_records": normalize.skipped_records.load(Ordering::Relaxed),
        "normalize_failed_blocks": normalize.failed_blocks.load(Ordering::Relaxed),
        "checkpoints_signed": stats.checkpoints.load(Ordering::Relaxed),
        "checkpoint_failures": stats.checkpoint_failures.load(Ordering::Relaxed),
        "last_checkpoint_time": time_or_null(stats.last_checkpoint_ns.load(Ordering::Relaxed)),
        "records_last_stored_time": time_or_null(stats.last_stored_ns.load(Ordering::Relaxed)),
        "fields_last_ready_time": time_or_null(normalize.fields_done_ns.load(Ordering::Relaxed)),
        "counter_scope": scope,
        "agents": known,
    })
}

/// RFC 3339 with nanoseconds, or `null` for 0 (not since start).
fn time_or_null(ns: i64) -> serde_json::Value {
    match ns {
        0 => serde_json::Value::Null,
        ns => json!(crate::timearg::format_ns(ns)),
    }
}

/// [`document`] plus the ingest guards' state and what is read from disk (the store's
/// quarantined tails).
fn with_guards_and_disk(
    path: &std::path::Path,
    sources: &Sources,
    doc: serde_json::Value,
) -> serde_json::Value {
    let mut doc = doc;
    doc["agent_claims"] = sources.guards.claims.status();
    doc["agents_running_twice"] = sources.guards.instances.status();
    doc["decode_budget"] = budget_json(&sources.guards.budget.stats);
    doc["connections"] = tls_json(&sources.tls);
    doc["store_quarantined"] = json!(store_quarantined(path));
    doc
}
fn budget_json(b: &crate::ingest::BudgetStats) -> serde_json::Value {
    json!({
        "total_bytes": b.total_bytes.load(Ordering::Relaxed),
        "in_use_bytes": b.in_use_bytes.load(Ordering::Relaxed),
        "waits": b.waits.load(Ordering::Relaxed),
    })
}

fn tls_json(t: &TlsStats) -> serde_json::Value {
    json!({
        "authenticated": t.connections.load(Ordering::Relaxed),
        "refused_full": t.connections_refused_full.load(Ordering::Relaxed),
        "handshakes_in_progress": t.handshakes_in_progress.load(Ordering::Relaxed),
        "handshakes_shed_per_source": t.shed_per_source.load(Ordering::Relaxed),
        "handshakes_shed_busy": t.shed_busy.load(Ordering::Relaxed),
        "handshakes_timed_out": t.handshakes_timed_out.load(Ordering::Relaxed),
        "handshakes_failed": t.handshakes_failed.load(Ordering::Relaxed),
        "refused_revoked": t.refused_revoked.load(Ordering::Relaxed),
        "anonymous_refused_full": t.anonymous_refused_full.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_of_the_previous_file_are_kept_and_only_live_ones_are_online() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        let old = json!({"agents": {"gone": {"last_heartbeat_unix_ns": now, "online": true}}});
        std::fs::write(&path, old.to_string()).unwrap();
        let mut known = previous_agents(&path);
        assert!(known.contains_key("gone"));
        let mut live = AgentMap::new();
        live.insert("here".into(), json!({"last_heartbeat_unix_ns": now}));
        known.extend(live.clone());
        mark_online(&mut known, &live, now);
        assert_eq!(
            known["gone"]["online"], false,
            "no heartbeat to this process"
        );
        assert_eq!(known["here"]["online"], true);
        let later = now + ONLINE_WITHIN.as_nanos() as i64;
        mark_online(&mut known, &live, later);
        assert_eq!(known["here"]["online"], false, "silent for ONLINE_WITHIN");
        std::fs::write(&path, "not json").unwrap();
        assert!(previous_agents(&path).is_empty());
    }
}
