//! The normalizer worker: one thread that parses stored blocks into fields columns and appends
//! them to the sidecars. Fed by the store writer after each commit through a bounded queue with
//! `try_send` (policy `drop_newest` for *precomputation* only: a skipped block is counted and its
//! fields are computed at search time instead, so nothing is lost).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use bytes::Bytes;
use logship_normalize::Normalizer;
use logship_proto::payload::decode_payload;

use super::column::fields_column;
use super::sidecar::Writer;

/// Blocks waiting for the worker.
const QUEUE_BLOCKS: usize = 32;
/// Normalizers kept (one per agent stream); past it the map is cleared and state restarts.
const MAX_STREAMS: usize = 4096;

/// One stored block to normalize.
pub struct Job {
    /// Agent (certificate name).
    pub agent: String,
    /// Stream id.
    pub stream_id: String,
    /// Seq of the first record.
    pub first_seq: u64,
    /// Records in the block.
    pub count: u32,
    /// The block's compressed payload.
    pub payload: Bytes,
}

/// Counters for the status file.
#[derive(Debug, Default)]
pub struct NormalizeStats {
    /// Records whose fields were precomputed.
    pub records: AtomicU64,
    /// Records skipped because the queue was full (their fields are computed at search time).
    pub skipped_records: AtomicU64,
    /// Blocks that could not be normalized (sidecar write failed).
    pub failed_blocks: AtomicU64,
}

/// Handle to the worker.
#[derive(Clone)]
pub struct NormalizeQueue {
    tx: SyncSender<Job>,
    /// Shared counters.
    pub stats: Arc<NormalizeStats>,
}

impl NormalizeQueue {
    /// Starts the worker writing sidecars under `dir`; it stops when every handle is dropped.
    pub fn start(
        dir: PathBuf,
        max_decompressed_bytes: usize,
    ) -> (NormalizeQueue, std::thread::JoinHandle<()>) {
        let (tx, rx) = sync_channel(QUEUE_BLOCKS);
        let stats = Arc::new(NormalizeStats::default());
        let thread_stats = stats.clone();
        let join = std::thread::Builder::new()
            .name("normalizer".into())
            .spawn(move || run(rx, Writer::new(dir), max_decompressed_bytes, &thread_stats))
            .expect("spawning a thread only fails when the OS is out of resources");
        (NormalizeQueue { tx, stats }, join)
    }

    /// Queues a block without ever waiting; a full queue skips it (counted).
    pub fn submit(&self, job: Job) {
        let count = u64::from(job.count);
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats
                    .skipped_records
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
    }
}

fn run(rx: Receiver<Job>, mut writer: Writer, cap: usize, stats: &NormalizeStats) {
    let mut normalizers: HashMap<(String, String), Normalizer> = HashMap::new();
    let (mut scratch, mut text) = (Vec::new(), Vec::new());
    while let Ok(job) = rx.recv() {
        if normalizers.len() >= MAX_STREAMS {
            normalizers.clear();
        }
        let key = (job.agent.clone(), job.stream_id.clone());
        let normalizer = normalizers.entry(key).or_default();
        let column = decode_payload(&job.payload, cap, &mut scratch)
            .map_err(anyhow::Error::from)
            .and_then(|list| fields_column(&list, normalizer, &mut text));
        let written = column.and_then(|c| {
            writer
                .append(&job.agent, &job.stream_id, job.first_seq, job.count, &c)
                .map_err(Into::into)
        });
        match written {
            Ok(()) => {
                stats
                    .records
                    .fetch_add(u64::from(job.count), Ordering::Relaxed);
            }
            Err(error) => {
                stats.failed_blocks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent = %job.agent, first_seq = job.first_seq, error = %format!("{error:#}"),
                    "Normalizing a block failed; its fields are computed at search time.");
            }
        }
    }
}
