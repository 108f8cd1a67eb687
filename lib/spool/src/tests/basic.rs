//! Round trips, seq assignment, acks, the byte cap and positions.

use std::fs;
use std::thread;

use super::*;
use crate::{Position, SpoolError};

#[test]
fn round_trip_returns_the_same_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, rec) = open(&config(dir.path()));
    assert_eq!(rec.next_seq, 1);
    let a = spool
        .append(batch(3, &payload(1, 100), vec![]))
        .expect("append");
    let b = spool
        .append(batch(2, &payload(2, 200), vec![]))
        .expect("append");
    assert_eq!((a, b), (1, 4));
    let first = spool.read_from(1).expect("read").expect("batch");
    assert_eq!(
        (first.first_seq, first.count, first.uncompressed_len),
        (1, 3, 300)
    );
    assert_eq!(first.payload, payload(1, 100));
    // A seq inside a batch returns the containing batch.
    let inside = spool.read_from(5).expect("read").expect("batch");
    assert_eq!((inside.first_seq, inside.payload), (4, payload(2, 200)));
    assert!(spool.read_from(6).expect("read").is_none());
    // Seq 0 (before anything) returns the first batch.
    assert_eq!(
        spool.read_from(0).expect("read").expect("batch").first_seq,
        1
    );
}

#[test]
fn first_open_creates_a_stable_stream_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, rec) = open(&cfg);
    assert!(rec.first_run);
    assert_eq!(rec.stream_id.len(), 32);
    assert!(
        rec.stream_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(spool.stream_id(), rec.stream_id);
    drop(spool);
    let (_spool, again) = open(&cfg);
    assert!(!again.first_run);
    assert_eq!(again.stream_id, rec.stream_id);
    let other = tempfile::tempdir().expect("tempdir");
    assert_ne!(open(&config(other.path())).1.stream_id, rec.stream_id);
}

#[test]
fn seqs_continue_across_reopen_with_and_without_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, _) = open(&cfg);
    for i in 0..5 {
        spool
            .append(batch(10, &payload(i, 900), vec![]))
            .expect("append");
    }
    drop(spool); // a crash: no close
    let (spool, rec) = open(&cfg);
    assert_eq!(rec.next_seq, 51);
    assert_eq!(spool.append(batch(1, b"x", vec![])).expect("append"), 51);
    spool.close();
    drop(spool);
    let (spool, rec) = open(&cfg);
    assert_eq!(rec.next_seq, 52);
    let seqs: Vec<u64> = read_all(&spool, 1).iter().map(|b| b.first_seq).collect();
    assert_eq!(seqs, vec![1, 11, 21, 31, 41, 51]);
}

#[test]
fn ack_deletes_segments_and_frees_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.segment_max_bytes = 2 * frame_len(1000) + 16; // two batches per segment
    let (spool, _) = open(&cfg);
    for i in 0..6 {
        spool
            .append(batch(1, &payload(i, 1000), vec![]))
            .expect("append");
    }
    assert_eq!(segment_files(dir.path()).len(), 3);
    let before = spool.stats();
    assert_eq!(before.bytes, segment_bytes_on_disk(dir.path()));
    spool.ack(3).expect("ack"); // segment 1-2 fully acked, 3-4 only half
    assert_eq!(segment_files(dir.path()).len(), 2);
    let after = spool.stats();
    assert_eq!(after.bytes, segment_bytes_on_disk(dir.path()));
    assert!(after.bytes < before.bytes);
    assert_eq!(after.acked_through, 3);
    // Acked records are skipped even though they are still in a segment.
    assert_eq!(
        spool.read_from(1).expect("read").expect("batch").first_seq,
        4
    );
    // Lower and repeated acks are ignored.
    spool.ack(2).expect("ack");
    spool.ack(3).expect("ack");
    assert_eq!(spool.stats().acked_through, 3);
    spool.ack(6).expect("ack");
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(spool.stats().bytes, 0);
    assert!(spool.read_from(1).expect("read").is_none());
    // Acks past what exists are clamped; new appends continue the seqs.
    spool.ack(100).expect("ack");
    assert_eq!(spool.append(batch(1, b"next", vec![])).expect("append"), 7);
    drop(spool);
    let (spool, rec) = open(&cfg);
    assert_eq!((rec.next_seq, rec.acked_through), (8, 6));
    assert_eq!(
        spool.read_from(0).expect("read").expect("batch").payload,
        b"next"
    );
}

