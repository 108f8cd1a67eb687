//! logship agent: reads logs (file, journald, syslog and Windows Event Log inputs), frames and compresses them once into batches on a
//! crash-safe spool, and ships the spooled batches to the collector over mutual TLS.
//!
//! Data flow: input thread ([`logship_tail::Tailer`] → [`file_input::FileInputSink`] (decoding,
//! multiline) → [`batcher::Batcher`]) → spool
//! ([`logship_spool::Spool`]) → [`shipper::Shipper`] → collector; acks free the spool.

pub mod batcher;
pub mod cert;
pub mod cli;
pub mod config;
pub mod enroll;
pub mod eventlog;
pub mod evtx;
pub mod file_input;
pub mod heartbeat;
pub mod input_errors;
pub mod instance;
pub mod journald;
pub mod memory;
pub mod paths;
pub mod run;
pub mod service;
pub mod shipper;
pub mod spool_blocked;
pub mod syslog;
pub mod tls;

/// This machine's host name, or "localhost" when it cannot be read.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
