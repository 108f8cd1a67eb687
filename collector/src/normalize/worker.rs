//! The normalizer worker: one thread that parses stored blocks into fields columns and appends
//! them to the sidecars. Fed by the store writer after each commit through a bounded queue with
//! `try_send`, so the writer never waits. When the queue is full the block is *deferred*: only
//! its [`BlockRef`] is kept (bounded by [`MAX_DEFERRED`]) and the worker reads it back from the
//! store once the queue is empty, so a burst is normalized after it ends. Past that bound a block
//! is skipped and counted; its fields are then computed at search time (nothing is lost either
//! way). Deferred blocks reach a stream's normalizer out of order, which only matters to joins
//! across lines (postfix queue ids).
//!
//! Ingest first: the worker thread runs at nice [`WORKER_NICE`] (Linux nice values are per
//! thread), so when ingest and normalization compete for the cores the scheduler gives ingest
//! (TLS, decode checks, the store's fsync'd appends) about nine tenths of the time and the
//! fields catch up after the burst.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use bytes::Bytes;
use logship_normalize::Normalizer;
use logship_proto::payload::decode_payload;
use logship_store::BlockRef;

use super::column::fields_column;
use super::sidecar::Writer;

/// Blocks waiting for the worker.
const QUEUE_BLOCKS: usize = 32;
/// Normalizers kept (one per agent stream); past it the map is cleared and state restarts.
const MAX_STREAMS: usize = 4096;
/// Deferred blocks remembered for catch-up (about 100 bytes each).
const MAX_DEFERRED: usize = 100_000;
/// Nice value of the worker thread: CFS weight 110 against ingest's 1024.
const WORKER_NICE: libc::c_int = 10;
/// How long the worker waits for a fresh block before catching up on a deferred one.
const IDLE_WAIT: Duration = Duration::from_millis(50);

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
    /// Where the block is stored (to read it back if it has to wait).
    pub at: BlockRef,
}

/// A block waiting for catch-up: everything but its payload.
struct Deferred {
    agent: String,
    stream_id: String,
    first_seq: u64,
    count: u32,
    at: BlockRef,
}

type DeferredQueue = Arc<Mutex<VecDeque<Deferred>>>;

/// Counters for the status file.
#[derive(Debug, Default)]
pub struct NormalizeStats {
    /// Records whose fields were precomputed.
    pub records: AtomicU64,
    /// Records whose blocks wait for catch-up right now.
    pub deferred_records: AtomicU64,
    /// Records ever deferred (with `records`, tells how much catch-up was needed).
    pub deferred_total: AtomicU64,
    /// Records skipped because even the deferred list was full (fields computed at search time).
    pub skipped_records: AtomicU64,
    /// Blocks that could not be normalized (sidecar write failed).
    pub failed_blocks: AtomicU64,
}

/// Handle to the worker.
#[derive(Clone)]
pub struct NormalizeQueue {
    tx: SyncSender<Job>,
    deferred: DeferredQueue,
    /// Shared counters.
    pub stats: Arc<NormalizeStats>,
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

impl NormalizeQueue {
    /// Starts the worker writing sidecars under `dir`; it stops when every handle is dropped.
    pub fn start(
        dir: PathBuf,
        max_decompressed_bytes: usize,
    ) -> (NormalizeQueue, std::thread::JoinHandle<()>) {
        let (tx, rx) = sync_channel(QUEUE_BLOCKS);
        let stats = Arc::new(NormalizeStats::default());
        let deferred = DeferredQueue::default();
        let worker = Worker {
            writer: Writer::new(dir),
            cap: max_decompressed_bytes,
            stats: stats.clone(),
            deferred: deferred.clone(),
            normalizers: HashMap::new(),
            scratch: Vec::new(),
            text: Vec::new(),
        };
        let join = std::thread::Builder::new()
            .name("normalizer".into())
            .spawn(move || {
                lower_priority();
                worker.run(&rx)
            })
            .expect("spawning a thread only fails when the OS is out of resources");
        (
            NormalizeQueue {
                tx,
                deferred,
                stats,
            },
            join,
        )
    }

