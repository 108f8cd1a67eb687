//! One forwarder thread: read committed blocks through its cursor, filter and encode their
//! records into a batch, send it, and commit the cursor once the batch is settled (see the
//! module doc of [`super`] for the delivery rule).
//!
//! Bounds: a batch holds whole blocks, up to [`MAX_BATCH_BYTES`] or [`MAX_BATCH_RECORDS`]
//! (one block may exceed them on its own); at most [`MAX_PENDING`] sent batches wait to settle,
//! then reading pauses until they do. Nothing else is buffered: the store is the queue.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use logship_store::{CommitWatch, Cursor, CursorBlock, CursorItem, CursorPos};
use serde_json::Value;

use super::cef::Cef;
use super::encode::Encoder;
use super::filter::Filter;
use super::hec::Hec;
use super::http::{HttpSink, Records, Retry};
use super::json::Json;
use super::matcher::Matcher;
use super::record::ForwardRecord;
use super::syslog::Syslog;
use super::transport::{Conn, Dialer};
use crate::config::forward::{ForwardConfig, ForwardFormat};
use crate::writer::WriterStats;

/// Bytes of encoded records per batch (a batch ends at the block that crosses it).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Records per batch (likewise).
const MAX_BATCH_RECORDS: u64 = 20_000;
/// Sent batches waiting to settle before reading pauses.
const MAX_PENDING: usize = 64;
/// How long a sent batch's bytes must have been acknowledged by the peer's TCP stack, on a
/// healthy connection, before the cursor moves past it (time for the receiver to read them).
pub(crate) const SETTLE: Duration = Duration::from_millis(500);
/// Settling (and so committing the cursor, two fsyncs) happens at most this often.
const SETTLE_EVERY: Duration = Duration::from_millis(250);
/// First retry delay after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest retry delay.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Longest sleep while caught up.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// At shutdown, how long sent batches get to settle.
const STOP_SETTLE: Duration = Duration::from_secs(3);

/// Counters and state of one forwarder, for status.json.
#[derive(Debug)]
pub struct ForwardStats {
    /// Forwarder name.
    pub name: String,
    /// Destination URL.
    pub url: String,
    /// Records confirmed delivered (cursor committed past them) since the collector started.
    pub delivered: AtomicU64,
    /// Records written to the destination (confirmed or not; resends count again).
    pub sent: AtomicU64,
    /// Records passed over by the filter.
    pub filtered: AtomicU64,
    /// Failures: connect, TLS, write, plus permanent ones.
    pub errors: AtomicU64,
    /// Permanent failures: blocks or ranges that could not be read or decoded (never sent).
    pub permanent_errors: AtomicU64,
    /// Records committed to the store that this forwarder has not delivered yet.
    pub lag_records: AtomicU64,
    /// False until the forwarder has measured its backlog at start (lag unknown: `null`).
    pub lag_known: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    state: &'static str,
    last_error: Option<(i64, String)>,
    last_event: Option<(String, i64)>,
    /// Observed time of the oldest block not yet delivered.
    oldest_undelivered_ns: Option<i64>,
}

/// The running forwarders.
pub struct Forwarders {
    /// One per forwarder, in config order.
    pub stats: Vec<Arc<ForwardStats>>,
    /// Their threads (they stop once the watch is closed).
    pub joins: Vec<std::thread::JoinHandle<()>>,
}

