//! The ingest server: the collector's side of `logship.v1.Ingest` (DESIGN.md §2).
//!
//! Per connection (already authenticated by [`crate::tls`]; at most one Ship stream each):
//! batches are read in order, checked against the limits (message size by tonic, header, one
//! running instance per agent identity), wait for their cost in the collector-wide decode budget
//! (`budget`), are walked once within it (record count checked while reading), turned into
//! store blocks off the async workers, handed to the store writer, and acked in order once
//! durable. At most `max_in_flight_per_connection` batches wait for the store; past that the
//! stream is not read (back-pressure to the agent).
//!
//! Errors reach the agent as `tonic::Status` from exactly one place, [`IngestError::into_status`].

mod budget;
mod claims;
mod instances;
mod prepare;
mod service;
pub(crate) mod trim;

pub use budget::{BudgetStats, DecodeBudget, RECORD_COST};
pub use claims::ClaimBook;
pub use instances::InstanceBook;
pub use prepare::{IngestError, Limits};
pub use service::{Guards, HeartbeatBook, IngestService};
