//! The collector-wide decode budget: one semaphore counted in bytes that every batch must take
//! its cost from before it is decompressed, shared by all connections and streams.
//!
//! Invariants:
//! - A batch's cost is reserved *before* anything is allocated for it: its compressed payload
//!   (already received, held until the store has it), the decompression allowance (the declared
//!   `uncompressed_len`, or the whole cap when it is 0; the payload may not decompress past it)
//!   and a minimum cost per record ([`RECORD_COST`]).
//! - Policy when full: the batch *waits* (its stream is not read meanwhile, which pushes back on
//!   the agent through HTTP/2 flow control). Waits are counted.
//! - A batch costing more than the whole budget is refused; configuration validation makes
//!   that impossible for batches within the other limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use logship_proto::v1::Batch;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::prepare::{IngestError, Limits};

/// Bytes charged per record on top of its bytes: what a decoded record costs the normalizer and
/// search (a `Record` without its raw bytes), so many tiny records cost what they weigh.
pub const RECORD_COST: usize = 32;

/// Counters for the status file.
#[derive(Debug, Default)]
pub struct BudgetStats {
    /// Size of the budget.
    pub total_bytes: AtomicU64,
    /// Bytes reserved right now.
    pub in_use_bytes: AtomicU64,
    /// Batches that had to wait for budget.
    pub waits: AtomicU64,
}

/// The shared budget.
#[derive(Clone)]
pub struct DecodeBudget {
    sem: Arc<Semaphore>,
    total: usize,
    /// Shared counters.
    pub stats: Arc<BudgetStats>,
}

/// A reservation; returns its bytes to the budget when dropped.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    stats: Arc<BudgetStats>,
}

// === impl DecodeBudget ===

impl DecodeBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        let stats = Arc::new(BudgetStats::default());
        stats.total_bytes.store(total as u64, Ordering::Relaxed);
        DecodeBudget {
            sem: Arc::new(Semaphore::new(total)),
            total,
            stats,
        }
    }

    /// Waits until `bytes` fit, then reserves them.
    pub async fn reserve(&self, bytes: usize) -> Result<Reservation, IngestError> {
        if bytes > self.total || u32::try_from(bytes).is_err() {
            return Err(IngestError::Budget(format!(
                "batch needs {bytes} bytes to decode, more than the collector's whole decode \
                 budget of {} bytes",
                self.total
            )));
        }
        let n = bytes as u32;
        let permit = match self.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                self.stats.waits.fetch_add(1, Ordering::Relaxed);
                self.sem
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .expect("the budget semaphore is never closed")
            }
        };
        self.stats
            .in_use_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(Reservation {
            permit: Some(permit),
            stats: self.stats.clone(),
        })
    }
}

/// What decoding `batch` may cost, in bytes (see the module docs), and the allowance its
/// payload may decompress to.
pub(super) fn cost(batch: &Batch, limits: &Limits) -> (usize, usize) {
    let declared = usize::try_from(batch.uncompressed_len).unwrap_or(usize::MAX);
    let allowance = match declared {
        0 => limits.max_decompressed_bytes,
        n => n.min(limits.max_decompressed_bytes),
    };
    let records = (batch.count as usize).saturating_mul(RECORD_COST);
    let total = batch
        .payload
        .len()
        .saturating_add(allowance)
        .saturating_add(records);
    (total, allowance)
}

// === impl Reservation ===

impl Reservation {
    /// Returns all but `keep` bytes to the budget now (the decoded part, once checked).
    pub fn shrink_to(&mut self, keep: usize) {
        let Some(permit) = self.permit.as_mut() else {
            return;
        };
        let held = permit.num_permits();
        if keep < held
            && let Some(released) = permit.split(held - keep)
        {
            self.stats
                .in_use_bytes
                .fetch_sub(released.num_permits() as u64, Ordering::Relaxed);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.stats
                .in_use_bytes
                .fetch_sub(p.num_permits() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_that_does_not_fit_waits_until_bytes_are_returned() {
        let budget = DecodeBudget::new(100);
        let mut first = budget.reserve(80).await.unwrap();
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(50).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        first.shrink_to(30);
        waiting.await.unwrap().unwrap();
        assert_eq!(budget.stats.in_use_bytes.load(Ordering::Relaxed), 30);
        assert_eq!(budget.stats.waits.load(Ordering::Relaxed), 1);
        drop(first);
        assert_eq!(budget.stats.in_use_bytes.load(Ordering::Relaxed), 0);
        assert!(budget.reserve(101).await.is_err());
    }
}
