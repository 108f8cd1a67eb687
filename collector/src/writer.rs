//! The store writer: one dedicated thread that owns the [`Store`], de-duplicates, appends and
//! group-commits.
//!
//! Invariants:
//! - The store has a single writer (this thread); connections hand it blocks over a bounded
//!   channel (policy `block`: a full channel makes connections wait, which stops them reading).
//! - A reply is sent only after the `fsync` that covers the block (DESIGN.md invariant 1): the
//!   connection acks the agent only on that reply.
//! - De-duplication on (agent, stream_id, seq) uses the store's watermark, checked here because
//!   two connections of one agent may race (invariant 2). A batch wholly at or below the watermark
//!   is acked without being stored; a batch straddling it is trimmed to its new records.
//! - Signed checkpoints ([`crate::integrity`]) are appended here too, between batches, and
//!   committed by the same fsync; a last one is signed after the last batch at shutdown.
//! - After each successful fsync the committed end is published on the [`CommitWatch`]: the
//!   store's cursors (normalizer, forwarders) read up to it and no further, so nothing (a
//!   checkpoint included) leaves the box before it is durable; the watch is closed when the
//!   writer stops.
//! - Retention ([`crate::retention`]) runs here too, between batches: at start, when the timer
//!   asks, and after every commit that sealed a segment. Its record is appended and fsync'd by
//!   the store before any segment file is deleted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use logship_store::{BlockInput, CommitWatch, Store};
use tokio::sync::{mpsc, oneshot};

use crate::ingest::trim::trim_block;
use crate::integrity::Witness;
use crate::retention::{Plan, RetentionStats};

/// Capacity of the channel into the writer.
const QUEUE_CAPACITY: usize = 64;

/// What happened to a submitted block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and fsync'd.
    Stored,
    /// Already stored earlier: nothing written.
    Duplicate,
}

/// Reply to a submitted block: the outcome, or an error text for the agent.
pub type Reply = Result<Outcome, String>;

struct Request {
    block: BlockInput,
    reply: oneshot::Sender<Reply>,
}

/// What the writer thread is asked to do.
enum Message {
    /// Store a block.
    Block(Request),
    /// Sign and store a checkpoint of the chain.
    Checkpoint,
    /// Apply the retention policy.
    Retention,
}

/// Counters shared with the status file.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records stored (not counting duplicates).
    pub records_stored: AtomicU64,
    /// Blocks stored.
    pub blocks_stored: AtomicU64,
    /// Compressed payload bytes stored.
    pub payload_bytes: AtomicU64,
    /// Records received again and dropped as duplicates.
    pub duplicate_records: AtomicU64,
    /// fsync calls (group commits).
    pub commits: AtomicU64,
    /// Signed checkpoints stored.
    pub checkpoints: AtomicU64,
    /// Checkpoints that could not be stored (the store refused the append; logged).
    pub checkpoint_failures: AtomicU64,
    /// Time the last checkpoint was signed, Unix ns (0: none since start).
    pub last_checkpoint_ns: std::sync::atomic::AtomicI64,
    /// When `records_stored` reached each value (at each commit), for the fields lag.
    pub stored_at: crate::normalize::lag::StoredTimes,
    /// Unix ns of the last group commit that made new records durable (0: none since start):
    /// status.json's `records_last_stored_time`, so a reader can tell when a burst was stored
    /// to the millisecond although the file is rewritten only twice a second.
    pub last_stored_ns: std::sync::atomic::AtomicI64,
}

/// Handle to submit blocks to the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Message>,
    /// Shared counters.
    pub stats: Arc<WriterStats>,
}

// === impl WriterHandle ===

