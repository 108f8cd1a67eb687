//! Tamper evidence: removed, swapped and truncated blocks and segments.

use super::*;
use crate::verify;

/// `blocks` blocks of 4 records (seqs 1..), each in its own segment when `roll`.
fn store_with(dir: &Path, blocks: u64, roll: bool) -> Vec<crate::BlockRef> {
    let max = if roll {
        1
    } else {
        crate::DEFAULT_SEGMENT_MAX_BYTES
    };
    let (mut store, _) = Store::open(StoreConfig {
        segment_max_bytes: max,
        ..config(dir)
    })
    .unwrap();
    let refs = (0..blocks)
        .map(|b| {
            store
                .append(block(&Spec {
                    first_seq: 1 + 4 * b,
                    ..Spec::default()
                }))
                .unwrap()
        })
        .collect();
    store.sync().unwrap();
    refs
}

/// Rewrites a segment with the byte range of block `r` removed.
fn cut_out(r: &crate::BlockRef) {
    let mut bytes = std::fs::read(&r.segment).unwrap();
    bytes.drain(r.offset as usize..(r.offset + r.len) as usize);
    std::fs::write(&r.segment, bytes).unwrap();
}

fn reasons(dir: &Path) -> Vec<String> {
    verify(dir)
        .unwrap()
        .problems
        .into_iter()
        .map(|p| p.reason)
        .collect()
}

#[test]
fn a_removed_block_breaks_the_chain_and_the_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let refs = store_with(dir.path(), 4, false);
    cut_out(&refs[1]);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report.problems.iter().all(|p| p.offset == refs[1].offset),
        "{:?}",
        report.problems
    );
    let r = reasons(dir.path());
    assert!(
        r[0].contains("chain broken") && r[1].contains("seqs 5..8"),
        "{r:?}"
    );
}

#[test]
fn swapped_blocks_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let refs = store_with(dir.path(), 3, false);
    let mut bytes = std::fs::read(&refs[0].segment).unwrap();
    let (a, b) = (&refs[0], &refs[1]);
    let block_a = bytes[a.offset as usize..(a.offset + a.len) as usize].to_vec();
    let block_b = bytes[b.offset as usize..(b.offset + b.len) as usize].to_vec();
    let swapped = [block_b, block_a].concat();
    bytes.splice(a.offset as usize..(b.offset + b.len) as usize, swapped);
    std::fs::write(&refs[0].segment, bytes).unwrap();
    let r = reasons(dir.path());
    assert!(
        r.iter().filter(|r| r.contains("chain broken")).count() >= 2,
        "{r:?}"
    );
    assert!(r.iter().any(|r| r.contains("reordered")), "{r:?}");
    // Search still returns every record (in the stored order) and sees nothing corrupt.
    let (hits, stats) = collect(dir.path(), &Query::default());
    assert_eq!(seqs(&hits), vec![5, 6, 7, 8, 1, 2, 3, 4, 9, 10, 11, 12]);
    assert!(stats.corrupt.is_empty());
}

#[test]
fn a_changed_and_rehashed_block_still_breaks_the_next_link() {
    // An attacker who recomputes CRCs and the hash of a changed block cannot fix the link.
    let dir = tempfile::tempdir().unwrap();
    let refs = store_with(dir.path(), 3, false);
    let mut bytes = std::fs::read(&refs[0].segment).unwrap();
    let frame = &bytes[refs[1].offset as usize..(refs[1].offset + refs[1].len) as usize];
    let header_len = crate::block::parse_prefix(frame).unwrap();
    let head_len = crate::block::head_len(header_len);
    let header = crate::block::decode_head(&frame[..head_len]).unwrap();
    let mut payload = frame[head_len..head_len + header.payload_len as usize].to_vec();
    let mut list =
        logship_proto::payload::decode_payload(&payload, 1 << 20, &mut Vec::new()).unwrap();
    list.records[0].observed_unix_nanos += 1; // a real change
    payload = logship_proto::payload::compress(&prost::Message::encode_to_vec(&list), 1).unwrap();
    let header = crate::block::BlockHeader {
        payload_len: payload.len() as u64,
        fields_len: None,
        ..header
    };
    let mut forged = Vec::new();
    crate::block::build_frame(&header, &payload, &[], &mut forged).unwrap();
    let next_block_at = refs[1].offset + forged.len() as u64;
    bytes.splice(
        refs[1].offset as usize..(refs[1].offset + refs[1].len) as usize,
        forged,
    );
    std::fs::write(&refs[0].segment, bytes).unwrap();
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].reason.contains("chain broken"));
    assert_eq!(
        report.problems[0].offset, next_block_at,
        "reported at the next block"
    );
}

#[test]
fn a_truncated_sealed_segment_and_a_removed_segment_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let refs = store_with(dir.path(), 3, true);
    // Drop the whole (only) block of sealed segment 1.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&refs[1].segment)
        .unwrap();
    file.set_len(refs[1].offset).unwrap();
    drop(file);
    let r = reasons(dir.path());
    assert!(r.iter().any(|r| r.contains("index disagrees")), "{r:?}");
    assert!(r.iter().any(|r| r.contains("chain broken")), "{r:?}");
    // Removing a whole segment file (and its sidecar) shows in the numbering and the chain.
    let dir = tempfile::tempdir().unwrap();
    let refs = store_with(dir.path(), 3, true);
    std::fs::remove_file(&refs[1].segment).unwrap();
    std::fs::remove_file(crate::segment::sidecar_path(&refs[1].segment)).unwrap();
    let r = reasons(dir.path());
    assert!(r.iter().any(|r| r.contains("segment removed")), "{r:?}");
    assert!(r.iter().any(|r| r.contains("chain broken")), "{r:?}");
    assert!(r.iter().any(|r| r.contains("missing")), "{r:?}");
}

