//! The `Spool` handle: open, append, read, ack, fsync policy and shutdown.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::error;

use crate::io::lock_dir;
use crate::record::{FRAME_PREFIX, HEADER_LEN, MIN_BODY};
use crate::recover::recover;
use crate::reserve;
use crate::state::State;
use crate::{LostRange, NewBatch, Recovered, SpoolConfig, SpoolError, SpoolStats, StoredBatch};

/// A handle to an open spool; clones share it. Dropping the last handle without [`Spool::close`]
/// stops the fsync thread without a final fsync (what a crash would leave is still recoverable).
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

/// Owns the fsync thread; dropping it (with the last `Spool`) stops the thread.
struct Shared {
    core: Arc<Core>,
    thread: Option<JoinHandle<()>>,
}

/// State and wake-ups shared by handles and the fsync thread.
///
/// Lock order: `ledger_lock` or `sync_lock` before `state`. `state` is not held during fsync
/// (except while quarantining a segment found damaged by a read, which is rare).
pub(crate) struct Core {
    pub(crate) config: SpoolConfig,
    pub(crate) stream_id: String,
    pub(crate) state: Mutex<State>,
    /// Appenders waiting for space.
    pub(crate) space_cv: Condvar,
    /// Waiters in `wait_durable_past`.
    pub(crate) durable_cv: Condvar,
    /// The fsync thread.
    pub(crate) sync_cv: Condvar,
    /// Serialises fsync rounds so `durable_next_seq` only covers fsync'd files.
    pub(crate) sync_lock: Mutex<()>,
    /// Serialises ledger writes so an older ledger never replaces a newer one.
    pub(crate) ledger_lock: Mutex<()>,
    /// Keeps other spools out of the directory until the last reference goes.
    _dir_lock: File,
}

// === impl Spool ===

impl Spool {
    /// Opens (or creates) the spool in `config.dir`, recovering whatever a previous run left.
    pub fn open(config: SpoolConfig) -> Result<(Spool, Recovered), SpoolError> {
        validate(&config)?;
        let dir_lock = lock_dir(&config.dir)?;
        let (state, recovered) = recover(&config)?;
        reserve::ensure(&config.dir, reserve::size_for(config.max_bytes));
        let core = Arc::new(Core {
            _dir_lock: dir_lock,
            stream_id: recovered.stream_id.clone(),
            state: Mutex::new(state),
            space_cv: Condvar::new(),
            durable_cv: Condvar::new(),
            sync_cv: Condvar::new(),
            sync_lock: Mutex::new(()),
            ledger_lock: Mutex::new(()),
            config,
        });
        let thread = if core.config.fsync_interval_ms > 0 {
            let c = Arc::clone(&core);
            let spawned = std::thread::Builder::new()
                .name("spool-fsync".into())
                .spawn(move || c.run_sync_thread());
            Some(spawned.map_err(SpoolError::io("spawn fsync thread", &core.config.dir))?)
        } else {
            None
        };
        Ok((
            Spool {
                shared: Arc::new(Shared { core, thread }),
            },
            recovered,
        ))
    }

    fn core(&self) -> &Core {
        &self.shared.core
    }

    /// Assigns seqs `first_seq .. first_seq + count` and appends the batch; returns `first_seq`.
    /// Blocks while the spool is full until acks free space or [`Spool::close`] is called
    /// ([`SpoolError::Closed`]). A batch that can never fit fails with
    /// [`SpoolError::BatchTooLarge`].
    pub fn append(&self, batch: NewBatch) -> Result<u64, SpoolError> {
        self.core().append(&batch)
    }

    /// [`Spool::append`] that leaves the batch with the caller, so a failed append (an I/O
    /// error such as a full disk) can be retried with the same batch.
    pub fn append_ref(&self, batch: &NewBatch) -> Result<u64, SpoolError> {
        self.core().append(batch)
    }

    /// fsyncs now whatever was appended.
    pub fn sync(&self) -> Result<(), SpoolError> {
        self.core().sync()
    }

