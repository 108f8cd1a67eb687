//! The ack path: advance `acked_through`, persist the ledger, delete fully acked segments.

use std::fs;
use std::io;
use std::sync::PoisonError;

use tracing::warn;

use crate::SpoolError;
use crate::ledger::{self, Ledger};
use crate::reserve;
use crate::spool::Core;
use crate::state::Segment;

impl Core {
    pub(crate) fn ack(&self, through: u64) -> Result<(), SpoolError> {
        let _ledger = self
            .ledger_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some((snapshot, removed)) = self.take_acked(through) else {
            return Ok(());
        };
        let dir = &self.config.dir;
        let mut stored = ledger::store(dir, &snapshot);
        if stored.as_ref().is_err_and(reserve::is_no_space) && reserve::release(dir) {
            stored = ledger::store(dir, &snapshot);
        }
        if let Err(e) = stored {
            // Put the segments back; their positions are re-applied harmlessly next time.
            let mut st = self.lock();
            for seg in removed.into_iter().rev() {
                st.segments.push_front(seg);
            }
            return Err(e);
        }
        let mut freed = 0;
        for seg in &removed {
            match fs::remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    warn!(path = %seg.path.display(), %error, "Cannot delete an acked spool segment.");
                }
            }
            freed += seg.len;
        }
        self.lock().bytes -= freed;
        self.space_cv.notify_all();
        reserve::ensure(dir, reserve::size_for(self.config.max_bytes));
        Ok(())
    }

    /// Advances `acked_through` and unlinks fully acked segments from the index, folding their
    /// positions into the ledger. None when nothing is to be deleted.
    fn take_acked(&self, through: u64) -> Option<(Ledger, Vec<Segment>)> {
        let mut st = self.lock();
        // A repeated ack retries deleting segments that a failed ledger write put back.
        let through = through
            .min(st.next_seq.saturating_sub(1))
            .max(st.acked_through);
        st.acked_through = through;
        // An empty writable segment stays: a new one would need its name.
        let removable =
            |s: &Segment| s.fully_acked(through) && !(s.writable && s.end_seq() == s.first_seq);
        let mut removed = Vec::new();
        while st.segments.front().is_some_and(removable) {
            let seg = st.segments.pop_front().expect("front checked");
            for r in &seg.records {
                st.ledger.apply(&r.positions);
            }
            removed.push(seg);
        }
        if removed.is_empty() {
            return None;
        }
        let snapshot = Ledger {
            stream_id: self.stream_id.clone(),
            acked_through: through,
            positions: st.ledger.clone(),
        };
        Some((snapshot, removed))
    }
}
