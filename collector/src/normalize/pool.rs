//! The extra parse workers of the normalizer (`[normalize] workers` − 1 of them; the normalizer
//! thread parses too): threads at the normalizer's low priority that take blocks from one job queue, parse them ([`Parser::parse_guarded`]) and
//! hand the results back on one result queue. They never touch a file: the normalizer thread
//! ([`super::worker`]) reads the store, hands out the jobs and writes the results in store order.
//!
//! ```text
//! normalizer thread ── Job{seq, block, stream's normalizer} ──► [jobs, bounded] ──► worker 1..N
//!        ▲                                                                           │
//!        └──────────── Finished{seq, normalizer, column + index values} ◄── [results, bounded]
//! ```
//!
//! Invariants:
//! - A job carries its stream's [`Normalizer`] by value and the result gives it back, so a
//!   stream's correlation state is in one place at a time: the normalizer thread sends a
//!   stream's next block only once the previous one came back, and each stream's records are
//!   parsed in store order whichever worker takes them.
//! - Both queues hold at most `window` entries, and the normalizer thread keeps at most
//!   `window` jobs out (queued, running or finished but not taken back); so neither side ever
//!   blocks on a full queue, and memory is bounded by `window` blocks plus one decompressed
//!   payload per worker. When the window is full the normalizer thread stops reading the store
//!   until a result comes back: the records wait in the store (the fields lag grows), ingest is
//!   not held up.
//! - Dropping the [`Pool`] closes the job queue; each worker finishes its current block and
//!   exits, and the drop joins them.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logship_normalize::Normalizer;
use logship_store::CursorBlock;

use super::parse::{Parsed, Parser};

/// One block to parse.
pub(crate) struct Job {
    /// Its place in the normalizer thread's window.
    pub(crate) seq: u64,
    pub(crate) block: Box<CursorBlock>,
    /// The normalizer of the block's stream (given back in [`Finished`]).
    pub(crate) normalizer: Normalizer,
}

/// A parsed block.
pub(crate) struct Finished {
    pub(crate) seq: u64,
    pub(crate) normalizer: Normalizer,
    pub(crate) parsed: Result<Parsed, String>,
}

/// The running parse workers.
pub(crate) struct Pool {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Finished>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads; `cap` bounds a decompressed payload, `window` the queues.
    pub(crate) fn start(workers: usize, cap: usize, window: usize) -> std::io::Result<Pool> {
        let (jobs, job_rx) = sync_channel::<Job>(window);
        let (result_tx, results) = sync_channel::<Finished>(window);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (job_rx, result_tx) = (job_rx.clone(), result_tx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("normalize-{i}"))
                    .spawn(move || {
                        super::worker::lower_priority();
                        run(&job_rx, &result_tx, Parser::new(cap));
                    })?,
            );
        }
        Ok(Pool {
            jobs: Some(jobs),
            results,
            threads,
        })
    }

    /// Queues a job. Never blocks while the caller keeps at most `window` jobs out; `false`
    /// if every worker is gone (not expected: parser panics are caught).
    pub(crate) fn submit(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok())
    }

    /// A finished job, waiting at most `timeout` for one. `Err(())` if every worker is gone.
    pub(crate) fn finished(&self, timeout: Duration) -> Result<Option<Finished>, ()> {
        match self.results.recv_timeout(timeout) {
            Ok(f) => Ok(Some(f)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(()),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        // Unblock a worker waiting to hand back a result nobody will take.
        while self.results.try_recv().is_ok() {}
        for t in self.threads.drain(..) {
            // Results still coming while joining are dropped with the receiver afterwards;
            // a worker blocked on a full result queue is freed by draining again.
            while !t.is_finished() {
                while self.results.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.join().is_err() {
                tracing::error!("A parse worker panicked outside a parser.");
            }
        }
    }
}

/// One worker: parse jobs until the queue closes.
fn run(jobs: &Mutex<Receiver<Job>>, results: &SyncSender<Finished>, mut parser: Parser) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = job else {
            return;
        };
        let parsed = parser.parse_guarded(&job.block, &mut job.normalizer);
        let done = Finished {
            seq: job.seq,
            normalizer: job.normalizer,
            parsed,
        };
        if results.send(done).is_err() {
            return;
        }
    }
}
