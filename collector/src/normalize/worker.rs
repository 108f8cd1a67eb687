//! The normalizer: one thread that follows the store through its own durable cursor
//! (`normalizer`, see [`logship_store::Cursor`]), has each committed block parsed into a fields
//! column and appends the columns, in store order, to their segments' fields sidecars
//! ([`logship_store::fields`]), feeding the field index as it goes. The writer never waits for
//! it: it only publishes its committed end on the [`CommitWatch`] after each fsync, and the
//! normalizer reads the blocks back (from the page cache, usually) when it gets the CPU. A burst
//! is normalized after it ends; a restart in the middle of catch-up resumes from the last cursor
//! commit instead of leaving blocks to search-time parsing.
//!
//! ```text
//! cursor ─► normalizer thread ─ window of ≤ W blocks in store order ─────────► write in order:
//!             │  parse here: the oldest block that can be parsed     ▲          sidecar column,
//!             └─ workers > 1: other streams' blocks ─► pool ─ results┘          index values,
//!                                                                               lag, cursor commit
//! ```
//!
//! With `[normalize] workers` > 1 the parsing (decompress, parsers, column) runs on this thread
//! (the oldest block that can be parsed) and on a [`super::pool::Pool`] of `workers − 1` threads (the
//! other streams' blocks, [`Worker::work_or_wait`]); everything that touches a file stays on
//! this one thread, in store order, so the sidecar and index formats, the cursor and crash safety are those of one thread.
//! Each window slot remembers the cursor position just after its block; the cursor file is
//! moved ([`Cursor::commit_at`]) only to the position after the last block *written*, never to
//! one the thread has read ahead to.
//!
//! Invariants:
//! - The cursor commits only after the sidecars holding the columns of the blocks it passed are
//!   fsync'd, so a crash loses at most the work since the last commit, which is redone; a block
//!   a sidecar already covers is not parsed again ([`FieldsWriter::covered`]). A column is only
//!   ever appended for a block whose every predecessor was written or decided (covered,
//!   unreadable, stepped over) before it, so no block is skipped however the workers finish.
//! - Each (agent, stream) has one normalizer, handed to one parse at a time with the stream's
//!   blocks in store order (seq order), so postfix queue ids and auditd serials join exactly as
//!   with one worker.
//! - A block that cannot be read or parsed (or whose parser panics) is counted and logged; its
//!   fields are computed at search time. It never stops the normalizer.
//! - The window holds at most [`window`]`(workers)` blocks read and not yet written; when full
//!   the thread stops reading the store until the oldest is parsed (records wait in the store,
//!   the fields lag grows; ingest is not affected).
//!
//! Ingest first: the normalizer thread and every parse worker run at nice [`WORKER_NICE`]
//! (Linux nice values are per thread), so when ingest and normalization compete for the cores
//! the scheduler gives ingest (TLS, decode checks, the store's fsync'd appends) about nine
//! tenths of each core and the workers take what it leaves; and while batches are being
//! stored the thread rests between blocks ([`super::pace`]: at most a quarter of the time
//! working), so even a spare core's worth of parsing does not slow ingest through what the
//! cores share. The fields catch up after the burst.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logship_normalize::Normalizer;
use logship_store::fields::{FieldsWriter, TAG_LEN};
use logship_store::{CommitWatch, Cursor, CursorBlock, CursorItem, CursorPos, Skipped};

use super::fieldindex::BlockIndexer;
use super::pace::Pace;
use super::parse::{Parsed, Parser};
use super::pool::{Finished, Job, Pool};
use crate::writer::WriterStats;

