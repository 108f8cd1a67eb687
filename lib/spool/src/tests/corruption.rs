//! Recovery from torn tails (truncated silently) and corruption (quarantined and reported).

use std::fs::{self, OpenOptions};
use std::io::Write;

use super::*;

/// Appends `n` one-seq batches of `len` bytes (payload i for seq i) with a position each.
fn fill(spool: &Spool, n: u64, len: usize) {
    for i in 1..=n {
        spool
            .append(batch(1, &payload(i, len), vec![pos("f", i * 100)]))
            .expect("append");
    }
}

/// Framed size of the records written by `fill` (one position "f").
fn fill_frame(len: usize) -> u64 {
    frame_len(len) + 16 + 1 + "/var/log/f.log".len() as u64
}

fn quarantined(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir.join("quarantine"))
        .map(|rd| rd.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_partial_record_at_the_end_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, _) = open(&cfg);
    fill(&spool, 3, 100);
    drop(spool);
    let seg = segment_files(dir.path()).pop().expect("segment");
    let good_len = fs::metadata(&seg).expect("metadata").len();
    // A frame header promising 1000 bytes, followed by only a few.
    let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
    f.write_all(&1000u32.to_le_bytes()).expect("write");
    f.write_all(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).expect("write");
    drop(f);
    let (spool, rec) = open(&cfg);
    assert!(rec.lost.is_empty(), "{:?}", rec.lost);
    assert_eq!(rec.next_seq, 4);
    assert_eq!(rec.positions, vec![pos("f", 300)]);
    assert_eq!(fs::metadata(&seg).expect("metadata").len(), good_len);
    assert_eq!(read_all(&spool, 1).len(), 3);
    assert_eq!(spool.append(batch(1, b"after", vec![])).expect("append"), 4);
    assert_eq!(read_all(&spool, 1).len(), 4);
}

#[test]
fn a_final_record_with_a_bad_crc_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, _) = open(&cfg);
    fill(&spool, 3, 100);
    drop(spool);
    let seg = segment_files(dir.path()).pop().expect("segment");
    let len = fs::metadata(&seg).expect("metadata").len();
    flip_byte(&seg, len - 5); // inside the last record's payload
    let (spool, rec) = open(&cfg);
    assert!(rec.lost.is_empty(), "{:?}", rec.lost);
    assert_eq!(
        rec.next_seq, 3,
        "the torn record was never durable; its seq is reused"
    );
    assert_eq!(
        rec.positions,
        vec![pos("f", 200)],
        "its lines will be re-read"
    );
    assert_eq!(
        fs::metadata(&seg).expect("metadata").len(),
        16 + 2 * fill_frame(100)
    );
    assert_eq!(read_all(&spool, 1).len(), 2);
}

#[test]
fn a_zeroed_tail_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, _) = open(&cfg);
    fill(&spool, 2, 100);
    drop(spool);
    let seg = segment_files(dir.path()).pop().expect("segment");
    let mut f = OpenOptions::new().append(true).open(&seg).expect("open");
    f.write_all(&[0u8; 4096]).expect("write");
    drop(f);
    let (spool, rec) = open(&cfg);
    assert!(rec.lost.is_empty(), "{:?}", rec.lost);
    assert_eq!(rec.next_seq, 3);
    assert_eq!(read_all(&spool, 1).len(), 2);
}

#[test]
fn a_flipped_byte_in_an_older_segment_quarantines_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.segment_max_bytes = 16 + 3 * fill_frame(100); // three batches per segment
    let (spool, _) = open(&cfg);
    fill(&spool, 9, 100);
    drop(spool);
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 3);
    flip_byte(&segs[0], 16 + fill_frame(100) + 50); // middle record of seqs 1..=3
    let (spool, rec) = open(&cfg);
    assert_eq!(rec.lost.len(), 1, "{:?}", rec.lost);
    let lost = &rec.lost[0];
    assert_eq!((lost.first_seq, lost.last_seq), (1, 3));
    assert!(lost.reason.contains("crc"), "{}", lost.reason);
    assert_eq!(quarantined(dir.path()), vec![lost.segment.clone()]);
    assert_eq!(spool.stats().quarantined_segments, 1);
    assert_eq!(rec.next_seq, 10);
    // The rest keeps flowing: reads skip the gap, appends continue.
    assert_eq!(
        spool.read_from(1).expect("read").expect("batch").first_seq,
        4
    );
    assert_eq!(spool.append(batch(1, b"new", vec![])).expect("append"), 10);
    assert_eq!(read_all(&spool, 1).len(), 7);
    spool.ack(10).expect("ack");
    drop(spool);
    let (_spool, rec) = open(&cfg);
    assert!(
        rec.lost.is_empty(),
        "a quarantined segment is reported once"
    );
    assert_eq!(rec.next_seq, 11);
}