    /// Queues a block without ever waiting; a full queue defers it (or, past
    /// [`MAX_DEFERRED`], skips it), counted either way.
    pub fn submit(&self, job: Job) {
        let count = u64::from(job.count);
        let job = match self.tx.try_send(job) {
            Ok(()) => return,
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job,
        };
        let mut deferred = self
            .deferred
            .lock()
            .expect("deferred lock is never poisoned");
        if deferred.len() >= MAX_DEFERRED {
            self.stats
                .skipped_records
                .fetch_add(count, Ordering::Relaxed);
            return;
        }
        let Job {
            agent,
            stream_id,
            first_seq,
            count: n,
            at,
            ..
        } = job;
        deferred.push_back(Deferred {
            agent,
            stream_id,
            first_seq,
            count: n,
            at,
        });
        self.stats
            .deferred_records
            .fetch_add(count, Ordering::Relaxed);
        self.stats
            .deferred_total
            .fetch_add(count, Ordering::Relaxed);
    }
}

/// The worker thread's state.
struct Worker {
    writer: Writer,
    cap: usize,
    stats: Arc<NormalizeStats>,
    deferred: DeferredQueue,
    normalizers: HashMap<(String, String), Normalizer>,
    scratch: Vec<u8>,
    text: Vec<u8>,
}

impl Worker {
    /// Fresh blocks first; deferred ones whenever no fresh block arrives for [`IDLE_WAIT`].
    fn run(mut self, rx: &Receiver<Job>) {
        loop {
            match rx.recv_timeout(IDLE_WAIT) {
                Ok(job) => self.normalize(
                    &job.agent,
                    &job.stream_id,
                    job.first_seq,
                    job.count,
                    &job.payload,
                ),
                Err(RecvTimeoutError::Timeout) => self.catch_up_one(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let left = self
            .deferred
            .lock()
            .expect("deferred lock is never poisoned")
            .len();
        if left > 0 {
            tracing::info!(
                blocks = left,
                "Normalizer stopped with deferred blocks; search computes their fields."
            );
        }
    }

    fn catch_up_one(&mut self) {
        let next = self
            .deferred
            .lock()
            .expect("deferred lock is never poisoned")
            .pop_front();
        let Some(d) = next else { return };
        self.stats
            .deferred_records
            .fetch_sub(u64::from(d.count), Ordering::Relaxed);
        match logship_store::read_block_payload(&d.at) {
            Ok(payload) => self.normalize(&d.agent, &d.stream_id, d.first_seq, d.count, &payload),
            Err(error) => {
                self.stats.failed_blocks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, agent = %d.agent, first_seq = d.first_seq,
                    "Reading a deferred block failed; search computes its fields.");
            }
        }
    }

    fn normalize(
        &mut self,
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
        let column = decode_payload(payload, self.cap, &mut self.scratch)
            .map_err(anyhow::Error::from)
            .and_then(|list| fields_column(&list, normalizer, &mut self.text));
        let written = column.and_then(|c| {
            self.writer
                .append(agent, stream_id, first_seq, count, &c)
                .map_err(Into::into)
        });
        match written {
            Ok(()) => {
                self.stats
                    .records
                    .fetch_add(u64::from(count), Ordering::Relaxed);
            }
            Err(error) => {
                self.stats.failed_blocks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent, first_seq, error = %format!("{error:#}"),
                    "Normalizing a block failed; its fields are computed at search time.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use logship_proto::v1::{Record, RecordList, Source};
    use logship_store::{BlockInput, Store, StoreConfig};
    use prost::Message;

    use super::*;

    const STREAM: &str = "0123456789abcdef0123456789abcdef";

    fn payload(first: u64, count: u32) -> Bytes {
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

    #[test]
    fn a_burst_past_the_queue_is_deferred_then_caught_up_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            dir: dir.path().join("store"),
            ..StoreConfig::default()
        };
        let (mut store, _) = Store::open(config).unwrap();
        let (queue, worker) = NormalizeQueue::start(dir.path().join("fields"), 1 << 24);
        let (blocks, count) = ((QUEUE_BLOCKS * 3) as u64, 1000u32);
        let payloads: Vec<_> = (0..blocks)
            .map(|b| payload(1 + b * u64::from(count), count))
            .collect();
        for (b, payload) in (0..blocks).zip(payloads) {
            let first_seq = 1 + b * u64::from(count);
            let input = BlockInput {
                agent: "a".into(),
                stream_id: STREAM.into(),
                first_seq,
                count,
                host: "h".into(),
                min_time_ns: 1,
                max_time_ns: 1,
                inputs: vec!["auth".into()],
                payload: payload.clone(),
                fields: None,
            };
            let at = store.append(input).unwrap();
            queue.submit(Job {
                agent: "a".into(),
                stream_id: STREAM.into(),
                first_seq,
                count,
                payload,
                at,
            });
        }
        store.sync().unwrap();
        let total = blocks * u64::from(count);
        let deadline = Instant::now() + Duration::from_secs(60);
        while queue.stats.records.load(Ordering::Relaxed) < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(queue.stats.records.load(Ordering::Relaxed), total);
        assert_eq!(queue.stats.deferred_records.load(Ordering::Relaxed), 0);
        assert_eq!(queue.stats.skipped_records.load(Ordering::Relaxed), 0);
        assert!(
            queue.stats.deferred_total.load(Ordering::Relaxed) > 0,
            "the burst never filled the queue"
        );
        drop(queue);
        worker.join().unwrap();
        // Every block has its column in the sidecar, in seq order for readers.
        let mut file = std::fs::File::open(super::super::sidecar::path(
            &dir.path().join("fields"),
            "a",
            STREAM,
        ))
        .unwrap();
        let (entries, _) = super::super::sidecar::scan(&mut file).unwrap();
        assert_eq!(entries.len() as u64, blocks);
        assert!(entries.windows(2).all(|w| w[0].first_seq < w[1].first_seq));
    }
}
