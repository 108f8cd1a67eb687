//! Retention: whole sealed segments removed and recorded in the chain; `verify` starts at the
//! recorded base, so a store after retention is clean, later checkpoints still check, and a
//! segment removed by hand without a record is still a problem.

use super::*;
use crate::{
    CursorPos, Query, RetentionPolicy, VerifyReport, Witness, WitnessKey, find_checkpoints,
    save_cursor, tamper, verify, verify_with_witness,
};

/// One block per segment (segments of 1 byte roll before every block).
fn tiny(dir: &Path) -> Store {
    Store::open(StoreConfig {
        segment_max_bytes: 1,
        ..config(dir)
    })
    .unwrap()
    .0
}

/// Eight agent blocks with checkpoints after the 2nd and the 8th; returns the store, the SOC's
/// file of checkpoints and the key.
fn filled(dir: &Path) -> (Store, String, WitnessKey) {
    let key = WitnessKey::from_pkcs8(&WitnessKey::generate_pkcs8().unwrap()).unwrap();
    let mut store = tiny(dir);
    let mut soc = String::new();
    for b in 0..8u64 {
        store
            .append(block(&Spec {
                first_seq: 1 + 4 * b,
                ..Spec::default()
            }))
            .unwrap();
        if b == 1 || b == 7 {
            let (_, _, text) = store.append_checkpoint(&key, "c", "periodic").unwrap();
            soc.push_str(&format!("{text}\n"));
        }
    }
    store.sync().unwrap();
    (store, soc, key)
}

fn witnessed(dir: &Path, soc: &str, key: &WitnessKey) -> VerifyReport {
    let w = Witness {
        key: key.public_key(),
        checkpoints: find_checkpoints(soc),
    };
    verify_with_witness(dir, Some(&w), &mut |_| true).unwrap()
}

fn size_cap(bytes: u64) -> RetentionPolicy {
    RetentionPolicy {
        max_age_ns: None,
        max_bytes: Some(bytes),
    }
}

#[test]
fn a_store_after_retention_verifies_clean_and_its_checkpoints_still_check() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, soc, key) = filled(dir.path());
    let before = store.stats();
    assert_eq!(before.segments, 10);
    // Keep roughly the newest half.
    let report = store.retain(&size_cap(before.bytes / 2), &[], "c").unwrap();
    let record = report.record.expect("segments removed");
    assert_eq!(record.removed.first().unwrap().n, 0);
    assert!(record.removed.len() >= 4, "{record:?}");
    assert!(record.undelivered.is_empty());
    assert_eq!(record.reason, "max_bytes");
    let removed_blocks = record.removed.last().unwrap().blocks_through;
    assert_eq!(removed_blocks, record.removed.len() as u64);
    assert!(store.stats().bytes <= before.bytes / 2 + 4096);
    assert_eq!(
        tamper::segment_files(dir.path()).len(),
        10 - record.removed.len() + 1
    );
    // One more checkpoint after retention: numbering stays absolute.
    let (_, cp, text) = store.append_checkpoint(&key, "c", "periodic").unwrap();
    assert_eq!(
        cp.blocks,
        10 + 1,
        "8 blocks, 2 checkpoints, 1 retention record"
    );
    store.sync().unwrap();
    let soc = format!("{soc}{text}\n");
    let r = witnessed(dir.path(), &soc, &key);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.removed_blocks, removed_blocks);
    assert_eq!(r.checkpoints.len(), 3);
    // The first checkpoint (after block 3) covers only removed blocks; the others check.
    assert!(r.checkpoints[0].removed && r.checkpoints[0].failure.is_none());
    assert!(
        r.checkpoints[1..]
            .iter()
            .all(|c| !c.removed && c.failure.is_none()),
        "{:?}",
        r.checkpoints
    );
    // The store reopens at the same place: watermarks of removed streams are kept, and the
    // chain continues.
    drop(store);
    let mut store = tiny(dir.path());
    assert_eq!(store.chain_len(), 12);
    assert_eq!(store.chain_records(), 8 * 4 + 2 + 1 + 1);
    assert_eq!(store.watermark("agent-1", "stream-a"), 32);
    let stale = store.append(block(&Spec {
        first_seq: 1,
        ..Spec::default()
    }));
    assert!(
        matches!(stale, Err(crate::StoreError::SeqNotAboveWatermark { .. })),
        "{stale:?}"
    );
    let (_, cp, text) = store.append_checkpoint(&key, "c", "shutdown").unwrap();
    assert_eq!(cp.blocks, 12);
    store.sync().unwrap();
    let r = witnessed(dir.path(), &format!("{soc}{text}\n"), &key);
    assert!(r.is_ok(), "{:?}", r.problems);
    // Search still reads what remains.
    let (hits, _) = collect(dir.path(), &Query::default());
    assert!(
        hits.iter().any(|h| h.0 == "agent-1" && h.2 == 32),
        "{hits:?}"
    );
    assert!(!hits.iter().any(|h| h.0 == "agent-1" && h.2 == 1));
}

