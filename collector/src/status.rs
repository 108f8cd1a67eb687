//! `DATA_DIR/status.json`: the collector's live counters, rewritten atomically about twice a
//! second so operators, tests and benchmarks can watch progress without a network API.
//!
//! Invariant: readers always see a complete JSON document (write to a temp file, then rename).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

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
}

/// How often the file is rewritten.
const INTERVAL: Duration = Duration::from_millis(500);

/// Writes the status file until `shutdown`, and once more at the end.
pub async fn run(path: PathBuf, sources: Sources, shutdown: CancellationToken) {
    loop {
        if let Err(error) = write(&path, &sources) {
            tracing::warn!(%error, path = %path.display(), "Writing the status file failed.");
        }
        if let Err(error) = sources.guards.instances.persist_if_changed() {
            tracing::warn!(%error, "Writing the instance book failed.");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
    if let Err(error) = write(&path, &sources) {
        tracing::warn!(%error, path = %path.display(), "Writing the final status file failed.");
    }
    if let Err(error) = sources.guards.instances.persist_if_changed() {
        tracing::warn!(%error, "Writing the instance book failed.");
    }
}

fn write(path: &PathBuf, sources: &Sources) -> std::io::Result<()> {
    let stats = &sources.writer;
    let normalize = sources.normalize.clone().unwrap_or_default();
    let agents: serde_json::Map<String, serde_json::Value> = sources
        .heartbeats
        .lock()
        .expect("heartbeat book lock is never poisoned")
        .iter()
        .map(|(agent, (at, beat))| {
            let host = beat
                .host
                .as_ref()
                .map(|h| h.host_name.clone())
                .unwrap_or_default();
            let v = json!({
                "last_heartbeat_unix_ns": at,
                "host": host,
                "agent_version": beat.agent_version,
                "spool_bytes": beat.spool_bytes,
                "spool_records": beat.spool_records,
                "drops": beat.drops,
                "files": beat.positions.len(),
                "positions": beat.positions.iter().take(64).map(|p| json!({
                    "input": p.input, "path": p.path, "offset": p.offset,
                })).collect::<Vec<_>>(),
            });
            (agent.clone(), v)
        })
        .collect();
    let doc = json!({
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
        "agents": agents,
        "agent_claims": sources.guards.claims.status(),
        "agents_running_twice": sources.guards.instances.status(),
        "decode_budget": budget_json(&sources.guards.budget.stats),
        "connections": tls_json(&sources.tls),
    });
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)?;
    std::fs::rename(&tmp, path)
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
    })
}