#[test]
fn a_repeated_ack_deletes_what_a_failed_ledger_write_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.segment_max_bytes = 2 * frame_len(1000) + 16; // two batches per segment
    let (spool, _) = open(&cfg);
    for i in 0..4 {
        spool
            .append(batch(1, &payload(i, 1000), vec![]))
            .expect("append");
    }
    assert!(dir.path().join("reserve").is_file(), "no reserve written");
    // The ledger cannot be written (its temp path is a directory): the ack deletes nothing.
    let tmp = dir.path().join("ledger.json.tmp");
    fs::create_dir(&tmp).expect("mkdir");
    assert!(spool.ack(2).is_err());
    assert_eq!(segment_files(dir.path()).len(), 2);
    fs::remove_dir(&tmp).expect("rmdir");
    // The same ack again (nothing newer to ack) now frees the segment.
    spool.ack(2).expect("ack");
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(spool.stats().bytes, segment_bytes_on_disk(dir.path()));
}

/// Two batches of this size fill the cap used by the blocking tests.
fn full_config(dir: &std::path::Path) -> crate::SpoolConfig {
    let mut cfg = config(dir);
    cfg.segment_max_bytes = frame_len(1000) + 16;
    cfg.max_bytes = 2 * (frame_len(1000) + 16) + 10;
    cfg
}

#[test]
fn append_blocks_when_full_until_an_ack_frees_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) = open(&full_config(dir.path()));
    spool
        .append(batch(1, &payload(1, 1000), vec![]))
        .expect("append");
    spool
        .append(batch(1, &payload(2, 1000), vec![]))
        .expect("append");
    let appender = {
        let spool = spool.clone();
        thread::spawn(move || spool.append(batch(1, &payload(3, 1000), vec![])))
    };
    wait_until("the append to block", || spool.stats().blocked_appends == 1);
    assert_eq!(
        spool.stats().waiting_appends,
        1,
        "the spool says it is full"
    );
    assert_eq!(
        spool.stats().next_seq,
        3,
        "the blocked append must not have written"
    );
    spool.ack(1).expect("ack");
    assert_eq!(appender.join().expect("thread").expect("append"), 3);
    assert_eq!(spool.stats().waiting_appends, 0, "no longer full");
    assert!(spool.stats().bytes <= full_config(dir.path()).max_bytes);
    assert_eq!(
        spool.read_from(2).expect("read").expect("batch").first_seq,
        2
    );
    assert_eq!(
        spool.read_from(3).expect("read").expect("batch").payload,
        payload(3, 1000)
    );
}

#[test]
fn close_unblocks_a_blocked_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) = open(&full_config(dir.path()));
    spool
        .append(batch(1, &payload(1, 1000), vec![]))
        .expect("append");
    spool
        .append(batch(1, &payload(2, 1000), vec![]))
        .expect("append");
    let appender = {
        let spool = spool.clone();
        thread::spawn(move || spool.append(batch(1, &payload(3, 1000), vec![])))
    };
    wait_until("the append to block", || spool.stats().blocked_appends == 1);
    spool.close();
    let result = appender.join().expect("thread");
    assert!(matches!(result, Err(SpoolError::Closed)), "{result:?}");
    let later = spool.append(batch(1, b"x", vec![]));
    assert!(matches!(later, Err(SpoolError::Closed)), "{later:?}");
    // Reads and acks still work after close.
    assert_eq!(
        spool.read_from(1).expect("read").expect("batch").first_seq,
        1
    );
    spool.ack(2).expect("ack");
}

#[test]
fn a_batch_larger_than_the_cap_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) = open(&full_config(dir.path()));
    let huge = spool.append(batch(1, &vec![0u8; 5000], vec![]));
    assert!(
        matches!(huge, Err(SpoolError::BatchTooLarge { .. })),
        "{huge:?}"
    );
    assert_eq!(spool.stats().next_seq, 1);
    assert_eq!(spool.append(batch(1, b"ok", vec![])).expect("append"), 1);
}

