//! The spool's error type.

use std::io;
use std::path::PathBuf;

/// Errors returned by [`crate::Spool`].
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed; the spool state in memory is unchanged by the failed step.
    #[error("spool {op} failed on {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The spool was closed; appends and waits stop.
    #[error("spool is closed")]
    Closed,
    /// The batch can never fit: its framed size exceeds `max_bytes` (or the 4 GiB record limit).
    /// The caller must split it or drop it.
    #[error("batch of {frame_bytes} bytes exceeds the spool limit of {limit} bytes")]
    BatchTooLarge { frame_bytes: u64, limit: u64 },
    /// The configuration cannot work (checked by `open`).
    #[error("invalid spool config: {0}")]
    Config(String),
    /// Another spool (in this or another process) has the directory open.
    #[error("spool directory {path} is in use by another spool")]
    Locked { path: PathBuf },
    /// The ledger could not be encoded.
    #[error("cannot encode the spool ledger")]
    LedgerEncode(#[source] serde_json::Error),
}

impl SpoolError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| SpoolError::Io { op, path, source }
    }
}
