//! Inputs that cannot read their source right now (journalctl missing or exiting, a journal
//! directory that does not exist), shared by the inputs and the heartbeat.
//!
//! Invariants:
//! - Logged once per state change of an input: one WARN when it enters an error or its error
//!   text changes, one INFO when it recovers; nothing per retry.
//! - [`InputErrors::snapshot`] holds exactly the inputs in error now (heartbeat
//!   `input_errors`, shown per agent in the collector's status.json).
//! - At most [`MAX_MESSAGE`] bytes are kept per input.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Longest message kept per input.
pub const MAX_MESSAGE: usize = 1024;

/// Current error of each input that has one.
#[derive(Clone, Debug, Default)]
pub struct InputErrors {
    inner: Arc<Mutex<BTreeMap<String, String>>>,
}

// === impl InputErrors ===

impl InputErrors {
    /// Records that `input` cannot read: `message` says why and what happens next.
    pub fn set(&self, input: &str, message: &str) {
        let mut message = message.to_string();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(input) != Some(&message) {
            tracing::warn!(input, error = %message, "Input cannot read its source; retrying.");
            map.insert(input.to_string(), message);
        }
    }

    /// Records that `input` reads again.
    pub fn clear(&self, input: &str) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if map.remove(input).is_some() {
            tracing::info!(input, "Input reads its source again.");
        }
    }

    /// Input name → error, for heartbeats.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_clear() {
        let e = InputErrors::default();
        e.set("j", "journalctl exited (exit status: 1)");
        e.set("j", "journalctl exited (exit status: 1)");
        e.set("k", &"x".repeat(5000));
        let s = e.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s["k"].len(), MAX_MESSAGE);
        e.clear("j");
        e.clear("j");
        assert_eq!(e.snapshot().len(), 1);
    }
}
