//! What happens when a batch cannot be appended to the spool: the input keeps the batch, backs
//! off and retries, and the condition is reported (heartbeat `spool_blocked_reason`, logs).
//!
//! Invariants:
//! - A batch whose append failed (I/O error such as ENOSPC, EIO, EDQUOT) is kept and retried,
//!   with backoff from [`FIRST_DELAY`] doubling to [`MAX_DELAY`], until it is appended or the spool
//!   is closed (agent stopping). An input never drops a batch nor ends because of a failed append,
//!   and since read positions travel inside the batch, they never run ahead of the spool.
//! - Logged once per state change of an input: one WARN when it becomes blocked (error, path),
//!   one INFO when it recovers (how long, how many retries); nothing per retry.
//! - [`SpoolBlocked::reason`] is empty exactly when no input is blocked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use logship_spool::SpoolError;

/// First wait after a failed append.
pub const FIRST_DELAY: Duration = Duration::from_millis(50);
/// Longest wait between two attempts: space coming back is noticed within this time.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// How often a waiting retry looks whether the spool was closed (agent stopping).
const CLOSE_CHECK: Duration = Duration::from_millis(50);

/// Inputs currently blocked on the spool, shared by every input and the heartbeat.
#[derive(Clone, Debug, Default)]
pub struct SpoolBlocked {
    inner: Arc<Mutex<BTreeMap<String, Blocked>>>,
}

#[derive(Debug)]
struct Blocked {
    reason: String,
    since: jiff::Timestamp,
    started: Instant,
    retries: u64,
}

/// The retry loop of one input.
#[derive(Debug)]
pub struct Retry {
    input: String,
    shared: SpoolBlocked,
    delay: Duration,
}

// === impl SpoolBlocked ===

impl SpoolBlocked {
    /// A human description of why appends fail, or "" when no input is blocked, e.g.
    /// "no space left on device (os error 28) during spool append on /var/lib/logship-agent/spool/…
    /// (input varlog, since 2026-11-29T16:40:00Z, 12 retries)".
    pub fn reason(&self) -> String {
        let map = self.lock();
        let described: Vec<String> = map
            .iter()
            .map(|(input, b)| {
                format!(
                    "{} (input {input}, since {}, {} retries)",
                    b.reason,
                    b.since.round(jiff::Unit::Second).unwrap_or(b.since),
                    b.retries
                )
            })
            .collect();
        described.join("; ")
    }

    /// A retry loop for `input` reporting here.
    pub fn retry_for(&self, input: &str) -> Retry {
        Retry {
            input: input.to_string(),
            shared: self.clone(),
            delay: FIRST_DELAY,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Blocked>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Retry ===

impl Retry {
    /// Runs `attempt` until it succeeds or fails with [`SpoolError::Closed`] (returned as is).
    /// Every other error is reported and retried after a backoff, cut short once `closed()`.
    pub fn run<T>(
        &mut self,
        closed: impl Fn() -> bool,
        mut attempt: impl FnMut() -> Result<T, SpoolError>,
    ) -> Result<T, SpoolError> {
        loop {
            match attempt() {
                Ok(v) => {
                    self.recovered();
                    return Ok(v);
                }
                Err(SpoolError::Closed) => return Err(SpoolError::Closed),
                Err(error) => {
                    self.failed(&error);
                    let until = Instant::now() + self.delay;
                    while !closed() && Instant::now() < until {
                        std::thread::sleep(CLOSE_CHECK.min(until - Instant::now()));
                    }
                    self.delay = (self.delay * 2).min(MAX_DELAY);
                }
            }
        }
    }

    fn failed(&mut self, error: &SpoolError) {
        let reason = describe(error);
        let mut map = self.shared.lock();
        if let Some(b) = map.get_mut(&self.input) {
            // Still blocked: the reason shows the latest error, the log only the first.
            b.retries += 1;
            b.reason = reason;
            return;
        }
        tracing::warn!(input = %self.input, %reason,
            "Spool append failed; the input keeps its batch and retries until it succeeds.");
        map.insert(
            self.input.clone(),
            Blocked {
                reason,
                since: jiff::Timestamp::now(),
                started: Instant::now(),
                retries: 0,
            },
        );
    }

    fn recovered(&mut self) {
        self.delay = FIRST_DELAY;
        if let Some(b) = self.shared.lock().remove(&self.input) {
            tracing::info!(input = %self.input, blocked_ms = b.started.elapsed().as_millis() as u64,
                retries = b.retries, "Spool append succeeded again; the input is reading.");
        }
    }
}

/// "no space left on device (os error 28) during spool append on /path/to/segment".
pub fn describe(error: &SpoolError) -> String {
    match error {
        SpoolError::Io { op, path, source } => {
            let text = source.to_string();
            let mut chars = text.chars();
            let first = chars.next().map(|c| c.to_lowercase().collect::<String>());
            format!(
                "{}{} during spool {op} on {}",
                first.unwrap_or_default(),
                chars.as_str(),
                path.display()
            )
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::*;

    fn enospc() -> SpoolError {
        SpoolError::Io {
            op: "append",
            path: PathBuf::from("/spool/00000000000000000001.seg"),
            source: io::Error::from_raw_os_error(28),
        }
    }

    #[test]
    fn io_errors_are_retried_reported_and_cleared() {
        let shared = SpoolBlocked::default();
        let mut retry = shared.retry_for("app");
        let mut left = 3;
        let seen = shared.clone();
        let mut reasons = Vec::new();
        let got = retry.run(
            || false,
            || {
                reasons.push(seen.reason());
                if left == 0 {
                    return Ok(7);
                }
                left -= 1;
                Err(enospc())
            },
        );
        assert_eq!(got.unwrap(), 7);
        assert_eq!(reasons[0], "");
        assert!(
            reasons[3].starts_with(
                "no space left on device (os error 28) during spool append on \
                 /spool/00000000000000000001.seg (input app, since "
            ),
            "{}",
            reasons[3]
        );
        assert!(reasons[3].ends_with(", 2 retries)"), "{}", reasons[3]);
        assert_eq!(shared.reason(), "");
    }

    #[test]
    fn a_closed_spool_ends_the_loop() {
        let shared = SpoolBlocked::default();
        let mut calls = 0;
        let got: Result<(), _> = shared.retry_for("app").run(
            || false,
            || {
                calls += 1;
                Err(SpoolError::Closed)
            },
        );
        assert!(matches!(got, Err(SpoolError::Closed)));
        assert_eq!(calls, 1);
    }
}
