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

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use logship_proto::payload;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::block::{self, BlockHeader, GENESIS_HASH, HASH_LEN};
use crate::checkpoint::{self, COLLECTOR_IDENTITY, Checkpoint, FoundCheckpoint};
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentReader, Step};
use crate::verify::CheckpointResult;
use crate::{DEFAULT_MAX_DECOMPRESSED_BYTES, PublicKey, StoreError, WitnessKey};

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

/// Where a block is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    seg: usize,
    offset: u64,
    len: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// === export ===

/// Exports the run of blocks from the first to the last selected one, extended to the next
/// checkpoint; see the module documentation.
pub fn export(dir: &Path, req: ExportRequest<'_>) -> Result<ExportReport, ArchiveError> {
    let store = checkpoint::store_id(dir)
        .ok_or_else(|| ArchiveError::Damaged("the store has no store-id file".into()))?;
    let public = req.key.public_key();
    let segments = segment::list_segments(dir).map_err(StoreError::io(dir))?;
    // Pass 1: number the blocks, find the selected ones and the stored checkpoints.
    let mut n = 0u64;
    let mut first: Option<u64> = None;
    let mut locs: Vec<Loc> = Vec::new();
    let mut matching = Vec::new();
    let mut stored_cps: Vec<(Checkpoint, String)> = Vec::new();
    let mut frame = Vec::new();
    let mut scratch = Vec::new();
    for (si, info) in segments.iter().enumerate() {
        let is_last = si + 1 == segments.len();
        let reader = SegmentReader::open(&info.path).map_err(io(&info.path))?;
        let mut pos = SEGMENT_HEADER_LEN;
        loop {
            match reader.step(pos).map_err(io(&info.path))? {
                Step::Block {
                    offset,
                    header,
                    head_len,
                    frame_len,
                } => {
                    n += 1;
                    pos = offset + frame_len;
                    let summary = BlockSummary {
                        agent: &header.agent,
                        stream_id: &header.stream_id,
                        first_seq: header.first_seq,
                        count: header.count,
                        min_time_ns: header.min_time_ns,
                        max_time_ns: header.max_time_ns,
                    };
                    if (req.select)(&summary) {
                        first.get_or_insert(n);
                        matching.push(n);
                    }
                    if first.is_some() {
                        locs.push(Loc {
                            seg: si,
                            offset,
                            len: frame_len,
                        });
                    }
                    if header.agent == COLLECTOR_IDENTITY {
                        reader
                            .read_frame(offset, frame_len, &mut frame)
                            .map_err(io(&info.path))?;
                        let parts = block::split_frame(&header, head_len, &frame);
                        if let Ok(list) = payload::decode_payload(
                            parts.payload,
                            DEFAULT_MAX_DECOMPRESSED_BYTES,
                            &mut scratch,
                        ) {
                            for r in &list.records {
                                let text = String::from_utf8_lossy(&r.raw).into_owned();
                                if let Ok(cp) = public.open(&text) {
                                    stored_cps.push((cp, text));
                                }
                            }
                        }
                    }
                }
                Step::Corrupt { offset, reason, .. } => {
                    return Err(ArchiveError::Damaged(format!(
                        "{} at {offset}: {reason}",
                        info.path.display()
                    )));
                }
                Step::Tail {
                    offset,
                    reason,
                    torn,
                } => {
                    if is_last && torn {
                        break;
                    }
                    return Err(ArchiveError::Damaged(format!(
                        "{} at {offset}: {reason}",
                        info.path.display()
                    )));
                }
                Step::End => break,
            }
        }
    }
    let (Some(first), Some(&last_match)) = (first, matching.last()) else {
        return Err(ArchiveError::NothingSelected);
    };
    let covering = stored_cps
        .iter()
        .filter(|(cp, _)| cp.store == store && cp.blocks >= last_match)
        .map(|(cp, _)| cp.blocks)
        .min();
    let last = covering.unwrap_or(last_match);
    locs.truncate((last - first + 1) as usize);

    // Pass 2: copy and check every frame of the run.
    std::fs::create_dir_all(req.out).map_err(io(req.out))?;
    if std::fs::read_dir(req.out)
        .map_err(io(req.out))?
        .next()
        .is_some()
    {
        return Err(ArchiveError::OutNotEmpty(req.out.to_path_buf()));
    }
    let blocks_path = req.out.join(BLOCKS_FILE);
    let file = std::fs::File::create(&blocks_path).map_err(io(&blocks_path))?;
    let mut w = std::io::BufWriter::new(file);
    let mut prev_hash = None;
    let mut expect = None;
    let mut records = 0u64;
    let mut current: Option<(usize, SegmentReader)> = None;
    for loc in &locs {
        let path = &segments[loc.seg].path;
        if current.as_ref().is_none_or(|(si, _)| *si != loc.seg) {
            current = Some((loc.seg, SegmentReader::open(path).map_err(io(path))?));
        }
        let (_, reader) = current.as_ref().expect("just opened");
        reader
            .read_frame(loc.offset, loc.len, &mut frame)
            .map_err(io(path))?;
        let (header, hash) = check_frame(&frame, expect).map_err(|e| {
            ArchiveError::Damaged(format!("{} at {}: {e}", path.display(), loc.offset))
        })?;
        prev_hash.get_or_insert(header.prev_hash);
        expect = Some(hash);
        records += u64::from(header.count);
        w.write_all(&frame).map_err(io(&blocks_path))?;
    }
    w.flush().map_err(io(&blocks_path))?;
    w.get_ref().sync_all().map_err(io(&blocks_path))?;
    let last_hash = hex::encode(expect.expect("at least one block"));

    let mut texts: Vec<String> = stored_cps
        .iter()
        .filter(|(cp, _)| cp.store == store && (first..=last).contains(&cp.blocks))
        .map(|(_, t)| t.clone())
        .collect();
    let signed_at_export = covering.is_none();
    if signed_at_export {
        let cp = Checkpoint {
            v: 1,
            store: store.clone(),
            blocks: last,
            head: last_hash.clone(),
            time_ns: crate::writer::now_ns(),
            key: public.id(),
            reason: "export".into(),
        };
        texts.push(req.key.sign(&cp));
    }
    let cps_text: String = texts.iter().map(|t| format!("{t}\n")).collect();
    write_file(req.out, CHECKPOINTS_FILE, cps_text.as_bytes())?;
    write_file(req.out, PUBLIC_KEY_FILE, public.to_text().as_bytes())?;
    let mut manifest = Manifest {
        format: ARCHIVE_FORMAT.into(),
        store,
        created_ns: crate::writer::now_ns(),
        selection: req.selection,
        first_block: first,
        last_block: last,
        prev_hash: hex::encode(prev_hash.expect("at least one block")),
        last_hash,
        matching_blocks: matching,
        records,
        key: public.id(),
        files: Default::default(),
    };
    let readme = format!(
        "{}\nThis archive: blocks {} to {} of store {} ({} records), {} checkpoint(s), \
         key id {}.\nBlocks holding a selected record: {}.\n",
        req.readme,
        manifest.first_block,
        manifest.last_block,
        manifest.store,
        manifest.records,
        texts.len(),
        manifest.key,
        summarize(&manifest.matching_blocks),
    );
    write_file(req.out, README_FILE, readme.as_bytes())?;
    reseal_manifest(req.out, &mut manifest)?;
    Ok(ExportReport {
        manifest,
        checkpoints: texts.len(),
        signed_at_export,
    })
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

fn summarize(list: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let mut j = i;
        while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            list[i].to_string()
        } else {
            format!("{}-{}", list[i], list[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).map_err(io(&path))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(&path))
}

fn sum_file(path: &Path) -> Result<FileSum, ArchiveError> {
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
fn check_frame(
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

// === verify ===

/// Verifies the archive in `dir`: the manifest's sums, every block (CRCs, recomputed hashes,
/// links from `prev_hash`), the block count, and every checkpoint (the archive's and `extra`)
/// against the recomputed chain; the last block must be covered by a valid checkpoint.
/// `key` overrides the archive's own `witness.pub` (a copy kept elsewhere).
pub fn verify_archive(
    dir: &Path,
    extra: &[FoundCheckpoint],
    key: Option<PublicKey>,
) -> ArchiveReport {
    let mut report = ArchiveReport::default();
    let manifest = match read_manifest(dir) {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    // Block numbers start at 1; a hostile manifest must not make the arithmetic below wrap.
    if manifest.first_block == 0
        || manifest.last_block < manifest.first_block
        || manifest.last_block > u64::MAX / 2
    {
        report.problems.push(format!(
            "the manifest's block range {}..={} is not a range of block numbers",
            manifest.first_block, manifest.last_block
        ));
        report.manifest = Some(manifest);
        return report;
    }
    for name in [BLOCKS_FILE, CHECKPOINTS_FILE, PUBLIC_KEY_FILE] {
        if !manifest.files.contains_key(name) {
            report
                .problems
                .push(format!("the manifest does not list {name}"));
        }
    }
    for (name, want) in &manifest.files {
        if name.contains('/') || name.starts_with('.') {
            report.problems.push(format!(
                "the manifest names a file outside the archive: {name:?}"
            ));
            continue;
        }
        match sum_file(&dir.join(name)) {
            Ok(got) if &got == want => {}
            Ok(got) => report.problems.push(format!(
                "{name}: SHA-256 {} ({} bytes) does not match the manifest's {} ({} bytes)",
                got.sha256, got.bytes, want.sha256, want.bytes
            )),
            Err(e) => report.problems.push(format!("{name}: {e}")),
        }
    }
    let own_key = std::fs::read_to_string(dir.join(PUBLIC_KEY_FILE))
        .map_err(|e| e.to_string())
        .and_then(|t| PublicKey::from_text(&t).map_err(|e| e.to_string()));
    let key = match (key, own_key) {
        (Some(k), Ok(own)) if k != own => {
            report.problems.push(format!(
                "the archive's witness.pub (key {}) is not the key given (key {})",
                own.id(),
                k.id()
            ));
            k
        }
        (Some(k), _) => k,
        (None, Ok(own)) => own,
        (None, Err(e)) => {
            report.problems.push(format!("{PUBLIC_KEY_FILE}: {e}"));
            report.manifest = Some(manifest);
            return report;
        }
    };
    let own_text = std::fs::read_to_string(dir.join(CHECKPOINTS_FILE)).unwrap_or_default();
    let mut found = checkpoint::find_checkpoints(&own_text);
    found.extend(extra.iter().cloned());
    let opened: Vec<_> = found.iter().map(|f| (f.line, key.open(&f.text))).collect();
    let mut heads: HashMap<u64, Option<[u8; HASH_LEN]>> = opened
        .iter()
        .filter_map(|(_, o)| o.as_ref().ok().map(|cp| (cp.blocks, None)))
        .collect();
    let prev = hex::decode(&manifest.prev_hash)
        .ok()
        .and_then(|b| <[u8; HASH_LEN]>::try_from(b).ok());
    if prev.is_none() {
        report
            .problems
            .push("manifest prev_hash is not a hash".into());
    }
    heads.insert(manifest.first_block - 1, prev);
    if manifest.first_block == 1 && prev != Some(GENESIS_HASH) {
        report
            .problems
            .push("the archive starts at block 1 but its prev_hash is not the genesis".into());
    }
    walk_blocks(dir, &manifest, prev, &mut heads, &mut report);
    // The number of the last block walked (first_block - 1 when there is none).
    let last = manifest.first_block + report.blocks - 1;
    if report.blocks != manifest.last_block + 1 - manifest.first_block {
        report.problems.push(format!(
            "the archive holds {} blocks; the manifest says blocks {} to {} (blocks cut or added)",
            report.blocks, manifest.first_block, manifest.last_block
        ));
    }
    let mut covered = false;
    for ((line, opened), f) in opened.into_iter().zip(&found) {
        let r = archive_checkpoint(&manifest, &heads, last, line, opened, &f.text);
        covered |= r.failure.is_none() && r.blocks == Some(last) && report.blocks > 0;
        if let Some(fail) = &r.failure {
            report.problems.push(fail.clone());
        }
        report.checkpoints.push(r);
    }
    if !covered {
        report.problems.push(format!(
            "no valid checkpoint covers the archive's last block ({last}): blocks cut from its \
             end could not be told"
        ));
    }
    report.manifest = Some(manifest);
    report
}

fn walk_blocks(
    dir: &Path,
    manifest: &Manifest,
    prev: Option<[u8; HASH_LEN]>,
    heads: &mut HashMap<u64, Option<[u8; HASH_LEN]>>,
    report: &mut ArchiveReport,
) {
    let path = dir.join(BLOCKS_FILE);
    let reader = match SegmentReader::open(&path) {
        Ok(r) => r,
        Err(e) => {
            report.problems.push(format!("{BLOCKS_FILE}: {e}"));
            return;
        }
    };
    let mut pos = 0;
    let mut expect = prev;
    let mut frame = Vec::new();
    loop {
        let step = match reader.step(pos) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(format!("{BLOCKS_FILE}: {e}"));
                return;
            }
        };
        match step {
            Step::Block {
                offset, frame_len, ..
            } => {
                pos = offset + frame_len;
                let n = manifest.first_block + report.blocks;
                report.blocks += 1;
                if let Err(e) = reader.read_frame(offset, frame_len, &mut frame) {
                    report.problems.push(format!("{BLOCKS_FILE}: {e}"));
                    return;
                }
                // Check the link against the previous block even when this one is damaged.
                match check_frame(&frame, expect) {
                    Ok((header, hash)) => {
                        report.records += u64::from(header.count);
                        if let Some(slot) = heads.get_mut(&n) {
                            *slot = Some(hash);
                        }
                        expect = Some(hash);
                    }
                    Err(e) => {
                        report
                            .problems
                            .push(format!("block {n} (offset {offset} of {BLOCKS_FILE}): {e}"));
                        expect = None;
                    }
                }
            }
            Step::Corrupt {
                offset,
                next,
                reason,
            } => {
                report.problems.push(format!(
                    "{BLOCKS_FILE} at {offset}: damaged bytes: {reason}"
                ));
                expect = None;
                pos = next;
            }
            Step::Tail { offset, reason, .. } => {
                report.problems.push(format!(
                    "{BLOCKS_FILE} at {offset}: ends in a partial block: {reason}"
                ));
                return;
            }
            Step::End => return,
        }
    }
}

fn archive_checkpoint(
    manifest: &Manifest,
    heads: &HashMap<u64, Option<[u8; HASH_LEN]>>,
    last: u64,
    line: u64,
    opened: Result<Checkpoint, crate::CheckpointError>,
    text: &str,
) -> CheckpointResult {
    let short = &text[..text.len().min(60)];
    let mut r = CheckpointResult {
        line,
        blocks: None,
        time_ns: None,
        failure: None,
    };
    let cp = match opened {
        Ok(cp) => cp,
        Err(e) => {
            r.failure = Some(format!("checkpoint {short}...: {e}"));
            return r;
        }
    };
    r.blocks = Some(cp.blocks);
    r.time_ns = Some(cp.time_ns);
    r.failure = if cp.store != manifest.store {
        Some(format!(
            "checkpoint of block {} is of store {}, the archive's is {}",
            cp.blocks, cp.store, manifest.store
        ))
    } else if cp.blocks.saturating_add(1) < manifest.first_block {
        None // Before the archive: says nothing about it.
    } else if cp.blocks > last {
        Some(format!(
            "checkpoint covers block {} but the archive ends at block {last} (blocks cut from \
             the end)",
            cp.blocks
        ))
    } else {
        match heads.get(&cp.blocks).copied().flatten() {
            Some(h) if hex::encode(h) == cp.head => None,
            Some(h) => Some(format!(
                "the chain head after block {} is {}, the signed checkpoint says {} (blocks \
                 changed, or rewritten with a recomputed chain)",
                cp.blocks,
                hex::encode(h),
                cp.head
            )),
            None => Some(format!(
                "block {} of the archive is damaged: checkpoint cannot be checked",
                cp.blocks
            )),
        }
    };
    r
}