/// Name of the normalizer's cursor in the store.
pub const CURSOR_NAME: &str = "normalizer";
/// Normalizers kept (one per agent stream); past it the idle ones are dropped and their
/// state restarts.
const MAX_STREAMS: usize = 4096;
/// Nice value of the normalizer and its parse workers: CFS weight 110 against ingest's 1024.
const WORKER_NICE: libc::c_int = 10;
/// Commit the cursor after this many blocks, or [`COMMIT_EVERY`] (also when caught up).
const COMMIT_BLOCKS: u32 = 256;
/// Longest time between two cursor commits while working.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Longest sleep while caught up (the watch wakes the worker earlier on each commit).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Most parse workers `[normalize] workers` accepts.
pub const MAX_WORKERS: usize = 64;
/// The default of `[normalize] workers`: 1, the normalizer thread alone. Measured
/// (docs/BENCHMARKS.md, "Parse workers"): with one agent stream a second worker cannot parse
/// anything sooner (a stream is parsed in order by one thread), and ingest beside 2 workers was
/// not shown to stay at ≥ 90 % of ingest without normalization on the shared 2-core machine.
/// Collectors with several busy agents and idle cores set it higher.
pub fn default_workers() -> usize {
    1
}

/// Blocks read and not yet written at most, for `workers` parse workers: one running per worker
/// and as many waiting, so a worker finds the next job queued when it finishes one.
pub fn window(workers: usize) -> usize {
    2 * workers.max(1)
}

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
    /// Records (all time, in store order) whose fields are ready: every block up to theirs
    /// was written or decided (see [`super::lag`]).
    pub fields_done: AtomicU64,
    /// Whether `fields_done` is measured yet (after the walk over the store at start).
    pub fields_done_known: AtomicBool,
    /// Unix ns when `fields_done` last grew (0: not since start): status.json's
    /// `fields_last_ready_time`.
    pub fields_done_ns: AtomicI64,
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
    /// Parse workers (`[normalize] workers`); 1 parses on the normalizer thread itself.
    pub workers: usize,
}

/// Lowers the calling thread's scheduling priority to [`WORKER_NICE`]; a failure is logged
/// and the thread runs at normal priority.
#[allow(unsafe_code)]
pub(crate) fn lower_priority() {
    // SAFETY: setpriority takes integers only; `who` = 0 is the calling thread on Linux (nice
    // values are per thread under NPTL), so no other thread or process is affected.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE) };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(),
            "Could not lower the normalizer's priority; it competes with ingest at equal priority.");
    }
}

/// Starts the normalizer; it stops soon after the watch is closed, committing its cursor first.
pub fn start(
    config: WorkerConfig,
) -> anyhow::Result<(Arc<NormalizeStats>, std::thread::JoinHandle<()>)> {
    let cursor = Cursor::open(&config.store_dir, CURSOR_NAME, Some(config.watch.clone()))?;
    let stats = Arc::new(NormalizeStats::default());
    let workers = config.workers.clamp(1, MAX_WORKERS);
    let cap = config.max_decompressed_bytes;
    let store_dir = config.store_dir;
    let (watch, writer_stats, thread_stats) = (config.watch, config.writer, stats.clone());
    let join = std::thread::Builder::new()
        .name("normalizer".into())
        .spawn(move || {
            lower_priority();
            let parse = if workers > 1 {
                // This thread parses too (see `work_or_wait`): workers − 1 more threads.
                match Pool::start(workers - 1, cap, window(workers)) {
                    Ok(pool) => Parse::Pool(pool),
                    Err(error) => {
                        tracing::warn!(%error, workers,
                            "Could not start the parse workers; the normalizer parses on its own thread.");
                        Parse::Inline
                    }
                }
            } else {
                Parse::Inline
            };
            let window = match parse {
                Parse::Inline => 1,
                Parse::Pool(_) => window(workers),
            };
            tracing::info!(workers, window, "Normalizer started.");
            let worker = Worker {
                cursor,
                pipeline: Pipeline::new(&store_dir, cap),
                stats: thread_stats,
                watch,
                consumed: 0,
                backlog_left: 0,
                writer_stats,
                parse,
                window,
                slots: VecDeque::new(),
                first_seq: 0,
                streams: HashMap::new(),
                written: None,
                pace: Pace::default(),
            };
            worker.run();
        })?;
    Ok((stats, join))
}

/// Where blocks are parsed.
enum Parse {
    /// On the normalizer thread, one block at a time (`workers = 1`).
    Inline,
    /// On the parse workers.
    Pool(Pool),
}

/// (agent, stream id): the unit whose records are parsed in order by one normalizer.
type StreamKey = (String, String);

