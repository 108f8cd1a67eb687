//! What a forger with write access to the disk can do, for the tests that show `verify` catches
//! it (unit tests here, the e2e tests through `logship-e2e`). Not part of the product API.
//!
//! Every function here works on closed files (no writer running) and panics on any surprise:
//! it is test tooling, never called by the collector.

use std::path::{Path, PathBuf};

use logship_proto::payload;
use logship_proto::v1::RecordList;
use prost::Message;

use crate::block::{self, BlockHeader, GENESIS_HASH, HASH_LEN};
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentReader, Step};

/// Byte spans `(offset, len)` of the blocks of a file of frames, starting at `start`
/// (16 for a segment, 0 for an archive's `blocks.lsb`). Stops at the first damaged byte.
pub fn block_spans(path: &Path, start: u64) -> Vec<(u64, u64)> {
    let reader = SegmentReader::open(path).expect("open frames file");
    let mut pos = start;
    let mut out = Vec::new();
    while let Step::Block {
        offset, frame_len, ..
    } = reader.step(pos).expect("read frames file")
    {
        out.push((offset, frame_len));
        pos = offset + frame_len;
    }
    out
}

/// Segment files of the store in `dir`, in chain order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    segment::list_segments(dir)
        .expect("list segments")
        .into_iter()
        .map(|s| s.path)
        .collect()
}

/// Rewrites every record whose raw text contains `from` so it contains `to` instead, then
/// recomputes every later block's `prev_hash`, hash and CRCs so the whole chain is valid again,
/// and deletes the segment sidecars (the writer rebuilds them): a rewrite the data alone
/// cannot show. Returns how many records were changed.
pub fn rewrite_store_with_recomputed_chain(dir: &Path, from: &str, to: &str) -> usize {
    let mut prev = GENESIS_HASH;
    let mut changed = 0;
    for seg in segment_files(dir) {
        let bytes = std::fs::read(&seg).expect("read segment");
        let header = &bytes[..SEGMENT_HEADER_LEN as usize];
        let (frames, n) = rechain(&seg, SEGMENT_HEADER_LEN, &mut prev, from, to);
        changed += n;
        let mut out = header.to_vec();
        out.extend_from_slice(&frames);
        std::fs::write(&seg, out).expect("write segment");
        let sidecar = segment::sidecar_path(&seg);
        if sidecar.try_exists().expect("stat sidecar") {
            std::fs::remove_file(sidecar).expect("remove sidecar");
        }
    }
    changed
}

/// [`rewrite_store_with_recomputed_chain`] for a file of frames (an archive's `blocks.lsb`)
/// whose first block links to `prev`.
pub fn rewrite_frames_with_recomputed_chain(
    path: &Path,
    prev: [u8; HASH_LEN],
    from: &str,
    to: &str,
) -> usize {
    let mut prev = prev;
    let (frames, n) = rechain(path, 0, &mut prev, from, to);
    std::fs::write(path, frames).expect("write frames");
    n
}

fn rechain(
    path: &Path,
    start: u64,
    prev: &mut [u8; HASH_LEN],
    from: &str,
    to: &str,
) -> (Vec<u8>, usize) {
    let reader = SegmentReader::open(path).expect("open frames file");
    let mut out = Vec::new();
    let mut frame = Vec::new();
    let mut built = Vec::new();
    let mut scratch = Vec::new();
    let mut changed = 0;
    for (offset, len) in block_spans(path, start) {
        reader.read_frame(offset, len, &mut frame).expect("read");
        let header_len = block::parse_prefix(&frame).expect("prefix");
        let head_len = block::head_len(header_len);
        let mut header: BlockHeader = block::decode_head(&frame[..head_len]).expect("head");
        let parts = block::split_frame(&header, head_len, &frame);
        let mut list =
            payload::decode_payload(parts.payload, 1 << 30, &mut scratch).expect("payload");
        let mut payload = parts.payload.to_vec();
        let fields = parts.fields.map(<[u8]>::to_vec);
        if edit(&mut list, from, to, &mut changed) {
            payload = payload::compress(&list.encode_to_vec(), 1).expect("compress");
        }
        header.prev_hash = *prev;
        header.payload_len = payload.len() as u64;
        *prev = block::build_frame(
            &header,
            &payload,
            fields.as_deref().unwrap_or(&[]),
            &mut built,
        )
        .expect("build frame");
        out.extend_from_slice(&built);
    }
    (out, changed)
}

fn edit(list: &mut RecordList, from: &str, to: &str, changed: &mut usize) -> bool {
    let mut any = false;
    for r in &mut list.records {
        let text = String::from_utf8_lossy(&r.raw);
        if text.contains(from) {
            r.raw = bytes::Bytes::from(text.replace(from, to).into_bytes());
            *changed += 1;
            any = true;
        }
    }
    any
}

/// [`rewrite_store_with_recomputed_chain`] for an evidence archive, then resealing its
/// manifest (fresh SHA-256 sums) as a forger would. Returns how many records were changed.
pub fn rewrite_archive_with_recomputed_chain(dir: &Path, from: &str, to: &str) -> usize {
    let mut manifest = crate::read_manifest(dir).expect("manifest");
    let prev: [u8; HASH_LEN] = hex::decode(&manifest.prev_hash)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let n = rewrite_frames_with_recomputed_chain(&dir.join(crate::BLOCKS_FILE), prev, from, to);
    reseal_archive(dir, &mut manifest);
    n
}

/// Recomputes an archive's manifest sums after its files were edited (what a forger does).
pub fn reseal_archive(dir: &Path, manifest: &mut crate::Manifest) {
    crate::reseal_manifest(dir, manifest).expect("reseal manifest");
}