#[test]
fn a_partially_cut_last_block_is_an_incomplete_tail_not_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let refs = store_with(dir.path(), 2, false);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&refs[1].segment)
        .unwrap();
    file.set_len(refs[1].offset + 10).unwrap();
    drop(file);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(
        report.incomplete_tail.map(|t| t.offset),
        Some(refs[1].offset)
    );
}

#[test]
fn whole_trailing_blocks_cut_from_the_last_segment_are_invisible_to_data_alone() {
    // Documented limit: only a signed off-box chain head can reveal this truncation.
    let dir = tempfile::tempdir().unwrap();
    let refs = store_with(dir.path(), 3, false);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&refs[2].segment)
        .unwrap();
    file.set_len(refs[2].offset).unwrap();
    drop(file);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok());
    assert_eq!(
        report.chain_head, refs[1].hash,
        "the head differs from the one that was signed"
    );
    assert_ne!(report.chain_head, refs[2].hash);
}

/// A one-record block holding the agent's gap record for `first..=last`.
fn gap_block(seq: u64, first: u64, last: u64) -> BlockInput {
    let raw = format!(
        "logship-agent: spool records {first}..={last} lost to corruption (crc mismatch); \
         segment quarantined at /var/lib/logship-agent/spool/x.seg"
    );
    let list = RecordList {
        host: "host-1".into(),
        sources: vec![Source {
            input: "logship-agent".into(),
            path: "spool".into(),
        }],
        records: vec![Record {
            raw: Bytes::from(raw),
            kind: logship_proto::v1::RecordKind::Gap as i32,
            observed_unix_nanos: T0,
            ..Default::default()
        }],
        ..Default::default()
    };
    BlockInput {
        agent: "agent-1".into(),
        stream_id: "stream-a".into(),
        first_seq: seq,
        count: 1,
        host: "host-1".into(),
        min_time_ns: T0,
        max_time_ns: T0,
        inputs: vec!["logship-agent".into()],
        payload: Bytes::from(payload::compress(&list.encode_to_vec(), 1).unwrap()),
        fields: None,
    }
}

#[test]
fn seqs_the_agent_declared_lost_are_a_recorded_gap_not_a_removed_block() {
    for (declared_last, explained) in [(8, true), (6, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.append(block(&Spec::default())).unwrap(); // seqs 1..=4
        // Spool records 5..=8 were lost on the agent; its gap record is seq 9.
        store.append(gap_block(9, 5, declared_last)).unwrap();
        store
            .append(block(&Spec {
                first_seq: 10,
                ..Spec::default()
            }))
            .unwrap();
        store.sync().unwrap();
        let report = verify(dir.path()).unwrap();
        if explained {
            assert!(report.is_ok(), "{:?}", report.problems);
            assert_eq!(report.recorded_gaps.len(), 1);
            assert!(
                report.recorded_gaps[0].reason.contains(
                    "seqs 5..8 of stream agent-1/stream-a are missing: gap recorded by the agent"
                ),
                "{:?}",
                report.recorded_gaps
            );
        } else {
            assert!(report.recorded_gaps.is_empty());
            assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
            assert!(report.problems[0].reason.contains("block removed"));
        }
    }
}

#[test]
fn declared_ranges_are_read_from_the_agent_gap_text() {
    use crate::verify::declared_lost_range;
    let text =
        b"logship-agent: spool records 17..=42 lost to corruption (x); segment quarantined at s";
    assert_eq!(declared_lost_range(text), Some((17, 42)));
    assert_eq!(
        declared_lost_range(b"file truncated: 100 bytes unread"),
        None
    );
    assert_eq!(declared_lost_range(b"spool records x..=1"), None);
}

/// A watcher sees progress after every block and can stop search and verify at a block
/// boundary; what was emitted before stays, and the result says it was interrupted.
#[test]
fn watchers_see_progress_and_stop_walks() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 6, false);
    let mut seen = Vec::new();
    let mut hits = 0u64;
    let stats = crate::search_watched(
        dir.path(),
        &Query::default(),
        crate::DEFAULT_MAX_DECOMPRESSED_BYTES,
        &mut |_| {
            hits += 1;
            true
        },
        &mut |p| {
            seen.push(*p);
            p.blocks < 2
        },
    )
    .unwrap();
    assert!(stats.interrupted);
    assert_eq!(hits, 8, "two blocks of four records were emitted");
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[1].blocks, seen[1].records), (2, 8));
    assert_eq!(seen[1].oldest_ns, Some(T0));
    let whole = crate::verify_watched(dir.path(), &mut |p| p.blocks < 3).unwrap();
    assert!(whole.interrupted && whole.problems.is_empty());
    assert_eq!((whole.blocks, whole.records), (3, 12));
    let full = crate::verify_watched(dir.path(), &mut |_| true).unwrap();
    assert!(!full.interrupted);
    assert_eq!(full.blocks, 6);
}
