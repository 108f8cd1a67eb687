//! The normalizer worker: one thread that follows the store through its own durable cursor
//! (`normalizer`, see [`logship_store::Cursor`]), parses each committed block into a fields
//! column and appends it to its segment's fields sidecar ([`logship_store::fields`]). The writer never waits for it: it only
//! publishes its committed end on the [`CommitWatch`] after each fsync, and the worker reads the
//! blocks back (from the page cache, usually) when it gets the CPU. A burst is normalized after
//! it ends; a restart in the middle of catch-up resumes from the last cursor commit instead of
//! leaving blocks to search-time parsing.
//!
//! Invariants:
//! - The cursor commits only after the sidecars holding the columns of the blocks it passed are
//!   fsync'd, so a crash loses at most the work since the last commit, which is redone; a block
//!   a sidecar already covers is not parsed again ([`FieldsWriter::covered`]).
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logship_normalize::Normalizer;
use logship_proto::payload::decode_payload;
use logship_store::fields::{ColumnBuilder, FieldsWriter, TAG_LEN};
use logship_store::{CommitWatch, Cursor, CursorBlock, CursorItem};

use super::column::fields_column;
use super::fieldindex::BlockIndexer;
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
    /// Records (all time, in store order) whose fields are ready: the cursor passed their
    /// block and its column is written (see [`super::lag`]).
    pub fields_done: AtomicU64,
    /// Whether `fields_done` is measured yet (after the walk over the store at start).
    pub fields_done_known: AtomicBool,
}

/// Where the worker reads and writes.
pub struct WorkerConfig {
    /// The store directory (the fields sidecars live beside its segments).
    pub store_dir: PathBuf,
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
        pipeline: Pipeline::new(&config.store_dir, config.max_decompressed_bytes),
        stats: stats.clone(),
        watch: config.watch,
        consumed: 0,
        backlog_left: 0,
        writer_stats: config.writer,
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
    pipeline: Pipeline,
    stats: Arc<NormalizeStats>,
    watch: CommitWatch,
    /// Records the cursor has passed (all time, as `records_stored` counts them; negative only
    /// while a backlog holding more of the collector's own records than agents' is passed).
    consumed: i64,
    /// Records of the backlog measured at the start not passed yet (see [`Worker::counted`]).
    backlog_left: u64,
    writer_stats: Arc<WriterStats>,
}

impl Worker {
    fn run(mut self) {
        // Measured here, not in `start`: a walk over a long store must not delay serving.
        let backlog = self.cursor.backlog().map_or(0, |b| b.records);
        let stored = self.writer_stats.records_stored.load(Ordering::Relaxed);
        self.consumed = stored as i64 - backlog as i64;
        self.backlog_left = backlog;
        self.update_lag();
        self.stats.fields_done_known.store(true, Ordering::Release);
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
                    self.consumed += self.counted(&b) as i64;
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
            .saturating_sub(self.consumed.max(0) as u64);
        self.stats.deferred_records.store(lag, Ordering::Relaxed);
        self.stats.deferred_total.fetch_max(lag, Ordering::Relaxed);
        self.stats
            .fields_done
            .store(self.consumed.max(0) as u64, Ordering::Release);
    }

    /// Records of `b` in the count `records_stored` keeps: all of them while in the backlog
    /// measured at the start (that backlog counted the collector's own records too, so passing
    /// it brings `consumed` exactly to `records_stored`), then agents' records only (the writer
    /// does not count the collector's checkpoint and retention records).
    fn counted(&mut self, b: &CursorBlock) -> u64 {
        let n = u64::from(b.count);
        if self.backlog_left > 0 {
            self.backlog_left = self.backlog_left.saturating_sub(n);
            n
        } else if b.agent == logship_store::COLLECTOR_IDENTITY {
            0
        } else {
            n
        }
    }

    /// Makes the sidecars durable, then moves the cursor file past their blocks.
    fn commit(&mut self, uncommitted: &mut u32) {
        if *uncommitted == 0 {
            return;
        }
        let done = self
            .pipeline
            .sync()
            .map_err(anyhow::Error::from)
            .and_then(|()| self.cursor.commit().map_err(Into::into));
        match done {
            Ok(()) => {
                *uncommitted = 0;
                self.pipeline.flush_index();
            }
            Err(error) => tracing::warn!(error = %format!("{error:#}"),
                "Normalizer could not commit its cursor; the blocks since are redone after a restart."),
        }
    }

