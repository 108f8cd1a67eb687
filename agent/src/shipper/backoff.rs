//! Exponential backoff with jitter for reconnects.

use std::time::Duration;

use rand::Rng;

/// Doubling delays from `initial` up to `max`, each scaled by a random factor in [0.5, 1.0).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A new backoff starting at `initial`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// Back to the first delay (after a successful exchange).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        base.mul_f64(rand::rng().random_range(0.5..1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        let bases = [100, 200, 400, 800, 800, 800];
        for (d, base) in delays.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(
                *d >= base / 2 && *d < base,
                "{d:?} not in [{:?}, {base:?})",
                base / 2
            );
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(100));
    }
}
