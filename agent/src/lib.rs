//! logship agent: reads logs (file inputs), frames and compresses them once into batches on a
//! crash-safe spool, and ships the spooled batches to the collector over mutual TLS.
//!
//! Data flow: input thread ([`logship_tail::Tailer`] → [`batcher::Batcher`]) → spool
//! ([`logship_spool::Spool`]) → [`shipper::Shipper`] → collector; acks free the spool.

pub mod batcher;
pub mod cert;
pub mod cli;
pub mod config;
pub mod heartbeat;
pub mod instance;
pub mod memory;
pub mod paths;
pub mod run;
pub mod shipper;
pub mod spool_blocked;
pub mod tls;

/// This machine's host name, or "localhost" when it cannot be read.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
