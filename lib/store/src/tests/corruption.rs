//! Flipped bytes inside stored blocks: open keeps working, search skips and reports, verify
//! reports with segment and offset, and nothing panics or loops.

use super::*;
use crate::verify;

/// Three blocks of stream-a (seqs 1..=12) with fields; returns the refs.
fn three_blocks(dir: &Path) -> Vec<crate::BlockRef> {
    let mut store = open(dir);
    let refs = (0..3)
        .map(|b| {
            let spec = Spec {
                first_seq: 1 + 4 * b,
                fields: true,
                ..Spec::default()
            };
            store.append(block(&spec)).unwrap()
        })
        .collect();
    store.sync().unwrap();
    refs
}

fn flipped_middle_block_is_skipped(at_in_block: impl Fn(&crate::BlockRef) -> u64) {
    let dir = tempfile::tempdir().unwrap();
    let refs = three_blocks(dir.path());
    let bad = &refs[1];
    flip(&bad.segment, bad.offset + at_in_block(bad));

    let (mut store, report) = Store::open(config(dir.path())).unwrap();
    assert_eq!(report.truncated_tail_bytes, 0);
    assert_eq!(report.corrupt.len(), 1, "{:?}", report.corrupt);
    assert_eq!(
        (report.corrupt[0].segment.clone(), report.corrupt[0].offset),
        (bad.segment.clone(), bad.offset)
    );
    // The writer keeps appending after the damage.
    store
        .append(block(&Spec {
            first_seq: 13,
            ..Spec::default()
        }))
        .unwrap();
    store.sync().unwrap();

    let (hits, stats) = collect(dir.path(), &Query::default());
    assert_eq!(seqs(&hits), vec![1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15, 16]);
    assert_eq!(stats.corrupt.len(), 1, "{:?}", stats.corrupt);
    assert_eq!(stats.corrupt[0].offset, bad.offset);

    let report = verify(dir.path()).unwrap();
    assert!(!report.is_ok());
    assert!(report.problems.iter().all(|p| p.segment == bad.segment));
    assert!(
        report.problems.iter().any(|p| p.offset == bad.offset),
        "{:?}",
        report.problems
    );
}

#[test]
fn flipped_payload_byte_in_a_middle_block() {
    flipped_middle_block_is_skipped(|r| r.len / 2);
}

#[test]
fn flipped_header_byte_in_a_middle_block_resyncs() {
    // Byte 5 is inside the header length: the next block is found by its magic.
    flipped_middle_block_is_skipped(|_| 5);
}

#[test]
fn flipped_hash_byte_in_a_middle_block() {
    flipped_middle_block_is_skipped(|r| r.len - 10);
}

#[test]
fn any_flipped_byte_never_panics_and_open_always_succeeds() {
    let probe = tempfile::tempdir().unwrap();
    let refs = three_blocks(probe.path());
    let seg_len = std::fs::metadata(&refs[0].segment).unwrap().len();
    let original = std::fs::read(&refs[0].segment).unwrap();
    let rel = refs[0]
        .segment
        .strip_prefix(probe.path())
        .unwrap()
        .to_path_buf();
    for at in (0..seg_len).step_by(7) {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join(&rel);
        std::fs::create_dir_all(seg.parent().unwrap()).unwrap();
        std::fs::write(&seg, &original).unwrap();
        flip(&seg, at);
        let (hits, _) = collect(dir.path(), &Query::default());
        assert!(hits.len() <= 12, "flip at {at}");
        let report = verify(dir.path()).unwrap();
        assert!(
            !report.is_ok() || report.incomplete_tail.is_some(),
            "flip at {at} went unnoticed"
        );
        let (mut store, opened) = Store::open(config(dir.path())).unwrap();
        let next = store.watermark("agent-1", "stream-a") + 1;
        store
            .append(block(&Spec {
                first_seq: next,
                ..Spec::default()
            }))
            .unwrap();
        store.sync().unwrap();
        drop(store);
        // Open never makes damage disappear: either verify still reports it (kept in place
        // or quarantined), or open took it for a torn write, which only a flip in the last
        // block's length prefix can imitate.
        let cut_as_torn = opened.truncated_tail_bytes > 0;
        assert!(
            !verify(dir.path()).unwrap().is_ok() || cut_as_torn,
            "flip at {at} vanished at open"
        );
        let last = &refs[2];
        if cut_as_torn {
            assert!(
                (last.offset..last.offset + 8).contains(&at),
                "flip at {at} was cut as a torn write"
            );
        }
    }
}