impl WriterHandle {
    /// Starts the writer thread. It ends when every handle is dropped, after a final commit.
    pub fn start(
        store: Store,
        records_at_open: u64,
        watch: CommitWatch,
        witness: Option<Witness>,
        retention: Option<(Plan, Arc<RetentionStats>)>,
    ) -> (WriterHandle, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        stats
            .records_stored
            .store(records_at_open, Ordering::Relaxed);
        stats
            .stored_at
            .record(records_at_open, std::time::Instant::now());
        let thread_stats = stats.clone();
        let join = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let mut witness = witness.map(|w| (w, None));
                run(
                    store,
                    rx,
                    &thread_stats,
                    &watch,
                    witness.as_mut(),
                    retention.as_ref(),
                );
            })
            .expect("spawning a thread only fails when the OS is out of resources");
        (WriterHandle { tx, stats }, join)
    }

    /// Submits a block; the returned receiver resolves once it is durable (or refused).
    pub async fn submit(&self, block: BlockInput) -> Result<oneshot::Receiver<Reply>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Message::Block(Request { block, reply }))
            .await
            .map_err(|_| "the store writer has stopped".to_string())?;
        Ok(rx)
    }

    /// Asks the writer to apply the retention policy (a no-op without one).
    pub async fn retention(&self) -> Result<(), String> {
        self.tx
            .send(Message::Retention)
            .await
            .map_err(|_| "the store writer has stopped".to_string())
    }

    /// Asks the writer to sign and store a checkpoint (a no-op without a witness key).
    pub async fn checkpoint(&self) -> Result<(), String> {
        self.tx
            .send(Message::Checkpoint)
            .await
            .map_err(|_| "the store writer has stopped".to_string())
    }
}

/// The witness and the block count right after its last checkpoint (None: none yet).
type WitnessState = (Witness, Option<u64>);

/// Signs and appends a checkpoint unless nothing was stored since the last one.
fn checkpoint(store: &mut Store, state: &mut WitnessState, stats: &WriterStats, reason: &str) {
    let (witness, last) = state;
    if *last == Some(store.chain_len()) {
        return;
    }
    match store.append_checkpoint(&witness.key, &witness.host, reason) {
        Ok((at, cp, _)) => {
            *last = Some(store.chain_len());
            stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            stats
                .last_checkpoint_ns
                .store(cp.time_ns, Ordering::Relaxed);
            tracing::info!(blocks = cp.blocks, head = %cp.head, reason, segment = %at.segment.display(),
                offset = at.offset, "Signed a checkpoint of the store.");
        }
        Err(error) => {
            stats.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "Could not store a signed checkpoint.");
        }
    }
}

fn run(
    mut store: Store,
    mut rx: mpsc::Receiver<Message>,
    stats: &WriterStats,
    watch: &CommitWatch,
    mut witness: Option<&mut WitnessState>,
    retention: Option<&(Plan, Arc<RetentionStats>)>,
) {
    let mut pending: Vec<(oneshot::Sender<Reply>, Reply)> = Vec::new();
    watch.publish(store.committed());
    let mut segment_at_last_round = store.committed().map(|p| p.segment);
    let mut stored_at_last_commit = stats.records_stored.load(Ordering::Relaxed);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next.take().or_else(|| rx.try_recv().ok()) {
            match message {
                Message::Block(req) => pending.push(handle(&mut store, req, stats)),
                Message::Checkpoint => {
                    if let Some(w) = witness.as_deref_mut() {
                        checkpoint(&mut store, w, stats, "periodic");
                    }
                }
                Message::Retention => {
                    if let Some((plan, counters)) = retention {
                        retain(&mut store, plan, counters);
                        segment_at_last_round = store.committed().map(|p| p.segment);
                    }
                }
            }
        }
        let committed = store
            .sync()
            .map_err(|e| format!("store commit failed: {e}"));
        stats.commits.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = &committed {
            tracing::error!(%error, "Store commit failed; refusing the pending batches.");
        }
        if committed.is_ok() {
            let stored = stats.records_stored.load(Ordering::Relaxed);
            if stored > stored_at_last_commit {
                stored_at_last_commit = stored;
                stats.last_stored_ns.store(
                    jiff::Timestamp::now().as_nanosecond() as i64,
                    Ordering::Relaxed,
                );
            }
            stats.stored_at.record(stored, std::time::Instant::now());
            // Cursors follow the commit and never hold it up.
            watch.publish(store.committed());
        }
        // A segment was sealed: hold the size cap now rather than at the next tick. (Its
        // record is committed by the round itself, before any deletion.)
        if let Some((plan, counters)) = retention
            && committed.is_ok()
            && store.committed().map(|p| p.segment) != segment_at_last_round
        {
            retain(&mut store, plan, counters);
            segment_at_last_round = store.committed().map(|p| p.segment);
            watch.publish(store.committed());
        }
        for (reply, outcome) in pending.drain(..) {
            let outcome = match (&committed, outcome) {
                (Err(e), _) => Err(e.clone()),
                (Ok(()), o) => o,
            };
            // A closed receiver means the connection went away; the agent resends.
            reply.send(outcome).ok();
        }
    }
    if let Some(w) = witness {
        checkpoint(&mut store, w, stats, "shutdown");
    }
    match store.sync() {
        Ok(()) => watch.publish(store.committed()),
        Err(error) => tracing::error!(%error, "Final store commit failed."),
    }
    watch.close();
    tracing::info!("Store writer stopped.");
}