/// Starts one thread per forwarder.
pub fn start(
    configs: &[ForwardConfig],
    store_dir: PathBuf,
    watch: &CommitWatch,
    writer: &Arc<WriterStats>,
    max_decompressed_bytes: usize,
) -> Result<Forwarders> {
    let mut out = Forwarders {
        stats: Vec::new(),
        joins: Vec::new(),
    };
    for config in configs {
        let cursor = Cursor::open(
            &store_dir,
            &super::cursor_name(&config.name),
            Some(watch.clone()),
        )?;
        let stats = Arc::new(ForwardStats {
            name: config.name.clone(),
            url: config.url.clone(),
            delivered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            permanent_errors: AtomicU64::new(0),
            lag_records: AtomicU64::new(0),
            lag_known: AtomicBool::new(false),
            state: Mutex::new(State {
                state: "starting",
                ..State::default()
            }),
        });
        let committed = (cursor.position(), cursor.last_hash());
        let worker = Worker {
            sink: match config.format {
                ForwardFormat::Syslog | ForwardFormat::Cef => Sink::Stream(Dialer::new(config)?),
                ForwardFormat::Json | ForwardFormat::Hec => {
                    Sink::Http(Box::new(HttpSink::new(config)?))
                }
            },
            encoder: match config.format {
                ForwardFormat::Syslog => Box::new(Syslog),
                ForwardFormat::Cef => Box::new(Cef),
                ForwardFormat::Json => Box::new(Json),
                ForwardFormat::Hec => Box::new(Hec),
            },
            matcher: Matcher::new(Filter::new(config), max_decompressed_bytes)
                .with_sidecars(&store_dir),
            cursor,
            committed,
            watch: watch.clone(),
            stats: stats.clone(),
            writer: writer.clone(),
            consumed: 0,
            backoff: BACKOFF_MIN,
            refused: 0,
        };
        let join = std::thread::Builder::new()
            .name(format!("forward-{}", config.name))
            .spawn(move || worker.run())?;
        out.stats.push(stats);
        out.joins.push(join);
    }
    Ok(out)
}

// === impl ForwardStats ===

impl ForwardStats {
    /// The status.json object of this forwarder.
    pub fn snapshot(&self, now_ns: i64) -> Value {
        let s = self
            .state
            .lock()
            .expect("forward state lock is never poisoned");
        let lag_records = self.lag_records.load(Ordering::Relaxed);
        let lag_seconds = match (lag_records, s.oldest_undelivered_ns) {
            (0, _) | (_, None) => 0.0,
            (_, Some(t)) => ((now_ns - t).max(0) as f64 / 1e9 * 10.0).round() / 10.0,
        };
        let known = self.lag_known.load(Ordering::Acquire);
        let (lag_records, lag_seconds) = match known {
            true => (Some(lag_records), Some(lag_seconds)),
            false => (None, None),
        };
        serde_json::json!({
            "url": self.url,
            "state": s.state,
            "delivered": self.delivered.load(Ordering::Relaxed),
            "sent": self.sent.load(Ordering::Relaxed),
            "filtered": self.filtered.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "permanent_errors": self.permanent_errors.load(Ordering::Relaxed),
            "lag_records": lag_records,
            "lag_seconds": lag_seconds,
            "last_event_id": s.last_event.as_ref().map(|e| e.0.clone()),
            "last_event_time": s.last_event.as_ref().map(|e| rfc3339(e.1)),
            "last_error": s.last_error.as_ref().map(|e| e.1.clone()),
            "last_error_time": s.last_error.as_ref().map(|e| rfc3339(e.0)),
        })
    }

    fn set_state(&self, state: &'static str) {
        self.state
            .lock()
            .expect("forward state lock is never poisoned")
            .state = state;
    }

    fn error(&self, permanent: bool, text: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if permanent {
            self.permanent_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.state
            .lock()
            .expect("forward state lock is never poisoned")
            .last_error = Some((now_ns(), text));
    }
}

/// A batch read from the cursor and encoded (maybe sent).
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Records encoded into `bytes`.
    records: u64,
    /// Records in the blocks read (matching or not).
    block_records: u64,
    blocks: u64,
    /// Position and hash after the last block.
    end: Option<(CursorPos, String)>,
    last_event: Option<(String, i64)>,
    first_ns: Option<i64>,
    /// End offset in `bytes` and event id of each record (HTTPS sinks split on them).
    ends: Vec<usize>,
    ids: Vec<String>,
}

/// A sent batch waiting to settle.
struct Pending {
    end: (CursorPos, String),
    /// Socket byte count after its last byte.
    sock_end: u64,
    sent_at: Instant,
    records: u64,
    block_records: u64,
    last_event: Option<(String, i64)>,
    first_ns: Option<i64>,
    /// Acknowledged by the destination itself (HTTPS 2xx): settles without waiting.
    confirmed: bool,
}

/// Where batches go.
enum Sink {
    /// syslog, cef: a byte stream over TCP or TLS, settled by TCP acknowledgement.
    Stream(Dialer),
    /// json, hec: HTTPS requests, confirmed by their answers.
    Http(Box<HttpSink>),
}