#[test]
fn a_flipped_byte_in_the_last_segments_middle_record_quarantines_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.segment_max_bytes = 16 + 3 * fill_frame(100);
    let (spool, _) = open(&cfg);
    fill(&spool, 6, 100);
    drop(spool);
    let segs = segment_files(dir.path());
    flip_byte(&segs[1], 16 + fill_frame(100) + 60); // seq 5, between 4 and 6
    let (spool, rec) = open(&cfg);
    assert_eq!(rec.lost.len(), 1, "{:?}", rec.lost);
    assert_eq!((rec.lost[0].first_seq, rec.lost[0].last_seq), (4, 6));
    assert_eq!(
        rec.next_seq, 7,
        "seqs that may have been shipped are never reused"
    );
    assert_eq!(
        rec.positions,
        vec![pos("f", 300)],
        "positions of lost batches are not applied"
    );
    assert_eq!(spool.append(batch(1, b"new", vec![])).expect("append"), 7);
    let seqs: Vec<u64> = read_all(&spool, 1).iter().map(|b| b.first_seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 7]);
}

#[test]
fn a_bad_segment_header_quarantines_the_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.segment_max_bytes = 16 + 2 * fill_frame(10);
    let (spool, _) = open(&cfg);
    fill(&spool, 4, 10);
    drop(spool);
    flip_byte(&segment_files(dir.path())[0], 2);
    let (spool, rec) = open(&cfg);
    assert_eq!((rec.lost[0].first_seq, rec.lost[0].last_seq), (1, 2));
    assert!(
        rec.lost[0].reason.contains("magic"),
        "{}",
        rec.lost[0].reason
    );
    assert_eq!(read_all(&spool, 0).len(), 2);
}

#[test]
fn damage_found_by_a_read_quarantines_and_reading_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.segment_max_bytes = 16 + 2 * fill_frame(100);
    let (spool, _) = open(&cfg);
    fill(&spool, 4, 100);
    flip_byte(&segment_files(dir.path())[0], 16 + 40);
    let next = spool.read_from(1).expect("read").expect("batch");
    assert_eq!(next.first_seq, 3);
    let lost = spool.take_lost();
    assert_eq!((lost.len(), lost[0].first_seq, lost[0].last_seq), (1, 1, 2));
    assert!(spool.take_lost().is_empty());
    let stats = spool.stats();
    assert_eq!(stats.quarantined_segments, 1);
    assert_eq!(stats.bytes, segment_bytes_on_disk(dir.path()));
}

#[test]
fn a_damaged_ledger_starts_a_new_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, first) = open(&cfg);
    fill(&spool, 2, 10);
    drop(spool);
    fs::write(dir.path().join("ledger.json"), b"{not json").expect("write");
    let (spool, rec) = open(&cfg);
    assert_ne!(rec.stream_id, first.stream_id);
    assert!(!rec.first_run);
    assert_eq!(rec.next_seq, 3);
    assert_eq!(quarantined(dir.path()).len(), 1);
    assert_eq!(read_all(&spool, 1).len(), 2);
    drop(spool);
    assert_eq!(open(&cfg).1.stream_id, rec.stream_id);
    // Without any segment either, it is still not a first run.
    let (spool, _) = open(&cfg);
    spool.ack(2).expect("ack");
    drop(spool);
    assert!(segment_files(dir.path()).is_empty());
    fs::write(dir.path().join("ledger.json"), b"{}").expect("write");
    assert!(!open(&cfg).1.first_run);
}

#[test]
fn a_torn_tail_before_an_empty_rolled_segment_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (spool, _) = open(&cfg);
    fill(&spool, 3, 100);
    drop(spool);
    let seg = segment_files(dir.path()).pop().expect("segment");
    let len = fs::metadata(&seg).expect("metadata").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 7)
        .expect("cut");
    // A crash just after a roll: the next segment exists but its header never made it.
    fs::write(crate::io::segment_path(dir.path(), 4), b"LSS").expect("write");
    let (spool, rec) = open(&cfg);
    assert!(rec.lost.is_empty(), "{:?}", rec.lost);
    assert_eq!(rec.next_seq, 3);
    assert_eq!(segment_files(dir.path()), vec![seg]);
    assert_eq!(spool.append(batch(1, b"again", vec![])).expect("append"), 3);
    assert_eq!(read_all(&spool, 1).len(), 3);
}