#[test]
fn a_damaged_last_block_is_quarantined_never_cut() {
    let probe = tempfile::tempdir().unwrap();
    let last = three_blocks(probe.path())[2].clone();
    // A payload byte, a header byte, a hash byte and the final CRC byte of the last block.
    let head = 8 + 60;
    for at_in_block in [last.len / 2, head, last.len - 20, last.len - 1] {
        let dir = tempfile::tempdir().unwrap();
        let refs = three_blocks(dir.path());
        let bad = &refs[2];
        flip(&bad.segment, bad.offset + at_in_block);
        let damaged = std::fs::read(&bad.segment).unwrap()[bad.offset as usize..].to_vec();

        let (mut store, report) = Store::open(config(dir.path())).unwrap();
        assert_eq!(report.truncated_tail_bytes, 0, "at {at_in_block}");
        assert_eq!(report.quarantined.len(), 1, "at {at_in_block}");
        let q = &report.quarantined[0];
        assert_eq!((q.offset, q.bytes), (bad.offset, bad.len));
        assert_eq!(
            std::fs::read(&q.file).unwrap(),
            damaged,
            "kept byte for byte"
        );
        assert_eq!(crate::quarantined(dir.path()).unwrap(), report.quarantined);
        // Its records do not count: an agent that never got the ack resends them.
        assert_eq!(store.watermark("agent-1", "stream-a"), 8);
        assert_eq!(store.stats().chain_head, refs[1].hash);
        store
            .append(block(&Spec {
                first_seq: 9,
                ..Spec::default()
            }))
            .unwrap();
        store.sync().unwrap();
        drop(store);
        let (hits, _) = collect(dir.path(), &Query::default());
        assert_eq!(seqs(&hits), (1..=12).collect::<Vec<_>>());
        // verify keeps naming the quarantine file, and opening again changes nothing.
        let (_, again) = Store::open(config(dir.path())).unwrap();
        assert!(again.quarantined.is_empty() && again.truncated_tail_bytes == 0);
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(
            report.problems[0]
                .reason
                .contains("damaged blocks were moved")
        );
        assert_eq!(report.problems[0].segment, q.file);
    }
}

#[test]
fn an_acked_damaged_last_block_shows_as_missing_seqs() {
    // The agent got the ack and deleted the batch: nothing is resent, and verify names both
    // the quarantine file and the seqs that are no longer in the chain.
    let dir = tempfile::tempdir().unwrap();
    let refs = three_blocks(dir.path());
    flip(&refs[2].segment, refs[2].offset + refs[2].len / 2);
    let (mut store, _) = Store::open(config(dir.path())).unwrap();
    store
        .append(block(&Spec {
            first_seq: 13,
            ..Spec::default()
        }))
        .unwrap();
    store.sync().unwrap();
    let reasons: Vec<String> = verify(dir.path())
        .unwrap()
        .problems
        .into_iter()
        .map(|p| p.reason)
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("seqs 9..12") && r.contains("block removed"))
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("damaged blocks were moved"))
    );
}

#[test]
fn a_block_whose_payload_lies_about_its_count_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut input = block(&Spec::default());
    input.count = 5; // payload holds 4 records
    store.append(input).unwrap();
    store.sync().unwrap();
    let (hits, stats) = collect(dir.path(), &Query::default());
    assert!(hits.is_empty());
    assert_eq!(stats.corrupt.len(), 1);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].reason.contains("records"));
}