    fn block(&mut self, b: &CursorBlock) {
        let (agent, first_seq, count) = (b.agent.as_str(), b.first_seq, u64::from(b.count));
        match self.pipeline.block(b) {
            Done::Covered | Done::Written => {
                self.stats.records.fetch_add(count, Ordering::Relaxed);
            }
            Done::Unreadable(error) => {
                self.stats
                    .skipped_records
                    .fetch_add(count, Ordering::Relaxed);
                tracing::warn!(agent, first_seq, %error,
                    "A stored block could not be parsed; its fields are computed at search time.");
            }
            Done::WriteFailed(error) => {
                self.stats.failed_blocks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent, first_seq, %error,
                    "Writing a fields column failed; its fields are computed at search time.");
            }
        }
    }
}

/// What [`Pipeline::block`] did with a block.
#[derive(Debug)]
pub enum Done {
    /// The block has an inline column, or its sidecar already holds its column.
    Covered,
    /// Its column was appended to the sidecar.
    Written,
    /// The payload could not be decoded (fields computed at search time).
    Unreadable(String),
    /// The sidecar could not be written (fields computed at search time).
    WriteFailed(std::io::Error),
}

/// The normalizer's work on one block, apart from its thread and cursor: decompress the
/// payload, parse every record with its stream's normalizer, append the column to the
/// segment's sidecar. The component benchmark (`examples/normalize_bench.rs`) runs exactly this.
pub struct Pipeline {
    writer: FieldsWriter,
    cap: usize,
    normalizers: HashMap<(String, String), Normalizer>,
    scratch: Vec<u8>,
    builder: ColumnBuilder,
    column: Vec<u8>,
    /// The field index of the segments, fed with each block's fields.
    index: BlockIndexer,
}

impl Pipeline {
    /// A pipeline writing the sidecars of the store at `store_dir`; `cap` bounds a decompressed
    /// payload.
    pub fn new(store_dir: &std::path::Path, cap: usize) -> Pipeline {
        Pipeline {
            writer: FieldsWriter::new(store_dir),
            cap,
            normalizers: HashMap::new(),
            scratch: Vec::new(),
            builder: ColumnBuilder::new(),
            column: Vec::new(),
            index: BlockIndexer::new(store_dir),
        }
    }

    /// fsyncs the sidecars written since the last call.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.writer.sync()
    }

    /// Writes the field indexes of the segments left behind; call after [`Pipeline::sync`] (and
    /// the cursor commit), so an index never covers a block whose column a crash lost.
    pub fn flush_index(&mut self) {
        self.index.flush();
    }

    /// Normalizes one committed block unless its sidecar already covers it.
    pub fn block(&mut self, b: &CursorBlock) -> Done {
        let mut tag = [0u8; TAG_LEN];
        let hex_tag = b.hash.get(..2 * TAG_LEN).unwrap_or_default();
        if hex::decode_to_slice(hex_tag, &mut tag).is_err() {
            return Done::Unreadable(format!("block hash {:?} is not hex", b.hash));
        }
        let covered = self
            .writer
            .covered(b.at.segment, b.at.offset, &tag)
            .unwrap_or(false);
        if b.fields.is_some() || covered {
            // Inline column, or normalized before a restart.
            return Done::Covered;
        }
        if let Err(error) = self.normalize(b) {
            return Done::Unreadable(error);
        }
        match self
            .writer
            .append(b.at.segment, b.at.offset, &tag, b.count, &self.column)
        {
            Ok(()) => {
                self.index.done(b.at);
                Done::Written
            }
            Err(error) => Done::WriteFailed(error),
        }
    }

    /// Produces the fields of the block's records into `self.column` (the one place they are
    /// made).
    fn normalize(&mut self, b: &CursorBlock) -> Result<(), String> {
        if self.normalizers.len() >= MAX_STREAMS {
            self.normalizers.clear();
        }
        let key = (b.agent.clone(), b.stream_id.clone());
        let normalizer = self.normalizers.entry(key).or_default();
        let list =
            decode_payload(&b.payload, self.cap, &mut self.scratch).map_err(|e| e.to_string())?;
        if list.records.len() != b.count as usize {
            return Err(format!(
                "{} records, header says {}",
                list.records.len(),
                b.count
            ));
        }
        let (index, at) = (&mut self.index, b.at);
        fields_column(&list, normalizer, &mut self.builder, &mut |f| {
            index.record(at, f)
        });
        self.builder.finish(&mut self.column);
        Ok(())
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

    /// (block offset, count) of every sidecar entry of the store, in segment order.
    fn entries(dir: &std::path::Path) -> Vec<(u64, u32)> {
        let mut segments: Vec<_> = walk(&dir.join("store"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        segments
            .iter()
            .filter_map(|s| logship_store::fields::SidecarIndex::open(s))
            .flat_map(|i| {
                i.entries()
                    .iter()
                    .map(|e| (e.block_offset, e.count))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
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
        assert!(got.iter().all(|e| e.1 == count));
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "each block once, in order"
        );
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
