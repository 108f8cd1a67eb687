//! Failed enrollment attempts per source address: after [`MAX_FAILURES`] failures within
//! [`WINDOW`], an address is refused (before its token is even looked at) until the window
//! ends. Only enrollment is limited: enrolled agents connect with certificates and never pass
//! here, so a flood of bad attempts cannot lock them out.
//!
//! Bounded: at most [`MAX_SOURCES`] addresses are remembered; when full, expired windows are
//! dropped first and then the oldest window (that address starts again from zero).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures allowed from one address within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once.
const MAX_SOURCES: usize = 4096;

/// Per-address failure counts, shared by all enrollment requests.
#[derive(Clone, Default)]
pub struct Limiter {
    inner: Arc<Mutex<HashMap<IpAddr, Window>>>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

// === impl Limiter ===

impl Limiter {
    /// `Err(seconds until allowed)` when `addr` has failed too often lately.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), u64> {
        let map = self.inner.lock().expect("limiter lock is never poisoned");
        match map.get(&addr) {
            Some(w) if w.failures >= MAX_FAILURES && now < w.started + WINDOW => {
                Err((w.started + WINDOW - now).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure from `addr`; returns the failures in its window.
    pub fn fail(&self, addr: IpAddr, now: Instant) -> u32 {
        let mut map = self.inner.lock().expect("limiter lock is never poisoned");
        if map.len() >= MAX_SOURCES && !map.contains_key(&addr) {
            map.retain(|_, w| now < w.started + WINDOW);
            if map.len() >= MAX_SOURCES
                && let Some(oldest) = map.iter().min_by_key(|(_, w)| w.started).map(|(a, _)| *a)
            {
                map.remove(&oldest);
            }
        }
        let w = map.entry(addr).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now >= w.started + WINDOW {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures += 1;
        w.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_too_many_failures_until_the_window_ends() {
        let l = Limiter::default();
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(l.check(a, t0).is_ok());
            l.fail(a, t0);
        }
        assert!(l.check(a, t0).is_err());
        assert!(l.check(b, t0).is_ok());
        assert!(l.check(a, t0 + WINDOW).is_ok());
        assert_eq!(l.fail(a, t0 + WINDOW), 1);
    }
}
