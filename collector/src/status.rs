//! `DATA_DIR/status.json`: the collector's live counters, rewritten atomically about twice a
//! second so operators, tests and benchmarks can watch progress without a network API.
//!
//! Invariant: readers always see a complete JSON document (write to a temp file, then rename).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::ingest::HeartbeatBook;
use crate::normalize::NormalizeStats;
use crate::writer::WriterStats;

/// How often the file is rewritten.
const INTERVAL: Duration = Duration::from_millis(500);

/// Writes the status file until `shutdown`, and once more at the end.
pub async fn run(
    path: PathBuf,
    stats: std::sync::Arc<WriterStats>,
    normalize: Option<std::sync::Arc<NormalizeStats>>,
    heartbeats: HeartbeatBook,
    shutdown: CancellationToken,
) {
    let normalize = normalize.unwrap_or_default();
    loop {
        if let Err(error) = write(&path, &stats, &normalize, &heartbeats) {
            tracing::warn!(%error, path = %path.display(), "Writing the status file failed.");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
    if let Err(error) = write(&path, &stats, &normalize, &heartbeats) {
        tracing::warn!(%error, path = %path.display(), "Writing the final status file failed.");
    }
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

fn write(
    path: &PathBuf,
    stats: &WriterStats,
    normalize: &NormalizeStats,
    heartbeats: &HeartbeatBook,
) -> std::io::Result<()> {
    let agents: serde_json::Map<String, serde_json::Value> = heartbeats
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
                "spool_blocked_reason": beat.spool_blocked_reason,
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
        "store_quarantined": store_quarantined(path),
    });
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)?;
    std::fs::rename(&tmp, path)
}
