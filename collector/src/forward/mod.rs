//! Forwarding the store to the SOC: one thread per `[[forward]]` entry, each a consumer of the
//! store with its own durable cursor (`forward.<name>`, see [`logship_store::Cursor`]).
//!
//! ```text
//! store writer ──fsync──► CommitWatch ──► forwarder "soc"  (cursor forward.soc) ──► tls://siem:6514
//!                                    └──► forwarder "lab"  (cursor forward.lab) ──► tcp://10.0.0.9:514
//! ```
//!
//! Invariants:
//! - **Ingest never waits for a destination**: forwarders only read committed blocks from disk;
//!   a slow or dead destination holds back its own cursor and nothing else (no shared queue, no
//!   shared lock with the writer or with another forwarder). The store is the buffer, bounded
//!   by the disk and retention.
//! - **At least once, with a stable id**: the cursor moves past a batch only after its bytes
//!   were acknowledged by the destination's TCP stack, the connection was still healthy and
//!   [`worker::SETTLE`] had passed ([`transport`]); any failure rewinds reading to the last
//!   commit and resends from there. HTTPS destinations ([`http`]: `json`, `hec`) answer each
//!   request, so there a batch counts as delivered when every request of it got a 2xx. Every
//!   record carries its store `event_id`, so the SIEM can drop the (rare) repeats.
//! - **Nothing forged**: the encoders ([`syslog`], [`cef`]) frame each record by octet count and
//!   escape every structured-data or extension value ([`json`], [`hec`]: one JSON object per
//!   record, the raw text a JSON string), so no byte of a record can end it, start another, or
//!   add a field.
//! - **Permanent errors never block the queue**: a block that cannot be decoded, a range the
//!   cursor had to step over, or a record an HTTPS destination refuses (400/413/422, found by
//!   splitting the request) is counted in `errors` and `permanent_errors` with the last error
//!   text, logged, and passed over.
//! - Transient errors (connect, TLS, write; HTTP 401/403/429/5xx) are retried forever with capped exponential backoff
//!   ([`worker::BACKOFF_MAX`]); each failure counts in `errors` too.

mod cef;
mod encode;
pub mod filter;
mod hec;
mod http;
mod json;
pub(crate) mod matcher;
mod record;
pub mod report;
mod syslog;
mod transport;
mod worker;

pub use encode::Encoder;
pub use record::ForwardRecord;
pub use worker::{ForwardStats, Forwarders, start};

/// Store cursor name of forwarder `name`.
pub fn cursor_name(name: &str) -> String {
    format!("forward.{name}")
}
