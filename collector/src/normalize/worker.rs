//! The normalizer worker: one thread that follows the store through its own durable cursor
//! (`normalizer`, see [`logship_store::Cursor`]), parses each committed block into a fields
//! column and appends it to the block's stream sidecar. The writer never waits for it: it only
//! publishes its committed end on the [`CommitWatch`] after each fsync, and the worker reads the
//! blocks back (from the page cache, usually) when it gets the CPU. A burst is normalized after
//! it ends; a restart in the middle of catch-up resumes from the last cursor commit instead of
//! leaving blocks to search-time parsing.
//!
//! Invariants:
//! - The cursor commits only after the sidecars holding the columns of the blocks it passed are
//!   fsync'd, so a crash loses at most the work since the last commit, which is redone; a block
//!   a sidecar already covers is not parsed again ([`super::sidecar::Writer::covered`]).
//! - Blocks come in commit order, so each (agent, stream) normalizer sees its records in seq
//!   order (postfix queue ids, auditd serials join correctly).
//! - A block that cannot be read or parsed is counted and logged; its fields are computed at
//!   search time. It never stops the worker.
//!
//! Ingest first: the worker thread runs at nice [`WORKER_NICE`] (Linux nice values are per
//! thread), so when ingest and normalization compete for the cores the scheduler gives ingest
//! (TLS, decode checks, the store's fsync'd appends) about nine tenths of the time and the
//! fields catch up after the burst.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logship_normalize::Normalizer;
use logship_proto::payload::decode_payload;
use logship_store::{CommitWatch, Cursor, CursorBlock, CursorItem, CursorPos};

use super::column::fields_column;
use super::fieldindex::BlockIndexer;
use super::sidecar::Writer;
use crate::writer::WriterStats;

/// Name of the normalizer's cursor in the store.
pub const CURSOR_NAME: &str = "normalizer";
/// Normalizers kept (one per agent stream); past it the map is cleared and state restarts.
const MAX_STREAMS: usize = 4096;
/// Nice value of the worker thread: CFS weight 110 against ingest's 1024.
const WORKER_NICE: libc::c_int = 10;
/// Commit the cursor after this many blocks, or [`COMMIT_EVERY`] (also when caught up).
const COMMIT_BLOCKS: u32 = 256;
/// Longest time between two cursor commits while working.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Longest sleep while caught up (the watch wakes the worker earlier on each commit).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Counters for the status file.
#[derive(Debug, Default)]
pub struct NormalizeStats {
    /// Records whose fields were precomputed (since the collector started).
    pub records: AtomicU64,
    /// Records committed to the store but not normalized yet (the cursor's lag).
    pub deferred_records: AtomicU64,
    /// Largest lag seen since the collector started (how much catch-up was needed).
    pub deferred_total: AtomicU64,
    /// Records of blocks whose payload could not be decoded or parsed (fields computed at
    /// search time).
    pub skipped_records: AtomicU64,
    /// Blocks that could not be normalized (sidecar write failed) and damaged or removed
    /// ranges the cursor stepped over.
    pub failed_blocks: AtomicU64,
}

/// Where the worker reads and writes.
pub struct WorkerConfig {
    /// The store directory.
    pub store_dir: PathBuf,
    /// The fields sidecar directory.
    pub fields_dir: PathBuf,
    /// Cap on a decompressed payload.
    pub max_decompressed_bytes: usize,
    /// The writer's commit watch (closed when the writer stops).
    pub watch: CommitWatch,
    /// The writer's counters (records stored in total, for the lag).
    pub writer: Arc<WriterStats>,
}

/// Lowers the calling thread's scheduling priority to [`WORKER_NICE`]; a failure is logged
/// and the worker runs at normal priority.
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: setpriority takes integers only; `who` = 0 is the calling thread on Linux (nice
    // values are per thread under NPTL), so no other thread or process is affected.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE) };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(),
            "Could not lower the normalizer's priority; it competes with ingest at equal priority.");
    }
}

/// Starts the worker; it stops soon after the watch is closed, committing its cursor first.
pub fn start(
    config: WorkerConfig,
) -> anyhow::Result<(Arc<NormalizeStats>, std::thread::JoinHandle<()>)> {
    let cursor = Cursor::open(&config.store_dir, CURSOR_NAME, Some(config.watch.clone()))?;
    let stats = Arc::new(NormalizeStats::default());
    let worker = Worker {
        cursor,
        writer: Writer::new(config.fields_dir),
        cap: config.max_decompressed_bytes,
        stats: stats.clone(),
        watch: config.watch,
        consumed: 0,
        writer_stats: config.writer,
        normalizers: HashMap::new(),
        scratch: Vec::new(),
        text: Vec::new(),
        index: BlockIndexer::new(&config.store_dir),
    };
    let join = std::thread::Builder::new()
        .name("normalizer".into())
        .spawn(move || {
            lower_priority();
            worker.run();
        })?;
    Ok((stats, join))
}

