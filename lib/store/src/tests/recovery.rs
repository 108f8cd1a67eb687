//! Reopen, torn tails, segment rolling and sidecars.

use super::*;
use crate::segment::{self, SEGMENT_HEADER_LEN};
use crate::verify;

/// Appends blocks of 4 records for stream-a with seqs 1.., returns their refs.
fn fill(store: &mut Store, blocks: u64, t_step: i64) -> Vec<crate::BlockRef> {
    let refs = (0..blocks)
        .map(|b| {
            let spec = Spec {
                first_seq: 1 + 4 * b,
                t0: T0 + t_step * b as i64,
                ..Spec::default()
            };
            store.append(block(&spec)).unwrap()
        })
        .collect();
    store.sync().unwrap();
    refs
}

#[test]
fn reopen_preserves_watermarks_chain_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    fill(&mut store, 3, 10);
    store
        .append(block(&Spec {
            agent: "agent-2",
            first_seq: 9,
            ..Spec::default()
        }))
        .unwrap();
    store.sync().unwrap();
    let before = store.stats();
    drop(store);
    let (mut store, report) = Store::open(config(dir.path())).unwrap();
    assert_eq!(
        (report.segments, report.blocks, report.truncated_tail_bytes),
        (1, 4, 0)
    );
    assert!(report.corrupt.is_empty());
    assert_eq!(store.stats(), before);
    assert_eq!(store.watermark("agent-1", "stream-a"), 12);
    assert_eq!(store.watermark("agent-2", "stream-a"), 12);
    // The chain continues across the reopen.
    store
        .append(block(&Spec {
            first_seq: 13,
            ..Spec::default()
        }))
        .unwrap();
    store.sync().unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.blocks, report.records), (5, 20));
    assert_eq!(report.chain_head, store.stats().chain_head);
}

#[test]
fn torn_tail_is_cut_back_and_the_next_append_works() {
    // Chop lengths covering the trailer, the body, the header and the whole last block.
    let mut state = 0x9e37_79b9_u64;
    let mut random = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let probe = tempfile::tempdir().unwrap();
    let refs = fill(&mut open(probe.path()), 3, 10);
    let last_len = refs[2].len;
    let mut chops: Vec<u64> = vec![1, 4, 36, 37, last_len - 20, last_len - 1, last_len];
    chops.extend((0..12).map(|_| 1 + random(last_len)));
    for chop in chops {
        let dir = tempfile::tempdir().unwrap();
        let refs = fill(&mut open(dir.path()), 3, 10);
        let seg = &refs[2].segment;
        let full = std::fs::metadata(seg).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
        file.set_len(full - chop).unwrap();
        drop(file);
        let (mut store, report) = Store::open(config(dir.path())).unwrap();
        assert_eq!(report.truncated_tail_bytes, last_len - chop, "chop {chop}");
        assert!(
            report.corrupt.is_empty(),
            "chop {chop}: {:?}",
            report.corrupt
        );
        assert_eq!(std::fs::metadata(seg).unwrap().len(), refs[2].offset);
        assert_eq!(store.watermark("agent-1", "stream-a"), 8, "chop {chop}");
        assert_eq!(store.stats().chain_head, refs[1].hash);
        // The agent resends the lost batch; it is accepted and chained.
        store
            .append(block(&Spec {
                first_seq: 9,
                t0: T0 + 20,
                ..Spec::default()
            }))
            .unwrap();
        store.sync().unwrap();
        let (hits, stats) = collect(dir.path(), &Query::default());
        assert_eq!(seqs(&hits), (1..=12).collect::<Vec<_>>(), "chop {chop}");
        assert!(stats.corrupt.is_empty());
        assert!(verify(dir.path()).unwrap().is_ok(), "chop {chop}");
    }
}

#[test]
fn a_segment_cut_inside_its_header_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let refs = fill(&mut open(dir.path()), 1, 10);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&refs[0].segment)
        .unwrap();
    file.set_len(5).unwrap();
    drop(file);
    let (mut store, report) = Store::open(config(dir.path())).unwrap();
    assert_eq!(report.truncated_tail_bytes, 5);
    assert_eq!(store.watermark("agent-1", "stream-a"), 0);
    fill(&mut store, 1, 10);
    assert_eq!(
        seqs(&collect(dir.path(), &Query::default()).0),
        vec![1, 2, 3, 4]
    );
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn segments_roll_by_size_and_the_sidecar_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_max_bytes: 1,
        ..config(dir.path())
    };
    let (mut store, _) = Store::open(cfg.clone()).unwrap();
    // One block per segment (each block alone exceeds 1 byte); times 1 s apart.
    let refs = fill(&mut store, 4, 1_000_000_000);
    assert_eq!(store.stats().segments, 4);
    let segs: std::collections::BTreeSet<_> = refs.iter().map(|r| r.segment.clone()).collect();
    assert_eq!(segs.len(), 4);
    for r in &refs[..3] {
        assert!(
            segment::sidecar_path(&r.segment).try_exists().unwrap(),
            "sealed segments have a sidecar"
        );
    }
    assert!(
        !segment::sidecar_path(&refs[3].segment)
            .try_exists()
            .unwrap()
    );
    let query = Query {
        since_ns: Some(T0 + 2_000_000_000),
        ..Query::default()
    };
    let (hits, stats) = collect(dir.path(), &query);
    assert_eq!(seqs(&hits), (9..=16).collect::<Vec<_>>());
    assert_eq!((stats.blocks_skipped, stats.blocks_scanned), (2, 2));

    // A damaged sidecar is ignored by readers and rebuilt by the writer.
    let sidecar = segment::sidecar_path(&refs[0].segment);
    std::fs::write(&sidecar, b"garbage").unwrap();
    let (hits, stats) = collect(dir.path(), &query);
    assert_eq!(hits.len(), 8);
    assert_eq!(stats.blocks_skipped, 2, "skipped by its header instead");
    drop(store);
    let (store, report) = Store::open(cfg).unwrap();
    assert_eq!((report.segments, report.blocks), (4, 4));
    assert_eq!(store.watermark("agent-1", "stream-a"), 16);
    assert!(
        crate::index::SegmentIndex::read(
            &sidecar,
            std::fs::metadata(&refs[0].segment).unwrap().len()
        )
        .is_some()
    );
    assert!(verify(dir.path()).unwrap().is_ok());
}

#[test]
fn segments_roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segment_max_age_secs: 0,
        ..config(dir.path())
    };
    let (mut store, _) = Store::open(cfg).unwrap();
    fill(&mut store, 3, 1);
    assert_eq!(store.stats().segments, 3);
    let listed = segment::list_segments(dir.path()).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.n).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for s in &listed {
        assert!(std::fs::metadata(&s.path).unwrap().len() > SEGMENT_HEADER_LEN);
    }
    assert!(
        verify(dir.path()).unwrap().is_ok(),
        "the chain runs across segments"
    );
}