/// One retention round; failures are logged and counted, never fatal.
fn retain(store: &mut Store, plan: &Plan, counters: &RetentionStats) {
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let mut loss = crate::retention::FilteredLoss::new(plan);
    match store.retain_counting(&plan.policy, &plan.consumers, &plan.host, &mut loss) {
        Ok(report) => {
            if let Some(record) = &report.record {
                let first = record.removed.first().map_or(0, |s| s.n);
                let last = record.removed.last().map_or(0, |s| s.n);
                let records: u64 = record.removed.iter().map(|s| s.records).sum();
                tracing::info!(
                    first_segment = first,
                    last_segment = last,
                    segments = record.removed.len(),
                    records,
                    bytes = report.bytes,
                    reason = %record.reason,
                    "Retention removed the oldest segments of the store."
                );
                for (consumer, lost) in &record.undelivered {
                    tracing::error!(
                        consumer = %consumer,
                        records = lost,
                        "Retention (max_bytes) removed records this consumer had not read; \
                         the loss is recorded in the store."
                    );
                }
            }
            counters.note(&report, now);
        }
        Err(error) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            counters.runs.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "Retention failed; the store keeps its segments.");
        }
    }
}

fn handle(store: &mut Store, req: Request, stats: &WriterStats) -> (oneshot::Sender<Reply>, Reply) {
    let Request { block, reply } = req;
    let watermark = store.watermark(&block.agent, &block.stream_id);
    let last = block.first_seq + u64::from(block.count) - 1;
    if last <= watermark {
        stats
            .duplicate_records
            .fetch_add(u64::from(block.count), Ordering::Relaxed);
        return (reply, Ok(Outcome::Duplicate));
    }
    let block = if block.first_seq <= watermark {
        let skip = watermark - block.first_seq + 1;
        stats.duplicate_records.fetch_add(skip, Ordering::Relaxed);
        match trim_block(block, skip) {
            Ok(b) => b,
            Err(e) => {
                return (
                    reply,
                    Err(format!("trimming a partly duplicate batch: {e}")),
                );
            }
        }
    } else {
        block
    };
    let (count, bytes) = (u64::from(block.count), block.payload.len() as u64);
    match store.append(block) {
        Ok(_) => {
            stats.records_stored.fetch_add(count, Ordering::Relaxed);
            stats.blocks_stored.fetch_add(1, Ordering::Relaxed);
            stats.payload_bytes.fetch_add(bytes, Ordering::Relaxed);
            (reply, Ok(Outcome::Stored))
        }
        Err(error) => {
            tracing::error!(%error, "Store append failed.");
            (reply, Err(format!("store append failed: {error}")))
        }
    }
}
