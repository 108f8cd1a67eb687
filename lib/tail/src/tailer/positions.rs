//! Read positions shared with other threads while the tailer runs.

use std::sync::{Arc, Mutex};

use crate::Checkpoint;

/// A cloneable view of a tailer's read positions that other threads can read while the tailer
/// runs (for heartbeats). Refreshed after every glob re-scan and when `run` returns.
#[derive(Clone, Debug, Default)]
pub struct PositionsHandle(Arc<Mutex<Vec<Checkpoint>>>);

// === impl PositionsHandle ===

impl PositionsHandle {
    /// The positions as of the last refresh.
    pub fn get(&self) -> Vec<Checkpoint> {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub(super) fn set(&self, positions: Vec<Checkpoint>) {
        if let Ok(mut shared) = self.0.lock() {
            *shared = positions;
        }
    }
}