#[test]
fn a_segment_removed_by_hand_after_retention_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, soc, key) = filled(dir.path());
    let cap = store.stats().bytes / 2;
    store.retain(&size_cap(cap), &[], "c").unwrap();
    drop(store);
    assert!(verify(dir.path()).unwrap().is_ok());
    let oldest = tamper::segment_files(dir.path())[0].clone();
    std::fs::remove_file(&oldest).unwrap();
    std::fs::remove_file(crate::segment::sidecar_path(&oldest)).unwrap();
    let r = witnessed(dir.path(), &soc, &key);
    let reasons: Vec<_> = r.problems.iter().map(|p| p.reason.clone()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("without a retention record")),
        "{reasons:?}"
    );
}

#[test]
fn removing_the_oldest_segment_of_an_unretained_store_by_hand_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = filled(dir.path());
    drop(store);
    let oldest = tamper::segment_files(dir.path())[0].clone();
    std::fs::remove_file(&oldest).unwrap();
    let r = verify(dir.path()).unwrap();
    let reasons: Vec<_> = r.problems.iter().map(|p| p.reason.clone()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("no retention record names them")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("segment removed")),
        "{reasons:?}"
    );
}

#[test]
fn consumers_hold_back_removal_by_age_but_not_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) = filled(dir.path());
    let consumers = vec!["forward.soc".to_string(), "normalizer".to_string()];
    let age = RetentionPolicy {
        max_age_ns: Some(0),
        max_bytes: None,
    };
    // Neither consumer has read anything: nothing goes by age.
    let r = store.retain(&age, &consumers, "c").unwrap();
    assert!(r.record.is_none());
    // One is past segment 2, the other past segment 4: segments 0..=2 go.
    let start = crate::segment::SEGMENT_HEADER_LEN;
    save_cursor(
        dir.path(),
        "forward.soc",
        CursorPos {
            segment: 3,
            offset: start,
        },
    )
    .unwrap();
    save_cursor(
        dir.path(),
        "normalizer",
        CursorPos {
            segment: 5,
            offset: start,
        },
    )
    .unwrap();
    let r = store.retain(&age, &consumers, "c").unwrap();
    let rec = r.record.unwrap();
    assert_eq!(
        rec.removed.iter().map(|s| s.n).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(rec.reason, "max_age_days");
    assert!(rec.undelivered.is_empty());
    // The size cap removes what the forwarder has not read and records its loss.
    let r = store.retain(&size_cap(1), &consumers, "c").unwrap();
    let rec = r.record.unwrap();
    assert_eq!(rec.reason, "max_bytes");
    let lost_soc = rec.undelivered["forward.soc"];
    let removed_records: u64 = rec.removed.iter().map(|s| s.records).sum();
    assert_eq!(lost_soc, removed_records);
    // The normalizer had read segments 3 and 4 (one 4-record block each, or a checkpoint).
    assert!(rec.undelivered["normalizer"] < lost_soc, "{rec:?}");
    drop(store);
    let v = verify(dir.path()).unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    // The records of the retention rounds are in the store, readable by search.
    let mut recs = Vec::new();
    crate::search(
        dir.path(),
        &Query {
            agent: Some(crate::COLLECTOR_IDENTITY.into()),
            ..Query::default()
        },
        &mut |r| {
            recs.extend(crate::parse_retention_record(r.raw));
            true
        },
    )
    .unwrap();
    assert!(
        recs.iter()
            .any(|r| r.undelivered.contains_key("forward.soc")),
        "{recs:?}"
    );
}

/// Counts the records of agent-2 only, and remembers every block it was shown.
struct OnlyAgent2 {
    shown: Vec<(String, u64, bool)>,
}

impl crate::UnreadCounter for OnlyAgent2 {
    fn filters(&self, name: &str) -> bool {
        name == "forward.narrow"
    }

    fn count(&mut self, name: &str, block: &crate::CursorBlock) -> u64 {
        assert_eq!(name, "forward.narrow");
        self.shown.push((
            block.agent.clone(),
            block.first_seq,
            !block.payload.is_empty(),
        ));
        match block.agent == "agent-2" {
            true => u64::from(block.count),
            false => 0,
        }
    }
}

