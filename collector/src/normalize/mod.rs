//! Normalization into ECS fields (DESIGN.md §5), kept off the ingest path so that parsing never
//! slows acknowledgements ("normalization must not be the bottleneck of ingest").
//!
//! ```text
//! writer thread ──(fsync, then CommitWatch::publish)──► normalizer thread (store cursor "normalizer")
//!                                                         ├──► parse workers ([normalize] workers)
//!                                                         └──► fields sidecar (per segment)
//!                                                              store/segments/<day>/<stem>.fld
//!                                                         └──► field index of each sealed segment
//!                                                              (logship_store::FieldIndexBuilder)
//! search ──► inline block column ▸ sidecar column ▸ computed on the fly (same parsers, same order)
//! ```
//!
//! The sidecar format belongs to the store ([`logship_store::fields`]); this module produces the
//! fields ([`column`]) and reads them for search ([`FieldsLookup`]).
//!
//! Invariants:
//! - Raw records are never changed; fields are derived data. A record whose fields were not
//!   precomputed yet (worker behind, torn sidecar tail) still gets them at search time, so
//!   `--where` sees every record.
//! - One [`logship_normalize::Normalizer`] per (agent, stream), fed in seq order, so stateful
//!   parsers (postfix queue ids, auditd serials) see lines in the order they were written.

pub(crate) mod column;
mod fieldindex;
pub mod lag;
mod lookup;
mod offline;
mod pace;
mod parse;
mod pool;
mod worker;

pub use lookup::FieldsLookup;
pub use offline::{run_accuracy, run_offline};
pub use worker::{
    CURSOR_NAME, Done, MAX_WORKERS, NormalizeStats, Pipeline, WorkerConfig, default_workers, start,
    window,
};

/// Removes the per-stream sidecars of earlier versions (`data_dir/fields/`, zstd JSON lines):
/// derived data that nothing reads any more (their blocks get their fields at search time).
pub fn remove_legacy_sidecars(data_dir: &std::path::Path) {
    let legacy = data_dir.join("fields");
    if legacy.is_dir() {
        match std::fs::remove_dir_all(&legacy) {
            Ok(()) => tracing::info!(dir = %legacy.display(),
                "Removed the fields sidecars of an earlier version; their fields are computed at search time."),
            Err(error) => tracing::warn!(dir = %legacy.display(), %error,
                "Could not remove the fields sidecars of an earlier version."),
        }
    }
}