/// The worker thread's state.
struct Worker {
    cursor: Cursor,
    writer: Writer,
    cap: usize,
    stats: Arc<NormalizeStats>,
    watch: CommitWatch,
    /// Records in blocks the cursor has passed (all time), for the lag.
    consumed: u64,
    writer_stats: Arc<WriterStats>,
    normalizers: HashMap<(String, String), Normalizer>,
    scratch: Vec<u8>,
    text: Vec<u8>,
    /// The field index of the segments, fed with each block's fields.
    index: BlockIndexer,
}

impl Worker {
    fn run(mut self) {
        // Measured here, not in `start`: a walk over a long store must not delay serving.
        let backlog = self.cursor.backlog().map_or(0, |b| b.records);
        self.consumed = self
            .writer_stats
            .records_stored
            .load(Ordering::Relaxed)
            .saturating_sub(backlog);
        if backlog > 0 {
            tracing::info!(records = backlog, "Normalizer resumes from its cursor.");
        }
        let mut uncommitted = 0u32;
        let mut last_commit = Instant::now();
        loop {
            if self.watch.is_closed() {
                self.commit(&mut uncommitted);
                break;
            }
            match self.cursor.read_next() {
                Ok(Some(CursorItem::Block(b))) => {
                    self.consumed += u64::from(b.count);
                    self.block(&b);
                    uncommitted += 1;
                    self.update_lag();
                    if uncommitted >= COMMIT_BLOCKS || last_commit.elapsed() >= COMMIT_EVERY {
                        self.commit(&mut uncommitted);
                        last_commit = Instant::now();
                    }
                }
                Ok(Some(CursorItem::Skipped(s))) => {
                    self.stats.failed_blocks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(from_segment = s.from.segment, from_offset = s.from.offset,
                        to_segment = s.to.segment, to_offset = s.to.offset, reason = %s.reason,
                        "Normalizer stepped over an unreadable range of the store.");
                    uncommitted += 1;
                }
                Ok(None) => {
                    // Caught up: commit at most once per COMMIT_EVERY, so keeping pace with a
                    // busy writer does not add fsyncs to every one of its commits.
                    let since = last_commit.elapsed();
                    let wait = if uncommitted == 0 {
                        IDLE_WAIT
                    } else if since >= COMMIT_EVERY {
                        self.commit(&mut uncommitted);
                        last_commit = Instant::now();
                        IDLE_WAIT
                    } else {
                        COMMIT_EVERY - since
                    };
                    self.update_lag();
                    self.cursor.wait(wait);
                }
                Err(error) => {
                    tracing::warn!(%error, "Normalizer could not read the store; retrying.");
                    std::thread::sleep(IDLE_WAIT);
                }
            }
        }
        tracing::info!(
            lag_records = self.stats.deferred_records.load(Ordering::Relaxed),
            "Normalizer stopped; it resumes from its cursor at the next start."
        );
    }

    fn update_lag(&self) {
        let lag = self
            .writer_stats
            .records_stored
            .load(Ordering::Relaxed)
            .saturating_sub(self.consumed);
        self.stats.deferred_records.store(lag, Ordering::Relaxed);
        self.stats.deferred_total.fetch_max(lag, Ordering::Relaxed);
    }

    /// Makes the sidecars durable, then moves the cursor file past their blocks.
    fn commit(&mut self, uncommitted: &mut u32) {
        if *uncommitted == 0 {
            return;
        }
        let done = self
            .writer
            .sync()
            .map_err(anyhow::Error::from)
            .and_then(|()| self.cursor.commit().map_err(Into::into));
        match done {
            Ok(()) => {
                *uncommitted = 0;
                self.index.flush();
            }
            Err(error) => tracing::warn!(error = %format!("{error:#}"),
                "Normalizer could not commit its cursor; the blocks since are redone after a restart."),
        }
    }

    fn block(&mut self, b: &CursorBlock) {
        let covered = self.writer.covered(&b.agent, &b.stream_id).unwrap_or(0);
        if b.fields.is_some() || b.first_seq <= covered {
            // Inline column, or normalized before a restart.
            self.stats
                .records
                .fetch_add(u64::from(b.count), Ordering::Relaxed);
            return;
        }
        self.normalize(
            b.at,
            &b.agent,
            &b.stream_id,
            b.first_seq,
            b.count,
            &b.payload,
        );
    }

