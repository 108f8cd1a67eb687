//! Evidence archives: a self-verifying copy of a run of the chain, for investigators, auditors
//! and backups, checked on any machine without the collector's data directory.
//!
//! # Layout (one directory)
//!
//! ```text
//! blocks.lsb       the block frames, byte for byte as in the segments, in chain order
//!                  (blocks first_block..=last_block, numbered from the store's first block = 1)
//! checkpoints.txt  signed checkpoint texts covering blocks of the archive, one per line
//! witness.pub      the collector's witness public key
//! README.txt       how to verify, what was selected
//! manifest.json    format, store id, selection, first/last block, prev_hash (the hash of the
//!                  block before first_block: the link into the rest of the chain), last_hash,
//!                  matching_blocks, and for every other file its SHA-256 and size
//! ```
//!
//! # Invariants
//!
//! - The blocks form one contiguous run of the chain: every block's `prev_hash` is the hash of
//!   the block before it, the first one's is `prev_hash`. A selection (`--where`) picks the
//!   first and the last block of the run; blocks between them travel whole too, because a
//!   block's hash covers its whole body and a skipped block would leave a link nobody can check.
//!   `matching_blocks` says which blocks hold a selected record.
//! - The run ends exactly at a signed checkpoint: the first stored checkpoint at or after the
//!   last selected block, or, when none covers it yet, one signed at export time (reason
//!   "export"). So blocks cut from the end of the archive, a changed byte, a removed, inserted
//!   or reordered block and a rewrite with a recomputed chain are each caught by
//!   [`verify_archive`], on top of the SHA-256 sums of the manifest.
//! - The export checks every block it copies (CRC, recomputed hash, link) and refuses a damaged
//!   run: an archive never blesses damage with a fresh signature.

mod export;
mod verify;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::block::{self, BlockHeader, HASH_LEN};
use crate::verify::CheckpointResult;
use crate::{StoreError, WitnessKey};

pub use export::export;
pub use verify::verify_archive;

/// `format` of a manifest.
pub const ARCHIVE_FORMAT: &str = "logship-evidence-archive v1";
/// The manifest file.
pub const MANIFEST: &str = "manifest.json";
/// The block frames.
pub const BLOCKS_FILE: &str = "blocks.lsb";
/// The checkpoint texts.
pub const CHECKPOINTS_FILE: &str = "checkpoints.txt";
/// The public key.
pub const PUBLIC_KEY_FILE: &str = "witness.pub";
/// The instructions.
pub const README_FILE: &str = "README.txt";

/// The archive's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`ARCHIVE_FORMAT`].
    pub format: String,
    /// Id of the store the blocks come from.
    pub store: String,
    /// When the archive was written, Unix ns.
    pub created_ns: i64,
    /// What was asked for (free-form, for people).
    pub selection: serde_json::Value,
    /// Number of the first block in the store (the store's first block is 1).
    pub first_block: u64,
    /// Number of the last block.
    pub last_block: u64,
    /// Hash of block `first_block - 1` (64 zeros for block 1), lowercase hex.
    pub prev_hash: String,
    /// Hash of block `last_block`, lowercase hex.
    pub last_hash: String,
    /// Blocks that hold a selected record.
    pub matching_blocks: Vec<u64>,
    /// Records in all blocks of the archive.
    pub records: u64,
    /// Id of the witness key.
    pub key: String,
    /// SHA-256 (hex) and size of every other file, by name.
    pub files: std::collections::BTreeMap<String, FileSum>,
}

/// Checksum of one archive file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSum {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A block as the export's selector sees it.
#[derive(Debug, Clone, Copy)]
pub struct BlockSummary<'a> {
    /// Agent identity.
    pub agent: &'a str,
    /// Stream id.
    pub stream_id: &'a str,
    /// First seq.
    pub first_seq: u64,
    /// Records.
    pub count: u32,
    /// Lowest observed time.
    pub min_time_ns: i64,
    /// Highest observed time.
    pub max_time_ns: i64,
}