    /// Asks the fsync thread to fsync what was appended now instead of at the end of its
    /// interval, without waiting for it: for a writer whose input just went quiet (the end of
    /// a burst), where waiting out the interval only delays shipping. A no-op without an fsync
    /// thread (`fsync_interval_ms = 0` syncs every append) or with nothing unsynced.
    pub fn sync_soon(&self) {
        let core = self.core();
        let mut st = core.lock();
        if st.dirty() {
            st.sync_requested = true;
            core.sync_cv.notify_one();
        }
    }

    /// Every record with `seq < durable_next_seq()` is fsync'd.
    pub fn durable_next_seq(&self) -> u64 {
        self.core().lock().durable_next_seq
    }

    /// Blocks until `durable_next_seq() > seq`, the timeout, or close; returns `durable_next_seq()`.
    pub fn wait_durable_past(&self, seq: u64, timeout: Duration) -> u64 {
        let core = self.core();
        let deadline = Instant::now().checked_add(timeout);
        let mut st = core.lock();
        while st.durable_next_seq <= seq && !st.drained {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break,
                },
                None => Duration::from_secs(3600),
            };
            st = core
                .durable_cv
                .wait_timeout(st, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.durable_next_seq
    }

    /// The durable batch containing `seq` or, if none does, the first durable batch after it;
    /// batches already acked are skipped. A batch found damaged is quarantined (see
    /// [`Spool::take_lost`]) and the next one returned.
    pub fn read_from(&self, seq: u64) -> Result<Option<StoredBatch>, SpoolError> {
        self.core().read_from(seq)
    }

    /// Acks every seq `<= through`: deletes fully acked segments after persisting the ledger and
    /// wakes blocked appenders. Cumulative and idempotent; lower acks are ignored.
    pub fn ack(&self, through: u64) -> Result<(), SpoolError> {
        self.core().ack(through)
    }

    /// Seq ranges lost to damage found while running (reads) since the last call.
    pub fn take_lost(&self) -> Vec<LostRange> {
        std::mem::take(&mut self.core().lock().lost)
    }

    /// The stream id (same as [`Recovered::stream_id`]).
    pub fn stream_id(&self) -> &str {
        &self.core().stream_id
    }

    pub fn stats(&self) -> SpoolStats {
        let st = self.core().lock();
        let records = st.segments.iter().flat_map(|s| &s.records);
        SpoolStats {
            bytes: st.bytes,
            batches: records.clone().count() as u64,
            records: records.map(|r| u64::from(r.count)).sum(),
            next_seq: st.next_seq,
            durable_next_seq: st.durable_next_seq,
            acked_through: st.acked_through,
            quarantined_segments: st.quarantined_segments,
            blocked_appends: st.blocked_appends,
            waiting_appends: st.waiting_appends,
        }
    }

    /// [`Spool::close`] was called: appends fail with [`SpoolError::Closed`].
    pub fn is_closed(&self) -> bool {
        self.core().lock().closed
    }

    /// Wakes blocked appenders and waiters (appends then fail with [`SpoolError::Closed`]) and
    /// fsyncs pending data. Reads and acks keep working.
    pub fn close(&self) {
        let core = self.core();
        core.lock().closed = true;
        core.space_cv.notify_all();
        core.sync_cv.notify_all();
        if let Err(error) = core.sync() {
            error!(?error, "Spool fsync at close failed.");
        }
        core.lock().drained = true;
        core.durable_cv.notify_all();
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.core().config.dir)
            .finish_non_exhaustive()
    }
}

fn validate(config: &SpoolConfig) -> Result<(), SpoolError> {
    let min = HEADER_LEN + (FRAME_PREFIX + MIN_BODY) as u64;
    if config.max_bytes < min {
        return Err(SpoolError::Config(format!(
            "max_bytes must be at least {min}"
        )));
    }
    if config.segment_max_bytes == 0 {
        return Err(SpoolError::Config(
            "segment_max_bytes must be positive".into(),
        ));
    }
    Ok(())
}

// === impl Shared ===

impl Drop for Shared {
    fn drop(&mut self) {
        self.core.lock().stop = true;
        self.core.sync_cv.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("Spool fsync thread panicked.");
        }
    }
}

// === impl Core ===

impl Core {
    /// Locks the state. Index updates happen after the fallible steps they record, so a lock
    /// poisoned by a panic elsewhere still guards a consistent index.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