struct Worker {
    sink: Sink,
    encoder: Box<dyn Encoder>,
    matcher: Matcher,
    cursor: Cursor,
    /// Last committed position and the hash of the block ending there.
    committed: (CursorPos, String),
    watch: CommitWatch,
    stats: Arc<ForwardStats>,
    writer: Arc<WriterStats>,
    /// Records in blocks the committed cursor has passed (all time).
    consumed: u64,
    backoff: Duration,
    /// Records of the last sent batch the destination refused (not counted as delivered).
    refused: u64,
}

impl Worker {
    /// Counts what lies after the cursor (headers only; in this thread, so a long store never
    /// delays the collector's start).
    fn measure_backlog(&mut self) {
        let backlog = self.cursor.backlog().unwrap_or_else(|error| {
            tracing::warn!(forwarder = %self.stats.name, %error, "Could not measure the backlog.");
            logship_store::Backlog::default()
        });
        self.consumed = self
            .writer
            .records_stored
            .load(Ordering::Relaxed)
            .saturating_sub(backlog.records);
        self.stats
            .state
            .lock()
            .expect("forward state lock is never poisoned")
            .oldest_undelivered_ns = backlog.oldest_ns;
        self.update_lag();
        self.stats.lag_known.store(true, Ordering::Release);
        tracing::info!(forwarder = %self.stats.name, url = %self.stats.url,
            lag_records = backlog.records, "Forwarder starting from its cursor.");
    }