#[test]
fn positions_merge_last_wins_forget_and_survive_deletion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.segment_max_bytes = 1; // one batch per segment
    let (spool, rec) = open(&cfg);
    assert!(rec.positions.is_empty());
    spool
        .append(batch(1, b"a", vec![pos("a", 10), pos("b", 5)]))
        .expect("append");
    spool
        .append(batch(1, b"b", vec![pos("a", 20), pos("d", 1)]))
        .expect("append");
    spool
        .append(batch(
            1,
            b"c",
            vec![pos("b", Position::FORGET), pos("c", 7)],
        ))
        .expect("append");
    spool
        .append(batch(0, b"", vec![pos("d", Position::FORGET)]))
        .expect("append");
    spool.ack(2).expect("ack"); // the first two segments go; their positions move to the ledger
    assert_eq!(segment_files(dir.path()).len(), 2);
    let ledger = fs::read_to_string(dir.path().join("ledger.json")).expect("ledger");
    assert!(
        ledger.contains("\"offset\":20") && ledger.contains("\"version\":1"),
        "{ledger}"
    );
    drop(spool);
    let (spool, rec) = open(&cfg);
    assert_eq!(rec.positions, vec![pos("a", 20), pos("c", 7)]);
    spool.ack(3).expect("ack");
    drop(spool);
    let (_spool, rec) = open(&cfg);
    assert_eq!(rec.positions, vec![pos("a", 20), pos("c", 7)]);
    assert!(segment_files(dir.path()).len() <= 1);
}

#[test]
fn positions_only_batches_are_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) = open(&config(dir.path()));
    spool.append(batch(2, b"one", vec![])).expect("append");
    assert_eq!(
        spool
            .append(batch(0, b"", vec![pos("k", 1)]))
            .expect("append"),
        3
    );
    spool.append(batch(1, b"two", vec![])).expect("append");
    let all = read_all(&spool, 1);
    let seqs: Vec<(u64, u32)> = all.iter().map(|b| (b.first_seq, b.count)).collect();
    assert_eq!(seqs, vec![(1, 2), (3, 1)]);
}

#[test]
fn concurrent_appends_get_distinct_contiguous_seqs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.fsync_interval_ms = 5;
    let (spool, _) = open(&cfg);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let spool = spool.clone();
            thread::spawn(move || {
                (0..50u64)
                    .map(|i| {
                        let p = payload(t * 1000 + i, 50);
                        (spool.append(batch(2, &p, vec![])).expect("append"), p)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut sent: Vec<(u64, Vec<u8>)> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    sent.sort();
    spool.sync().expect("sync");
    let got: Vec<(u64, Vec<u8>)> = read_all(&spool, 1)
        .into_iter()
        .map(|b| (b.first_seq, b.payload))
        .collect();
    assert_eq!(got.len(), 200);
    assert_eq!(got, sent);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, (seq, _))| *seq == 1 + 2 * i as u64)
    );
}

#[test]
fn positions_of_an_acked_segment_deleted_at_open_survive_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, _) = open(&cfg);
    spool
        .append(batch(2, b"a", vec![pos("a", 1)]))
        .expect("append");
    spool.ack(2).expect("ack"); // deletes the writable segment
    spool
        .append(batch(0, b"", vec![pos("a", 9)]))
        .expect("append");
    drop(spool);
    let (spool, rec) = open(&cfg); // the positions-only segment is fully acked: deleted here
    assert_eq!(rec.positions, vec![pos("a", 9)]);
    drop(spool);
    let (_spool, rec) = open(&cfg);
    assert_eq!(rec.positions, vec![pos("a", 9)]);
    assert_eq!(rec.next_seq, 3);
}

#[test]
fn a_directory_is_open_by_one_spool_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, _) = open(&cfg);
    let second = crate::Spool::open(cfg.clone());
    assert!(
        matches!(second, Err(SpoolError::Locked { .. })),
        "{second:?}"
    );
    let clone = spool.clone();
    drop(spool);
    assert!(
        crate::Spool::open(cfg.clone()).is_err(),
        "a clone keeps it open"
    );
    drop(clone);
    open(&cfg);
}
