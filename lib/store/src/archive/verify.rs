//! Checking an archive on its own: sums, frames, links, block count and checkpoints.

use std::collections::HashMap;
use std::path::Path;

use super::{
    ArchiveReport, BLOCKS_FILE, CHECKPOINTS_FILE, Manifest, PUBLIC_KEY_FILE, check_frame,
    read_manifest, sum_file,
};
use crate::PublicKey;
use crate::block::{GENESIS_HASH, HASH_LEN};
use crate::checkpoint::{self, Checkpoint, FoundCheckpoint};
use crate::segment::{SegmentReader, Step};
use crate::verify::CheckpointResult;

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
        removed: false,
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
