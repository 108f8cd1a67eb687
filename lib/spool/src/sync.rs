//! Durability: group-commit fsync rounds and the background thread running the interval and
//! byte triggers, and a writer's request to sync now (`Spool::sync_soon`).

use std::fs::File;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tracing::error;

use crate::SpoolError;
use crate::io::fsync_dir;
use crate::spool::Core;

impl Core {
    /// One fsync round: covers everything appended before it started, then advances
    /// `durable_next_seq`. Rounds are serialised; the state lock is not held while fsyncing.
    pub(crate) fn sync(&self) -> Result<(), SpoolError> {
        let _round = self
            .sync_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (target, files, dir_dirty) = {
            let mut st = self.lock();
            if !st.dirty() {
                return Ok(());
            }
            let mut files = std::mem::take(&mut st.pending_sync);
            if let Some(w) = st.writer() {
                files.push(Arc::clone(&w.file));
            }
            st.unsynced_bytes = 0;
            st.dirty_since = None;
            let dir_dirty = std::mem::replace(&mut st.dir_dirty, false);
            (st.next_seq, files, dir_dirty)
        };
        let result = self.fsync_files(&files, dir_dirty);
        let mut st = self.lock();
        match result {
            Ok(()) => {
                st.durable_next_seq = st.durable_next_seq.max(target);
                self.durable_cv.notify_all();
                Ok(())
            }
            Err(e) => {
                st.pending_sync.extend(files);
                st.dir_dirty |= dir_dirty;
                // Restart the interval so a failing disk is retried, not spun on.
                st.dirty_since = Some(Instant::now());
                Err(e)
            }
        }
    }

    fn fsync_files(&self, files: &[Arc<File>], dir_dirty: bool) -> Result<(), SpoolError> {
        for f in files {
            f.sync_data()
                .map_err(SpoolError::io("fsync segment", &self.config.dir))?;
        }
        if dir_dirty {
            fsync_dir(&self.config.dir)?;
        }
        Ok(())
    }

    /// The fsync thread: syncs when data has been unsynced for `fsync_interval_ms`, when
    /// `fsync_bytes` are unsynced, or when a writer asked ([`crate::Spool::sync_soon`]); exits
    /// when the spool is closed (and clean) or dropped.
    pub(crate) fn run_sync_thread(&self) {
        let interval = Duration::from_millis(self.config.fsync_interval_ms);
        while self.wait_until_sync_due(interval) {
            if let Err(error) = self.sync() {
                error!(?error, "Spool fsync failed; will retry.");
            }
        }
    }

    /// Returns false when the thread should exit.
    fn wait_until_sync_due(&self, interval: Duration) -> bool {
        let mut st = self.lock();
        loop {
            if st.stop || (st.closed && !st.dirty()) {
                return false;
            }
            if !st.dirty() {
                st.sync_requested = false;
                st = self
                    .sync_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let bytes_due =
                self.config.fsync_bytes > 0 && st.unsynced_bytes >= self.config.fsync_bytes;
            let elapsed = st.dirty_since.get_or_insert_with(Instant::now).elapsed();
            if bytes_due || elapsed >= interval || st.closed || st.sync_requested {
                st.sync_requested = false;
                return true;
            }
            st = self
                .sync_cv
                .wait_timeout(st, interval - elapsed)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
