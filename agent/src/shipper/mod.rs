//! The shipper: sends durable spool batches to the collector over one gRPC `Ship` stream and frees
//! them on acks (DESIGN.md §2, invariant 1).
//!
//! Invariants:
//! - Only fsync'd batches are sent (`durable_next_seq`), and the exact spool bytes are sent.
//! - At most `max_in_flight` batches are unacked on the wire.
//! - A spool batch is freed only by a collector ack covering it. After any error the shipper
//!   reconnects (next endpoint, exponential backoff with jitter) and resumes from the first unacked
//!   record; the collector drops what it already stored.

mod backoff;
mod connect;
mod session;

use std::sync::Arc;

use logship_spool::Spool;
use tokio_util::sync::CancellationToken;

use crate::cert::{Expiry, Validity};
use crate::config::ShipperConfig;
use crate::heartbeat::Heartbeat;
pub use backoff::Backoff;
pub(crate) use connect::connect;
use session::{Session, SessionEnd};

/// Everything the shipper needs.
pub struct Shipper {
    /// The spool to drain.
    pub spool: Spool,
    /// The spool's stream id.
    pub stream_id: String,
    /// This process's instance id and the spool's earlier ones, sent with every batch.
    pub lineage: crate::instance::Lineage,
    /// Collector endpoints in failover order.
    pub endpoints: Vec<String>,
    /// TLS client configuration.
    pub tls: Arc<rustls::ClientConfig>,
    /// Settings.
    pub config: ShipperConfig,
    /// Health reporting.
    pub heartbeat: Heartbeat,
}

// === impl Shipper ===

impl Shipper {
    /// Ships until `shutdown`, then waits briefly for in-flight acks.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        let mut index = 0usize;
        loop {
            let endpoint = &self.endpoints[index % self.endpoints.len()];
            let session = Session {
                shipper: &self,
                endpoint,
            };
            match session.run(&shutdown).await {
                Ok(SessionEnd::Shutdown) => break,
                Err((error, progressed)) => {
                    if progressed {
                        backoff.reset();
                    }
                    index += 1;
                    let delay = backoff.next_delay();
                    self.explain_certificate();
                    tracing::warn!(
                        endpoint = %endpoint,
                        error = %format!("{error:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "Connection to the collector failed; retrying."
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::info!("Shipper stopped.");
    }

    /// After a failed connection: when this agent's certificate is not valid now, says so in
    /// plain words (the TLS error alone reads like a network fault).
    fn explain_certificate(&self) {
        let Some(validity) = Validity::of_client(&self.tls) else {
            return;
        };
        if let Expiry::Invalid(reason) = validity.expiry(crate::cert::now()) {
            tracing::error!(
                %reason,
                not_after = %crate::cert::date(validity.not_after),
                "The collector cannot accept this agent: its certificate is not valid."
            );
        }
    }
}