#[test]
fn a_filtering_consumer_loses_only_what_its_counter_takes_and_a_damaged_block_counts_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = tiny(dir.path());
    // Segments 0..6: agent-1, agent-2, agent-1, agent-2, ... (one 4-record block each).
    for b in 0..6u64 {
        let agent = if b % 2 == 0 { "agent-1" } else { "agent-2" };
        store
            .append(block(&Spec {
                agent,
                first_seq: 1 + 4 * (b / 2),
                ..Spec::default()
            }))
            .unwrap();
    }
    store.sync().unwrap();
    // "narrow" had read segment 0 (so it is not counted), "all" nothing.
    save_cursor(
        dir.path(),
        "forward.narrow",
        CursorPos {
            segment: 1,
            offset: crate::segment::SEGMENT_HEADER_LEN,
        },
    )
    .unwrap();
    // Damage agent-1's block in segment 2: the counter would take none of it, but a block that
    // fails its CRC cannot be judged, so it counts whole (a loss is reported, never hidden).
    let seg2 = tamper::segment_files(dir.path())[2].clone();
    let (at, len) = tamper::block_spans(&seg2, crate::segment::SEGMENT_HEADER_LEN)[0];
    flip(&seg2, at + len / 2);
    let consumers = vec!["forward.narrow".to_string(), "forward.all".to_string()];
    let mut counter = OnlyAgent2 { shown: Vec::new() };
    let r = store
        .retain_counting(&size_cap(1), &consumers, "c", &mut counter)
        .unwrap();
    let rec = r.record.unwrap();
    let removed: u64 = rec.removed.iter().map(|s| s.records).sum();
    assert!(rec.removed.len() >= 4, "{rec:?}");
    // The unfiltered consumer loses everything removed, counted from the index.
    assert_eq!(rec.undelivered["forward.all"], removed);
    // The filtering one: only agent-2's blocks among those it had not read, each block shown
    // to the counter with its payload, and none from the segment it had read.
    let agent2_removed = rec.removed.iter().filter(|s| s.n % 2 == 1).count() as u64 * 4;
    assert_eq!(rec.undelivered["forward.narrow"], agent2_removed + 4);
    assert_eq!(counter.shown.len(), rec.removed.len() - 2);
    assert!(!counter.shown.contains(&("agent-1".to_string(), 5, true)));
    assert!(counter.shown.iter().all(|(_, _, payload)| *payload));
    assert_eq!(counter.shown[0], ("agent-2".to_string(), 1, true));
}

#[test]
fn a_crash_between_the_record_and_the_deletions_leaves_a_clean_store() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, soc, key) = filled(dir.path());
    let cap = store.stats().bytes / 2;
    // Keep copies of the first segments, as a crash before their deletion would have.
    let kept: Vec<_> = tamper::segment_files(dir.path())
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let rec = store
        .retain(&size_cap(cap), &[], "c")
        .unwrap()
        .record
        .unwrap();
    assert!(rec.removed.len() >= 3);
    drop(store);
    // Crashed after deleting segment 0 only: the others it names are still there.
    for (path, bytes) in &kept[1..rec.removed.len()] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let r = witnessed(dir.path(), &soc, &key);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.removed_blocks, 1);
    // Crashed before deleting anything: the whole chain is there from genesis.
    std::fs::write(&kept[0].0, &kept[0].1).unwrap();
    let r = witnessed(dir.path(), &soc, &key);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.removed_blocks, 0);
    // The next round removes them again and records it; the store still verifies.
    let mut store = tiny(dir.path());
    let again = store
        .retain(&size_cap(cap), &[], "c")
        .unwrap()
        .record
        .unwrap();
    assert_eq!(again.removed[0].n, 0);
    assert_eq!(again.before.blocks, 0);
    drop(store);
    let r = witnessed(dir.path(), &soc, &key);
    assert!(r.is_ok(), "{:?}", r.problems);
    assert!(r.removed_blocks >= 3);
}

#[test]
fn the_fields_sidecars_of_removed_segments_go_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) = filled(dir.path());
    let mut fields = crate::fields::FieldsWriter::new(dir.path());
    let blocks = crate::fields::coverage(dir.path()).unwrap();
    for b in &blocks {
        let mut c = crate::fields::ColumnBuilder::new();
        for _ in 0..b.count {
            c.str("user.name", "alice");
            c.end_row();
        }
        let mut bytes = Vec::new();
        c.finish(&mut bytes);
        fields
            .append(b.segment, b.offset, &b.tag, b.count, &bytes)
            .unwrap();
    }
    fields.sync().unwrap();
    drop(fields);
    let sidecars = |dir: &Path| -> Vec<u64> {
        tamper::segment_files(dir)
            .iter()
            .filter(|s| crate::fields::sidecar_path(s).try_exists().unwrap())
            .filter_map(|s| crate::segment::parse_name(s).map(|(_, n)| n))
            .collect()
    };
    assert_eq!(sidecars(dir.path()).len(), 10, "one per segment");
    let before = store.stats();
    let record = store
        .retain(&size_cap(before.bytes / 2), &[], "c")
        .unwrap()
        .record
        .expect("segments removed");
    let kept = sidecars(dir.path());
    assert!(
        record.removed.iter().all(|r| !kept.contains(&r.n)),
        "{kept:?}"
    );
    assert_eq!(kept.len(), 10 - record.removed.len());
    // No sidecar is left without its segment.
    for day in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "fld") {
                assert!(
                    p.with_extension("seg").try_exists().unwrap(),
                    "{}",
                    p.display()
                );
            }
        }
    }
    assert!(
        crate::fields::coverage(dir.path())
            .unwrap()
            .iter()
            .filter(|b| b.agent == "agent-1")
            .all(|b| b.columns == 1)
    );
}