    fn run(mut self) {
        self.measure_backlog();
        let mut conn: Option<Conn> = None;
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut last_settle = Instant::now();
        loop {
            self.update_lag();
            if self.watch.is_closed() {
                self.stop(&mut conn, &mut pending);
                return;
            }
            if last_settle.elapsed() >= SETTLE_EVERY || pending.len() >= MAX_PENDING {
                self.settle(&mut conn, &mut pending, Duration::ZERO);
                last_settle = Instant::now();
            }
            if pending.len() >= MAX_PENDING {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if pending.is_empty()
                && let Err(error) = self.connect_first(&mut conn)
            {
                self.failed(&mut conn, &mut pending, error);
                continue;
            }
            let batch = self.fill();
            if batch.blocks == 0 {
                if pending.is_empty() {
                    self.stats.set_state("idle");
                    self.cursor.wait(IDLE_WAIT);
                } else {
                    std::thread::sleep(Duration::from_millis(20));
                }
                continue;
            }
            if batch.records > 0 {
                self.stats.set_state("delivering");
            }
            match self.send(&mut conn, &batch) {
                Ok(sock_end) => {
                    let records = batch
                        .records
                        .saturating_sub(std::mem::take(&mut self.refused));
                    self.stats.sent.fetch_add(records, Ordering::Relaxed);
                    pending.push_back(Pending {
                        end: batch.end.expect("a batch with blocks has an end"),
                        sock_end,
                        sent_at: Instant::now(),
                        records,
                        block_records: batch.block_records,
                        last_event: batch.last_event,
                        first_ns: batch.first_ns,
                        confirmed: matches!(self.sink, Sink::Http(_)),
                    });
                    self.backoff = BACKOFF_MIN;
                }
                Err(error) => self.failed(&mut conn, &mut pending, error),
            }
        }
    }

    /// After a failed send or connect: everything not settled is sent again after the pause
    /// (batches an HTTPS destination confirmed are committed first).
    fn failed(
        &mut self,
        conn: &mut Option<Conn>,
        pending: &mut VecDeque<Pending>,
        error: anyhow::Error,
    ) {
        *conn = None;
        self.refused = 0;
        self.settle(conn, pending, Duration::ZERO);
        pending.clear();
        let (pos, hash) = self.committed.clone();
        self.cursor.seek(pos, Some(&hash));
        self.stats.set_state("retrying");
        tracing::warn!(forwarder = %self.stats.name, error = %format!("{error:#}"),
            retry_in_ms = self.backoff.as_millis() as u64,
            "Forwarding failed; resending from the last delivered record after a pause.");
        self.stats.error(false, format!("{error:#}"));
        let hint = error.downcast_ref::<Retry>().and_then(|r| r.retry_after);
        if let Some(after) = hint {
            self.backoff = after.clamp(BACKOFF_MIN, BACKOFF_MAX);
        }
        self.pause();
    }

    /// Connects a stream destination before a batch is read and encoded, when records are
    /// waiting: a destination that is down then costs one refused connect per retry, not the
    /// reading and encoding of a whole batch (which would take CPU from ingest and from the
    /// other forwarders).
    fn connect_first(&mut self, conn: &mut Option<Conn>) -> Result<()> {
        if conn.is_some() || self.stats.lag_records.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let Sink::Stream(dialer) = &mut self.sink else {
            return Ok(());
        };
        self.stats.set_state("connecting");
        let c = dialer.connect()?;
        tracing::info!(forwarder = %self.stats.name, "Forwarder connected.");
        *conn = Some(c);
        Ok(())
    }

    /// Sleeps the backoff (waking early at shutdown) and doubles it up to [`BACKOFF_MAX`].
    fn pause(&mut self) {
        let until = Instant::now() + self.backoff;
        while Instant::now() < until && !self.watch.is_closed() {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Sends a batch (connecting first if needed); returns the socket byte count after it.
    fn send(&mut self, conn: &mut Option<Conn>, batch: &Batch) -> Result<u64> {
        if batch.records == 0 {
            // All filtered out: nothing to send, settles with whatever came before.
            return Ok(conn.as_ref().map_or(0, Conn::written));
        }
        let dialer = match &mut self.sink {
            Sink::Stream(d) => d,
            Sink::Http(http) => {
                let stats = &self.stats;
                let refused_count = &mut self.refused;
                *refused_count = 0;
                let records = Records {
                    bytes: &batch.bytes,
                    ends: &batch.ends,
                    ids: &batch.ids,
                };
                let known = http.deliver(&records, &mut |refused| {
                    *refused_count += 1;
                    tracing::error!(forwarder = %stats.name, event_id = %refused.event_id,
                        answer = %refused.answer,
                        "The destination refused a record; it is counted and passed over.");
                    stats.error(
                        true,
                        format!("event {} refused: {}", refused.event_id, refused.answer),
                    );
                })?;
                self.refused += known;
                return Ok(0);
            }
        };
        if conn.as_mut().is_some_and(|c| !c.healthy()) {
            *conn = None;
            anyhow::bail!("the destination closed the connection");
        }
        if conn.is_none() {
            self.stats.set_state("connecting");
            let c = dialer.connect()?;
            tracing::info!(forwarder = %self.stats.name, "Forwarder connected.");
            *conn = Some(c);
        }
        let c = conn.as_mut().expect("connected above");
        c.send(&batch.bytes)?;
        Ok(c.written())
    }

    /// Commits the cursor past every pending batch that has settled: sent at least
    /// `SETTLE` ago, all its bytes acknowledged by the peer, the connection still healthy.
    /// Waits up to `wait` for that.
    fn settle(&mut self, conn: &mut Option<Conn>, pending: &mut VecDeque<Pending>, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let mut done: Option<Pending> = None;
            let (mut records, mut block_records) = (0, 0);
            if pending.front().is_some_and(|p| p.confirmed) {
                while let Some(p) = pending.pop_front_if(|p| p.confirmed) {
                    records += p.records;
                    block_records += p.block_records;
                    let last_event = p.last_event.clone().or(done.and_then(|d| d.last_event));
                    done = Some(Pending { last_event, ..p });
                }
            } else if let Some(c) = conn.as_mut() {
                let acked = c.acked().unwrap_or(0);
                let healthy = pending.front().is_some() && c.healthy();
                while healthy
                    && pending
                        .front()
                        .is_some_and(|p| p.sent_at.elapsed() >= SETTLE && p.sock_end <= acked)
                {
                    let p = pending.pop_front().expect("checked above");
                    records += p.records;
                    block_records += p.block_records;
                    let last_event = p.last_event.clone().or(done.and_then(|d| d.last_event));
                    done = Some(Pending { last_event, ..p });
                }
            } else if pending.iter().all(|p| p.records == 0) {
                // Only filtered-out batches: nothing was sent, nothing to confirm.
                while let Some(p) = pending.pop_front() {
                    block_records += p.block_records;
                    done = Some(p);
                }
            }
            if let Some(d) = done {
                match self.cursor.commit_at(d.end.0, &d.end.1) {
                    Ok(()) => {
                        self.committed = d.end.clone();
                        self.consumed += block_records;
                        self.stats.delivered.fetch_add(records, Ordering::Relaxed);
                        let mut s = self
                            .stats
                            .state
                            .lock()
                            .expect("forward state lock is never poisoned");
                        if d.last_event.is_some() {
                            s.last_event = d.last_event;
                        }
                        s.oldest_undelivered_ns = pending.front().and_then(|p| p.first_ns);
                    }
                    Err(error) => {
                        tracing::error!(forwarder = %self.stats.name, %error,
                            "Could not commit the forwarder's cursor; records since are sent again after a restart.");
                        self.stats.error(false, error.to_string());
                    }
                }
            }
            if pending.is_empty() || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self, conn: &mut Option<Conn>, pending: &mut VecDeque<Pending>) {
        self.settle(conn, pending, STOP_SETTLE);
        self.stats.set_state("stopped");
        tracing::info!(forwarder = %self.stats.name, unsettled_batches = pending.len(),
            "Forwarder stopped; it resumes from its cursor at the next start.");
    }

    fn update_lag(&self) {
        let lag = self
            .writer
            .records_stored
            .load(Ordering::Relaxed)
            .saturating_sub(self.consumed);
        self.stats.lag_records.store(lag, Ordering::Relaxed);
    }

    /// Reads whole blocks into a new batch, up to the batch bounds or the committed end.
    fn fill(&mut self) -> Batch {
        let mut batch = Batch::default();
        while batch.bytes.len() < MAX_BATCH_BYTES && batch.records < MAX_BATCH_RECORDS {
            match self.cursor.read_next() {
                Ok(Some(CursorItem::Block(b))) => {
                    batch.blocks += 1;
                    batch.block_records += u64::from(b.count);
                    batch.first_ns.get_or_insert(b.min_time_ns);
                    {
                        let mut s = self
                            .stats
                            .state
                            .lock()
                            .expect("forward state lock is never poisoned");
                        s.oldest_undelivered_ns.get_or_insert(b.min_time_ns);
                    }
                    self.encode_block(&b, &mut batch);
                    batch.end = Some((b.next, b.hash.clone()));
                }
                Ok(Some(CursorItem::Skipped(s))) => {
                    batch.blocks += 1;
                    batch.end = Some((s.to, self.cursor.last_hash()));
                    tracing::error!(forwarder = %self.stats.name, from_segment = s.from.segment,
                        from_offset = s.from.offset, to_segment = s.to.segment, reason = %s.reason,
                        "Forwarder stepped over a range of the store it could not read.");
                    self.stats
                        .error(true, format!("skipped store range: {}", s.reason));
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(forwarder = %self.stats.name, %error, "Reading the store failed; retrying.");
                    self.stats.error(false, error.to_string());
                    break;
                }
            }
        }
        batch
    }

    fn encode_block(&mut self, b: &CursorBlock, batch: &mut Batch) {
        let encoder = &mut self.encoder;
        let taken = self.matcher.each(b, |t| {
            let event_id = logship_store::event_id(&b.agent, &b.stream_id, t.seq);
            let r = t.record;
            let time_ns = if r.event_unix_nanos != 0 {
                r.event_unix_nanos
            } else {
                r.observed_unix_nanos
            };
            let record = ForwardRecord {
                event_id: &event_id,
                agent: &b.agent,
                host: &t.list.host,
                input: t.input,
                seq: t.seq,
                time_ns,
                raw: &r.raw,
                fields: t.fields,
            };
            encoder.encode(&record, &mut batch.bytes);
            batch.ends.push(batch.bytes.len());
            batch.ids.push(event_id.clone());
            batch.records += 1;
            batch.last_event = Some((event_id, time_ns));
        });
        match taken {
            Ok(passed_over) => {
                self.stats
                    .filtered
                    .fetch_add(passed_over, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::error!(forwarder = %self.stats.name, agent = %b.agent, first_seq = b.first_seq,
                    %error, "A stored block cannot be decoded; its records are not forwarded.");
                self.stats.error(
                    true,
                    format!(
                        "block {}/{} seq {}: {error}",
                        b.agent, b.stream_id, b.first_seq
                    ),
                );
            }
        }
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map_or_else(|_| "-".into(), |t| t.to_string())
}
