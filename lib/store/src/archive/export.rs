//! Writing an archive: number the blocks, pick the run to export, copy and check every frame,
//! then the checkpoints, the key, the README and the manifest (see the module above).

use std::io::Write;
use std::path::Path;

use logship_proto::payload;

use super::{
    ARCHIVE_FORMAT, ArchiveError, BLOCKS_FILE, BlockSummary, CHECKPOINTS_FILE, ExportReport,
    ExportRequest, Manifest, PUBLIC_KEY_FILE, README_FILE, check_frame, io, reseal_manifest,
    write_file,
};
use crate::block;
use crate::checkpoint::{self, COLLECTOR_IDENTITY, Checkpoint};
use crate::segment::{self, SEGMENT_HEADER_LEN, SegmentReader, Step};
use crate::{DEFAULT_MAX_DECOMPRESSED_BYTES, StoreError};

/// Where a block is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    seg: usize,
    offset: u64,
    len: u64,
}

/// Exports the run of blocks from the first to the last selected one, extended to the next
/// checkpoint; see the module documentation.
pub fn export(dir: &Path, req: ExportRequest<'_>) -> Result<ExportReport, ArchiveError> {
    let store = checkpoint::store_id(dir)
        .ok_or_else(|| ArchiveError::Damaged("the store has no store-id file".into()))?;
    let public = req.key.public_key();
    let segments = segment::list_segments(dir).map_err(StoreError::io(dir))?;
    // Pass 1: number the blocks, find the selected ones and the stored checkpoints.
    // Block numbers are absolute: they start after the blocks retention removed.
    let mut n = crate::retention::chain_base(&segments)
        .ok()
        .flatten()
        .map_or(0, |(base, _)| base.blocks);
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