/// What to export.
pub struct ExportRequest<'a> {
    /// Output directory (created; must be empty or absent).
    pub out: &'a Path,
    /// True for a block holding a selected record.
    pub select: &'a mut dyn FnMut(&BlockSummary<'_>) -> bool,
    /// The witness key: checks stored checkpoints, signs one at the end when none covers it.
    pub key: &'a WitnessKey,
    /// What was asked for, for the manifest and README.
    pub selection: serde_json::Value,
    /// The README text (how to verify); the manifest's figures are appended.
    pub readme: &'a str,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Checkpoints in the archive.
    pub checkpoints: usize,
    /// True when no stored checkpoint covered the last selected block and the export signed one.
    pub signed_at_export: bool,
}

/// Result of [`verify_archive`].
#[derive(Debug, Clone, Default)]
pub struct ArchiveReport {
    /// Blocks walked.
    pub blocks: u64,
    /// Records in them.
    pub records: u64,
    /// The manifest, when it could be read.
    pub manifest: Option<Manifest>,
    /// One result per checkpoint (the archive's own, then the extra ones given).
    pub checkpoints: Vec<CheckpointResult>,
    /// Everything wrong; empty means the archive is intact and covered by a checkpoint.
    pub problems: Vec<String>,
}

/// Errors of export.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("archive i/o error on {path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing to export.
    #[error("no stored record matches the selection")]
    NothingSelected,
    /// The output directory exists and is not empty.
    #[error("{0} exists and is not empty")]
    OutNotEmpty(PathBuf),
    /// The run to export is damaged.
    #[error("the store is damaged in the range to export ({0}); run `verify` first")]
    Damaged(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Recomputes the sums of every file and writes `manifest.json` (also what a forger does after
/// editing the files: the sums alone prove nothing against someone who can rewrite them).
pub fn reseal_manifest(out: &Path, manifest: &mut Manifest) -> Result<(), ArchiveError> {
    manifest.files.clear();
    for name in [BLOCKS_FILE, CHECKPOINTS_FILE, PUBLIC_KEY_FILE, README_FILE] {
        let path = out.join(name);
        manifest.files.insert(name.into(), sum_file(&path)?);
    }
    let json = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
    write_file(out, MANIFEST, &json)
}

/// Reads an archive's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not an archive manifest: {e}", path.display()))?;
    if m.format != ARCHIVE_FORMAT {
        return Err(format!("unknown archive format {:?}", m.format));
    }
    Ok(m)
}

pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).map_err(io(&path))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&path))
}

pub(crate) fn sum_file(path: &Path) -> Result<FileSum, ArchiveError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let bytes = std::io::copy(&mut f, &mut h).map_err(io(path))?;
    Ok(FileSum {
        sha256: hex::encode(h.finalize()),
        bytes,
    })
}

/// Checks one whole frame: head CRC, frame CRC, recomputed hash, and its link to `expect`
/// (when given). Returns its header and hash.
pub(crate) fn check_frame(
    frame: &[u8],
    expect: Option<[u8; HASH_LEN]>,
) -> Result<(BlockHeader, [u8; HASH_LEN]), String> {
    let header_len = block::parse_prefix(frame).map_err(|e| e.to_string())?;
    let head_len = block::head_len(header_len);
    let header =
        block::decode_head(frame.get(..head_len).ok_or("cut short")?).map_err(|e| e.to_string())?;
    if frame.len() as u64 != block::frame_len(head_len, header.body_len()) {
        return Err("frame length does not match its header".into());
    }
    let parts = block::split_frame(&header, head_len, frame);
    let body = &frame[head_len..head_len + header.body_len() as usize];
    let computed = block::block_hash(&header.prev_hash, parts.header_bytes, body);
    if !parts.crc_ok {
        return Err("block checksum mismatch (bytes changed)".into());
    }
    if computed != parts.stored_hash {
        return Err("block hash mismatch (contents changed)".into());
    }
    if expect.is_some_and(|e| e != header.prev_hash) {
        return Err("chain broken: prev_hash is not the previous block's hash".into());
    }
    Ok((header, computed))
}
