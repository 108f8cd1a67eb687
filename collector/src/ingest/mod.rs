//! The ingest server: the collector's side of `logship.v1.Ingest` (DESIGN.md §2).
//!
//! Per connection (already authenticated by [`crate::tls`]): batches are read in order, checked
//! against the limits (message size by tonic, record count, decompressed size after
//! decompression), turned into store blocks off the async workers, handed to the store writer,
//! and acked in order once durable. At most `max_in_flight_per_connection` batches wait for the
//! store; past that the stream is not read (back-pressure to the agent).
//!
//! Errors reach the agent as `tonic::Status` from exactly one place, [`IngestError::into_status`].

mod prepare;
mod service;
pub(crate) mod trim;

pub use prepare::{IngestError, Limits};
pub use service::{HeartbeatBook, IngestService};