    fn normalize(
        &mut self,
        at: CursorPos,
        agent: &str,
        stream_id: &str,
        first_seq: u64,
        count: u32,
        payload: &[u8],
    ) {
        if self.normalizers.len() >= MAX_STREAMS {
            self.normalizers.clear();
        }
        let key = (agent.to_string(), stream_id.to_string());
        let normalizer = self.normalizers.entry(key).or_default();
        let column = match decode_payload(payload, self.cap, &mut self.scratch)
            .map_err(anyhow::Error::from)
            .and_then(|list| {
                let index = &mut self.index;
                fields_column(&list, normalizer, &mut self.text, &mut |f| {
                    index.record(at, f)
                })
            }) {
            Ok(c) => c,
            Err(error) => {
                self.stats
                    .skipped_records
                    .fetch_add(u64::from(count), Ordering::Relaxed);
                tracing::warn!(agent, first_seq, error = %format!("{error:#}"),
                    "A stored block could not be parsed; its fields are computed at search time.");
                return;
            }
        };
        match self
            .writer
            .append(agent, stream_id, first_seq, count, &column)
        {
            Ok(()) => {
                self.index.done(at);
                self.stats
                    .records
                    .fetch_add(u64::from(count), Ordering::Relaxed);
            }
            Err(error) => {
                self.stats.failed_blocks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent, first_seq, %error,
                    "Writing a fields column failed; its fields are computed at search time.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use logship_proto::v1::{Record, RecordList, Source};
    use logship_store::{BlockInput, Store, StoreConfig};
    use prost::Message;

    use super::*;

    const STREAM: &str = "0123456789abcdef0123456789abcdef";

    fn payload(first: u64, count: u32) -> bytes::Bytes {
        let list = RecordList {
            host: "h".into(),
            sources: vec![Source { input: "auth".into(), path: "/var/log/auth.log".into() }],
            records: (0..u64::from(count))
                .map(|i| Record {
                    raw: format!(
                        "Feb 12 14:10:21 gw sshd[1]: Failed password for u{} from 10.0.0.1 port 22 ssh2",
                        first + i
                    )
                    .into_bytes()
                    .into(),
                    observed_unix_nanos: 1,
                    ..Default::default()
                })
                .collect(),
            agent_tz: "UTC".into(),
            observed_unix_nanos: 1,
        };
        logship_proto::payload::compress(&list.encode_to_vec(), 1)
            .unwrap()
            .into()
    }

    fn wait_for(stats: &NormalizeStats, total: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats.records.load(Ordering::Relaxed) < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn entries(dir: &std::path::Path) -> Vec<(u64, u32)> {
        let mut file = std::fs::File::open(super::super::sidecar::path(
            &dir.join("fields"),
            "a",
            STREAM,
        ))
        .unwrap();
        let (entries, _) = super::super::sidecar::scan(&mut file).unwrap();
        entries.iter().map(|e| (e.first_seq, e.count)).collect()
    }

    #[test]
    fn follows_commits_through_its_cursor_and_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        let config = StoreConfig {
            dir: store_dir.clone(),
            ..StoreConfig::default()
        };
        let (mut store, _) = Store::open(config).unwrap();
        let writer = Arc::new(WriterStats::default());
        let count = 1000u32;
        let append = |store: &mut Store, b: u64| {
            let first_seq = 1 + b * u64::from(count);
            store
                .append(BlockInput {
                    agent: "a".into(),
                    stream_id: STREAM.into(),
                    first_seq,
                    count,
                    host: "h".into(),
                    min_time_ns: 1,
                    max_time_ns: 1,
                    inputs: vec!["auth".into()],
                    payload: payload(first_seq, count),
                    fields: None,
                })
                .unwrap();
            writer
                .records_stored
                .fetch_add(u64::from(count), Ordering::Relaxed);
        };
        let start_worker = |watch: &CommitWatch| {
            start(WorkerConfig {
                store_dir: store_dir.clone(),
                fields_dir: dir.path().join("fields"),
                max_decompressed_bytes: 1 << 24,
                watch: watch.clone(),
                writer: writer.clone(),
            })
            .unwrap()
        };
        let watch = CommitWatch::new();
        let (stats, worker) = start_worker(&watch);
        for b in 0..40 {
            append(&mut store, b);
        }
        // Not committed yet: the worker must not see them.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(stats.records.load(Ordering::Relaxed), 0);
        store.sync().unwrap();
        watch.publish(store.committed());
        wait_for(&stats, 40 * u64::from(count));
        assert_eq!(stats.records.load(Ordering::Relaxed), 40_000);
        watch.close();
        worker.join().unwrap();
        // Stopped: 60 more blocks arrive; a new worker catches up from its saved cursor,
        // normalizing only the new ones, each once.
        for b in 40..100 {
            append(&mut store, b);
        }
        store.sync().unwrap();
        let watch = CommitWatch::new();
        watch.publish(store.committed());
        let (stats, worker) = start_worker(&watch);
        wait_for(&stats, 60_000);
        assert_eq!(stats.records.load(Ordering::Relaxed), 60_000);
        watch.close();
        worker.join().unwrap();
        let got = entries(dir.path());
        assert_eq!(got.len(), 100);
        assert!(got.windows(2).all(|w| w[0].0 + u64::from(w[0].1) == w[1].0));
        // A cursor lost entirely (removed file) redoes nothing the sidecar holds.
        std::fs::remove_file(logship_store::cursor_path(&store_dir, CURSOR_NAME)).unwrap();
        let watch = CommitWatch::new();
        watch.publish(store.committed());
        let (stats, worker) = start_worker(&watch);
        wait_for(&stats, 100_000);
        assert_eq!(stats.records.load(Ordering::Relaxed), 100_000);
        watch.close();
        worker.join().unwrap();
        assert_eq!(entries(dir.path()).len(), 100);
    }
}