/// A block read from the store, as far as writing its column needs it.
struct Meta {
    at: CursorPos,
    tag: [u8; TAG_LEN],
    count: u32,
    agent: String,
    first_seq: u64,
    stream: StreamKey,
}

/// What became of a block or range read from the store.
enum State {
    /// A range the cursor stepped over (damage, retention).
    Skipped(Skipped),
    /// Nothing to parse: an inline column, a sidecar that covers it, an unreadable hash.
    Decided(Done),
    /// Its stream's normalizer is busy with an earlier block (the block is in [`Slot::block`]).
    Waiting,
    /// Being parsed by a worker.
    Running,
    /// Parsed, not written yet.
    Parsed(Box<Result<Parsed, String>>),
}

/// One entry of the window, in store order.
struct Slot {
    /// Cursor position just after it, and the hash of the block ending there: where the
    /// cursor file may go once it and every slot before it are written.
    after: (CursorPos, String),
    /// Its records in the count `records_stored` keeps (see [`Worker::counted`]).
    counted: u64,
    /// The block's facts (`None` for a skipped range).
    meta: Option<Meta>,
    /// The block itself while [`State::Waiting`].
    block: Option<Box<CursorBlock>>,
    state: State,
}

/// The normalizer thread's state.
struct Worker {
    cursor: Cursor,
    pipeline: Pipeline,
    stats: Arc<NormalizeStats>,
    watch: CommitWatch,
    /// Records whose blocks were written or decided (all time, as `records_stored` counts
    /// them; negative only while a backlog holding more of the collector's own records than
    /// agents' is passed).
    consumed: i64,
    /// Records of the backlog measured at the start not read yet (see [`Worker::counted`]).
    backlog_left: u64,
    writer_stats: Arc<WriterStats>,
    parse: Parse,
    /// Most slots held.
    window: usize,
    /// Blocks read and not yet written, oldest first; `slots[i]` has seq `first_seq + i`.
    slots: VecDeque<Slot>,
    first_seq: u64,
    /// Each stream's normalizer; `None` while it is out with a parse job.
    streams: HashMap<StreamKey, Option<Normalizer>>,
    /// Cursor position after the last slot written, not committed yet.
    written: Option<(CursorPos, String)>,
    /// Rests between blocks while agents' batches are being stored.
    pace: Pace,
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
            uncommitted += self.write_ready();
            if uncommitted >= COMMIT_BLOCKS
                || (uncommitted > 0 && last_commit.elapsed() >= COMMIT_EVERY)
            {
                self.commit(&mut uncommitted);
                last_commit = Instant::now();
            }
            if self.watch.is_closed() {
                self.stop(&mut uncommitted);
                break;
            }
            if self.slots.len() >= self.window {
                self.work_or_wait();
                continue;
            }
            self.pace.rest(&self.writer_stats.last_stored_ns);
            match self.cursor.read_next() {
                Ok(Some(item)) => self.admit(item),
                Ok(None) if !self.slots.is_empty() => {
                    // Caught up with the store, not with the parsing.
                    self.work_or_wait();
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
                    self.pace.waited();
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

    /// Stopping: no new parse jobs; the running ones are finished and written with every slot
    /// before them, then the cursor commits. Slots not parsed yet are redone after the restart.
    fn stop(&mut self, uncommitted: &mut u32) {
        while self.slots.iter().any(|s| matches!(s.state, State::Running)) {
            if !self.take_finished(IDLE_WAIT) {
                break;
            }
        }
        *uncommitted += self.write_ready();
        self.commit(uncommitted);
        self.parse = Parse::Inline; // drops the pool: joins the parse workers
    }

    /// Puts an item read from the store at the end of the window, and parses or queues it.
    fn admit(&mut self, item: CursorItem) {
        let after = (self.cursor.position(), self.cursor.last_hash());
        let slot = match item {
            CursorItem::Block(b) => {
                let counted = self.counted(&b);
                let mut meta = Meta {
                    at: b.at,
                    tag: [0; TAG_LEN],
                    count: b.count,
                    agent: b.agent.clone(),
                    first_seq: b.first_seq,
                    stream: (b.agent.clone(), b.stream_id.clone()),
                };
                let (state, block) = match self.pipeline.check(&b) {
                    Err(done) => (State::Decided(done), None),
                    Ok(tag) => {
                        meta.tag = tag;
                        (State::Waiting, Some(b))
                    }
                };
                Slot {
                    after,
                    counted,
                    meta: Some(meta),
                    block,
                    state,
                }
            }
            CursorItem::Skipped(s) => Slot {
                after,
                counted: 0,
                meta: None,
                block: None,
                state: State::Skipped(s),
            },
        };
        self.slots.push_back(slot);
        if matches!(self.parse, Parse::Inline) {
            let seq = self.first_seq + self.slots.len() as u64 - 1;
            self.dispatch(seq, true);
        }
        // With workers, blocks are parsed once the window is full or the store read
        // ([`Worker::work_or_wait`]), so blocks of other streams can be handed out beside it.
    }

    /// With parse workers: parses the oldest block that can be parsed now on this thread and
    /// hands every other one (the first waiting block of each other stream whose normalizer is
    /// free) to the workers; waits for a result if there is none. This thread parsing too means
    /// one agent stream costs no hand-over between threads per block (it is parsed here, as with
    /// `workers = 1`), and `workers` threads parse in all.
    fn work_or_wait(&mut self) {
        let mut seen = std::collections::HashSet::new();
        let mut ready = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let Some(m) = &s.meta else {
                continue;
            };
            if !seen.insert(&m.stream) || !matches!(s.state, State::Waiting) {
                continue; // an earlier block of its stream is waiting or running
            }
            if self.streams.get(&m.stream).is_none_or(Option::is_some) {
                ready.push(self.first_seq + i as u64);
            }
        }
        let Some((&oldest, others)) = ready.split_first() else {
            self.take_finished(IDLE_WAIT);
            return;
        };
        for &seq in others {
            self.dispatch(seq, false);
        }
        self.dispatch(oldest, true);
        self.take_finished(Duration::ZERO);
    }

    /// Parses (`inline`, or without workers) or hands to the workers the block of slot `seq`,
    /// if it is waiting and its stream's normalizer is free.
    fn dispatch(&mut self, seq: u64, inline: bool) {
        let Some(slot) = seq
            .checked_sub(self.first_seq)
            .and_then(|i| self.slots.get_mut(i as usize))
        else {
            return;
        };
        let (State::Waiting, Some(meta)) = (&slot.state, &slot.meta) else {
            return;
        };
        if !self.streams.contains_key(&meta.stream) && self.streams.len() >= MAX_STREAMS {
            // Forget the streams not being parsed now; their state restarts.
            self.streams.retain(|_, n| n.is_none());
        }
        let free = self
            .streams
            .entry(meta.stream.clone())
            .or_insert_with(|| Some(Normalizer::default()));
        let Some(mut normalizer) = free.take() else {
            return; // out with an earlier block of the stream; sent when that comes back
        };
        let Some(block) = slot.block.take() else {
            *free = Some(normalizer);
            return;
        };
        match &self.parse {
            Parse::Inline | Parse::Pool(_) if inline => {
                let parsed = self.pipeline.parser.parse_guarded(&block, &mut normalizer);
                *free = Some(normalizer);
                slot.state = State::Parsed(Box::new(parsed));
                return;
            }
            Parse::Inline => {
                let parsed = self.pipeline.parser.parse_guarded(&block, &mut normalizer);
                *free = Some(normalizer);
                slot.state = State::Parsed(Box::new(parsed));
                return;
            }
            Parse::Pool(pool) => {
                slot.state = State::Running;
                let job = Job {
                    seq,
                    block,
                    normalizer,
                };
                if pool.submit(job) {
                    return;
                }
            }
        }
        // Not expected (parser panics are caught): the workers are gone; parse here from now on.
        tracing::error!("The parse workers are gone; the normalizer parses on its own thread.");
        *free = Some(Normalizer::default());
        slot.state = State::Parsed(Box::new(Err("the parse workers are gone".into())));
        self.parse = Parse::Inline;
        self.window = 1;
        self.fail_running();
    }

    /// Takes back the parse results that are ready (waiting up to `timeout` for the first),
    /// and sends each returned stream's next waiting block. `false` if no result can come.
    fn take_finished(&mut self, timeout: Duration) -> bool {
        let mut timeout = timeout;
        loop {
            let Parse::Pool(pool) = &self.parse else {
                // Parsing here (the workers are gone): parse whatever still waits.
                for i in 0..self.slots.len() {
                    self.dispatch(self.first_seq + i as u64, true);
                }
                return false;
            };
            let finished = match pool.finished(timeout) {
                Ok(Some(f)) => f,
                Ok(None) => return true,
                Err(()) => {
                    tracing::error!(
                        "The parse workers are gone; the normalizer parses on its own thread."
                    );
                    self.parse = Parse::Inline;
                    self.window = 1;
                    self.fail_running();
                    return false;
                }
            };
            self.finished(finished);
            timeout = Duration::ZERO;
        }
    }

    /// Files one parse result and takes back its stream's normalizer.
    fn finished(&mut self, f: Finished) {
        let Finished {
            seq,
            normalizer,
            parsed,
        } = f;
        let Some(slot) = seq
            .checked_sub(self.first_seq)
            .and_then(|i| self.slots.get_mut(i as usize))
        else {
            return;
        };
        slot.state = State::Parsed(Box::new(parsed));
        let Some(stream) = slot.meta.as_ref().map(|m| m.stream.clone()) else {
            return;
        };
        self.streams.insert(stream, Some(normalizer));
    }

    /// Marks every running slot unreadable (its worker is gone) and restarts its stream.
    fn fail_running(&mut self) {
        for slot in &mut self.slots {
            if matches!(slot.state, State::Running) {
                slot.state = State::Parsed(Box::new(Err("the parse workers are gone".into())));
                if let Some(m) = &slot.meta {
                    self.streams
                        .insert(m.stream.clone(), Some(Normalizer::default()));
                }
            }
        }
    }

    /// Writes the slots at the head of the window that are done, in store order, up to the
    /// first that is not; returns how many. Each moves the lag and the commit point.
    fn write_ready(&mut self) -> u32 {
        let mut n = 0;
        while self.slots.front().is_some_and(|s| {
            matches!(
                s.state,
                State::Skipped(_) | State::Decided(_) | State::Parsed(_)
            )
        }) {
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            self.first_seq += 1;
            self.write(slot);
            n += 1;
        }
        if n > 0 {
            self.update_lag();
        }
        n
    }

    /// Writes one finished slot (the column, the index values, the counters).
    fn write(&mut self, slot: Slot) {
        self.consumed += slot.counted as i64;
        self.written = Some(slot.after);
        let (meta, done) = match (slot.meta, slot.state) {
            (_, State::Skipped(s)) => {
                self.stats.failed_blocks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(from_segment = s.from.segment, from_offset = s.from.offset,
                    to_segment = s.to.segment, to_offset = s.to.offset, reason = %s.reason,
                    "Normalizer stepped over an unreadable range of the store.");
                return;
            }
            (Some(meta), State::Decided(done)) => (meta, done),
            (Some(meta), State::Parsed(parsed)) => {
                let done = self.pipeline.write(meta.at, &meta.tag, meta.count, *parsed);
                (meta, done)
            }
            _ => return,
        };
        let (agent, first_seq, count) =
            (meta.agent.as_str(), meta.first_seq, u64::from(meta.count));
        match done {
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

    fn update_lag(&self) {
        let lag = self
            .writer_stats
            .records_stored
            .load(Ordering::Relaxed)
            .saturating_sub(self.consumed.max(0) as u64);
        self.stats.deferred_records.store(lag, Ordering::Relaxed);
        self.stats.deferred_total.fetch_max(lag, Ordering::Relaxed);
        let done = self.consumed.max(0) as u64;
        if self.stats.fields_done.swap(done, Ordering::Release) < done {
            self.stats.fields_done_ns.store(
                jiff::Timestamp::now().as_nanosecond() as i64,
                Ordering::Relaxed,
            );
        }
    }

    /// Records of `b` in the count `records_stored` keeps: all of them while in the backlog
    /// measured at the start (that backlog counted the collector's own records too, so passing
    /// it brings `consumed` exactly to `records_stored`), then agents' records only (the writer
    /// does not count the collector's checkpoint and retention records). Called in read order.
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

    /// Makes the sidecars durable, then moves the cursor file to just after the last block
    /// written (never past a block read ahead and not written).
    fn commit(&mut self, uncommitted: &mut u32) {
        if *uncommitted == 0 {
            return;
        }
        let Some((pos, hash)) = self.written.clone() else {
            return;
        };
        let done = self
            .pipeline
            .sync()
            .map_err(anyhow::Error::from)
            .and_then(|()| self.cursor.commit_at(pos, &hash).map_err(Into::into));
        match done {
            Ok(()) => {
                *uncommitted = 0;
                self.pipeline.flush_index();
            }
            Err(error) => tracing::warn!(error = %format!("{error:#}"),
                "Normalizer could not commit its cursor; the blocks since are redone after a restart."),
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
/// payload, parse every record with its stream's normalizer ([`Parser`]), append the column to
/// the segment's sidecar and its values to the field index. The component benchmark
/// (`examples/normalize_bench.rs`) runs exactly this; the normalizer thread uses its halves
/// ([`Pipeline::check`], the parser, [`Pipeline::write`]) with the parsing on the workers.
pub struct Pipeline {
    writer: FieldsWriter,
    parser: Parser,
    normalizers: HashMap<StreamKey, Normalizer>,
    /// The field index of the segments, fed with each block's values.
    index: BlockIndexer,
}

impl Pipeline {
    /// A pipeline writing the sidecars of the store at `store_dir`; `cap` bounds a decompressed
    /// payload.
    pub fn new(store_dir: &std::path::Path, cap: usize) -> Pipeline {
        Pipeline {
            writer: FieldsWriter::new(store_dir),
            parser: Parser::new(cap),
            normalizers: HashMap::new(),
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
        let tag = match self.check(b) {
            Ok(tag) => tag,
            Err(done) => return done,
        };
        if self.normalizers.len() >= MAX_STREAMS {
            self.normalizers.clear();
        }
        let key = (b.agent.clone(), b.stream_id.clone());
        let normalizer = self.normalizers.entry(key).or_default();
        let parsed = self.parser.parse_guarded(b, normalizer);
        self.write(b.at, &tag, b.count, parsed)
    }

    /// The block's sidecar tag if it is to be parsed; else what to do instead (inline column
    /// or a sidecar that already covers it: [`Done::Covered`]; a hash that is not hex).
    fn check(&mut self, b: &CursorBlock) -> Result<[u8; TAG_LEN], Done> {
        let mut tag = [0u8; TAG_LEN];
        let hex_tag = b.hash.get(..2 * TAG_LEN).unwrap_or_default();
        if hex::decode_to_slice(hex_tag, &mut tag).is_err() {
            return Err(Done::Unreadable(format!(
                "block hash {:?} is not hex",
                b.hash
            )));
        }
        let covered = self
            .writer
            .covered(b.at.segment, b.at.offset, &tag)
            .unwrap_or(false);
        if b.fields.is_some() || covered {
            // Inline column, or normalized before a restart.
            return Err(Done::Covered);
        }
        Ok(tag)
    }

    /// Appends a parsed block's column to its sidecar and its values to the field index.
    fn write(
        &mut self,
        at: CursorPos,
        tag: &[u8; TAG_LEN],
        count: u32,
        parsed: Result<Parsed, String>,
    ) -> Done {
        let parsed = match parsed {
            Ok(p) => p,
            Err(error) => return Done::Unreadable(error),
        };
        self.index.add(at, &parsed.values);
        match self
            .writer
            .append(at.segment, at.offset, tag, count, &parsed.column)
        {
            Ok(()) => {
                self.index.done(at);
                Done::Written
            }
            Err(error) => Done::WriteFailed(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use logship_proto::v1::{Record, RecordList, Source};
    use logship_store::{BlockInput, Store, StoreConfig};
    use prost::Message;

    use super::*;

    /// Agent streams the tests interleave in the store (block `b` belongs to `b % 3`).
    const STREAMS: [&str; 3] = [
        "0123456789abcdef0123456789abcdef",
        "1123456789abcdef0123456789abcdef",
        "2123456789abcdef0123456789abcdef",
    ];
    const COUNT: u32 = 1000;

    /// Queue id of record `i` of the `k`-th block of stream `s` (upper-case hex, as postfix).
    fn qid(s: usize, k: u64, i: u64) -> String {
        format!("{s:02X}{k:04X}{i:04X}")
    }

    /// The `k`-th block of stream `s`: sshd failures, and postfix mails whose `from=` line is
    /// in this block and whose `to=` line is in the stream's next block, so the sender is
    /// joined onto the delivery only if the stream's blocks are parsed in order by one
    /// normalizer.
    fn payload(s: usize, k: u64) -> bytes::Bytes {
        let raw = |i: u64| {
            match i % 3 {
            0 => format!(
                "Feb 12 14:10:21 gw sshd[1]: Failed password for u{s}.{k}.{i} from 10.0.0.1 port 22 ssh2"
            ),
            1 => format!(
                "Feb 12 14:10:21 mx postfix/qmgr[2]: {}: from=<f{s}.{k}.{i}@x.example>, size=1, nrcpt=1 (queue active)",
                qid(s, k, i)
            ),
            _ if k == 0 => "Feb 12 14:10:21 mx postfix/smtp[3]: 000000: to=<t@y.example>, relay=none, status=deferred (no)".into(),
            _ => format!(
                "Feb 12 14:10:21 mx postfix/smtp[3]: {}: to=<t@y.example>, relay=r[192.0.2.1]:25, status=sent (250 ok)",
                qid(s, k - 1, i - 1)
            ),
        }
        };
        let list = RecordList {
            host: "h".into(),
            sources: vec![Source {
                input: "auth".into(),
                path: "/var/log/auth.log".into(),
            }],
            records: (0..u64::from(COUNT))
                .map(|i| Record {
                    raw: raw(i).into_bytes().into(),
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
        sidecars(dir)
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

    /// The segment files of the store, in order.
    fn sidecars(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut segments: Vec<_> = walk(&dir.join("store"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        segments
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

    /// A store with its writer's counters, blocks appended round-robin over [`STREAMS`].
    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        writer: Arc<WriterStats>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let config = StoreConfig {
                dir: dir.path().join("store"),
                ..StoreConfig::default()
            };
            let (store, _) = Store::open(config).unwrap();
            Fixture {
                dir,
                store,
                writer: Arc::new(WriterStats::default()),
            }
        }

        fn store_dir(&self) -> PathBuf {
            self.dir.path().join("store")
        }

        /// Appends block `b` (stream `b % 3`, its `b / 3`-th block).
        fn append(&mut self, b: u64) {
            let (s, k) = ((b % 3) as usize, b / 3);
            let first_seq = 1 + k * u64::from(COUNT);
            self.store
                .append(BlockInput {
                    agent: "a".into(),
                    stream_id: STREAMS[s].into(),
                    first_seq,
                    count: COUNT,
                    host: "h".into(),
                    min_time_ns: 1,
                    max_time_ns: 1,
                    inputs: vec!["auth".into()],
                    payload: payload(s, k),
                    fields: None,
                })
                .unwrap();
            self.writer
                .records_stored
                .fetch_add(u64::from(COUNT), Ordering::Relaxed);
        }

        fn start(
            &self,
            watch: &CommitWatch,
            workers: usize,
        ) -> (Arc<NormalizeStats>, std::thread::JoinHandle<()>) {
            start(WorkerConfig {
                store_dir: self.store_dir(),
                max_decompressed_bytes: 1 << 24,
                watch: watch.clone(),
                writer: self.writer.clone(),
                workers,
            })
            .unwrap()
        }

        /// Every sidecar column, decoded, as (block offset, rows as maps).
        fn columns(&self) -> Vec<(u64, Vec<serde_json::Map<String, serde_json::Value>>)> {
            let mut out = Vec::new();
            for seg in sidecars(self.dir.path()) {
                let Some(mut index) = logship_store::fields::SidecarIndex::open(&seg) else {
                    continue;
                };
                for e in index.entries().to_vec() {
                    let column = index
                        .column(e.block_offset, &e.tag, e.count, 1 << 26)
                        .unwrap();
                    let rows = (0..e.count as usize)
                        .map(|r| super::super::column::row_map(&column, r))
                        .collect();
                    out.push((e.block_offset, rows));
                }
            }
            out
        }
    }

    fn follows_commits_through_its_cursor_and_resumes_after_a_restart(workers: usize) {
        let mut f = Fixture::new();
        let watch = CommitWatch::new();
        let (stats, worker) = f.start(&watch, workers);
        for b in 0..40 {
            f.append(b);
        }
        // Not committed yet: the worker must not see them.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(stats.records.load(Ordering::Relaxed), 0);
        f.store.sync().unwrap();
        watch.publish(f.store.committed());
        wait_for(&stats, 40 * u64::from(COUNT));
        assert_eq!(stats.records.load(Ordering::Relaxed), 40_000);
        assert_eq!(stats.fields_done.load(Ordering::Acquire), 40_000);
        watch.close();
        worker.join().unwrap();
        // Stopped: 60 more blocks arrive; a new worker catches up from its saved cursor,
        // normalizing only the new ones, each once.
        for b in 40..100 {
            f.append(b);
        }
        f.store.sync().unwrap();
        let watch = CommitWatch::new();
        watch.publish(f.store.committed());
        let (stats, worker) = f.start(&watch, workers);
        wait_for(&stats, 60_000);
        assert_eq!(stats.records.load(Ordering::Relaxed), 60_000);
        watch.close();
        worker.join().unwrap();
        let got = entries(f.dir.path());
        assert_eq!(got.len(), 100);
        assert!(got.iter().all(|e| e.1 == COUNT));
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "each block once, in order"
        );
        // A cursor lost entirely (removed file) redoes nothing the sidecar holds.
        std::fs::remove_file(logship_store::cursor_path(&f.store_dir(), CURSOR_NAME)).unwrap();
        let watch = CommitWatch::new();
        watch.publish(f.store.committed());
        let (stats, worker) = f.start(&watch, workers);
        wait_for(&stats, 100_000);
        assert_eq!(stats.records.load(Ordering::Relaxed), 100_000);
        watch.close();
        worker.join().unwrap();
        assert_eq!(entries(f.dir.path()).len(), 100);
    }

    #[test]
    fn one_worker_follows_commits_and_resumes_after_a_restart() {
        follows_commits_through_its_cursor_and_resumes_after_a_restart(1);
    }

    #[test]
    fn three_workers_follow_commits_and_resume_after_a_restart() {
        follows_commits_through_its_cursor_and_resumes_after_a_restart(3);
    }

    /// Runs the normalizer with `workers` over 60 interleaved blocks of three streams and
    /// returns every column.
    fn columns_with(workers: usize) -> Vec<(u64, Vec<serde_json::Map<String, serde_json::Value>>)> {
        let mut f = Fixture::new();
        for b in 0..60 {
            f.append(b);
        }
        f.store.sync().unwrap();
        let watch = CommitWatch::new();
        watch.publish(f.store.committed());
        let (stats, worker) = f.start(&watch, workers);
        wait_for(&stats, 60_000);
        watch.close();
        worker.join().unwrap();
        f.columns()
    }

    #[test]
    fn several_workers_write_the_same_columns_as_one_with_joins_across_blocks() {
        let one = columns_with(1);
        let four = columns_with(4);
        assert_eq!(one.len(), 60);
        // The postfix sender of a mail is joined onto its delivery line, one block later in
        // the same stream: proof that each stream's blocks went through one normalizer, in
        // order, with several workers as with one.
        let joined = |cols: &[(u64, Vec<serde_json::Map<String, serde_json::Value>>)]| {
            cols.iter()
                .flat_map(|(_, rows)| rows)
                .filter(|r| {
                    r.get("event.action").and_then(|v| v.as_str()) == Some("sent")
                        && r.contains_key("email.from.address")
                })
                .count()
        };
        // Blocks 3.. have a predecessor in their stream; a third of their records are `to=`.
        assert_eq!(joined(&one), 57 * 333);
        assert_eq!(
            one, four,
            "same columns, same order, whatever the number of workers"
        );
    }
}
