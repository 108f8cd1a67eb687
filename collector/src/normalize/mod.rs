//! Normalization into ECS fields (DESIGN.md §5), kept off the ingest path so that parsing never
//! slows acknowledgements ("normalization must not be the bottleneck of ingest").
//!
//! ```text
//! writer thread ──(fsync, then CommitWatch::publish)──► worker thread (store cursor "normalizer")
//!                                                         └──► fields sidecar (per agent stream)
//!                                                              data_dir/fields/<agent>/<stream>.fld
//!                                                         └──► field index of each sealed segment
//!                                                              (logship_store::FieldIndexBuilder)
//! search ──► inline block column ▸ sidecar column ▸ computed on the fly (same parsers, same order)
//! ```
//!
//! Invariants:
//! - Raw records are never changed; fields are derived data. A record whose fields were not
//!   precomputed yet (worker behind, torn sidecar tail) still gets them at search time, so
//!   `--where` sees every record.
//! - One [`logship_normalize::Normalizer`] per (agent, stream), fed in seq order, so stateful
//!   parsers (postfix queue ids, auditd serials) see lines in the order they were written.

pub(crate) mod column;
mod fieldindex;
mod lookup;
mod offline;
mod sidecar;
mod worker;

pub use lookup::FieldsLookup;
pub use offline::{run_accuracy, run_offline};
pub use worker::{CURSOR_NAME, NormalizeStats, WorkerConfig, start};

/// Directory of the fields sidecars inside the data directory.
pub fn fields_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("fields")
}
