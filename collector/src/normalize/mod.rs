//! Normalization into ECS fields (DESIGN.md §5), kept off the ingest path so that parsing never
//! slows acknowledgements ("normalization must not be the bottleneck of ingest").
//!
//! ```text
//! writer thread ──(after fsync, try_send)──► worker thread ──► fields sidecar (per agent stream)
//!                  full queue: block skipped,                      data_dir/fields/<agent>/<stream>.fld
//!                  counted in status.json
//! search ──► inline block column ▸ sidecar column ▸ computed on the fly (same parsers, same order)
//! ```
//!
//! Invariants:
//! - Raw records are never changed; fields are derived data. A record whose fields were not
//!   precomputed (queue full, collector stopped first, torn sidecar tail) still gets them at
//!   search time, so `--where` sees every record.
//! - One [`logship_normalize::Normalizer`] per (agent, stream), fed in seq order, so stateful
//!   parsers (postfix queue ids, auditd serials) see lines in the order they were written.

mod column;
mod lookup;
mod offline;
mod sidecar;
mod worker;

pub use lookup::FieldsLookup;
pub use offline::{run_accuracy, run_offline};
pub use worker::{Job, NormalizeQueue, NormalizeStats};

/// Directory of the fields sidecars inside the data directory.
pub fn fields_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("fields")
}
